//! The supervised sweeper: every `order.sweep_interval_ms` it expires pending orders whose
//! payment window ended (each with its `order.cancelled`, so the seats go back on sale) and
//! drives on orders stuck `paid` or `refunding` (see [`Orders::nudge`]), one transaction per
//! order, rows another replica is working on skipped. Every order therefore reaches a final state.
//! An order whose refund the payment service gave up (`refund_failed`, final) is not driven on:
//! asking the same refund again would change nothing, an operator acts instead.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::orders::Orders;

const BATCH: i64 = 100;

/// One pass: how many orders it expired and nudged.
pub async fn sweep_once(
    pool: &PgPool,
    orders: &Orders,
    stuck_after_ms: i64,
) -> Result<(usize, usize), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let lapsed = crate::store::lapsed(&mut conn, BATCH).await?;
    let stuck = crate::store::stuck(&mut conn, stuck_after_ms, BATCH).await?;
    drop(conn);
    let mut expired = 0;
    for id in lapsed {
        let mut tx = pool.begin().await?;
        match orders.expire(&mut tx, id, chrono::Utc::now()).await {
            Ok(true) => {
                tx.commit().await?;
                expired += 1;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(order_id = %id, error = %e, "expiring an order failed"),
        }
    }
    let mut nudged = 0;
    for id in stuck {
        let mut tx = pool.begin().await?;
        match orders.nudge(&mut tx, id).await {
            Ok(()) => {
                tx.commit().await?;
                nudged += 1;
            }
            Err(e) => tracing::warn!(order_id = %id, error = %e, "driving a stuck order on failed"),
        }
    }
    if expired > 0 {
        metrics::counter!("boxoffice_orders_expired_total").increment(expired as u64);
    }
    Ok((expired, nudged))
}

/// Runs [`sweep_once`] until shutdown, supervised as task `order-sweeper`.
pub fn spawn(
    pool: PgPool,
    orders: Orders,
    interval_ms: u64,
    stuck_after_ms: u64,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let token = shutdown.clone();
    platform::service::supervise("order-sweeper", shutdown, move || {
        let (pool, orders, token) = (pool.clone(), orders.clone(), token.clone());
        tokio::spawn(async move {
            let interval = Duration::from_millis(interval_ms.max(10));
            let stuck = i64::try_from(stuck_after_ms).unwrap_or(i64::MAX);
            loop {
                if let Err(e) = sweep_once(&pool, &orders, stuck).await {
                    tracing::warn!(error = %e, "order sweep failed");
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        })
    })
}
