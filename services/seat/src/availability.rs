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
        let (mut held, mut sold) = (0, 0);
        let mut available: BTreeMap<&str, i64> = BTreeMap::new();
        for (seat, status) in state.layout.seats.iter().zip(&state.statuses) {
            let left = available.entry(seat.grade.as_str()).or_default();
            match status {
                SeatStatus::Available => *left += 1,
                SeatStatus::Held => held += 1,
                // Withheld seats are not on sale: counted with the sold, as buyers see them.
                SeatStatus::Sold | SeatStatus::Withheld => sold += 1,
            }
        }
        for spec in &state.layout.areas {
            let left = available.entry(spec.grade.as_str()).or_default();
            if let Some(a) = state.areas.get(&spec.area_id) {
                *left += a.available();
                held += a.2;
                sold += a.3;
            }
        }
        Self {
            available: available
                .into_iter()
                .map(|(g, n)| (g.to_owned(), n))
                .collect(),
            held,
            sold,
        }
    }
}

/// What this replica last told about each performance, and at which epoch and version: a map
/// still at that position is not counted again.
#[derive(Default)]
pub struct Told(HashMap<Uuid, (Counts, std::sync::Arc<str>, u64)>);

impl Told {
    /// The events to send now: one per followed map whose counts differ from what was told
    /// (or that was never told). Each is remembered as told only by [`Told::sent`].
    pub fn due(&self, maps: &SeatMaps) -> Vec<Due> {
        let at = chrono::Utc::now();
        let mut due = Vec::new();
        for perf in maps.ids() {
            let Some(map) = maps.get(perf) else { continue };
            let told = self.0.get(&perf);
            let (counts, epoch, version) = {
                let st = map.read();
                if told.is_some_and(|(_, e, v)| *e == st.epoch && *v == st.version) {
                    continue;
                }
                (Counts::of(&st), st.epoch.clone(), st.version)
            };
            if told.is_some_and(|(c, _, _)| *c == counts) {
                // Moved and back (a hold placed and released): nothing new to tell.
                continue;
            }
            let event = PerformanceAvailability {
                performance_id: perf,
                epoch: epoch.parse().unwrap_or(0),
                version,
                available: counts.available.clone(),
                held: counts.held,
                sold: counts.sold,
                at,
            };
            due.push(Due {
                event,
                counts,
                epoch,
            });
        }
        due
    }

    /// Remembers `sent` as told, and forgets performances no longer followed.
    pub fn sent(&mut self, maps: &SeatMaps, sent: Vec<Due>) {
        for due in sent {
            let at = (due.counts, due.epoch, due.event.version);
            self.0.insert(due.event.performance_id, at);
        }
        let followed: std::collections::HashSet<Uuid> = maps.ids().into_iter().collect();
        self.0.retain(|perf, _| followed.contains(perf));
    }
}

/// One event to send, with what it was counted from.
pub struct Due {
    /// The event.
    pub event: PerformanceAvailability,
    /// Its counts.
    pub counts: Counts,
    /// The map's epoch as the store names it.
    pub epoch: std::sync::Arc<str>,
}

/// Writes `events` to the outbox in one transaction.
pub async fn record(pool: &PgPool, events: &[Due]) -> Result<(), platform::bus::BusError> {
    let mut tx = pool.begin().await.map_err(platform::bus::BusError::Db)?;
    for due in events {
        platform::bus::outbox::enqueue(&mut tx, &due.event).await?;
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
