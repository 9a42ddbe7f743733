//! The order state machine. [`OrderStatus`] is what is stored; [`State`] is what code acts on:
//! one handle type per status whose methods consume it and return the next handle with the
//! [`Transition`] to record. A [`Transition`] can only be made by those methods, so the store,
//! which takes nothing else, cannot write an illegal change (and OrderDB's `legal_transitions`
//! foreign key refuses one anyway).
//!
//! ```text
//! pending_payment ─pay─▶ paid ─confirm─▶ confirmed ─refund─▶ refunding ─refunded─▶ refunded
//!        │                 └────refund────────────────────────▲   ▲
//!        ├─expire─▶ expired ─refund (paid after expiry)───────┘   │
//!        └─cancel─▶ cancelled ─refund (paid after cancel)─────────┘
//!                   confirmed ─cancel (nothing to refund)─▶ cancelled
//!                   refunding ─refund_failed─▶ refund_failed ─refunded (money back after all)─▶ refunded
//!   refunded | refund_failed ─refund_rest (the sale was refused after a partial refund)─▶ refunding
//! ```
//! Final: `confirmed` (until cancelled), `expired`, `cancelled`, `refunded`, `refund_failed` (the
//! payment service gave the refund up: an operator must act; a later `payment.refunded` still
//! ends it `refunded`). Not final: `pending_payment` (until its window ends), `paid` and
//! `refunding` (the saga drives them on).

use serde::{Deserialize, Serialize};

/// An order's status as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created from a hold; waiting for the buyer's payment until `expires_at`.
    PendingPayment,
    /// Paid; its tickets are being issued (never seen outside one transaction but by a crash).
    Paid,
    /// Paid and ticketed; its seats are sold.
    Confirmed,
    /// Its payment window ended unpaid; its seats went back on sale.
    Expired,
    /// Ended without a sale (by the buyer, or a performance cancelled before payment).
    Cancelled,
    /// Money is going back to the buyer.
    Refunding,
    /// Money went back to the buyer.
    Refunded,
    /// The refund could not be made (the PG refused it, or it kept failing): an operator must
    /// act. Final; money back later (`payment.refunded`) still ends it `refunded`.
    RefundFailed,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [Self; 8] = [
        Self::PendingPayment,
        Self::Paid,
        Self::Confirmed,
        Self::Expired,
        Self::Cancelled,
        Self::Refunding,
        Self::Refunded,
        Self::RefundFailed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Confirmed => "confirmed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
            Self::RefundFailed => "refund_failed",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the saga has nothing more to do with it unless something new arrives (a late
    /// payment, a cancellation).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::PendingPayment | Self::Paid | Self::Refunding)
    }
}

/// Why an order changed status: stored with the change, stable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The order was made.
    Created,
    /// The PG approved its payment.
    PaymentApproved,
    /// Its tickets were issued.
    TicketsIssued,
    /// Its payment window ended.
    Expired,
    /// The buyer cancelled it.
    BuyerCancelled,
    /// A payment arrived after it expired or was cancelled.
    PaidAfterExpiry,
    /// The seat service refused its sale.
    SaleRejected,
    /// The organizer cancelled the performance.
    PerformanceCancelled,
    /// The payment service refunded it.
    Refunded,
    /// The payment service gave its refund up.
    RefundFailed,
}

impl Reason {
    /// The stored name (also the `reason` of the events it causes).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::PaymentApproved => "payment_approved",
            Self::TicketsIssued => "tickets_issued",
            Self::Expired => "expired",
            Self::BuyerCancelled => "buyer_cancelled",
            Self::PaidAfterExpiry => "paid_after_expiry",
            Self::SaleRejected => "sale_rejected",
            Self::PerformanceCancelled => "performance_cancelled",
            Self::Refunded => "refunded",
            Self::RefundFailed => "refund_failed",
        }
    }
}

/// One legal status change, with its reason. Made only by the [`State`] handles' methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: Option<OrderStatus>,
    to: OrderStatus,
    reason: Reason,
}

impl Transition {
    const fn new(from: OrderStatus, to: OrderStatus, reason: Reason) -> Self {
        Self {
            from: Some(from),
            to,
            reason,
        }
    }

    /// The change that creates an order.
    pub const fn created() -> Self {
        Self {
            from: None,
            to: OrderStatus::PendingPayment,
            reason: Reason::Created,
        }
    }

    /// The status left (`None` for creation).
    pub fn from(&self) -> Option<OrderStatus> {
        self.from
    }

    /// The status entered.
    pub fn to(&self) -> OrderStatus {
        self.to
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

/// Every legal change `(from, to)`: the same list as OrderDB's `legal_transitions`.
pub const LEGAL: [(OrderStatus, OrderStatus); 14] = {
    use OrderStatus::*;
    [
        (PendingPayment, Paid),
        (PendingPayment, Expired),
        (PendingPayment, Cancelled),
        (Paid, Confirmed),
        (Paid, Refunding),
        (Confirmed, Refunding),
        (Confirmed, Cancelled),
        (Expired, Refunding),
        (Cancelled, Refunding),
        (Refunding, Refunded),
        (Refunding, RefundFailed),
        (RefundFailed, Refunded),
        (Refunded, Refunding),
        (RefundFailed, Refunding),
    ]
};

/// Why an order's money goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundCause {
    /// The buyer cancelled.
    Buyer,
    /// The seat service refused the sale.
    SaleRejected,
    /// The performance was cancelled.
    PerformanceCancelled,
}

impl RefundCause {
    fn reason(self) -> Reason {
        match self {
            Self::Buyer => Reason::BuyerCancelled,
            Self::SaleRejected => Reason::SaleRejected,
            Self::PerformanceCancelled => Reason::PerformanceCancelled,
        }
    }
}

/// Why an unpaid order is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelCause {
    /// The buyer cancelled.
    Buyer,
    /// The performance was cancelled.
    PerformanceCancelled,
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $status:ident) => {
        $(#[$doc])*
        #[derive(Debug, PartialEq, Eq)]
        pub struct $name(());
        impl $name {
            /// The status this handle stands for.
            pub const STATUS: OrderStatus = OrderStatus::$status;
        }
    };
}

handle!(
    /// An order waiting for payment.
    Pending,
    PendingPayment
);
handle!(
    /// A paid order not ticketed yet.
    Paid,
    Paid
);
handle!(
    /// A ticketed order.
    Confirmed,
    Confirmed
);
handle!(
    /// An order whose payment window ended.
    Expired,
    Expired
);
handle!(
    /// An order that ended without a sale.
    Cancelled,
    Cancelled
);
handle!(
    /// An order whose money is going back.
    Refunding,
    Refunding
);
handle!(
    /// An order whose refund the payment service gave up.
    RefundFailed,
    RefundFailed
);
handle!(
    /// An order whose money went back.
    Refunded,
    Refunded
);

impl Pending {
    /// The PG approved its payment.
    pub fn pay(self) -> (Paid, Transition) {
        (
            Paid(()),
            Transition::new(Self::STATUS, OrderStatus::Paid, Reason::PaymentApproved),
        )
    }
    /// Its window ended unpaid.
    pub fn expire(self) -> (Expired, Transition) {
        (
            Expired(()),
            Transition::new(Self::STATUS, OrderStatus::Expired, Reason::Expired),
        )
    }
    /// Cancelled before payment.
    pub fn cancel(self, cause: CancelCause) -> (Cancelled, Transition) {
        let reason = match cause {
            CancelCause::Buyer => Reason::BuyerCancelled,
            CancelCause::PerformanceCancelled => Reason::PerformanceCancelled,
        };
        (
            Cancelled(()),
            Transition::new(Self::STATUS, OrderStatus::Cancelled, reason),
        )
    }
}

impl Paid {
    /// Its tickets were issued.
    pub fn confirm(self) -> (Confirmed, Transition) {
        (
            Confirmed(()),
            Transition::new(Self::STATUS, OrderStatus::Confirmed, Reason::TicketsIssued),
        )
    }
    /// Its money goes back before it was ticketed.
    pub fn refund(self, cause: RefundCause) -> (Refunding, Transition) {
        (
            Refunding(()),
            Transition::new(Self::STATUS, OrderStatus::Refunding, cause.reason()),
        )
    }
}

impl Confirmed {
    /// Its money goes back (cancellation, refused sale, cancelled performance).
    pub fn refund(self, cause: RefundCause) -> (Refunding, Transition) {
        (
            Refunding(()),
            Transition::new(Self::STATUS, OrderStatus::Refunding, cause.reason()),
        )
    }
    /// Cancelled with nothing to refund (the fee took it all).
    pub fn cancel(self) -> (Cancelled, Transition) {
        (
            Cancelled(()),
            Transition::new(Self::STATUS, OrderStatus::Cancelled, Reason::BuyerCancelled),
        )
    }
}

impl Expired {
    /// A payment arrived after the window ended: it goes back.
    pub fn refund_late_payment(self) -> (Refunding, Transition) {
        (
            Refunding(()),
            Transition::new(
                Self::STATUS,
                OrderStatus::Refunding,
                Reason::PaidAfterExpiry,
            ),
        )
    }
}

impl Cancelled {
    /// A payment arrived after the order was cancelled: it goes back.
    pub fn refund_late_payment(self) -> (Refunding, Transition) {
        (
            Refunding(()),
            Transition::new(
                Self::STATUS,
                OrderStatus::Refunding,
                Reason::PaidAfterExpiry,
            ),
        )
    }
}

impl Refunding {
    /// The payment service refunded it.
    pub fn refunded(self) -> Transition {
        Transition::new(Self::STATUS, OrderStatus::Refunded, Reason::Refunded)
    }
    /// The payment service gave its refund up: an operator must act.
    pub fn refund_failed(self) -> (RefundFailed, Transition) {
        (
            RefundFailed(()),
            Transition::new(
                Self::STATUS,
                OrderStatus::RefundFailed,
                Reason::RefundFailed,
            ),
        )
    }
}

impl RefundFailed {
    /// The money went back after all (an operator's retry, a refund recorded late): money back
    /// wins.
    pub fn refunded(self) -> Transition {
        Transition::new(Self::STATUS, OrderStatus::Refunded, Reason::Refunded)
    }
    /// The seat service refused the sale after the buyer's (partial) refund failed: the rest of
    /// the money goes back.
    pub fn refund_rest(self) -> (Refunding, Transition) {
        (
            Refunding(()),
            Transition::new(Self::STATUS, OrderStatus::Refunding, Reason::SaleRejected),
        )
    }
}

impl Refunded {
    /// The seat service refused the sale after the buyer's partial refund was made: the rest of
    /// the money goes back (the buyer paid for a sale that never happened).
    pub fn refund_rest(self) -> (Refunding, Transition) {
        (
            Refunding(()),
            Transition::new(Self::STATUS, OrderStatus::Refunding, Reason::SaleRejected),
        )
    }
}

/// An order's status as a handle to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    /// `pending_payment`.
    Pending(Pending),
    /// `paid`.
    Paid(Paid),
    /// `confirmed`.
    Confirmed(Confirmed),
    /// `expired`.
    Expired(Expired),
    /// `cancelled`.
    Cancelled(Cancelled),
    /// `refunding`.
    Refunding(Refunding),
    /// `refunded`: nothing more happens, but the rest of a partial refund when the sale turns
    /// out refused.
    Refunded(Refunded),
    /// `refund_failed`: waits for an operator (or a late `payment.refunded`).
    RefundFailed(RefundFailed),
}

impl State {
    /// The handle of a stored status (the store's row lock makes it current).
    pub fn of(status: OrderStatus) -> Self {
        match status {
            OrderStatus::PendingPayment => Self::Pending(Pending(())),
            OrderStatus::Paid => Self::Paid(Paid(())),
            OrderStatus::Confirmed => Self::Confirmed(Confirmed(())),
            OrderStatus::Expired => Self::Expired(Expired(())),
            OrderStatus::Cancelled => Self::Cancelled(Cancelled(())),
            OrderStatus::Refunding => Self::Refunding(Refunding(())),
            OrderStatus::Refunded => Self::Refunded(Refunded(())),
            OrderStatus::RefundFailed => Self::RefundFailed(RefundFailed(())),
        }
    }

    /// Its status.
    pub fn status(&self) -> OrderStatus {
        match self {
            Self::Pending(_) => OrderStatus::PendingPayment,
            Self::Paid(_) => OrderStatus::Paid,
            Self::Confirmed(_) => OrderStatus::Confirmed,
            Self::Expired(_) => OrderStatus::Expired,
            Self::Cancelled(_) => OrderStatus::Cancelled,
            Self::Refunding(_) => OrderStatus::Refunding,
            Self::Refunded(_) => OrderStatus::Refunded,
            Self::RefundFailed(_) => OrderStatus::RefundFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// Everything that can happen to an order.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Pay,
        Expire,
        CancelUnpaid(bool),
        Confirm,
        Refund(u8),
        CancelFree,
        LatePayment,
        Refunded,
        RefundFailed,
        RefundRest,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Pay),
            Just(Op::Expire),
            any::<bool>().prop_map(Op::CancelUnpaid),
            Just(Op::Confirm),
            (0u8..3).prop_map(Op::Refund),
            Just(Op::CancelFree),
            Just(Op::LatePayment),
            Just(Op::Refunded),
            Just(Op::RefundFailed),
            Just(Op::RefundRest),
        ]
    }

    fn cause(n: u8) -> RefundCause {
        [
            RefundCause::Buyer,
            RefundCause::SaleRejected,
            RefundCause::PerformanceCancelled,
        ][n as usize % 3]
    }

    /// Applies `op` where the state allows it: the next state and the change, or `None`.
    fn step(state: State, op: Op) -> Result<(State, Transition), State> {
        use State as S;
        Ok(match (state, op) {
            (S::Pending(p), Op::Pay) => {
                let (n, t) = p.pay();
                (S::Paid(n), t)
            }
            (S::Pending(p), Op::Expire) => {
                let (n, t) = p.expire();
                (S::Expired(n), t)
            }
            (S::Pending(p), Op::CancelUnpaid(by_buyer)) => {
                let cause = if by_buyer {
                    CancelCause::Buyer
                } else {
                    CancelCause::PerformanceCancelled
                };
                let (n, t) = p.cancel(cause);
                (S::Cancelled(n), t)
            }
            (S::Paid(p), Op::Confirm) => {
                let (n, t) = p.confirm();
                (S::Confirmed(n), t)
            }
            (S::Paid(p), Op::Refund(c)) => {
                let (n, t) = p.refund(cause(c));
                (S::Refunding(n), t)
            }
            (S::Confirmed(c), Op::Refund(k)) => {
                let (n, t) = c.refund(cause(k));
                (S::Refunding(n), t)
            }
            (S::Confirmed(c), Op::CancelFree) => {
                let (n, t) = c.cancel();
                (S::Cancelled(n), t)
            }
            (S::Expired(e), Op::LatePayment) => {
                let (n, t) = e.refund_late_payment();
                (S::Refunding(n), t)
            }
            (S::Cancelled(c), Op::LatePayment) => {
                let (n, t) = c.refund_late_payment();
                (S::Refunding(n), t)
            }
            (S::Refunding(r), Op::Refunded) => (S::Refunded(Refunded(())), r.refunded()),
            (S::Refunding(r), Op::RefundFailed) => {
                let (n, t) = r.refund_failed();
                (S::RefundFailed(n), t)
            }
            (S::RefundFailed(f), Op::Refunded) => (S::Refunded(Refunded(())), f.refunded()),
            (S::RefundFailed(f), Op::RefundRest) => {
                let (n, t) = f.refund_rest();
                (S::Refunding(n), t)
            }
            (S::Refunded(r), Op::RefundRest) => {
                let (n, t) = r.refund_rest();
                (S::Refunding(n), t)
            }
            (state, _) => return Err(state),
        })
    }

    proptest! {
        /// Whatever happens, in whatever order: every change made is legal, leaves the status
        /// the order was in and enters the one it is in next; refunded is the end; an order
        /// never goes back to pending or paid; a refund happens only after a payment.
        #[test]
        fn every_change_is_legal_and_continuous(ops in prop::collection::vec(op(), 0..40)) {
            let legal: HashSet<_> = LEGAL.into_iter().collect();
            let mut state = State::of(OrderStatus::PendingPayment);
            let mut paid = false;
            let mut history = vec![Transition::created()];
            for op in ops {
                let before = state.status();
                match step(state, op) {
                    Ok((next, t)) => {
                        prop_assert_eq!(t.from(), Some(before));
                        prop_assert_eq!(t.to(), next.status());
                        prop_assert!(legal.contains(&(before, t.to())), "{:?}", t);
                        prop_assert_ne!(t.to(), OrderStatus::PendingPayment);
                        if matches!(op, Op::Pay | Op::LatePayment) { paid = true; }
                        if t.to() == OrderStatus::Refunding { prop_assert!(paid); }
                        history.push(t);
                        state = next;
                    }
                    Err(same) => {
                        prop_assert_eq!(same.status(), before);
                        state = same;
                    }
                }
            }
            // The record replays to the status: each change starts where the last ended.
            for w in history.windows(2) {
                prop_assert_eq!(w[1].from(), Some(w[0].to()));
            }
            prop_assert_eq!(history.last().unwrap().to(), state.status());
            // Refunded is the end, but for the rest of a partial refund (a refused sale).
            if state.status() == OrderStatus::Refunded {
                for op in [Op::Pay, Op::Expire, Op::Confirm, Op::Refund(0), Op::CancelFree, Op::LatePayment, Op::Refunded, Op::RefundFailed] {
                    prop_assert!(step(State::of(OrderStatus::Refunded), op).is_err());
                }
                let (next, t) = step(State::of(OrderStatus::Refunded), Op::RefundRest).unwrap();
                prop_assert_eq!((next.status(), t.reason()), (OrderStatus::Refunding, Reason::SaleRejected));
            }
            // A refund that failed waits for an operator: only money back moves it (to refunded);
            // nothing asks for a refund again, sells or pays it.
            if state.status() == OrderStatus::RefundFailed {
                for op in [Op::Pay, Op::Expire, Op::CancelUnpaid(true), Op::Confirm, Op::Refund(0), Op::CancelFree, Op::LatePayment, Op::RefundFailed] {
                    prop_assert!(step(State::of(OrderStatus::RefundFailed), op).is_err());
                }
                prop_assert!(step(State::of(OrderStatus::RefundFailed), Op::RefundRest).is_ok());
                let (next, t) = step(State::of(OrderStatus::RefundFailed), Op::Refunded).unwrap();
                prop_assert_eq!(next.status(), OrderStatus::Refunded);
                prop_assert_eq!(t.reason(), Reason::Refunded);
            }
        }
    }

    #[test]
    fn every_legal_change_is_reachable_and_nothing_else_is() {
        let ops = [
            Op::Pay,
            Op::Expire,
            Op::CancelUnpaid(true),
            Op::CancelUnpaid(false),
            Op::Confirm,
            Op::Refund(0),
            Op::Refund(1),
            Op::Refund(2),
            Op::CancelFree,
            Op::LatePayment,
            Op::Refunded,
            Op::RefundFailed,
            Op::RefundRest,
        ];
        let mut made = HashSet::new();
        for status in OrderStatus::ALL {
            for op in ops {
                if let Ok((_, t)) = step(State::of(status), op) {
                    made.insert((t.from().unwrap(), t.to()));
                }
            }
        }
        let legal: HashSet<_> = LEGAL.into_iter().collect();
        assert_eq!(made, legal);
    }

    #[test]
    fn the_database_allows_the_same_changes() {
        // Every migration that adds legal transitions (rows of `('from', 'to')`, four spaces in).
        let sql = [
            include_str!("../../migrations/0002_orders.sql"),
            include_str!("../../migrations/0004_refund_failed.sql"),
            include_str!("../../migrations/0005_refund_rest.sql"),
        ]
        .concat();
        for (from, to) in LEGAL {
            let row = format!("('{}', '{}')", from.as_str(), to.as_str());
            assert!(sql.contains(&row), "{row} missing from legal_transitions");
        }
        let rows = sql
            .lines()
            .filter(|l| l.starts_with("    ('") && !l.starts_with("     "))
            .count();
        assert_eq!(rows, LEGAL.len(), "legal_transitions has other rows");
        // And every status is one the orders table takes.
        for s in OrderStatus::ALL {
            assert!(
                sql.contains(&format!("'{}'", s.as_str())),
                "{s:?} not allowed in orders.status"
            );
        }
    }

    #[test]
    fn names_round_trip_and_finality() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
        let open: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .collect();
        assert_eq!(
            open,
            [
                OrderStatus::PendingPayment,
                OrderStatus::Paid,
                OrderStatus::Refunding
            ]
        );
        assert!(OrderStatus::RefundFailed.is_final());
        assert_eq!(
            OrderStatus::parse("refund_failed"),
            Some(OrderStatus::RefundFailed)
        );
    }
}
