//! The reminder before a performance. Its state is in NotificationDB, so it survives restarts
//! and fires once: every `reminder.interval_ms` one transaction takes the performances that
//! start within `reminder.lead_ms` and were not reminded yet (`FOR UPDATE SKIP LOCKED`, so two
//! replicas never take the same one), queues a `reminder` delivery per confirmed order
//! (event id `reminder:<order id>:<start, Unix seconds>`, unique like every delivery) and sets
//! `reminded_at`. A performance moved to another start (a rain delay) is reminded again for the
//! new start, once. A
//! scheduler down at the due time catches up when it is back, as long as the performance has
//! not started. An order confirmed after its performance was reminded gets its reminder with
//! the next run, through the same unique event id.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{config::ReminderConfig, domain::Kind, store};

/// One run: queues the due reminders; answers how many deliveries were queued.
pub async fn run_once(pool: &PgPool, lead_ms: u64) -> sqlx::Result<u64> {
    let lead = i64::try_from(lead_ms).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    // Due: starting within the lead, not yet started, not cancelled. Orders confirmed after the
    // performance was reminded are picked up too (their reminder's event id is new).
    let due: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT performance_id, starts_at FROM performances
         WHERE NOT cancelled AND starts_at > now()
           AND starts_at <= now() + $1::bigint * interval '1 millisecond'
           AND (reminded_at IS NULL OR EXISTS (
                SELECT 1 FROM orders o WHERE o.performance_id = performances.performance_id
                  AND o.status = 'confirmed'
                  AND NOT EXISTS (SELECT 1 FROM deliveries d
                                  WHERE d.event_id = 'reminder:' || o.order_id::text || ':'
                                        || extract(epoch FROM performances.starts_at)::bigint)))
         ORDER BY starts_at LIMIT 50 FOR UPDATE SKIP LOCKED",
    )
    .bind(lead)
    .fetch_all(&mut *tx)
    .await?;
    let mut queued = 0;
    for (performance_id, starts_at) in due {
        let orders: Vec<(uuid::Uuid, uuid::Uuid, i32)> = sqlx::query_as(
            "SELECT order_id, buyer_id, tickets FROM orders
             WHERE performance_id = $1 AND status = 'confirmed'",
        )
        .bind(performance_id)
        .fetch_all(&mut *tx)
        .await?;
        for (order_id, buyer_id, tickets) in orders {
            let data = json!({
                "order_id": order_id,
                "performance_id": performance_id,
                "starts_at": starts_at,
                "tickets": tickets,
            });
            queued += store::enqueue(
                &mut tx,
                &format!("reminder:{order_id}:{}", starts_at.timestamp()),
                Kind::Reminder,
                buyer_id,
                &data,
            )
            .await?;
        }
        sqlx::query(
            "UPDATE performances SET reminded_at = COALESCE(reminded_at, now())
             WHERE performance_id = $1",
        )
        .bind(performance_id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO job_runs (job, last_run_at) VALUES ('reminder', now())
         ON CONFLICT (job) DO UPDATE SET last_run_at = now()",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(queued)
}

/// Runs the scheduler until `shutdown`.
pub async fn run(pool: PgPool, config: ReminderConfig, shutdown: CancellationToken) {
    let every = Duration::from_millis(config.interval_ms.max(10));
    while !shutdown.is_cancelled() {
        match run_once(&pool, config.lead_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "reminders queued"),
            Err(e) => tracing::warn!(error = %e, "reminder run failed; next run tries again"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
