//! What the service consumes (consumer `notification`; topics users, orders, payments,
//! catalog). Each event is turned, in the consumer's inbox transaction, into delivery rows (one
//! per channel and recipient, unique, so a redelivered event queues nothing new) and into what
//! later messages need to know (recipients, orders' buyers, performances' starts). Nothing is
//! sent here: the dispatcher sends, with no transaction open.
//!
//! - `user.registered` → the recipient, and `welcome`;
//! - `order.created` → the order's buyer (for payment events);
//! - `order.confirmed` → `order_confirmed` (email and SMS), and the order's tickets for the
//!   reminder;
//! - `order.cancelled` → `order_expired` (reason `expired`) or `order_cancelled`;
//! - `payment.failed` → `payment_failed`; `payment.refunded` → `order_refunded`;
//! - `performance.published` → its start (the reminder's clock); `performance.cancelled` → no
//!   reminder.

use async_trait::async_trait;
use contracts::{
    Envelope, Event,
    events::{
        OrderCancelled, OrderConfirmed, OrderCreated, PaymentFailed, PaymentRefunded,
        PerformanceCancelled, UserRegistered,
    },
};
use platform::bus::consumer::{HandleError, Handler};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{Kind, Locale},
    store::{self, Recipient},
};

/// Topics the service reads.
pub const TOPICS: &[&str] = &[
    contracts::topics::USERS,
    contracts::topics::ORDERS,
    contracts::topics::PAYMENTS,
    contracts::topics::CATALOG,
];

/// `user.registered` as this service reads it: the contract's fields, and those a user service
/// may add (all optional, so today's events and tomorrow's both read).
#[derive(Debug, Deserialize)]
struct Registration {
    user_id: Uuid,
    email: String,
    name: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    marketing_opt_in: Option<bool>,
    #[serde(default)]
    verification_url: Option<String>,
}

/// Keeps only digits of a phone number (`010-1234-5678` → `01012345678`), a Korean number in
/// E.164 as the user service stores it in the domestic form SMS providers take
/// (`+821012345678` → `01012345678`); `None` when fewer than 8 or more than 15 digits remain.
fn phone_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (prefix, rest) = match raw.strip_prefix("+82") {
        Some(rest) => ("0", rest),
        None => ("", raw),
    };
    let digits: String = prefix
        .chars()
        .chain(rest.chars().filter(char::is_ascii_digit))
        .collect();
    (digits.len() >= 8 && digits.len() <= 15).then_some(digits)
}

/// Turns events into deliveries.
pub struct NotificationHandler;

impl NotificationHandler {
    /// Queues a message about `order_id` to its buyer; one whose order has not arrived yet (the
    /// payment topic is not ordered with the order topic) waits, parked, for the order.
    async fn about_order(
        tx: &mut PgConnection,
        event_id: &str,
        order_id: Uuid,
        kind: Kind,
        data: &serde_json::Value,
    ) -> Result<(), HandleError> {
        store::lock_order(tx, order_id).await?;
        match store::order_buyer(tx, order_id).await? {
            Some(buyer) => {
                store::enqueue(tx, event_id, kind, buyer, data).await?;
            }
            None => store::park(tx, event_id, order_id, kind, data).await?,
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for NotificationHandler {
    fn wants(&self, event_type: &str) -> bool {
        [
            UserRegistered::TYPE,
            OrderCreated::TYPE,
            OrderConfirmed::TYPE,
            OrderCancelled::TYPE,
            PaymentFailed::TYPE,
            PaymentRefunded::TYPE,
            contracts::events::PerformancePublished::TYPE,
            PerformanceCancelled::TYPE,
        ]
        .contains(&event_type)
    }
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        let event_id = env.id.to_string();
        if env.is::<UserRegistered>() {
            // The contract's own decode checks type and version; the payload is then read with
            // the optional fields too.
            let _: UserRegistered = env.decode()?;
            let r: Registration = serde_json::from_value(env.payload.clone())
                .map_err(|e| HandleError::domain("bad_registration", e))?;
            store::upsert_recipient(
                tx,
                &Recipient {
                    user_id: r.user_id,
                    email: r.email,
                    name: r.name,
                    phone: r.phone.as_deref().and_then(phone_digits),
                    locale: r.locale.as_deref().and_then(Locale::from_tag),
                    marketing_opt_in: r.marketing_opt_in.unwrap_or(false),
                },
            )
            .await?;
            let data = json!({ "verification_url": r.verification_url });
            store::enqueue(tx, &event_id, Kind::Welcome, r.user_id, &data).await?;
        } else if env.is::<OrderCreated>() {
            let e: OrderCreated = env.decode()?;
            store::save_order(tx, e.order_id, e.buyer_id, e.performance_id, 0, "pending").await?;
        } else if env.is::<OrderConfirmed>() {
            let e: OrderConfirmed = env.decode()?;
            let tickets = i32::try_from(e.ticket_ids.len()).unwrap_or(i32::MAX);
            store::save_order(
                tx,
                e.order_id,
                e.buyer_id,
                e.performance_id,
                tickets,
                "confirmed",
            )
            .await?;
            let starts_at = store::performance_start(tx, e.performance_id).await?;
            let data = json!({
                "order_id": e.order_id,
                "performance_id": e.performance_id,
                "amount_krw": e.amount_krw,
                "seat_ids": e.seat_ids,
                "areas": e.areas,
                "ticket_ids": e.ticket_ids,
                "starts_at": starts_at,
            });
            store::enqueue(tx, &event_id, Kind::OrderConfirmed, e.buyer_id, &data).await?;
        } else if env.is::<OrderCancelled>() {
            let e: OrderCancelled = env.decode()?;
            store::save_order(tx, e.order_id, e.buyer_id, e.performance_id, 0, "cancelled").await?;
            let kind = if e.reason == "expired" {
                Kind::OrderExpired
            } else {
                Kind::OrderCancelled
            };
            let data = json!({
                "order_id": e.order_id,
                "refund_krw": e.refund_krw,
                "reason": e.reason,
            });
            store::enqueue(tx, &event_id, kind, e.buyer_id, &data).await?;
        } else if env.is::<PaymentFailed>() {
            let e: PaymentFailed = env.decode()?;
            let data = json!({ "order_id": e.order_id, "code": e.code, "message": e.message });
            Self::about_order(tx, &event_id, e.order_id, Kind::PaymentFailed, &data).await?;
        } else if env.is::<PaymentRefunded>() {
            let e: PaymentRefunded = env.decode()?;
            let data = json!({ "order_id": e.order_id, "amount_krw": e.amount_krw });
            Self::about_order(tx, &event_id, e.order_id, Kind::OrderRefunded, &data).await?;
        } else if env.event_type == contracts::events::PerformancePublished::TYPE {
            // Versions 1 and 2 share the header fields read here.
            let v = &env.payload;
            let id = v["performance_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok());
            let starts = v["starts_at"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            let (Some(id), Some(starts)) = (id, starts) else {
                return Err(HandleError::domain(
                    "bad_publication",
                    "no performance id or start",
                ));
            };
            store::save_performance(tx, id, starts.with_timezone(&chrono::Utc)).await?;
        } else if env.is::<PerformanceCancelled>() {
            let e: PerformanceCancelled = env.decode()?;
            store::cancel_performance(tx, e.performance_id).await?;
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
        let handler = NotificationHandler;
        let acted = platform::testing::types_handled(&handler, contracts::events::ALL_TYPES).await;
        assert!(!acted.is_empty());
        for t in contracts::events::ALL_TYPES {
            assert_eq!(handler.wants(t), acted.contains(t), "{t}");
        }
    }

    #[test]
    fn phone_numbers_become_domestic_digits() {
        assert_eq!(
            phone_digits("010-1234-5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(
            phone_digits("+821012345678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(
            phone_digits(" +82 10 1234 5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(phone_digits("+14155550100").as_deref(), Some("14155550100"));
        assert_eq!(phone_digits("12-34"), None);
        assert_eq!(phone_digits("1234567890123456"), None);
    }
}
