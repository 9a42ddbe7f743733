//! What the order service consumes — the saga by choreography, each event idempotent (the
//! consumer's inbox drops redeliveries; [`Orders`] acts on the status it finds, so a
//! republication changes nothing):
//!
//! - `payment.approved` → the order is paid, ticketed and confirmed (`order.confirmed`), or, when
//!   it expired or was cancelled first, refunded (`refund.requested`, `paid_after_expiry`);
//! - `payment.failed` → noted; the order stays payable until its window ends;
//! - `payment.refunded` → a refunding order is refunded (final), also one whose refund had
//!   failed (money back wins);
//! - `payment.refund_failed` → a refunding order ends `refund_failed` (final: an operator acts);
//! - `sale.rejected` → the confirmed order is refunded in full (`sale_rejected`); one the buyer
//!   cancelled first (a partial refund) gets the rest back too;
//! - `performance.published` → the start its cancellation schedule counts from, and the event's
//!   own schedule (if any) that orders made from then on freeze;
//! - `performance.cancelled` → every order of it ends, paid ones refunded in full.

use async_trait::async_trait;
use contracts::Event as _;
use contracts::{
    Envelope,
    events::{
        PaymentApproved, PaymentFailed, PaymentRefundFailed, PaymentRefunded, PerformanceCancelled,
        PerformancePublished, SaleRejected,
    },
};
use platform::bus::consumer::{HandleError, Handler};
use sqlx::PgConnection;

use crate::{
    orders::{Orders, SagaError},
    store,
};

impl From<SagaError> for HandleError {
    fn from(e: SagaError) -> Self {
        match e {
            SagaError::Db(e) => e.into(),
            SagaError::Unknown => HandleError::domain("unknown_order", "no such order"),
            e @ (SagaError::Outbox(_) | SagaError::Moved) => HandleError::transient(e),
        }
    }
}

/// Applies payment, seat and catalog events to OrderDB.
pub struct OrderHandler {
    /// Every order write.
    pub orders: Orders,
}

#[async_trait]
impl Handler for OrderHandler {
    fn wants(&self, event_type: &str) -> bool {
        [
            PaymentApproved::TYPE,
            PaymentFailed::TYPE,
            PaymentRefunded::TYPE,
            PaymentRefundFailed::TYPE,
            SaleRejected::TYPE,
            PerformancePublished::TYPE,
            PerformanceCancelled::TYPE,
        ]
        .contains(&event_type)
    }
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<PaymentApproved>() {
            let e: PaymentApproved = env.decode()?;
            let done = self
                .orders
                .paid(tx, e.order_id, &e.payment_key, e.amount_krw, e.approved_at)
                .await?;
            tracing::info!(order_id = %e.order_id, outcome = ?done, "payment approved");
        } else if env.is::<PaymentFailed>() {
            let e: PaymentFailed = env.decode()?;
            self.orders.payment_failed(tx, e.order_id, &e.code).await?;
        } else if env.is::<PaymentRefunded>() {
            let e: PaymentRefunded = env.decode()?;
            match self
                .orders
                .refunded(tx, e.order_id, e.amount_krw, &e.reason)
                .await
            {
                Err(SagaError::Unknown) => {
                    tracing::warn!(order_id = %e.order_id, "refund of an order never seen; ignored");
                }
                other => other?,
            }
        } else if env.is::<PaymentRefundFailed>() {
            let e: PaymentRefundFailed = env.decode()?;
            match self
                .orders
                .refund_failed(tx, e.order_id, &e.refund_key)
                .await
            {
                Ok(true) => {
                    tracing::error!(order_id = %e.order_id, refund_key = %e.refund_key, code = %e.code, message = %e.message, "refund failed: the order needs an operator");
                }
                Ok(false) => {
                    tracing::info!(order_id = %e.order_id, refund_key = %e.refund_key, "refund failure changes nothing (refunded already, or not the order's refund)");
                }
                Err(SagaError::Unknown) => {
                    tracing::warn!(order_id = %e.order_id, "refund failure of an order never seen; ignored");
                }
                Err(e) => return Err(e.into()),
            }
        } else if env.is::<SaleRejected>() {
            let e: SaleRejected = env.decode()?;
            tracing::warn!(order_id = %e.order_id, reason = ?e.reason, detail = %e.detail, "sale rejected; refunding");
            self.orders.sale_rejected(tx, e.order_id).await?;
        } else if env.is::<PerformancePublished>() {
            // Version 1 carried the whole publication; its header fields are the same.
            let v: serde_json::Value = env.payload.clone();
            let perf = v["performance_id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok());
            let starts = v["starts_at"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            let (Some(perf), Some(starts)) = (perf, starts) else {
                return Err(HandleError::domain(
                    "bad_publication",
                    "no performance id or start",
                ));
            };
            let revision = v["revision"].as_i64().unwrap_or(0);
            // The event's own schedule (absent or null: the platform default). One this build
            // cannot read is refused, never replaced by the default the organizer did not set.
            let policy = match v.get("cancellation_policy") {
                None | Some(serde_json::Value::Null) => None,
                Some(p) => Some(
                    serde_json::from_value::<crate::domain::policy::CancellationPolicy>(p.clone())
                        .map_err(|e| {
                            HandleError::domain(
                                "bad_publication",
                                format!("cancellation policy: {e}"),
                            )
                        })?,
                ),
            };
            let starts = starts.with_timezone(&chrono::Utc);
            // Its owner, whose staff run its gates (absent or unreadable: administrators only).
            let organizer = v["organizer_id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok());
            store::save_performance(tx, perf, starts, revision, policy.as_ref(), organizer).await?;
            // Prices by grade and ticket type; unreadable or absent: the standard types only.
            let prices: Vec<contracts::events::PriceSpec> = v
                .get("prices")
                .and_then(|p| serde_json::from_value(p.clone()).ok())
                .unwrap_or_default();
            store::save_prices(tx, perf, revision, &prices).await?;
        } else if env.is::<PerformanceCancelled>() {
            let e: PerformanceCancelled = env.decode()?;
            let n = self
                .orders
                .performance_cancelled(tx, e.performance_id, &e.reason)
                .await?;
            tracing::info!(performance_id = %e.performance_id, orders = n, "performance cancelled");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The consumer skips what the handler does not want without a transaction: it must want
    /// exactly the types it acts on (one it acts on but did not want would be lost).
    #[tokio::test]
    async fn the_handler_wants_exactly_the_events_it_acts_on() {
        let handler = OrderHandler { orders: Orders };
        let acted = platform::testing::types_handled(&handler, contracts::events::ALL_TYPES).await;
        assert!(!acted.is_empty());
        for t in contracts::events::ALL_TYPES {
            assert_eq!(handler.wants(t), acted.contains(t), "{t}");
        }
    }
}
