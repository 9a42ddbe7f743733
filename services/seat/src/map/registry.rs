//! Every performance's map in this replica, and the follower task per performance that keeps it
//! current from the hold store's change log (so replicas agree without talking to each other; a
//! new replica catches up from a snapshot on start).
//!
//! Recovery: a store that does not have a performance SeatDB published (new, restarted empty,
//! flushed under a running replica) gets it installed afresh, in a new epoch, together with every
//! sale SeatDB recorded and every seat it has withheld from sale, in one atomic step
//! ([`HoldStore::install_with_records`]): until then it refuses holds for it (unknown
//! performance), so no hold is placed on a seat already sold or withheld.
//! Followers, holds and sales that meet an unknown performance recover it; [`SeatMaps::maintain`]
//! also compares the store with SeatDB periodically and restores sales and withheld seats the
//! store lacks.
//!
//! Bounded: a map nobody read for the idle time, with no stream open and no live hold in the
//! store, is dropped with its tasks (a season of performances does not keep a follower, a
//! connection and a cached map each); the next read loads it again.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Applied, Layout, PerfMap};
use crate::{
    db,
    domain::{Change, SeatStatus},
    store::{Changes, HoldStore, StoreError},
};

/// How long a follower waits on the log per read.
const FOLLOW_WAIT: Duration = Duration::from_secs(2);

/// Why a map could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// SeatDB failed.
    #[error("seat database: {0}")]
    Db(#[from] sqlx::Error),
    /// The hold store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One followed map: the map, what stops its tasks, and when a reader last asked for it.
struct Entry {
    map: Arc<PerfMap>,
    stop: CancellationToken,
    used_ms: Arc<AtomicI64>,
}

/// What one pass of [`SeatMaps::maintain`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Performances installed again in a store that had lost them.
    pub recovered: Vec<Uuid>,
    /// Sales SeatDB recorded that the store lacked, restored.
    pub restored: usize,
    /// Seats the store has sold that SeatDB has not (in flight, or damage: reported only).
    pub unexplained: usize,
    /// Seats SeatDB has withheld that the store had on sale, withheld again.
    pub rewithheld: usize,
    /// Maps dropped as idle.
    pub evicted: Vec<Uuid>,
    /// Maps loaded because the store has live holds for them (so this replica sweeps them).
    pub adopted: Vec<Uuid>,
}

/// The maps of this replica.
#[derive(Clone)]
pub struct SeatMaps {
    maps: Arc<RwLock<HashMap<Uuid, Entry>>>,
    store: Arc<dyn HoldStore>,
    pool: PgPool,
    shutdown: CancellationToken,
    flush_every: Duration,
    /// One lock per performance being recovered: a second caller waits for the first and then
    /// finds the store repaired.
    recovering: Arc<std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SeatMaps {
    /// An empty registry; live deltas are flushed to streams every `flush_every`.
    pub fn new(
        store: Arc<dyn HoldStore>,
        pool: PgPool,
        shutdown: CancellationToken,
        flush_every: Duration,
    ) -> Self {
        Self {
            maps: Arc::default(),
            store,
            pool,
            shutdown,
            flush_every: flush_every.max(Duration::from_millis(10)),
            recovering: Arc::default(),
        }
    }

    /// The hold store the maps follow.
    pub fn store(&self) -> &Arc<dyn HoldStore> {
        &self.store
    }

    /// The map of `perf` if this replica has it.
    pub fn get(&self, perf: Uuid) -> Option<Arc<PerfMap>> {
        self.maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&perf)
            .map(|e| e.map.clone())
    }

    /// [`SeatMaps::get`] for a reader: the map counts as used now.
    fn touch(&self, perf: Uuid) -> Option<Arc<PerfMap>> {
        let maps = self.maps.read().unwrap_or_else(|p| p.into_inner());
        let entry = maps.get(&perf)?;
        entry.used_ms.store(now_ms(), Ordering::Relaxed);
        Some(entry.map.clone())
    }

    /// Performances this replica follows.
    pub fn ids(&self) -> Vec<Uuid> {
        self.maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// The map of `perf`, loading it from SeatDB and the hold store when new to this replica;
    /// `None` when the performance was never published.
    pub async fn load(&self, perf: Uuid) -> Result<Option<Arc<PerfMap>>, LoadError> {
        if let Some(map) = self.touch(perf) {
            return Ok(Some(map));
        }
        let Some(layout) = db::load_layout(&self.pool, perf).await? else {
            return Ok(None);
        };
        let map = self.install(Arc::new(layout)).await?;
        self.touch(perf);
        Ok(Some(map))
    }

    /// Installs `layout` in the hold store (a no-op unless its revision is newer; afresh, with
    /// SeatDB's sales, when the store lacks the performance) and builds or resets this
    /// replica's map from a snapshot.
    pub async fn install(&self, layout: Arc<Layout>) -> Result<Arc<PerfMap>, LoadError> {
        let perf = layout.performance_id;
        let inventory = layout.inventory();
        match self.store.install_with_sales(&inventory, None).await {
            Err(StoreError::UnknownPerformance) => {
                // The store lacks it: SeatDB's sales and withheld seats go in with the
                // inventory, atomically.
                let sold = db::sales_of(&self.pool, perf).await?;
                let withheld = db::withheld_seat_ids(&self.pool, perf).await?;
                self.store
                    .install_with_records(&inventory, Some(&sold), &withheld)
                    .await?;
                tracing::info!(performance_id = %perf, sales = sold.len(),
                    withheld = withheld.len(),
                    "performance installed afresh in the hold store with SeatDB's sales");
            }
            other => {
                other?;
            }
        }
        let snapshot = self
            .store
            .snapshot(perf)
            .await?
            .ok_or(StoreError::UnknownPerformance)?;
        let (map, fresh) = {
            let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
            match maps.get(&perf) {
                Some(entry) => (entry.map.clone(), None),
                None => {
                    let map = Arc::new(PerfMap::new(layout.clone(), &snapshot));
                    let stop = self.shutdown.child_token();
                    maps.insert(
                        perf,
                        Entry {
                            map: map.clone(),
                            stop: stop.clone(),
                            used_ms: Arc::new(AtomicI64::new(now_ms())),
                        },
                    );
                    (map, Some(stop))
                }
            }
        };
        if let Some(stop) = fresh {
            tokio::spawn(self.clone().follow(perf, map.clone(), stop.clone()));
            tokio::spawn(self.clone().flush(map.clone(), stop));
        } else if layout.revision >= map.layout().revision {
            map.reset(layout, &snapshot);
        }
        Ok(map)
    }

    /// Installs `perf` again from SeatDB in a store that lost it (see the module docs) and
    /// resets this replica's map; one recovery per performance at a time in this replica, and
    /// the store's script makes sure only one replica's install takes effect.
    pub async fn recover(&self, perf: Uuid) -> Result<(), LoadError> {
        let lock = self
            .recovering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(perf)
            .or_default()
            .clone();
        let result = {
            let _one_at_a_time = lock.lock().await;
            match db::load_layout(&self.pool, perf).await {
                Ok(Some(layout)) => self.install(Arc::new(layout)).await.map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            }
        };
        {
            let mut locks = self.recovering.lock().unwrap_or_else(|p| p.into_inner());
            // The last one out removes the lock (the map holds one reference, `lock` another).
            if Arc::strong_count(&lock) <= 2 {
                locks.remove(&perf);
            }
        }
        metrics::counter!("boxoffice_seat_recoveries_total",
            "result" => if result.is_ok() { "recovered" } else { "failed" })
        .increment(1);
        result
    }

    /// Drops the map of `perf` and stops its tasks (the next read loads it again).
    fn evict(&self, perf: Uuid) {
        let removed = self
            .maps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&perf);
        if let Some(entry) = removed {
            entry.stop.cancel();
        }
    }

    /// One maintenance pass over every published performance: maps idle for `idle` with no
    /// stream and no live hold are dropped; a store that lost a followed performance gets it
    /// back; sales SeatDB recorded that the store lacks are restored; a performance this replica
    /// does not follow but that has live holds in the store is loaded, so its holds expire.
    pub async fn maintain(&self, idle: Duration) -> Result<Maintenance, LoadError> {
        let mut done = Maintenance::default();
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        for perf in db::performance_ids(&self.pool).await? {
            // One performance's trouble (its store call failing, a sale that does not fit)
            // does not hold up the others' maintenance.
            if let Err(e) = self.maintain_one(perf, idle_ms, &mut done).await {
                tracing::warn!(performance_id = %perf, error = %e,
                    "seat map maintenance of a performance failed; the next pass retries");
            }
        }
        Ok(done)
    }

    async fn maintain_one(
        &self,
        perf: Uuid,
        idle_ms: i64,
        done: &mut Maintenance,
    ) -> Result<(), LoadError> {
        let used = {
            let maps = self.maps.read().unwrap_or_else(|p| p.into_inner());
            maps.get(&perf)
                .map(|e| (e.map.clone(), e.used_ms.load(Ordering::Relaxed)))
        };
        let live = match self.store.live_holds(perf).await {
            Ok(n) => n,
            Err(e) if e.is_failure() => return Err(e.into()),
            Err(_) => 0,
        };
        match used {
            Some((map, used_ms)) => {
                if live == 0
                    && map.subscribers() == 0
                    && now_ms().saturating_sub(used_ms) >= idle_ms
                {
                    self.evict(perf);
                    done.evicted.push(perf);
                    return Ok(());
                }
                self.reconcile(perf, &map, done).await?;
            }
            None if live > 0 => {
                self.load(perf).await?;
                done.adopted.push(perf);
            }
            None => {}
        }
        Ok(())
    }

    /// Compares the store's sold seats and places of `perf` with SeatDB's sales and restores
    /// the sales it lacks.
    async fn reconcile(
        &self,
        perf: Uuid,
        map: &PerfMap,
        done: &mut Maintenance,
    ) -> Result<(), LoadError> {
        let Some(snapshot) = self.store.snapshot(perf).await? else {
            self.recover(perf).await?;
            done.recovered.push(perf);
            return Ok(());
        };
        let sold_in_store: HashSet<&str> = snapshot
            .taken
            .iter()
            .filter(|(_, st)| *st == SeatStatus::Sold)
            .map(|(s, _)| s.as_str())
            .collect();
        let store_area_sold: HashMap<&str, i64> =
            snapshot.areas.iter().map(|a| (a.0.as_str(), a.3)).collect();
        let sales = db::sales_of(&self.pool, perf).await?;
        let mut area_sold: HashMap<&str, i64> = HashMap::new();
        for sale in &sales {
            for (a, q) in &sale.areas {
                *area_sold.entry(a.as_str()).or_default() += q;
            }
        }
        let short_areas: HashSet<&str> = area_sold
            .iter()
            .filter(|(a, q)| store_area_sold.get(*a).copied().unwrap_or(0) < **q)
            .map(|(a, _)| *a)
            .collect();
        let mut in_seatdb = 0usize;
        for sale in &sales {
            in_seatdb += sale.seat_ids.len();
            let lacks = sale
                .seat_ids
                .iter()
                .any(|s| !sold_in_store.contains(s.as_str()))
                || sale
                    .areas
                    .iter()
                    .any(|(a, _)| short_areas.contains(a.as_str()));
            if !lacks {
                continue;
            }
            match self.store.restore(sale).await {
                Ok(Some(change)) => {
                    map.apply(&change);
                    done.restored += 1;
                    metrics::counter!("boxoffice_seat_reconciled_total", "result" => "restored")
                        .increment(1);
                    tracing::warn!(performance_id = %perf, hold_id = %sale.hold_id,
                        "restored a sale the hold store lacked");
                }
                Ok(None) => {}
                Err(e) if e.is_failure() => return Err(e.into()),
                Err(e) => tracing::error!(performance_id = %perf, hold_id = %sale.hold_id,
                    error = %e, "a sale SeatDB recorded does not fit the hold store"),
            }
        }
        let unexplained = sold_in_store.len().saturating_sub(in_seatdb);
        if unexplained > 0 {
            tracing::warn!(performance_id = %perf, seats = unexplained,
                "the hold store has seats sold that SeatDB has not (a sale in flight, or damage)");
        }
        done.unexplained += unexplained;
        self.reconcile_withheld(perf, map, &snapshot, done).await
    }

    /// Withholds again the seats SeatDB has withheld that the store has on sale (a store rolled
    /// back to an older snapshot). Under the performance's withholding lock, so a release in
    /// flight (its rows deleted, not yet committed) is not undone.
    async fn reconcile_withheld(
        &self,
        perf: Uuid,
        map: &PerfMap,
        snapshot: &crate::store::Snapshot,
        done: &mut Maintenance,
    ) -> Result<(), LoadError> {
        let in_store: HashSet<&str> = snapshot
            .taken
            .iter()
            .filter(|(_, st)| *st == SeatStatus::Withheld)
            .map(|(s, _)| s.as_str())
            .collect();
        let layout = map.layout();
        let mut tx = self.pool.begin().await?;
        db::lock_withheld(&mut tx, perf).await?;
        let mut missing: Vec<String> = db::withheld_of(&mut tx, perf)
            .await?
            .into_iter()
            .map(|w| w.seat_id)
            // A seat a re-publication took out of the venue stays withheld in SeatDB (it comes
            // back withheld if the venue gets it back), but there is nothing to withhold now.
            .filter(|s| !in_store.contains(s.as_str()) && layout.seat(s).is_some())
            .collect();
        // Twice at most: a seat a buyer took meanwhile is left out of the second try.
        for _ in 0..2 {
            if missing.is_empty() {
                break;
            }
            match self.store.withhold(perf, &missing).await {
                Ok(change) => {
                    if change.version > 0 {
                        map.apply(&change);
                        done.rewithheld += change.seats.len();
                        metrics::counter!("boxoffice_seat_reconciled_total", "result" => "rewithheld")
                            .increment(change.seats.len() as u64);
                        tracing::warn!(performance_id = %perf, seats = change.seats.len(),
                            "withheld again seats the hold store had on sale");
                    }
                    break;
                }
                Err(StoreError::Unavailable { seat_ids, .. }) => {
                    tracing::error!(performance_id = %perf, seats = ?seat_ids,
                        "seats SeatDB has withheld are held or sold in the hold store");
                    missing.retain(|s| !seat_ids.contains(s));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs [`SeatMaps::maintain`] every `every` (first at once) until shutdown.
    pub fn spawn_maintenance(
        &self,
        every: Duration,
        idle: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let maps = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = maps.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match maps.maintain(idle).await {
                    Ok(done) if done != Maintenance::default() => {
                        tracing::info!(
                            recovered = done.recovered.len(),
                            restored = done.restored,
                            evicted = done.evicted.len(),
                            adopted = done.adopted.len(),
                            "seat maps maintained"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "seat map maintenance failed; next pass retries")
                    }
                }
            }
        })
    }

    /// Applies a change this replica just made (the follower would get it a moment later).
    pub fn apply(&self, perf: Uuid, change: &Change) {
        if let Some(map) = self.get(perf) {
            map.apply(change);
        }
    }

    /// Reloads layout and state (after a re-publication or when the log was truncated).
    async fn reload(&self, perf: Uuid, map: &PerfMap) -> Result<(), LoadError> {
        let snapshot = self
            .store
            .snapshot(perf)
            .await?
            .ok_or(StoreError::UnknownPerformance)?;
        // SeatDB commits the revision right after the store installs it; wait for it briefly.
        for _ in 0..50 {
            match db::load_layout(&self.pool, perf).await? {
                Some(layout) if layout.revision >= snapshot.revision => {
                    map.reset(Arc::new(layout), &snapshot);
                    return Ok(());
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        map.reset(map.layout(), &snapshot);
        Ok(())
    }

    async fn flush(self, map: Arc<PerfMap>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => map.flush(),
            }
        }
    }

    /// Keeps `map` current until `stop`. Boxed as `Send`: it recovers the performance through
    /// [`SeatMaps::install`], which spawns followers (a cycle the compiler cannot see through).
    fn follow(
        self,
        perf: Uuid,
        map: Arc<PerfMap>,
        stop: CancellationToken,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self.follow_loop(perf, map, stop))
    }

    async fn follow_loop(self, perf: Uuid, map: Arc<PerfMap>, stop: CancellationToken) {
        loop {
            let read = tokio::select! {
                () = stop.cancelled() => return,
                r = self.store.changes_after(perf, map.version(), FOLLOW_WAIT) => r,
            };
            let outcome = match read {
                Ok(Changes::Next(changes)) => {
                    let mut reload = false;
                    for change in &changes {
                        match map.apply(change) {
                            Applied::Yes | Applied::Stale => {}
                            Applied::Gap => break,
                            Applied::Reload => {
                                reload = true;
                                break;
                            }
                        }
                    }
                    if reload {
                        self.reload(perf, &map).await
                    } else {
                        Ok(())
                    }
                }
                Ok(Changes::Truncated) => self.reload(perf, &map).await,
                Err(StoreError::UnknownPerformance) => self.recover(perf).await,
                Err(e) => Err(e.into()),
            };
            let outcome = match outcome {
                Err(LoadError::Store(StoreError::UnknownPerformance)) => self.recover(perf).await,
                other => other,
            };
            if let Err(e) = outcome {
                tracing::warn!(performance_id = %perf, error = %e, "seat map follower: retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
