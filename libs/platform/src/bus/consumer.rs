//! The idempotent consumer: reads topics as a consumer group and applies each event exactly once
//! to the service's database, however often the transport delivers it.
//!
//! For each delivery, in one transaction: record `(consumer, event id)` in `bus_inbox`; when the
//! row was already there the event was applied (or dead-lettered) before and is skipped, otherwise
//! the [`Handler`] applies it in the same transaction, which then commits. The offset is
//! committed only after that, so a crash at any point either redoes nothing (inbox row committed)
//! or redoes everything (rolled back). An event of a type the handler does not act on
//! ([`Handler::wants`]) is acknowledged without any of that: a topic carries many types and most
//! services act on a few (the order service reads the seat topic for `sale.rejected` alone).
//!
//! - [`HandleError::Rejected`] (SQLSTATE classes 22, 23, 42, undecodable envelopes, a service's
//!   own rules): the transaction is rolled back, the event is written to `bus_dead_letters` in a
//!   new one together with its inbox row, and the consumer moves on at once. A rejected event is
//!   never applied later: a redelivery finds the inbox row.
//! - [`HandleError::Transient`]: the transaction is rolled back and the same delivery is tried
//!   again after a capped backoff; later events of the partition wait, so order per key holds.
//!   After `bus.consumer_max_attempts` attempts or `bus.consumer_max_retry_ms`, whichever comes
//!   first, the last attempt dead-letters it (`retries_exhausted`) instead of rolling back.
//! - Every dead letter counts in `boxoffice_bus_dead_letters_total{consumer,topic,reason}`: alert
//!   on any increase (docs/operations.md).
//! - Transport errors: backoff, and after repeated failures a fresh subscription (which resumes
//!   from the group's committed offsets).
//! - **Partitions in parallel.** Each (topic, partition) gets a lane of its own: a task that
//!   applies that partition's deliveries one after another, in offset order, while other lanes
//!   apply theirs; at most `bus.consumer_concurrency` transactions run at once. The receiving
//!   loop hands deliveries to their lanes (up to [`LANE_DEPTH`] waiting per lane; a full lane
//!   holds the loop back) and commits each offset once its lane has finished it, so per partition
//!   offsets are committed in order. Events of one key stay in order (a key maps to one
//!   partition); events of different partitions were never ordered and now also overlap. A lane
//!   retrying a transient failure holds back only its partition until it is full. A delivery
//!   that reaches two consumers at once (a rebalance) is applied once: the second waits on the
//!   first's inbox row and finds it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use std::collections::HashMap;

use sqlx::{PgPool, types::Json};
use tokio::{
    sync::{Semaphore, mpsc},
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use super::handler::{HandleError, Handler, RejectCode};
use super::{Backoff, BusError, BusSettings, Delivery, Transport};

/// Consecutive `next()` failures after which the subscription is replaced.
const RESUBSCRIBE_AFTER: u32 = 3;
/// First backoff between two attempts at one event.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Deliveries waiting in one partition's lane before the receiving loop waits for it.
pub const LANE_DEPTH: usize = 64;

/// What became of one delivery.
enum Outcome {
    Applied,
    Duplicate,
    DeadLettered(RejectCode),
}

/// How long a consumer keeps trying an event that fails transiently.
#[derive(Debug, Clone, Copy)]
struct RetryCap {
    attempts: u32,
    time: Duration,
    max_backoff: Duration,
}

impl RetryCap {
    fn from_settings(settings: &BusSettings) -> Self {
        Self {
            attempts: settings.consumer_max_attempts.max(1),
            time: Duration::from_millis(settings.consumer_max_retry_ms),
            max_backoff: Duration::from_millis(settings.consumer_max_backoff_ms.max(1)),
        }
    }
}

/// A consumer group member that applies events through a [`Handler`], exactly once per consumer.
pub struct Consumer {
    name: String,
    pool: PgPool,
    transport: Arc<dyn Transport>,
    topics: Vec<String>,
    cap: RetryCap,
    /// Transactions applying events at once, over all lanes.
    concurrency: usize,
}

impl Consumer {
    /// A consumer named `name` (its consumer group and inbox name) reading `topics`, with the
    /// default retry caps (see [`Consumer::with_settings`]).
    pub fn new(name: &str, pool: PgPool, transport: Arc<dyn Transport>, topics: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            pool,
            transport,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            cap: RetryCap::from_settings(&BusSettings::default()),
            concurrency: BusSettings::default().consumer_concurrency.max(1),
        }
    }

    /// Takes the retry caps from `settings` (`bus.consumer_max_attempts`,
    /// `bus.consumer_max_retry_ms`, `bus.consumer_max_backoff_ms`) and the parallelism from
    /// `bus.consumer_concurrency`.
    pub fn with_settings(mut self, settings: &BusSettings) -> Self {
        self.cap = RetryCap::from_settings(settings);
        self.concurrency = settings.consumer_concurrency.max(1);
        self
    }

    /// Runs [`Consumer::run`] on a task, logging if it ends with an error. The group is announced
    /// to the transport before this returns.
    pub fn spawn<H: Handler>(self, handler: H, shutdown: CancellationToken) -> JoinHandle<()> {
        let name = self.name.clone();
        self.register();
        tokio::spawn(async move {
            if let Err(e) = self.run(handler, shutdown).await {
                tracing::error!(consumer = %name, error = %e, "consumer stopped");
            }
        })
    }

    /// Consumes until `shutdown`, retrying every transient failure. Fails only when misconfigured.
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        if self.name.is_empty() || self.topics.is_empty() {
            return Err(BusError::Settings(
                "a consumer needs a name and at least one topic".into(),
            ));
        }
        self.register();
        let this = Arc::new(self);
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let permits = Arc::new(Semaphore::new(this.concurrency));
        let topics: Vec<&str> = this.topics.iter().map(String::as_str).collect();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        tracing::info!(consumer = %this.name, ?topics, concurrency = this.concurrency, "consumer started");
        'subscribe: loop {
            let subscribed = tokio::select! {
                () = shutdown.cancelled() => break,
                s = this.transport.subscribe(&this.name, &topics) => s,
            };
            let mut subscription = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(
                        consumer = %this.name, error = %e, "subscribe failed; backing off"
                    );
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            // The lanes of this subscription: dropped (their tasks aborted, open transactions
            // rolled back) with it, so a fresh subscription starts from committed offsets.
            let mut lanes: HashMap<(String, i32), mpsc::Sender<Delivery>> = HashMap::new();
            let mut workers = JoinSet::new();
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Delivery>();
            let mut failures = 0;
            loop {
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break 'subscribe,
                    Some(done) = done_rx.recv() => {
                        // Losing this commit only means a redelivery, which the inbox skips.
                        if let Err(e) = subscription.commit(&done).await {
                            tracing::warn!(
                                consumer = %this.name, topic = %done.topic,
                                partition = done.partition, offset = done.offset, error = %e,
                                "offset commit failed"
                            );
                        }
                        continue;
                    }
                    // Both transports' `next` are cancel-safe: a delivery is taken without an
                    // await after it.
                    d = subscription.next() => d,
                };
                let delivery = match next {
                    Ok(d) => d,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(
                            consumer = %this.name, error = %e, failures,
                            "receive failed; backing off"
                        );
                        if !backoff.wait(&shutdown).await {
                            break 'subscribe;
                        }
                        if failures >= RESUBSCRIBE_AFTER {
                            continue 'subscribe;
                        }
                        continue;
                    }
                };
                failures = 0;
                backoff.reset();
                let key = (delivery.topic.clone(), delivery.partition);
                let lane = lanes.entry(key).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(LANE_DEPTH);
                    workers.spawn(Self::lane(
                        Arc::clone(&this),
                        Arc::clone(&handler),
                        Arc::clone(&permits),
                        rx,
                        done_tx.clone(),
                        shutdown.clone(),
                    ));
                    tx
                });
                // A full lane holds the loop back; finished deliveries are committed meanwhile.
                let mut sending = std::pin::pin!(lane.send(delivery));
                loop {
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => break 'subscribe,
                        sent = &mut sending => {
                            if sent.is_err() {
                                // The lane ended: only shutdown ends one.
                                break 'subscribe;
                            }
                            break;
                        }
                        Some(done) = done_rx.recv() => {
                            if let Err(e) = subscription.commit(&done).await {
                                tracing::warn!(
                                    consumer = %this.name, topic = %done.topic,
                                    partition = done.partition, offset = done.offset,
                                    error = %e, "offset commit failed"
                                );
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(consumer = %this.name, "consumer stopped");
        Ok(())
    }

    /// One partition's lane: applies its deliveries in order, each under a permit, and hands
    /// each finished one back for its offset to be committed. Ends at shutdown or when the
    /// receiving loop drops its sender.
    async fn lane(
        this: Arc<Self>,
        handler: Arc<dyn Handler>,
        permits: Arc<Semaphore>,
        mut deliveries: mpsc::Receiver<Delivery>,
        done: mpsc::UnboundedSender<Delivery>,
        shutdown: CancellationToken,
    ) {
        while let Some(delivery) = deliveries.recv().await {
            let Ok(permit) = permits.acquire().await else {
                return;
            };
            let finished = this.process(handler.as_ref(), &delivery, &shutdown).await;
            drop(permit);
            if !finished || done.send(delivery).is_err() {
                return;
            }
        }
    }

    fn register(&self) {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.transport.register_group(&self.name, &topics);
    }

    /// Applies one delivery (retrying until it is applied, skipped or dead-lettered). Returns
    /// false when `shutdown` fired first.
    async fn process(
        &self,
        handler: &dyn Handler,
        delivery: &Delivery,
        shutdown: &CancellationToken,
    ) -> bool {
        let span = tracing::info_span!(
            "bus.consume",
            consumer = %self.name,
            topic = %delivery.topic,
            partition = delivery.partition,
            offset = delivery.offset,
            event_id = %delivery.envelope.id,
            event_type = %delivery.envelope.event_type,
        );
        if !handler.wants(&delivery.envelope.event_type) {
            self.count("ignored");
            return true;
        }
        let mut backoff = Backoff::new(FIRST_BACKOFF, self.cap.max_backoff);
        let started = Instant::now();
        let mut attempts: u32 = 0;
        loop {
            // The last attempt a transient failure gets: it dead-letters instead of rolling back.
            let last = attempts + 1 >= self.cap.attempts || started.elapsed() >= self.cap.time;
            let result = self
                .apply(handler, delivery, attempts + 1, last)
                .instrument(span.clone())
                .await;
            attempts += 1;
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(reason) => {
                    self.count("retried");
                    span.in_scope(
                        || tracing::warn!(%reason, attempts, "event not applied; retrying"),
                    );
                    if !backoff.wait(shutdown).await {
                        return false;
                    }
                    continue;
                }
            };
            match outcome {
                Outcome::Applied => self.count("applied"),
                Outcome::Duplicate => self.count("duplicate"),
                Outcome::DeadLettered(code) => {
                    self.count("rejected");
                    metrics::counter!(
                        "boxoffice_bus_dead_letters_total",
                        "consumer" => self.name.clone(),
                        "topic" => delivery.topic.clone(),
                        "reason" => code.as_str()
                    )
                    .increment(1);
                }
            }
            return true;
        }
    }

    /// One attempt (number `attempt`); `Err` carries the reason to retry. On the `last` attempt a
    /// transient failure is dead-lettered rather than retried.
    async fn apply(
        &self,
        handler: &dyn Handler,
        delivery: &Delivery,
        attempt: u32,
        last: bool,
    ) -> Result<Outcome, String> {
        let envelope = &delivery.envelope;
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        if !self.claim(&mut tx, envelope).await? {
            tracing::debug!("event already applied or dead-lettered; skipping");
            tx.rollback().await.map_err(|e| e.to_string())?;
            return Ok(Outcome::Duplicate);
        }
        let (code, reason) = match handler.handle(&mut tx, envelope).await {
            Ok(()) => {
                tx.commit().await.map_err(|e| e.to_string())?;
                return Ok(Outcome::Applied);
            }
            Err(HandleError::Rejected { code, reason }) => (code, reason),
            Err(HandleError::Transient(reason)) if last => (
                RejectCode::RetriesExhausted,
                format!("gave up after {attempt} attempts: {reason}"),
            ),
            Err(HandleError::Transient(reason)) => {
                tx.rollback().await.map_err(|e| e.to_string())?;
                return Err(reason);
            }
        };
        // The handler's writes are undone with its transaction; the inbox row and the dead
        // letter are written together in a new one (no savepoint around every handler: two
        // round trips for each event applied, for the rare one rejected). Should another member
        // have applied the event meanwhile (a rebalance), its inbox row is there and this is a
        // duplicate.
        tx.rollback().await.map_err(|e| e.to_string())?;
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        if !self.claim(&mut tx, envelope).await? {
            tx.rollback().await.map_err(|e| e.to_string())?;
            return Ok(Outcome::Duplicate);
        }
        sqlx::query(
            "INSERT INTO bus_dead_letters \
             (consumer, event_id, topic, envelope, reason, error, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(envelope.id)
        .bind(&delivery.topic)
        .bind(Json(envelope))
        .bind(code.as_str())
        .bind(&reason)
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        tracing::error!(%code, %reason, attempts = attempt, "event dead-lettered");
        Ok(Outcome::DeadLettered(code))
    }

    /// Records `(consumer, event id)` in `bus_inbox` on `tx`; false when it was there (the event
    /// was applied or dead-lettered before). A second member inserting the same row waits for
    /// the first's transaction: it finds the row when that commits, and claims the event itself
    /// when it rolls back (a rejection, before its dead letter is written).
    async fn claim(
        &self,
        tx: &mut sqlx::PgConnection,
        envelope: &super::envelope::Envelope,
    ) -> Result<bool, String> {
        let fresh = sqlx::query(
            "INSERT INTO bus_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(envelope.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?
        .rows_affected();
        Ok(fresh == 1)
    }

    fn count(&self, result: &'static str) {
        metrics::counter!(
            "boxoffice_bus_consumed_total",
            "consumer" => self.name.clone(),
            "result" => result
        )
        .increment(1);
    }
}
