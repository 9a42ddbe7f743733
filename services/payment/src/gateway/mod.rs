//! The payment gateway (PG) behind one trait, so another PG (PortOne, KakaoPay) can follow the
//! Toss Payments adapter ([`toss`]). What a call's failure means decides what we do with the
//! money: [`PgError::Refused`] is a definite answer (this call moved no money), anything we could
//! not read is [`PgError::Unavailable`] (money may have moved: the payment becomes `unknown`).
//! [`guard`] keeps a slow or down PG from exhausting the service: a bound on calls in flight and
//! a circuit breaker, both failing fast.

pub mod guard;
pub mod toss;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What the PG says a payment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgStatus {
    /// Checkout started, not authenticated.
    Ready,
    /// Authenticated by the buyer, awaiting our confirm.
    InProgress,
    /// A virtual account awaiting the deposit.
    WaitingForDeposit,
    /// Money taken.
    Done,
    /// Wholly cancelled (money back).
    Canceled,
    /// Partly cancelled.
    PartialCanceled,
    /// Failed at the PG.
    Aborted,
    /// Not confirmed in time.
    Expired,
    /// A status this adapter does not know.
    Other(String),
}

impl PgStatus {
    /// Parses Toss's status names.
    pub fn parse(s: &str) -> Self {
        match s {
            "READY" => Self::Ready,
            "IN_PROGRESS" => Self::InProgress,
            "WAITING_FOR_DEPOSIT" => Self::WaitingForDeposit,
            "DONE" => Self::Done,
            "CANCELED" => Self::Canceled,
            "PARTIAL_CANCELED" => Self::PartialCanceled,
            "ABORTED" => Self::Aborted,
            "EXPIRED" => Self::Expired,
            other => Self::Other(other.to_owned()),
        }
    }

    /// What it means for a payment we have not recorded as approved, read strictly: only
    /// `DONE` is an approval; `ABORTED` and `EXPIRED` are failures (no money moved, and none
    /// will); `CANCELED` and `PARTIAL_CANCELED` say money moved and (some of it) went back
    /// without us ever approving it — never an approval, an anomaly for an operator; anything
    /// else is not decided yet.
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Done => Verdict::Approved,
            Self::Aborted | Self::Expired => Verdict::Failed,
            Self::Canceled | Self::PartialCanceled => Verdict::CancelledUnapproved,
            Self::Ready | Self::InProgress | Self::WaitingForDeposit | Self::Other(_) => {
                Verdict::Undecided
            }
        }
    }

    /// Toss's name of the status.
    pub fn name(&self) -> &str {
        match self {
            Self::Ready => "READY",
            Self::InProgress => "IN_PROGRESS",
            Self::WaitingForDeposit => "WAITING_FOR_DEPOSIT",
            Self::Done => "DONE",
            Self::Canceled => "CANCELED",
            Self::PartialCanceled => "PARTIAL_CANCELED",
            Self::Aborted => "ABORTED",
            Self::Expired => "EXPIRED",
            Self::Other(s) => s,
        }
    }
}

/// What a PG status means for a payment we have not approved (see [`PgStatus::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `DONE`: the money was taken.
    Approved,
    /// `ABORTED`, `EXPIRED`: no money moved, and none will.
    Failed,
    /// `CANCELED`, `PARTIAL_CANCELED`: taken and (partly) given back, never approved by us.
    CancelledUnapproved,
    /// `READY`, `IN_PROGRESS`, ...: not decided yet.
    Undecided,
}

/// A payment as the PG shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgPayment {
    /// The PG's key.
    pub payment_key: String,
    /// Our order id, as we gave it.
    pub order_id: String,
    /// Its status.
    pub status: PgStatus,
    /// The amount charged.
    pub total_amount: i64,
    /// What is left after cancels.
    pub balance_amount: i64,
    /// When the money was taken.
    pub approved_at: Option<DateTime<Utc>>,
}

impl PgPayment {
    /// Why this answer cannot be about our payment of `order_id` (`payment_key`, `amount_krw`),
    /// if it is not: `(code, reason)`. An answer naming another order, another payment or another
    /// amount is never applied (it would approve what was not paid, or pay for what was not
    /// ordered).
    pub fn mismatch(
        &self,
        order_id: Uuid,
        payment_key: &str,
        amount_krw: i64,
    ) -> Option<(&'static str, String)> {
        if self.order_id != order_id.to_string() {
            return Some((
                PG_ORDER_MISMATCH,
                format!(
                    "the PG answered for order `{}`, not `{order_id}`",
                    self.order_id
                ),
            ));
        }
        if self.payment_key != payment_key {
            return Some((
                PG_ORDER_MISMATCH,
                format!(
                    "the PG answered for payment `{}`, not `{payment_key}`",
                    self.payment_key
                ),
            ));
        }
        if self.total_amount != amount_krw {
            return Some((
                PG_AMOUNT_MISMATCH,
                format!(
                    "the PG's totalAmount is {} KRW, the order's {amount_krw} KRW",
                    self.total_amount
                ),
            ));
        }
        None
    }
}

/// The flag code of a PG answer about another order or payment.
pub const PG_ORDER_MISMATCH: &str = "PG_ORDER_MISMATCH";
/// The flag code of a PG answer with another amount.
pub const PG_AMOUNT_MISMATCH: &str = "PG_AMOUNT_MISMATCH";
/// The flag code of a payment the PG shows cancelled though we never approved it.
pub const PG_CANCELED_UNAPPROVED: &str = "PG_CANCELED_UNAPPROVED";

/// `POST /v1/payments/confirm`'s body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The PG's key from the checkout redirect.
    pub payment_key: String,
    /// Our order.
    pub order_id: Uuid,
    /// The order's amount (checked by us first).
    pub amount_krw: i64,
}

/// `POST /v1/payments/{paymentKey}/cancel`'s body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// Why, shown to the buyer.
    pub reason: String,
    /// How much (always given, so a retry sends the same body).
    pub amount_krw: i64,
}

/// Why a PG call did not give a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// The PG answered with a definite refusal: this call moved no money.
    #[error("refused by the PG ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The PG's code, e.g. `REJECT_CARD_COMPANY`.
        code: String,
        /// The PG's message.
        message: String,
    },
    /// We do not know what happened (timeout, lost connection, 5xx, an unreadable answer, a
    /// retryable code): money may have moved.
    #[error("PG unavailable: {0}")]
    Unavailable(String),
    /// The call was not made: the circuit is open or too many calls are in flight.
    #[error("PG call not made: {0}")]
    NotCalled(&'static str),
    /// The PG does not accept our secret key (401 `UNAUTHORIZED_KEY`, `INVALID_API_KEY`): a
    /// misconfiguration, not an outage. The call did nothing at the PG. Also what the guard
    /// answers, without calling, while the key is known to be refused.
    #[error("the PG refused our secret key: {0}")]
    Misconfigured(String),
}

impl PgError {
    /// Whether this counts against the PG's health (the breaker).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The PG's code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A payment gateway.
#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Confirms (captures) an authenticated payment, under `idempotency_key`.
    async fn confirm(&self, confirm: &Confirm, idempotency_key: &str)
    -> Result<PgPayment, PgError>;

    /// The payment made for `order_id`, or `None` when the PG has none.
    async fn payment_by_order(&self, order_id: Uuid) -> Result<Option<PgPayment>, PgError>;

    /// The payment `payment_key`, or `None` when the PG has none.
    async fn payment(&self, payment_key: &str) -> Result<Option<PgPayment>, PgError>;

    /// Cancels (refunds) part or all of a payment, under `idempotency_key`.
    async fn cancel(
        &self,
        payment_key: &str,
        cancel: &Cancel,
        idempotency_key: &str,
    ) -> Result<PgPayment, PgError>;
}

/// The PG's idempotency key for an order's confirm: one per order and attempt, so two confirms
/// of one attempt (whatever the buyer's own keys) are one confirm at the PG. A new attempt
/// follows only a definite failure of the one before (no money moved).
pub fn confirm_key(order_id: Uuid, attempt: i32) -> String {
    match attempt {
        ..=1 => format!("boxoffice-confirm-{order_id}"),
        n => format!("boxoffice-confirm-{order_id}-{n}"),
    }
}

/// The PG's idempotency key for a refund.
pub fn refund_key(refund_key: &str) -> String {
    format!("boxoffice-refund-{refund_key}")
}
