//! The store relay: moves the domain events the hold store recorded with its changes (its
//! outbox, [`crate::store::outbox`]) into the service's PostgreSQL outbox, from which the
//! platform's relay publishes them.
//!
//! - Which performances: every one SeatDB has, every `interval`; at once, one this replica just
//!   changed ([`Nudges`], from [`crate::holds::HoldService`]).
//! - Per performance: read up to a batch of events, write them to `bus_outbox` in one
//!   transaction, then acknowledge them (the store drops them); until a read finds nothing
//!   (which gives the performance's log back, see [`HoldStore::read_events`]). The store hands a
//!   performance's log to one reader at a time, so its events reach the outbox in log order
//!   whichever replica relays them, and a reader that died is taken over with what it read and
//!   never acknowledged.
//! - Idempotent on the event id: the transaction first takes the outbox's (topic, key) lock —
//!   the one every outbox writer of the key takes — and then inserts only the events whose id
//!   the outbox does not have yet. A relay that died after its commit and before its
//!   acknowledgement, or two relays that both hold an event, leave one row of it. Should a copy
//!   still reach the bus (an event relayed again after its row passed the outbox's retention),
//!   it carries the same deterministic id, which consumers' inboxes deduplicate.
//! - An entry that does not decode (a bug, damaged data), or an envelope the outbox refuses
//!   (too large), is dead-lettered in the same transaction (`bus_dead_letters`, consumer
//!   [`DEAD_LETTER_CONSUMER`], reason `decode` or `refused`, with the alert metric consumers
//!   use), so it cannot hold back the performance's later events.
//! - Metrics: `boxoffice_seat_events_relayed_total{result=written|duplicate|dead_lettered}`,
//!   `boxoffice_seat_event_relay_lag_seconds` (from the change, by the store's clock, to the
//!   outbox commit), `boxoffice_seat_event_relay_failures_total{step}`.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use contracts::{Envelope, topics};
use platform::bus::{BusError, outbox};
use sqlx::{PgPool, types::Json};
use tokio::{sync::Notify, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    db,
    store::{EventReader, HoldStore, LoggedEvent, StoreError, outbox::Unreadable},
};

/// The consumer name dead letters of unreadable store events are filed under.
pub const DEAD_LETTER_CONSUMER: &str = "seat.store-relay";

/// Most events per read and per transaction.
const BATCH: usize = 500;

/// Why a relay step failed (it is tried again: nothing was acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The hold store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SeatDB (the outbox) failed.
    #[error("outbox: {0}")]
    Outbox(#[from] BusError),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        Self::Outbox(BusError::Db(e))
    }
}

/// Performances whose events should be relayed now: this replica just changed them.
#[derive(Clone, Default)]
pub struct Nudges(Arc<NudgeInner>);

#[derive(Default)]
struct NudgeInner {
    due: Mutex<HashSet<Uuid>>,
    notify: Notify,
}

impl Nudges {
    /// Asks the relay to relay `perf`'s events soon.
    pub fn nudge(&self, perf: Uuid) {
        self.0
            .due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(perf);
        self.0.notify.notify_one();
    }

    fn take(&self) -> HashSet<Uuid> {
        std::mem::take(&mut *self.0.due.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What one write to the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// New outbox rows.
    pub written: usize,
    /// Events the outbox had already (relayed before).
    pub duplicates: usize,
    /// Entries that did not decode, or that the outbox refused: dead-lettered.
    pub dead_lettered: usize,
}

/// Relays one replica's share of the hold store's events. See the module docs.
pub struct StoreRelay {
    store: Arc<dyn HoldStore>,
    pool: PgPool,
    reader: EventReader,
    interval: Duration,
    nudges: Nudges,
}

impl StoreRelay {
    /// A relay reading `store` as `reader` into `pool`'s outbox: every performance every
    /// `interval`, nudged ones at once.
    pub fn new(
        store: Arc<dyn HoldStore>,
        pool: PgPool,
        reader: EventReader,
        interval: Duration,
        nudges: Nudges,
    ) -> Self {
        Self {
            store,
            pool,
            reader,
            interval: interval.max(Duration::from_millis(10)),
            nudges,
        }
    }

    /// Runs until `shutdown`; then relays what this replica was nudged about once more.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(&self, shutdown: CancellationToken) {
        let mut next_pass = Instant::now();
        let mut failed: HashSet<Uuid> = HashSet::new();
        loop {
            let mut due = self.nudges.take();
            if Instant::now() >= next_pass {
                next_pass = Instant::now() + self.interval;
                due.extend(failed.drain());
                match db::performance_ids(&self.pool).await {
                    Ok(all) => due.extend(all),
                    Err(e) => {
                        failure("performances");
                        tracing::warn!(error = %e, "store relay: SeatDB's performances unread");
                    }
                }
            }
            for perf in due {
                if let Err(e) = self.relay_performance(perf).await {
                    tracing::warn!(performance_id = %perf, error = %e,
                        "store relay: events not relayed; trying again");
                    failed.insert(perf);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.nudges.0.notify.notified() => {}
                () = tokio::time::sleep_until(next_pass) => {}
            }
        }
        // What this replica changed last goes out before it stops (the rest waits in the store).
        for perf in self.nudges.take().into_iter().chain(failed) {
            if let Err(e) = self.relay_performance(perf).await {
                tracing::warn!(performance_id = %perf, error = %e,
                    "store relay: events left in the store at shutdown");
            }
        }
    }

    /// Relays `perf`'s events until none is left for this reader; how many were read.
    pub async fn relay_performance(&self, perf: Uuid) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let events = self
                .store
                .read_events(perf, &self.reader, BATCH)
                .await
                .inspect_err(|_| failure("read"))?;
            if events.is_empty() {
                return Ok(total);
            }
            total += events.len();
            self.write(perf, &events)
                .await
                .inspect_err(|_| failure("write"))?;
            let ids: Vec<String> = events.into_iter().map(|e| e.id).collect();
            self.store
                .ack_events(perf, &ids)
                .await
                .inspect_err(|_| failure("ack"))?;
        }
    }

    /// Writes `events` of `perf` to the outbox in one transaction, each event once however
    /// often it is written (see the module docs). Does not acknowledge them.
    pub async fn write(&self, perf: Uuid, events: &[LoggedEvent]) -> Result<Written, RelayError> {
        // (topic, envelope, when the change happened by the store's clock)
        let mut envelopes: Vec<(&'static str, Envelope, i64)> = Vec::with_capacity(events.len());
        let mut unreadable: Vec<&Unreadable> = Vec::new();
        for logged in events {
            match &logged.event {
                Ok(event) => match event.envelope() {
                    Ok((topic, envelope)) => envelopes.push((topic, envelope, event.at_ms)),
                    Err(e) => {
                        tracing::error!(performance_id = %perf, error = %e,
                            "store event not encodable");
                        return Err(BusError::Encode(e).into());
                    }
                },
                Err(bad) => unreadable.push(bad),
            }
        }
        let mut tx = self.pool.begin().await?;
        // Every (topic, key) lock first, in a stable order: a relay writing the same events
        // waits here until this one commits, then finds them in the outbox.
        let keys: BTreeSet<(&str, &str)> = envelopes
            .iter()
            .map(|(t, e, _)| (*t, e.key.as_str()))
            .collect();
        for (topic, key) in keys {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || ' ' || $3))")
                .bind(outbox::KEY_LOCK_SPACE)
                .bind(topic)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        let ids: Vec<Uuid> = envelopes.iter().map(|(_, e, _)| e.id).collect();
        let mut present: HashSet<Uuid> =
            sqlx::query_scalar("SELECT id FROM bus_outbox WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        let mut out = Written::default();
        let mut written_at_ms = Vec::new();
        for (topic, envelope, at_ms) in &envelopes {
            if !present.insert(envelope.id) {
                out.duplicates += 1;
                continue;
            }
            match outbox::enqueue_envelope(&mut tx, topic, envelope).await {
                Ok(()) => {
                    out.written += 1;
                    written_at_ms.push(*at_ms);
                }
                Err(BusError::Db(e)) => return Err(e.into()),
                Err(e) => {
                    // The outbox refuses this envelope (too large, say): it never will take it.
                    tracing::error!(performance_id = %perf, event_id = %envelope.id, error = %e,
                        "store event refused by the outbox; dead-lettered");
                    let json = serde_json::to_value(envelope).map_err(BusError::Encode)?;
                    dead_letter(&mut tx, envelope.id, json, "refused", &e.to_string()).await?;
                    out.dead_lettered += 1;
                }
            }
        }
        for bad in &unreadable {
            tracing::error!(performance_id = %perf, error = %bad.error, entry = %bad.raw,
                "store event unreadable; dead-lettered");
            let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, bad.raw.as_bytes());
            let entry = serde_json::json!({ "performance_id": perf, "entry": bad.raw });
            dead_letter(&mut tx, id, entry, "decode", &bad.error).await?;
            out.dead_lettered += 1;
        }
        tx.commit().await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        for at in written_at_ms {
            metrics::histogram!("boxoffice_seat_event_relay_lag_seconds")
                .record((now_ms - at).max(0) as f64 / 1000.0);
        }
        count("written", out.written);
        count("duplicate", out.duplicates);
        count("dead_lettered", out.dead_lettered);
        if out.dead_lettered > 0 {
            metrics::counter!("boxoffice_bus_dead_letters_total",
                "consumer" => DEAD_LETTER_CONSUMER, "topic" => topics::SEATS, "reason" => "store_event")
            .increment(out.dead_lettered as u64);
        }
        Ok(out)
    }
}

/// Files an event the outbox can never take under [`DEAD_LETTER_CONSUMER`], on `tx`.
async fn dead_letter(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    envelope: serde_json::Value,
    reason: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bus_dead_letters (consumer, event_id, topic, envelope, reason, error, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT DO NOTHING",
    )
    .bind(DEAD_LETTER_CONSUMER)
    .bind(id)
    .bind(topics::SEATS)
    .bind(Json(envelope))
    .bind(reason)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn count(result: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("boxoffice_seat_events_relayed_total", "result" => result)
            .increment(n as u64);
    }
}

fn failure(step: &'static str) {
    metrics::counter!("boxoffice_seat_event_relay_failures_total", "step" => step).increment(1);
}
