//! The settler: one supervised task that settles unknown outcomes and makes refunds, so neither
//! waits on a buyer. Each pass leases what is due (another replica skips it meanwhile), asks
//! the PG through [`Payments`], and schedules the next look with a doubling backoff. An outcome
//! the PG still leaves undecided is confirmed again (same idempotency key) while its order is
//! open, and failed once the order is closed (no money moved, and none will: we never confirm
//! it); one the PG says it cannot decide after `settle.max_attempts` looks is failed too (a
//! charge found later is refunded). An outcome the PG could not be asked about, or whose confirm
//! sent again got no answer, is never given up: asked again at the capped backoff. Refunds are
//! retried until the PG answers.

use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::SettleSettings,
    payments::{Lookup, Payments, Settled},
    store,
};

/// Payments and refunds handled per pass.
const BATCH: i64 = 64;

/// Starts the settler, supervised as task `settler`, until `shutdown`.
pub fn spawn(
    payments: Payments,
    settings: SettleSettings,
    lease: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    platform::service::supervise("settler", shutdown.clone(), move || {
        let (payments, settings, shutdown) = (payments.clone(), settings.clone(), shutdown.clone());
        tokio::spawn(async move { run(payments, settings, lease, shutdown).await })
    })
}

async fn run(
    payments: Payments,
    settings: SettleSettings,
    lease: Duration,
    shutdown: CancellationToken,
) {
    let interval = Duration::from_millis(settings.interval_ms.max(10));
    loop {
        let busy = tokio::select! {
            () = shutdown.cancelled() => return,
            busy = pass(&payments, &settings, lease) => busy,
        };
        if !busy {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// One pass over what is due; whether there was anything.
pub async fn pass(payments: &Payments, settings: &SettleSettings, lease: Duration) -> bool {
    let lease_until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    let due = match store::due_checks(payments.pool(), BATCH, lease_until).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "reading due reconciliations");
            Vec::new()
        }
    };
    let checked = due.len();
    futures::future::join_all(
        due.into_iter()
            .map(|(order_id, checks)| reconcile(payments, settings, order_id, checks)),
    )
    .await;
    let mut refunded = 0;
    while refunded < BATCH {
        match store::claim_refund(payments.pool(), lease_until).await {
            Ok(Some(refund)) => {
                refunded += 1;
                if let Err(e) = payments.refund(&refund).await {
                    tracing::warn!(refund_key = %refund.refund_key, error = %e, "refund not recorded; retried after its lease");
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading due refunds");
                break;
            }
        }
    }
    checked > 0 || refunded > 0
}

async fn reconcile(payments: &Payments, settings: &SettleSettings, order_id: Uuid, checks: i32) {
    let later = |why: String| async move {
        let at = Utc::now()
            + chrono::Duration::from_std(payments.backoff(checks + 1)).unwrap_or_default();
        tracing::info!(%order_id, checks, %why, "payment outcome still unknown");
        if let Err(e) = store::recheck_at(payments.pool(), order_id, at).await {
            tracing::warn!(%order_id, error = %e, "rescheduling a reconciliation");
        }
    };
    match payments.settle(order_id, Lookup::ByOrder).await {
        // Given up as undecided and still not charged at the PG: looked at again, sparsely.
        Ok(Settled::Payment(p)) if p.undecided_failure() => {
            let at = Utc::now()
                + chrono::Duration::from_std(payments.recheck_backoff(checks + 1))
                    .unwrap_or_default();
            if let Err(e) = store::recheck_at(payments.pool(), order_id, at).await {
                tracing::warn!(%order_id, error = %e, "rescheduling a look at an undecided payment");
            }
        }
        Ok(Settled::Payment(p)) if !p.status.is_open() => {
            metrics::counter!("boxoffice_payment_reconciled_total", "result" => p.status.as_str())
                .increment(1);
            tracing::info!(%order_id, status = p.status.as_str(), "payment reconciled");
        }
        Ok(Settled::Undecided(why)) if checks >= settings.max_attempts => {
            match payments.give_up(order_id, &why).await {
                Ok(p) => {
                    tracing::warn!(%order_id, checks, status = p.status.as_str(), %why, "gave up waiting for the PG")
                }
                Err(e) => tracing::warn!(%order_id, error = %e, "recording a payment given up"),
            }
        }
        Ok(Settled::Undecided(why) | Settled::Unreachable(why)) => later(why).await,
        Ok(Settled::Payment(_)) => later("still open".to_owned()).await,
        Ok(Settled::NoPayment) => {}
        Err(e) => later(e.to_string()).await,
    }
}
