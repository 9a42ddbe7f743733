//! The in-memory hold store (standalone mode): one [`Book`] per performance behind a mutex, and
//! a watch channel per performance that wakes readers waiting for changes. Its clock (sale
//! windows, checkout deadlines, expiry) is the process clock. Each book keeps its events until
//! the relay acknowledges them; a read always starts at the oldest one left.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    Changes, Confirmed, EventReader, Hold, HoldStatus, HoldStore, LoggedEvent, Snapshot,
    StoreError, StoreInventory, book::Book,
};
use crate::domain::Change;

#[derive(Default)]
struct Inner {
    books: HashMap<Uuid, Book>,
    hold_index: HashMap<Uuid, Uuid>,
    versions: HashMap<Uuid, watch::Sender<u64>>,
}

/// Holds in process memory; lost at restart (standalone mode re-installs from SeatDB).
#[derive(Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The store's clock: the process clock, ms since the epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Inner {
    fn notify(&mut self, perf: Uuid, version: u64) {
        self.versions
            .entry(perf)
            .or_insert_with(|| watch::channel(0).0)
            .send_replace(version);
    }

    fn with_book<T>(&mut self, perf: Uuid, f: impl FnOnce(&mut Book) -> T) -> Option<T> {
        let book = self.books.get_mut(&perf)?;
        let before = book.version();
        let out = f(book);
        let after = book.version();
        if after != before {
            self.notify(perf, after);
        }
        Some(out)
    }
}

#[async_trait]
impl HoldStore for MemoryStore {
    async fn install_with_records(
        &self,
        inventory: &StoreInventory,
        sold: Option<&[Hold]>,
        withheld: &[String],
    ) -> Result<Option<Change>, StoreError> {
        let mut inner = self.lock();
        let perf = inventory.performance_id;
        if sold.is_none() && !inner.books.contains_key(&perf) {
            return Err(StoreError::UnknownPerformance);
        }
        inner.books.entry(perf).or_default();
        let epoch = chrono::Utc::now().timestamp_micros().to_string();
        let change = inner
            .with_book(perf, |b| {
                b.install_with_records(inventory, sold, withheld, &epoch)
            })
            .ok_or(StoreError::UnknownPerformance)??;
        if change.is_some() {
            for sale in sold.unwrap_or_default() {
                inner.hold_index.insert(sale.hold_id, perf);
            }
        }
        Ok(change)
    }

    async fn live_holds(&self, performance_id: Uuid) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .books
            .get(&performance_id)
            .map_or(0, Book::live_holds))
    }

    async fn hold(&self, hold: &Hold) -> Result<Change, StoreError> {
        let mut inner = self.lock();
        let now = now_ms();
        let change = inner
            .with_book(hold.performance_id, |b| b.hold(hold, now))
            .ok_or(StoreError::UnknownPerformance)??;
        inner.hold_index.insert(hold.hold_id, hold.performance_id);
        Ok(change)
    }

    async fn release(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        reason: HoldStatus,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        let now = now_ms();
        Ok(self
            .lock()
            .with_book(performance_id, |b| b.release(hold_id, reason, now))
            .transpose()?
            .flatten())
    }

    async fn checkout(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        ttl_ms: i64,
    ) -> Result<Hold, StoreError> {
        let now = now_ms();
        self.lock()
            .with_book(performance_id, |b| b.checkout(hold_id, ttl_ms, now))
            .ok_or(StoreError::UnknownPerformance)?
    }

    async fn abandon(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        let now = now_ms();
        Ok(self
            .lock()
            .with_book(performance_id, |b| b.abandon(hold_id, now))
            .flatten())
    }

    async fn expire_next(
        &self,
        performance_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        let now = now_ms();
        Ok(self
            .lock()
            .with_book(performance_id, |b| b.expire_next(now))
            .flatten())
    }

    async fn confirm(&self, sale: &Hold) -> Result<Confirmed, StoreError> {
        self.lock()
            .with_book(sale.performance_id, |b| b.confirm(sale))
            .ok_or(StoreError::UnknownPerformance)?
    }

    async fn restore(&self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        let mut inner = self.lock();
        let out = inner
            .with_book(sale.performance_id, |b| b.restore(sale))
            .ok_or(StoreError::UnknownPerformance)??;
        inner.hold_index.insert(sale.hold_id, sale.performance_id);
        Ok(out)
    }

    async fn withhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError> {
        self.lock()
            .with_book(performance_id, |b| b.withhold(seat_ids))
            .ok_or(StoreError::UnknownPerformance)?
    }

    async fn unwithhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError> {
        self.lock()
            .with_book(performance_id, |b| b.unwithhold(seat_ids))
            .ok_or(StoreError::UnknownPerformance)
    }

    async fn unsell(&self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        Ok(self
            .lock()
            .with_book(sale.performance_id, |b| b.unsell(sale))
            .flatten())
    }

    async fn find_hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .hold_index
            .get(&hold_id)
            .and_then(|perf| inner.books.get(perf))
            .and_then(|b| b.find(hold_id)))
    }

    async fn snapshot(&self, performance_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock().books.get(&performance_id).map(Book::snapshot))
    }

    async fn changes_after(
        &self,
        performance_id: Uuid,
        after: u64,
        wait: Duration,
    ) -> Result<Changes, StoreError> {
        let mut rx = {
            let mut inner = self.lock();
            if let Some(book) = inner.books.get(&performance_id) {
                let changes = book.changes_after(after);
                if changes != Changes::Next(Vec::new()) || wait.is_zero() {
                    return Ok(changes);
                }
            }
            inner
                .versions
                .entry(performance_id)
                .or_insert_with(|| watch::channel(0).0)
                .subscribe()
        };
        // Either a change arrives or the wait ends; both answer with what is there now.
        let _ = tokio::time::timeout(wait, rx.wait_for(|v| *v > after)).await;
        let inner = self.lock();
        inner
            .books
            .get(&performance_id)
            .map(|b| b.changes_after(after))
            .ok_or(StoreError::UnknownPerformance)
    }

    async fn read_events(
        &self,
        performance_id: Uuid,
        _reader: &EventReader,
        max: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        // One process, one relay: every read starts at the oldest event not acknowledged.
        Ok(self
            .lock()
            .books
            .get(&performance_id)
            .map_or_else(Vec::new, |b| b.events(max)))
    }

    async fn ack_events(&self, performance_id: Uuid, ids: &[String]) -> Result<(), StoreError> {
        if let Some(book) = self.lock().books.get_mut(&performance_id) {
            book.ack_events(ids);
        }
        Ok(())
    }
}
