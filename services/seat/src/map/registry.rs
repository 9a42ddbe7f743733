//! Every performance's map in this replica, and the follower task per performance that keeps it
//! current from the hold store's change log (so replicas agree without talking to each other; a
//! new replica catches up from a snapshot on start).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Applied, Layout, PerfMap};
use crate::{
    db,
    domain::Change,
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

/// The maps of this replica.
#[derive(Clone)]
pub struct SeatMaps {
    maps: Arc<RwLock<HashMap<Uuid, Arc<PerfMap>>>>,
    store: Arc<dyn HoldStore>,
    pool: PgPool,
    shutdown: CancellationToken,
    flush_every: Duration,
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
        }
    }

    /// The map of `perf` if this replica has it.
    pub fn get(&self, perf: Uuid) -> Option<Arc<PerfMap>> {
        self.maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&perf)
            .cloned()
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
        if let Some(map) = self.get(perf) {
            return Ok(Some(map));
        }
        let Some(layout) = db::load_layout(&self.pool, perf).await? else {
            return Ok(None);
        };
        Ok(Some(self.install(Arc::new(layout)).await?))
    }

    /// Installs `layout` in the hold store (a no-op unless its revision is newer) and builds or
    /// resets this replica's map from a snapshot.
    pub async fn install(&self, layout: Arc<Layout>) -> Result<Arc<PerfMap>, LoadError> {
        let perf = layout.performance_id;
        let installed = self.store.install(&layout.inventory()).await?;
        if installed.is_some_and(|c| c.version == 1) {
            // A store that starts empty (memory, after a restart) learns what SeatDB sold.
            for sale in db::sales_of(&self.pool, perf).await? {
                match self.store.restore(&sale).await {
                    Ok(_) => {}
                    Err(e) if e.is_failure() => return Err(e.into()),
                    Err(e) => tracing::error!(performance_id = %perf, hold_id = %sale.hold_id,
                        error = %e, "a sale SeatDB recorded does not fit the hold store"),
                }
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
                Some(map) => (map.clone(), false),
                None => {
                    let map = Arc::new(PerfMap::new(layout.clone(), &snapshot));
                    maps.insert(perf, map.clone());
                    (map, true)
                }
            }
        };
        if fresh {
            tokio::spawn(self.clone().follow(perf, map.clone()));
            tokio::spawn(self.clone().flush(map.clone()));
        } else if layout.revision >= map.layout().revision {
            map.reset(layout, &snapshot);
        }
        Ok(map)
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

    async fn flush(self, map: Arc<PerfMap>) {
        let mut tick = tokio::time::interval(self.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = tick.tick() => map.flush(),
            }
        }
    }

    async fn follow(self, perf: Uuid, map: Arc<PerfMap>) {
        loop {
            let read = tokio::select! {
                () = self.shutdown.cancelled() => return,
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
                Err(e) => Err(e.into()),
            };
            if let Err(e) = outcome {
                tracing::warn!(performance_id = %perf, error = %e, "seat map follower: retrying");
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
