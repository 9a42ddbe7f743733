//! Tells the catalog what is left: every `seat.availability_interval_ms` this replica looks at
//! the maps it follows and, for each whose counts changed since it last told, writes one
//! `performance.availability` (available by grade, held, sold, at the map's epoch and version)
//! to SeatDB's outbox. The catalog keeps the newest by `(epoch, version)` and shows a
//! performance with nothing available as sold out, and on sale again when seats come back.
//!
//! Every replica tells about the maps it has; they all apply the same change log, so they tell
//! the same counts at the same version and the catalog ignores the repeats. A performance no
//! replica follows has no live hold (maintenance follows every one that has), so nothing about
//! it can change until a replica loads it again, and then it is told at once: what a replica
//! told before it restarted is forgotten and told again, never lost.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use contracts::events::PerformanceAvailability;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::SeatStatus,
    map::{MapState, registry::SeatMaps},
};

/// The counts of a map: what [`PerformanceAvailability`] carries, without its clock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    /// On sale, by grade (every grade of the layout, 0 when none is left).
    pub available: BTreeMap<String, i64>,
    /// In holds, all grades.
    pub held: i64,
    /// Sold, all grades.
    pub sold: i64,
}

impl Counts {
    /// The counts of `state`: its seats and its general-admission areas.
    pub fn of(state: &MapState) -> Self {
        let mut c = Self::default();
        for (seat, status) in state.layout.seats.iter().zip(&state.statuses) {
            let available = c.available.entry(seat.grade.clone()).or_default();
            match status {
                SeatStatus::Available => *available += 1,
                SeatStatus::Held => c.held += 1,
                SeatStatus::Sold => c.sold += 1,
            }
        }
        for spec in &state.layout.areas {
            let available = c.available.entry(spec.grade.clone()).or_default();
            if let Some(a) = state.areas.get(&spec.area_id) {
                *available += a.available();
                c.held += a.2;
                c.sold += a.3;
            }
        }
        c
    }
}

/// What this replica last told about each performance.
#[derive(Default)]
pub struct Told(HashMap<Uuid, Counts>);

impl Told {
    /// The events to send now: one per followed map whose counts differ from what was told
    /// (or that was never told). Each is remembered as told only by [`Told::sent`].
    pub fn due(&self, maps: &SeatMaps) -> Vec<(PerformanceAvailability, Counts)> {
        let at = chrono::Utc::now();
        let mut due = Vec::new();
        for perf in maps.ids() {
            let Some(map) = maps.get(perf) else { continue };
            let (counts, epoch, version) = {
                let st = map.read();
                (Counts::of(&st), st.epoch.parse().unwrap_or(0), st.version)
            };
            if self.0.get(&perf) == Some(&counts) {
                continue;
            }
            let event = PerformanceAvailability {
                performance_id: perf,
                epoch,
                version,
                available: counts.available.clone(),
                held: counts.held,
                sold: counts.sold,
                at,
            };
            due.push((event, counts));
        }
        due
    }

    /// Remembers `sent` as told, and forgets performances no longer followed.
    pub fn sent(&mut self, maps: &SeatMaps, sent: Vec<(PerformanceAvailability, Counts)>) {
        for (event, counts) in sent {
            self.0.insert(event.performance_id, counts);
        }
        let followed: std::collections::HashSet<Uuid> = maps.ids().into_iter().collect();
        self.0.retain(|perf, _| followed.contains(perf));
    }
}

/// Writes `events` to the outbox in one transaction.
pub async fn record(
    pool: &PgPool,
    events: &[(PerformanceAvailability, Counts)],
) -> Result<(), platform::bus::BusError> {
    let mut tx = pool.begin().await.map_err(platform::bus::BusError::Db)?;
    for (event, _) in events {
        platform::bus::outbox::enqueue(&mut tx, event).await?;
    }
    tx.commit().await.map_err(platform::bus::BusError::Db)?;
    Ok(())
}

/// Runs the teller every `every` until shutdown. A failed write is logged and tried again at the
/// next tick (nothing is remembered as told until it is in the outbox).
pub fn spawn(
    maps: SeatMaps,
    pool: PgPool,
    every: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut told = Told::default();
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let due = told.due(&maps);
            if due.is_empty() {
                told.sent(&maps, due);
                continue;
            }
            match record(&pool, &due).await {
                Ok(()) => {
                    metrics::counter!("boxoffice_seat_availability_told_total")
                        .increment(due.len() as u64);
                    told.sent(&maps, due);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "availability not recorded; the next tick retries")
                }
            }
        }
    })
}
