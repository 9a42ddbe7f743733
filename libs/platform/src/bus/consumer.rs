//! The idempotent consumer: reads topics as a consumer group and applies each event exactly once
//! to the service's database, however often the transport delivers it.
//!
//! For each delivery, in one transaction: record `(consumer, event id)` in `bus_inbox`; when the
//! row was already there the event was applied before and is skipped, otherwise the [`Handler`]
//! applies it and the transaction commits. The offset is committed only after that, so a crash
//! at any point either redoes nothing (inbox row committed) or redoes everything (rolled back).
//!
//! - [`HandleError::Retry`]: transient; the transaction is rolled back and the same delivery is
//!   tried again after a capped backoff. Later events wait, so order per key holds.
//! - [`HandleError::Reject`]: permanent; the event goes to `bus_dead_letters` and the consumer
//!   moves on.
//! - Transport errors: backoff, and after repeated failures a fresh subscription (which resumes
//!   from the group's committed offsets).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use contracts::Envelope;
use sqlx::{PgConnection, PgPool, types::Json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Backoff, BusError, Delivery, Subscription, Transport};

/// Consecutive `next()` failures after which the subscription is replaced.
const RESUBSCRIBE_AFTER: u32 = 3;

/// Applies events of the topics a [`Consumer`] reads.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies one event inside `tx`; the inbox row is written in the same transaction.
    async fn handle(&self, tx: &mut PgConnection, envelope: &Envelope) -> Result<(), HandleError>;
}

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Transient (a lock timeout, a dependency down): retry with backoff, do not commit.
    #[error("retry: {0}")]
    Retry(String),
    /// Permanent (malformed, unknown version): store in `bus_dead_letters`, commit, go on.
    #[error("reject: {0}")]
    Reject(String),
}

impl From<sqlx::Error> for HandleError {
    /// Database errors inside a handler are treated as transient.
    fn from(e: sqlx::Error) -> Self {
        Self::Retry(e.to_string())
    }
}

/// What became of one delivery.
enum Outcome {
    Applied,
    Duplicate,
    DeadLettered,
}

/// A consumer group member that applies events through a [`Handler`], exactly once per consumer.
pub struct Consumer {
    name: String,
    pool: PgPool,
    transport: Arc<dyn Transport>,
    topics: Vec<String>,
}

impl Consumer {
    /// A consumer named `name` (its consumer group and inbox name) reading `topics`.
    pub fn new(name: &str, pool: PgPool, transport: Arc<dyn Transport>, topics: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            pool,
            transport,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// Runs [`Consumer::run`] on a task, logging if it ends with an error.
    pub fn spawn<H: Handler>(self, handler: H, shutdown: CancellationToken) -> JoinHandle<()> {
        let name = self.name.clone();
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
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        tracing::info!(consumer = %self.name, ?topics, "consumer started");
        'subscribe: loop {
            let subscribed = tokio::select! {
                () = shutdown.cancelled() => break,
                s = self.transport.subscribe(&self.name, &topics) => s,
            };
            let mut subscription = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(
                        consumer = %self.name, error = %e, "subscribe failed; backing off"
                    );
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let mut failures = 0;
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => break 'subscribe,
                    d = subscription.next() => d,
                };
                let delivery = match next {
                    Ok(d) => d,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(
                            consumer = %self.name, error = %e, failures,
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
                if !self
                    .process(&handler, subscription.as_mut(), &delivery, &shutdown)
                    .await
                {
                    break 'subscribe;
                }
            }
        }
        tracing::info!(consumer = %self.name, "consumer stopped");
        Ok(())
    }

    /// Applies one delivery (retrying until it is applied, skipped or dead-lettered) and commits
    /// its offset. Returns false when `shutdown` fired first.
    async fn process(
        &self,
        handler: &dyn Handler,
        subscription: &mut dyn Subscription,
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
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            let result = self
                .apply(handler, &delivery.envelope)
                .instrument(span.clone())
                .await;
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(reason) => {
                    self.count("retried");
                    span.in_scope(|| tracing::warn!(%reason, "event not applied; retrying"));
                    if !backoff.wait(shutdown).await {
                        return false;
                    }
                    continue;
                }
            };
            self.count(match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::DeadLettered => "rejected",
            });
            // Losing this commit only means a redelivery, which the inbox turns into a no-op.
            if let Err(e) = subscription.commit(delivery).await {
                span.in_scope(|| tracing::warn!(error = %e, "offset commit failed"));
            }
            return true;
        }
    }

    /// One attempt; `Err` carries the reason to retry.
    async fn apply(&self, handler: &dyn Handler, envelope: &Envelope) -> Result<Outcome, String> {
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let fresh = sqlx::query(
            "INSERT INTO bus_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(envelope.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?
        .rows_affected();
        if fresh == 0 {
            tracing::debug!("event already applied; skipping");
            tx.rollback().await.map_err(|e| e.to_string())?;
            return Ok(Outcome::Duplicate);
        }
        match handler.handle(&mut tx, envelope).await {
            Ok(()) => {
                tx.commit().await.map_err(|e| e.to_string())?;
                Ok(Outcome::Applied)
            }
            Err(HandleError::Retry(reason)) => {
                tx.rollback().await.map_err(|e| e.to_string())?;
                Err(reason)
            }
            Err(HandleError::Reject(reason)) => {
                tx.rollback().await.map_err(|e| e.to_string())?;
                tracing::warn!(%reason, "event rejected; dead-lettered");
                sqlx::query(
                    "INSERT INTO bus_dead_letters (consumer, event_id, envelope, error) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(&self.name)
                .bind(envelope.id)
                .bind(Json(envelope))
                .bind(&reason)
                .execute(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
                Ok(Outcome::DeadLettered)
            }
        }
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
