//! A payment as the API shows it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Payment, PaymentStatus};

/// Why a payment failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Failure {
    /// The PG's code (e.g. `REJECT_CARD_COMPANY`) or ours (`PG_UNDECIDED`).
    pub code: String,
    /// Its message.
    pub message: String,
}

/// A payment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    /// The order it pays.
    pub order_id: Uuid,
    /// The PG's payment key.
    pub payment_key: String,
    /// `confirming`, `unknown` (the PG's answer is awaited), `approved`, `failed`,
    /// `partially_refunded`, `refunded` or `flagged` (the PG's answer did not match: reviewed by
    /// an operator).
    pub status: PaymentStatus,
    /// The order's status as far as the payment decides it: `pending_payment` (no answer yet),
    /// `paid` (the order service confirms the order and issues its tickets), `payment_failed`,
    /// `refunded` or `under_review` (flagged).
    #[schema(value_type = String, example = "paid")]
    pub order_status: &'static str,
    /// Amount, KRW.
    pub amount: i64,
    /// Amount refunded so far, KRW.
    pub refunded_amount: i64,
    /// Always `KRW`.
    #[schema(value_type = String, example = "KRW")]
    pub currency: &'static str,
    /// When the PG took the money.
    pub approved_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub failure: Option<Failure>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        let order_status = match p.status {
            PaymentStatus::Confirming | PaymentStatus::Unknown => "pending_payment",
            // A late charge is on its way back: the order was not paid.
            PaymentStatus::Approved if p.late => "payment_failed",
            PaymentStatus::Approved | PaymentStatus::PartiallyRefunded => "paid",
            PaymentStatus::Failed => "payment_failed",
            PaymentStatus::Refunded => "refunded",
            // Not paid here; an operator settles the money with the PG.
            PaymentStatus::Flagged => "under_review",
        };
        Self {
            order_id: p.order_id,
            payment_key: p.payment_key.clone(),
            status: p.status,
            order_status,
            amount: p.amount_krw,
            refunded_amount: p.refunded_krw,
            currency: "KRW",
            approved_at: p.approved_at,
            failure: p.failure.clone().map(|(code, message)| Failure {
                // A flag's reason quotes the PG's answer (maybe about someone else's order): it
                // is the operator's, in the ledger.
                message: if p.status == PaymentStatus::Flagged {
                    "the payment gateway's answer did not match this order; under review".to_owned()
                } else {
                    message
                },
                code,
            }),
        }
    }
}
