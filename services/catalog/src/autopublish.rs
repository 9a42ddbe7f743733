//! Publishes announced performances as their sale nears: the seed announces the whole season but
//! publishes only what is on sale or about to open, so that the seat service is not asked to
//! build 700 inventories at once. Every minute, announced performances that have not started and
//! whose first sale window opens within [`LEAD`] are published, the time coming from the
//! catalog's [`Clock`] so that tests can step it through a week.
//!
//! Each performance is published in its own transaction, which locks its event and then the
//! performance (the lock order of every writer) with `SKIP LOCKED`: a performance whose event an
//! organizer is changing right now, or that another replica is publishing, is left to the next
//! round, so the prices published are the committed ones and no replica publishes it twice.
//! One that fails (its tiers miss a grade, the outbox refuses it) does not stop the others: the
//! failure is rolled back to a savepoint and recorded on the performance (attempts, next attempt
//! after a doubling backoff, last error), in the same transaction, so that it survives restarts
//! and every replica waits for the same next attempt. Until it is published a performance is
//! never shown on sale (see [`crate::domain::SaleStatus::at`]).
//!
//! "Published" means the seat service's publication was written to the outbox in the
//! transaction that marked the performance published: the relay delivers it at least once and
//! the seat service installs it idempotently. The seat service emits no acknowledgment of an
//! installed inventory (see services/seat/src/events.rs), so the catalog cannot wait for one.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::{Acquire, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    clock::Clock,
    publish::{self, PublishError},
    store::{
        events::{self, EventRow, PerformanceRow},
        venues,
    },
};

/// How long before its sale opens an announced performance is published.
pub const LEAD: Duration = Duration::hours(1);
/// How often the catalog looks.
const EVERY: StdDuration = StdDuration::from_secs(60);
/// Most performances looked at per round.
const BATCH: i64 = 100;
/// The wait after the first failure; it doubles with each further one, up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::minutes(1);
/// The longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::minutes(30);

/// The wait before the next attempt after `failures` failed ones (1: the first failure).
pub fn retry_delay(failures: i32) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let minutes = FIRST_RETRY.num_minutes().saturating_mul(1 << doublings);
    Duration::minutes(minutes).min(MAX_RETRY)
}

/// What happened to one due performance.
enum Outcome {
    Published,
    /// Locked by a writer or another replica, or no longer due: left to the next round.
    Skipped,
    Failed,
}

/// Publishes, as of `now`, every announced performance not started yet whose sale opens within
/// [`LEAD`] (`sale_opens_at <= now + LEAD`) and whose next attempt is due, up to 100 a call, each
/// on its own; returns how many were published. Failures are recorded on their performances and
/// logged; the error is only the database failing before any performance was looked at.
pub async fn publish_due(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, PublishError> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM performances WHERE status = 'announced' AND sale_opens_at <= $1
           AND starts_at > $2 AND (publish_next_attempt_at IS NULL OR publish_next_attempt_at <= $2)
         ORDER BY sale_opens_at, id LIMIT $3",
    )
    .bind(now + LEAD)
    .bind(now)
    .bind(BATCH)
    .fetch_all(pool)
    .await?;
    let mut done = 0;
    for id in due {
        match publish_one(pool, id, now).await {
            Ok(Outcome::Published) => done += 1,
            Ok(Outcome::Skipped | Outcome::Failed) => {}
            Err(e) => {
                tracing::warn!(performance_id = %id, error = %e, "could not publish a due performance; tried again next round");
            }
        }
    }
    Ok(done)
}

/// One due performance in its own transaction (event, then performance, both `SKIP LOCKED`).
async fn publish_one(pool: &PgPool, id: Uuid, now: DateTime<Utc>) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The event id never changes, so reading it unlocked first is safe.
    let Some(event_id): Option<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM performances WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(Outcome::Skipped);
    };
    let Some(event) = lock_event(&mut tx, event_id).await? else {
        return Ok(Outcome::Skipped);
    };
    let Some(perf) = lock_due(&mut tx, id, now).await? else {
        return Ok(Outcome::Skipped);
    };
    let mut attempt = tx.begin().await?;
    let result = match venues::inventory(&mut attempt, event.venue_id).await {
        Ok(inventory) => publish::publish(&mut attempt, &event, &perf, &inventory)
            .await
            .map(|_| ()),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => {
            attempt.commit().await?;
            sqlx::query(
                "UPDATE performances SET publish_attempts = 0, publish_next_attempt_at = NULL,
                        publish_last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Outcome::Published)
        }
        Err(e) => {
            attempt.rollback().await?;
            let failures = record_failure(&mut tx, id, now, &e).await?;
            tx.commit().await?;
            tracing::warn!(performance_id = %id, error = %e, failures,
                "publishing a due performance failed; tried again after a backoff");
            Ok(Outcome::Failed)
        }
    }
}

/// The event row, locked, unless a writer holds it now.
async fn lock_event(conn: &mut PgConnection, id: Uuid) -> Result<Option<EventRow>, sqlx::Error> {
    let Some(locked): Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM events WHERE id = $1 FOR UPDATE SKIP LOCKED")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    events::event(conn, locked, false).await
}

/// The performance, locked, if nobody holds it and it is still announced and due at `now`.
async fn lock_due(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<PerformanceRow>, sqlx::Error> {
    let Some(locked): Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM performances WHERE id = $1 AND status = 'announced'
           AND sale_opens_at <= $2 AND starts_at > $3
           AND (publish_next_attempt_at IS NULL OR publish_next_attempt_at <= $3)
         FOR UPDATE SKIP LOCKED",
    )
    .bind(id)
    .bind(now + LEAD)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    events::performance(conn, locked, false).await
}

/// Counts a failed attempt and schedules the next; returns the failures so far.
async fn record_failure(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    error: &PublishError,
) -> Result<i32, sqlx::Error> {
    let failures: i32 =
        sqlx::query_scalar("SELECT publish_attempts + 1 FROM performances WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let message: String = error.to_string().chars().take(1000).collect();
    sqlx::query(
        "UPDATE performances SET publish_attempts = $2, publish_next_attempt_at = $3,
                publish_last_error = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(failures)
    .bind(now + retry_delay(failures))
    .bind(message)
    .execute(conn)
    .await?;
    Ok(failures)
}

/// Runs [`publish_due`] at `clock`'s time every minute until `shutdown`.
pub fn spawn(
    pool: PgPool,
    clock: Clock,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match publish_due(&pool, clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(published = n, "published performances whose sale nears"),
                Err(e) => tracing::warn!(error = %e, "publishing due performances failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_a_minute_up_to_half_an_hour() {
        let waits: Vec<i64> = (1..=8).map(|n| retry_delay(n).num_minutes()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_delay(0), FIRST_RETRY);
        assert_eq!(retry_delay(i32::MAX), MAX_RETRY);
        assert_eq!(retry_delay(-3), FIRST_RETRY);
    }
}
