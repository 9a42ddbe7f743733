//! The outbox relay: publishes a service's `bus_outbox` rows to the transport, oldest first, and
//! marks them published.
//!
//! - One relay at a time per database: a batch runs while its relay holds the session advisory
//!   lock [`RELAY_LOCK`] on a connection of its own, so replicas never interleave and per-key order
//!   holds. A replica that does not get the lock publishes nothing and waits for its next turn.
//! - No transaction is open while it publishes: it reads the batch, publishes (a slow broker
//!   holds no row lock and no snapshot), then marks the rows it published in one short `UPDATE`,
//!   with where the transport put them. Within a batch, rows of one key are published in order,
//!   one after another; different keys are published concurrently. A failed row holds back the
//!   rest of its key until the next batch. A crash between publish and mark publishes those rows
//!   again later (the lock dies with the connection): delivery is at-least-once and consumers
//!   deduplicate on the event id.
//! - A row the transport refuses for good ([`BusError::Refused`]: larger than the broker takes,
//!   a record it calls invalid) is dead-lettered instead of retried: moved, in one statement,
//!   from `bus_outbox` to `bus_outbox_dead_letters` with the reason, logged as an error and
//!   counted in `boxoffice_bus_relay_dead_letters_total{service,topic,reason}` (alert on any
//!   increase). The rows after it on its key go out as usual. Any other failure is transient:
//!   the row and the rest of its key wait for the next batch, however long that takes.
//! - A non-durable transport (the in-memory bus of standalone) loses what it holds when the
//!   process dies. For one, a published row is *settled* only once every consumer group of its
//!   topic has committed it ([`Transport::consumed_below`]); at start the relay publishes every
//!   published but unsettled row again, however old. For a durable transport a row is settled
//!   when it is published.
//! - Wakes on `LISTEN bus_outbox` (sent by [`super::outbox::enqueue`] at commit) or every
//!   `relay_interval_ms`, whichever comes first; backs off (capped, exponential) while the
//!   transport or the database fails.
//! - Deletes settled rows older than seven days now and then.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use super::envelope::Envelope;
use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool, postgres::PgListener, types::Json};
use tokio::{sync::Mutex, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{Backoff, BusError, BusSettings, Receipt, Transport, outbox::NOTIFY_CHANNEL};

/// Advisory lock key held by the relay that is publishing (one per database).
pub const RELAY_LOCK: i64 = 7_305_002;
/// How often settled rows past retention are deleted.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);
/// How often, at most, a relay of a non-durable transport marks consumed rows settled: a busy
/// relay runs a batch per commit that notifies, and settling after each cost a scan and an
/// update per partition for what a second's delay only makes a little larger. A row settled
/// late is at worst published once more after a crash, which the consumers' inboxes skip.
const SETTLE_EVERY: Duration = Duration::from_secs(1);

/// Publishes one service's outbox rows to the transport.
pub struct Relay {
    service: String,
    pool: PgPool,
    transport: Arc<dyn Transport>,
    batch: i64,
    interval: Duration,
    concurrency: usize,
    /// The connection that holds [`RELAY_LOCK`] during a batch, kept between batches. Taken out
    /// while a batch runs: if the batch is abandoned mid-way, the connection is dropped with it
    /// and the server releases the lock.
    lock_conn: Mutex<Option<PgConnection>>,
}

/// One row of a batch: its seq, topic and envelope.
type Row = (i64, String, Envelope);

/// A row the transport refused for good.
struct Refusal {
    seq: i64,
    topic: String,
    envelope: Envelope,
    code: &'static str,
    reason: String,
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
            concurrency: settings.relay_concurrency.max(1),
            lock_conn: Mutex::new(None),
        }
    }

    /// Runs until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    /// Publishes at most one batch; returns how many rows it published. Returns 0 when another
    /// relay holds the lock. On a transport error the rows published before it stay marked.
    pub async fn run_once(&self) -> Result<usize, BusError> {
        let taken = self.lock_conn.lock().await.take();
        let mut conn = match taken {
            Some(conn) => conn,
            None => {
                let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
                // What this connection writes (rows marked published, refused rows moved to
                // the dead letters) need not wait for its WAL flush: should a crash lose it,
                // the rows are published again (consumers skip what they have) or refused and
                // moved again. One flush less per batch, on every commit that notifies.
                sqlx::query("SET synchronous_commit TO OFF")
                    .execute(&mut conn)
                    .await?;
                conn
            }
        };
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            *self.lock_conn.lock().await = Some(conn);
            return Ok(0);
        }
        let result = self.batch(&mut conn).await;
        // A connection that fails to unlock is dropped: closing it releases the lock.
        let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut conn)
            .await;
        if unlocked.is_ok() {
            *self.lock_conn.lock().await = Some(conn);
        }
        result
    }

    /// One batch, with the lock held on `conn` and no transaction open.
    async fn batch(&self, conn: &mut PgConnection) -> Result<usize, BusError> {
        let rows: Vec<(i64, String, Json<Envelope>)> = sqlx::query_as(
            "SELECT seq, topic, envelope FROM bus_outbox WHERE published_at IS NULL \
             ORDER BY seq LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *conn)
        .await?;

        // Rows of one (topic, key) go out one after another, in seq order; different keys go
        // out concurrently, so a broker's round trip is paid once per batch, not once per row.
        let mut chains: Vec<Vec<Row>> = Vec::new();
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
        type Sent = Vec<(i64, Receipt)>;
        let outcomes: Vec<(Sent, Vec<Refusal>, Option<BusError>)> = futures::stream::iter(chains)
            .map(|chain| async move {
                let mut sent = Vec::with_capacity(chain.len());
                let mut refused = Vec::new();
                for (seq, topic, envelope) in chain {
                    match self.transport.publish(&topic, &envelope).await {
                        Ok(receipt) => sent.push((seq, receipt)),
                        // It never will go out: the rest of its key need not wait for it.
                        Err(BusError::Refused { code, reason }) => refused.push(Refusal {
                            seq,
                            topic,
                            envelope,
                            code,
                            reason,
                        }),
                        // The rest of this key waits for the next batch, keeping its order.
                        Err(e) => return (sent, refused, Some(e)),
                    }
                }
                (sent, refused, None)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut sent: Sent = Vec::new();
        let mut refused: Vec<Refusal> = Vec::new();
        let mut failure = None;
        for (rows, dead, error) in outcomes {
            sent.extend(rows);
            refused.extend(dead);
            if failure.is_none() {
                failure = error;
            }
        }
        let published = sent.len();
        if !sent.is_empty() {
            let seqs: Vec<i64> = sent.iter().map(|(seq, _)| *seq).collect();
            let partitions: Vec<i32> = sent.iter().map(|(_, r)| r.partition).collect();
            let offsets: Vec<i64> = sent.iter().map(|(_, r)| r.offset).collect();
            // Keep what went out even when a later row failed: unmarking it would only publish
            // it twice.
            sqlx::query(
                "UPDATE bus_outbox AS o SET published_at = now(), bus_partition = s.part, \
                 bus_offset = s.off, settled_at = CASE WHEN $4 THEN now() END \
                 FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS s(seq, part, off) \
                 WHERE o.seq = s.seq",
            )
            .bind(&seqs)
            .bind(&partitions)
            .bind(&offsets)
            .bind(self.transport.durable())
            .execute(&mut *conn)
            .await?;
            metrics::counter!("boxoffice_bus_published_total", "service" => self.service.clone())
                .increment(u64::try_from(published).unwrap_or(u64::MAX));
        }
        if !refused.is_empty() {
            self.dead_letter(conn, &refused).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Moves the refused rows from the outbox to `bus_outbox_dead_letters`, in one statement,
    /// then logs and counts each. A row dead-lettered before (an operator put it back in the
    /// outbox and it failed again) keeps one dead letter, with the latest failure.
    async fn dead_letter(
        &self,
        conn: &mut PgConnection,
        refused: &[Refusal],
    ) -> Result<(), BusError> {
        let seqs: Vec<i64> = refused.iter().map(|r| r.seq).collect();
        let codes: Vec<&str> = refused.iter().map(|r| r.code).collect();
        let reasons: Vec<&str> = refused.iter().map(|r| r.reason.as_str()).collect();
        sqlx::query(
            "WITH dead AS ( \
                DELETE FROM bus_outbox o \
                USING unnest($1::bigint[], $2::text[], $3::text[]) AS d(seq, code, reason) \
                WHERE o.seq = d.seq \
                RETURNING o.id, o.seq, o.topic, o.key, o.envelope, o.created_at, d.code, d.reason) \
             INSERT INTO bus_outbox_dead_letters \
                (event_id, seq, topic, key, envelope, reason, error, created_at) \
             SELECT id, seq, topic, key, envelope, code, reason, created_at FROM dead \
             ON CONFLICT (event_id) DO UPDATE SET seq = EXCLUDED.seq, reason = EXCLUDED.reason, \
                error = EXCLUDED.error, failed_at = now()",
        )
        .bind(&seqs)
        .bind(&codes)
        .bind(&reasons)
        .execute(&mut *conn)
        .await?;
        for r in refused {
            tracing::error!(
                service = %self.service, topic = %r.topic, seq = r.seq, event_id = %r.envelope.id,
                event_type = %r.envelope.event_type, key = %r.envelope.key, code = r.code,
                reason = %r.reason,
                "outbox row can never be published; dead-lettered to bus_outbox_dead_letters"
            );
            metrics::counter!(
                "boxoffice_bus_relay_dead_letters_total",
                "service" => self.service.clone(),
                "topic" => r.topic.clone(),
                "reason" => r.code
            )
            .increment(1);
        }
        Ok(())
    }

    /// For a non-durable transport: marks settled the published rows every consumer group of
    /// their topic has committed; returns how many. Nothing to do for a durable one.
    pub async fn settle(&self) -> Result<u64, BusError> {
        if self.transport.durable() {
            return Ok(0);
        }
        let partitions: Vec<(String, i32)> = sqlx::query_as(
            "SELECT DISTINCT topic, bus_partition FROM bus_outbox \
             WHERE published_at IS NOT NULL AND settled_at IS NULL AND bus_partition IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for (topic, partition) in partitions {
            let Some(below) = self.transport.consumed_below(&topic, partition) else {
                continue;
            };
            settled += sqlx::query(
                "UPDATE bus_outbox SET settled_at = now() \
                 WHERE published_at IS NOT NULL AND settled_at IS NULL \
                 AND topic = $1 AND bus_partition = $2 AND bus_offset < $3",
            )
            .bind(&topic)
            .bind(partition)
            .bind(below)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(settled)
    }

    /// For a non-durable transport, at start: marks every published row that is not settled as
    /// unpublished again, so it goes out once more (the transport that had it died with the
    /// previous process); returns how many. Consumers' inboxes make the repeat harmless.
    pub async fn replay_unsettled(&self) -> Result<u64, BusError> {
        if self.transport.durable() {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE bus_outbox SET published_at = NULL, bus_partition = NULL, bus_offset = NULL \
             WHERE published_at IS NOT NULL AND settled_at IS NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes rows settled more than seven days ago (for a durable transport also rows published
    /// that long ago before settling existed); returns how many.
    async fn cleanup(&self) -> Result<u64, BusError> {
        let done = sqlx::query(
            "DELETE FROM bus_outbox WHERE published_at IS NOT NULL \
             AND published_at < now() - interval '7 days' \
             AND ($1 OR (settled_at IS NOT NULL AND settled_at < now() - interval '7 days'))",
        )
        .bind(self.transport.durable())
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
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        // Before anything is published or settled: the rows' positions are the dead transport's.
        loop {
            match self.replay_unsettled().await {
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(
                        service = %self.service, rows = n,
                        "publishing again the events the previous process's bus had not delivered"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(service = %self.service, error = %e, "replay failed; retrying");
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                }
            }
        }
        backoff.reset();
        let mut listener = self.listen().await;
        let mut last_cleanup: Option<Instant> = None;
        let mut last_settle: Option<Instant> = None;
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
            if last_settle.is_none_or(|at| at.elapsed() >= SETTLE_EVERY) {
                if let Err(e) = self.settle().await {
                    tracing::warn!(service = %self.service, error = %e, "settling published rows failed");
                }
                last_settle = Some(Instant::now());
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
