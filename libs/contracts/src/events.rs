//! Every event the platform emits, with its topic and key. Adding a field with a default is a
//! compatible change; anything else bumps the event's `VERSION`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, topics};

macro_rules! event {
    ($ty:ty, $name:literal, $version:literal, $topic:expr, |$s:ident| $key:expr) => {
        impl Event for $ty {
            const TYPE: &'static str = $name;
            const VERSION: u16 = $version;
            const TOPIC: &'static str = $topic;
            fn key(&self) -> String {
                let $s = self;
                $key.to_string()
            }
        }
    };
}

// ---------------------------------------------------------------- user

/// A new account was created (sign-up or first social login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// The new user's id.
    pub user_id: Uuid,
    /// Normalized email address.
    pub email: String,
    /// Display name.
    pub name: String,
}
event!(UserRegistered, "user.registered", 1, topics::USERS, |e| e
    .user_id);

// ---------------------------------------------------------------- catalog

/// One sellable seat of a published performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSpec {
    /// Stable seat id within the venue (e.g. `A12-3-15`).
    pub seat_id: String,
    /// Section (area) id.
    pub section: String,
    /// Row label.
    pub row: String,
    /// Seat number within the row (used for adjacency).
    pub number: i32,
    /// Grade (zone) code, e.g. `blue`.
    pub grade: String,
    /// Distance rank from the field or stage: lower is better.
    #[serde(default)]
    pub rank: i32,
    /// Wheelchair-accessible seat.
    #[serde(default)]
    pub wheelchair: bool,
}

/// A general-admission area: sold by quantity, not by seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaSpec {
    /// Area id.
    pub area_id: String,
    /// Grade code.
    pub grade: String,
    /// How many places the area holds.
    pub capacity: i32,
}

/// Price of one grade, in KRW.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSpec {
    /// Grade code.
    pub grade: String,
    /// Human-readable grade name.
    pub name: String,
    /// Price per ticket, integer KRW.
    pub price_krw: i64,
}

/// A performance went on the market: everything the seat service needs to build its inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformancePublished {
    /// Performance id.
    pub performance_id: Uuid,
    /// Event the performance belongs to.
    pub event_id: Uuid,
    /// Venue id.
    pub venue_id: Uuid,
    /// When the performance starts (UTC).
    pub starts_at: DateTime<Utc>,
    /// Most tickets one buyer may hold and buy for this performance.
    pub ticket_limit: i32,
    /// Whether a waiting room guards the opening.
    pub waiting_room: bool,
    /// When general sale opens (UTC).
    pub sale_opens_at: DateTime<Utc>,
    /// When sale closes (UTC).
    pub sale_closes_at: DateTime<Utc>,
    /// Reserved seats.
    pub seats: Vec<SeatSpec>,
    /// General-admission areas.
    pub areas: Vec<AreaSpec>,
    /// Prices by grade.
    pub prices: Vec<PriceSpec>,
    /// Increases on every re-publication; consumers ignore older revisions.
    pub revision: i64,
}
event!(
    PerformancePublished,
    "performance.published",
    1,
    topics::CATALOG,
    |e| e.performance_id
);

/// A published performance was cancelled (e.g. a rain-out): its orders are refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformanceCancelled {
    /// Performance id.
    pub performance_id: Uuid,
    /// Why, shown to buyers.
    pub reason: String,
}
event!(
    PerformanceCancelled,
    "performance.cancelled",
    1,
    topics::CATALOG,
    |e| e.performance_id
);

// ---------------------------------------------------------------- seat

/// Seats were put on hold for a buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlaced {
    /// Hold id.
    pub hold_id: Uuid,
    /// Performance id.
    pub performance_id: Uuid,
    /// Buyer (user id).
    pub buyer_id: Uuid,
    /// Seats held.
    pub seat_ids: Vec<String>,
    /// General-admission quantities held, by area.
    #[serde(default)]
    pub areas: Vec<(String, i32)>,
    /// Total price in KRW.
    pub amount_krw: i64,
    /// When the hold lapses.
    pub expires_at: DateTime<Utc>,
}
event!(HoldPlaced, "hold.placed", 1, topics::SEATS, |e| e
    .performance_id);

/// Why a hold ended without a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldEndReason {
    /// The buyer let it go.
    Released,
    /// Its time ran out.
    Expired,
}

/// A hold ended and its seats went back on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldEnded {
    /// Hold id.
    pub hold_id: Uuid,
    /// Performance id.
    pub performance_id: Uuid,
    /// Seats released.
    pub seat_ids: Vec<String>,
    /// Why it ended.
    pub reason: HoldEndReason,
}
event!(HoldEnded, "hold.ended", 1, topics::SEATS, |e| e
    .performance_id);

/// Why the seat service could not honour a confirmed order's sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleRejectReason {
    /// A seat of the sale is held or sold by someone else (its hold lapsed first).
    SeatsTaken,
    /// A general-admission area has no room left for the sale's places.
    SoldOut,
    /// The buyer would own more tickets of the performance than its limit.
    LimitExceeded,
    /// The order names other seats, places or buyer than its hold.
    NotTheHold,
    /// The hold was sold to another order already.
    HoldUsed,
    /// The seat service knows no such hold (never placed, or its record is gone).
    UnknownHold,
    /// The seat service knows no such performance.
    UnknownPerformance,
}

/// A confirmed order's sale could not be honoured: nothing was sold, the order side refunds.
/// Keyed by the order id, like the order events it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRejected {
    /// The order whose sale was refused.
    pub order_id: Uuid,
    /// The hold it named.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Why.
    pub reason: SaleRejectReason,
    /// What exactly was in the way (seats, areas, counts), for people.
    #[serde(default)]
    pub detail: String,
}
event!(SaleRejected, "sale.rejected", 1, topics::SEATS, |e| e
    .order_id);

// ---------------------------------------------------------------- order

/// An order was created from a hold and awaits payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    /// Order id.
    pub order_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Hold the order was made from.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Amount due in KRW.
    pub amount_krw: i64,
    /// When an unpaid order lapses.
    pub expires_at: DateTime<Utc>,
}
event!(OrderCreated, "order.created", 1, topics::ORDERS, |e| e
    .order_id);

/// An order was paid: its seats are sold and its tickets issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// Order id.
    pub order_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Hold the order was made from.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Seats sold.
    pub seat_ids: Vec<String>,
    /// General-admission quantities sold, by area.
    #[serde(default)]
    pub areas: Vec<(String, i32)>,
    /// Amount paid in KRW.
    pub amount_krw: i64,
    /// Issued ticket ids.
    pub ticket_ids: Vec<Uuid>,
}
event!(OrderConfirmed, "order.confirmed", 1, topics::ORDERS, |e| e
    .order_id);

/// An order ended without a sale, or a sale was undone: its seats go back on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// Order id.
    pub order_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Seats released.
    pub seat_ids: Vec<String>,
    /// General-admission quantities released, by area.
    #[serde(default)]
    pub areas: Vec<(String, i32)>,
    /// Refunded amount in KRW (0 when nothing was paid).
    pub refund_krw: i64,
    /// Why: `buyer_cancelled`, `payment_failed`, `expired`, `performance_cancelled`, ...
    pub reason: String,
}
event!(OrderCancelled, "order.cancelled", 1, topics::ORDERS, |e| e
    .order_id);

// ---------------------------------------------------------------- payment

/// Money is to go back to the buyer (a cancellation, a sale the seat service refused, a payment
/// that arrived after its order lapsed): the order service asks, the payment service refunds at
/// the PG and answers `payment.refunded`. Keyed by the order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequested {
    /// The refund's id: the same id asked twice is refunded once (the PG's idempotency key
    /// derives from it).
    pub refund_id: Uuid,
    /// Order id.
    pub order_id: Uuid,
    /// How much, in KRW; `None`: everything not yet refunded (a full refund).
    #[serde(default)]
    pub amount_krw: Option<i64>,
    /// Why, shown to the buyer: `buyer_cancelled`, `sale_rejected`, `paid_after_expiry`, ...
    pub reason: String,
}
event!(
    RefundRequested,
    "refund.requested",
    1,
    topics::ORDERS,
    |e| e.order_id
);

/// The PG confirmed a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentApproved {
    /// Order id.
    pub order_id: Uuid,
    /// The PG's payment key.
    pub payment_key: String,
    /// Amount in KRW.
    pub amount_krw: i64,
    /// When the PG approved it.
    pub approved_at: DateTime<Utc>,
}
event!(
    PaymentApproved,
    "payment.approved",
    1,
    topics::PAYMENTS,
    |e| e.order_id
);

/// A payment attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// Order id.
    pub order_id: Uuid,
    /// The PG's error code.
    pub code: String,
    /// The PG's message.
    pub message: String,
}
event!(PaymentFailed, "payment.failed", 1, topics::PAYMENTS, |e| e
    .order_id);

/// Money went back to the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// Order id.
    pub order_id: Uuid,
    /// The PG's payment key.
    pub payment_key: String,
    /// Refunded amount in KRW.
    pub amount_krw: i64,
    /// Why.
    pub reason: String,
}
event!(
    PaymentRefunded,
    "payment.refunded",
    1,
    topics::PAYMENTS,
    |e| e.order_id
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    #[test]
    fn key_is_the_aggregate_id() {
        let id = Uuid::now_v7();
        let e = PerformanceCancelled {
            performance_id: id,
            reason: "rain".into(),
        };
        let env = Envelope::new(&e).unwrap();
        assert_eq!(env.key, id.to_string());
        assert_eq!(env.event_type, "performance.cancelled");
    }

    #[test]
    fn decode_refuses_other_types_and_newer_versions() {
        let e = PerformanceCancelled {
            performance_id: Uuid::nil(),
            reason: "rain".into(),
        };
        let mut env = Envelope::new(&e).unwrap();
        assert!(matches!(
            env.decode::<UserRegistered>(),
            Err(crate::DecodeError::WrongType { .. })
        ));
        env.version = 2;
        assert!(matches!(
            env.decode::<PerformanceCancelled>(),
            Err(crate::DecodeError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn envelope_json_uses_type_field() {
        let e = UserRegistered {
            user_id: Uuid::nil(),
            email: "a@b.c".into(),
            name: "n".into(),
        };
        let json = serde_json::to_value(Envelope::new(&e).unwrap()).unwrap();
        assert_eq!(json["type"], "user.registered");
        assert_eq!(json["version"], 1);
    }
}
