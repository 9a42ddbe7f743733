//! Publishes announced performances as their sale nears: the seed announces the whole season but
//! publishes only what is on sale or about to open, so that the seat service is not asked to
//! build 700 inventories at once. Every minute, announced performances that have not started and
//! whose first sale window opens within [`LEAD`] are published (one transaction each, through the
//! outbox). The time comes from the catalog's [`Clock`], so tests can step it through a week.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    clock::Clock,
    publish::{self, PublishError},
    store::{events, venues},
};

/// How long before its sale opens an announced performance is published.
pub const LEAD: Duration = Duration::hours(1);
/// How often the catalog looks.
const EVERY: StdDuration = StdDuration::from_secs(60);

/// Publishes, as of `now`, every announced performance not started yet whose sale opens within
/// [`LEAD`] (`sale_opens_at <= now + LEAD`, up to 100 a call); returns how many.
pub async fn publish_due(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, PublishError> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM performances WHERE status = 'announced' AND sale_opens_at <= $1
           AND starts_at > $2 ORDER BY sale_opens_at LIMIT 100",
    )
    .bind(now + LEAD)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut done = 0;
    for id in due {
        let mut tx = pool.begin().await?;
        let Some(perf) = events::performance(&mut tx, id, true).await? else {
            continue;
        };
        let Some(event) = events::event(&mut tx, perf.event_id, false).await? else {
            continue;
        };
        if perf.state().can_publish().is_err() {
            continue;
        }
        let inventory = venues::inventory(&mut tx, event.venue_id).await?;
        publish::publish(&mut tx, &event, &perf, &inventory).await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
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
