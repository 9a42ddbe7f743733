//! What the payment service consumes from the order service, each idempotent (the consumer's
//! inbox drops redeliveries; the rows below drop republications): `order.created` (the amount,
//! buyer and deadline a confirm is checked against), `order.cancelled` (no confirm after it) and
//! `refund.requested` (a refund queued for the settler, which calls the PG outside this
//! transaction).

use async_trait::async_trait;
use contracts::Event as _;
use contracts::{
    Envelope,
    events::{OrderCancelled, OrderCreated, RefundRequested},
};
use platform::bus::consumer::{HandleError, Handler};
use sqlx::PgConnection;

use crate::store::{self, Order};

/// Applies order events to PayDB.
pub struct PaymentHandler;

#[async_trait]
impl Handler for PaymentHandler {
    fn wants(&self, event_type: &str) -> bool {
        [
            OrderCreated::TYPE,
            OrderCancelled::TYPE,
            RefundRequested::TYPE,
        ]
        .contains(&event_type)
    }
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<OrderCreated>() {
            let e: OrderCreated = env.decode()?;
            if e.amount_krw <= 0 {
                return Err(HandleError::domain(
                    "invalid_amount",
                    format!("order {} costs {} KRW", e.order_id, e.amount_krw),
                ));
            }
            store::save_order(
                tx,
                &Order {
                    order_id: e.order_id,
                    buyer_id: e.buyer_id,
                    amount_krw: e.amount_krw,
                    expires_at: e.expires_at,
                    cancelled_at: None,
                },
            )
            .await?;
        } else if env.is::<OrderCancelled>() {
            let e: OrderCancelled = env.decode()?;
            if !store::cancel_order(tx, e.order_id, &e.reason).await? {
                tracing::info!(order_id = %e.order_id, "cancel of an order never seen; ignored");
            }
        } else if env.is::<RefundRequested>() {
            let e: RefundRequested = env.decode()?;
            if e.amount_krw.is_some_and(|a| a <= 0) {
                return Err(HandleError::domain(
                    "invalid_amount",
                    format!("refund {} of {:?} KRW", e.refund_id, e.amount_krw),
                ));
            }
            store::request_refund(
                tx,
                &e.refund_id.to_string(),
                e.order_id,
                e.amount_krw,
                &e.reason,
            )
            .await?;
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
        let handler = PaymentHandler;
        let acted = platform::testing::types_handled(&handler, contracts::events::ALL_TYPES).await;
        assert!(!acted.is_empty());
        for t in contracts::events::ALL_TYPES {
            assert_eq!(handler.wants(t), acted.contains(t), "{t}");
        }
    }
}
