//! The outbox relay: publishes a service's `bus_outbox` rows to the transport, oldest first, and
//! marks them published.
//!
//! - One relay at a time per database: each batch runs in a transaction holding
//!   `pg_try_advisory_xact_lock`, so replicas never interleave and per-key order holds. A replica
//!   that does not get the lock publishes nothing and waits for its next turn.
//! - A row is marked published (in the batch transaction) only after the transport confirmed it.
//!   Within a batch, rows of one key are published in order, one after another; different keys
//!   are published concurrently. A failed row holds back the rest of its key until the next batch.
//!   A crash between publish and commit publishes those rows again later: delivery is
//!   at-least-once and consumers deduplicate on the event id.
//! - Wakes on `LISTEN bus_outbox` (sent by [`super::outbox::enqueue`] at commit) or every
//!   `relay_interval_ms`, whichever comes first; backs off (capped, exponential) while the
//!   transport or the database fails.
//! - Deletes published rows older than seven days now and then.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use contracts::Envelope;
use futures::StreamExt;
use sqlx::{PgPool, postgres::PgListener, types::Json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Backoff, BusError, BusSettings, Transport, outbox::NOTIFY_CHANNEL};

/// Advisory lock key held by the relay that is publishing (one per database).
const RELAY_LOCK: i64 = 7_305_002;
/// How often published rows past retention are deleted.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// Publishes one service's outbox rows to the transport.
pub struct Relay {
    service: String,
    pool: PgPool,
    transport: Arc<dyn Transport>,
    batch: i64,
    interval: Duration,
    replay_window: Duration,
    concurrency: usize,
}

impl Relay {
    /// A relay for one service's outbox.
    pub fn new(
        service: &str,
        pool: PgPool,
        transport: Arc<dyn Transport>,
        settings: &BusSettings,
    ) -> Self {
        Self {
            service: service.to_owned(),
            pool,
            transport,
            batch: settings.relay_batch.max(1),
            interval: Duration::from_millis(settings.relay_interval_ms.max(10)),
            replay_window: Duration::from_millis(settings.replay_window_ms),
            concurrency: settings.relay_concurrency.max(1),
        }
    }

    /// Runs until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    /// Publishes at most one batch; returns how many rows it published. Returns 0 when another
    /// relay holds the lock. On a transport error the rows published before it stay marked.
    pub async fn run_once(&self) -> Result<usize, BusError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            tx.rollback().await?;
            return Ok(0);
        }
        let rows: Vec<(i64, String, Json<Envelope>)> = sqlx::query_as(
            "SELECT seq, topic, envelope FROM bus_outbox WHERE published_at IS NULL \
             ORDER BY seq LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;

        // Rows of one (topic, key) go out one after another, in seq order; different keys go
        // out concurrently, so a broker's round trip is paid once per batch, not once per row.
        let mut chains: Vec<Vec<(i64, String, Envelope)>> = Vec::new();
        let mut chain_of: HashMap<(String, String), usize> = HashMap::new();
        for (seq, topic, Json(envelope)) in rows {
            let slot = *chain_of
                .entry((topic.clone(), envelope.key.clone()))
                .or_insert_with(|| {
                    chains.push(Vec::new());
                    chains.len() - 1
                });
            chains[slot].push((seq, topic, envelope));
        }
        let outcomes: Vec<(Vec<i64>, Option<BusError>)> = futures::stream::iter(chains)
            .map(|chain| async move {
                let mut sent = Vec::with_capacity(chain.len());
                for (seq, topic, envelope) in chain {
                    if let Err(e) = self.transport.publish(&topic, &envelope).await {
                        // The rest of this key waits for the next batch, keeping its order.
                        return (sent, Some(e));
                    }
                    sent.push(seq);
                }
                (sent, None)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut sent: Vec<i64> = Vec::new();
        let mut failure = None;
        for (seqs, error) in outcomes {
            sent.extend(seqs);
            if failure.is_none() {
                failure = error;
            }
        }
        let published = sent.len();
        if !sent.is_empty() {
            sqlx::query("UPDATE bus_outbox SET published_at = now() WHERE seq = ANY($1)")
                .bind(&sent)
                .execute(&mut *tx)
                .await?;
        }
        // Keep what went out even when a later row failed: unmarking it would only publish it
        // twice.
        tx.commit().await?;
        if published > 0 {
            metrics::counter!("boxoffice_bus_published_total", "service" => self.service.clone())
                .increment(u64::try_from(published).unwrap_or(u64::MAX));
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Marks the rows published within the replay window before the last publication as
    /// unpublished again, so they go out once more; returns how many.
    pub async fn replay_recent(&self) -> Result<u64, BusError> {
        if self.replay_window.is_zero() {
            return Ok(0);
        }
        let window_ms = i64::try_from(self.replay_window.as_millis()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "UPDATE bus_outbox SET published_at = NULL WHERE published_at IS NOT NULL \
             AND published_at > (SELECT max(published_at) FROM bus_outbox) \
                 - make_interval(secs => $1::double precision / 1000)",
        )
        .bind(window_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes published rows older than seven days; returns how many.
    async fn cleanup(&self) -> Result<u64, BusError> {
        let done = sqlx::query(
            "DELETE FROM bus_outbox WHERE published_at IS NOT NULL \
             AND published_at < now() - interval '7 days'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn listen(&self) -> Option<PgListener> {
        let attempt = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match attempt.await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(
                    service = %self.service, error = %e,
                    "relay cannot LISTEN; scanning on its interval"
                );
                None
            }
        }
    }

    async fn run(self, shutdown: CancellationToken) {
        tracing::info!(service = %self.service, "outbox relay started");
        match self.replay_recent().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(service = %self.service, rows = n, "replaying recent events"),
            Err(e) => tracing::warn!(service = %self.service, error = %e, "replay failed"),
        }
        let mut listener = self.listen().await;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut last_cleanup: Option<Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if last_cleanup.is_none_or(|at| at.elapsed() >= CLEANUP_EVERY) {
                match self.cleanup().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(service = %self.service, deleted = n, "outbox cleaned"),
                    Err(e) => {
                        tracing::warn!(service = %self.service, error = %e, "outbox cleanup failed")
                    }
                }
                last_cleanup = Some(Instant::now());
            }
            match self.run_once().await {
                Ok(n) => {
                    backoff.reset();
                    if n > 0 {
                        tracing::debug!(
                            service = %self.service, published = n, "outbox batch published"
                        );
                    }
                    // A full batch means more may be waiting: go again without waiting.
                    if i64::try_from(n).is_ok_and(|n| n >= self.batch) {
                        continue;
                    }
                }
                Err(e) => {
                    let service = self.service.clone();
                    metrics::counter!("boxoffice_bus_relay_errors_total", "service" => service)
                        .increment(1);
                    tracing::warn!(
                        service = %self.service, error = %e, "outbox relay failed; backing off"
                    );
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            }
            // Idle: wait for a notification, the interval, or shutdown.
            match listener.as_mut() {
                Some(l) => {
                    let received = tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(self.interval) => continue,
                        received = l.recv() => received,
                    };
                    match received {
                        // One scan covers every notification already queued.
                        Ok(_) => while l.next_buffered().is_some() {},
                        Err(e) => {
                            // Fall back to the interval; a new listener is tried after it.
                            tracing::warn!(
                                service = %self.service, error = %e,
                                "relay lost its LISTEN connection"
                            );
                            listener = None;
                        }
                    }
                }
                None => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(self.interval) => {}
                    }
                    listener = self.listen().await;
                }
            }
        }
        tracing::info!(service = %self.service, "outbox relay stopped");
    }
}
