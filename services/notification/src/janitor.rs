//! Keeps NotificationDB from growing without end: once a day it deletes deliveries that ended
//! (`sent`, `skipped`) more than `retention_days` ago, and parked payment notices whose order
//! never came within that time. Dead letters stay until an admin re-drives them (or an operator
//! deletes them): they are the log of what did not arrive.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// One pass: answers how many rows went.
pub async fn purge_once(pool: &PgPool, retention_days: u32) -> sqlx::Result<u64> {
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    let deliveries = sqlx::query(
        "DELETE FROM deliveries WHERE status IN ('sent', 'skipped')
           AND updated_at < now() - make_interval(days => $1)",
    )
    .bind(days)
    .execute(pool)
    .await?
    .rows_affected();
    let parked =
        sqlx::query("DELETE FROM parked WHERE parked_at < now() - make_interval(days => $1)")
            .bind(days)
            .execute(pool)
            .await?
            .rows_affected();
    Ok(deliveries + parked)
}

/// Purges once at start and then every `every` until `shutdown`.
pub async fn run(pool: PgPool, retention_days: u32, every: Duration, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match purge_once(&pool, retention_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old deliveries purged"),
            Err(e) => {
                tracing::warn!(error = %e, "purging old deliveries failed; next pass tries again")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
