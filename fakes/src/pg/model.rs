//! The sandbox PG's payments as Toss Payments describes them: the Payment object (field names as
//! in its API reference), its statuses and the moves between them. No I/O here: the store calls
//! these under its lock, the handlers turn the errors into Toss's `{code, message}`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::PgError;

/// A payment's status (Toss's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Authenticated at the checkout, waiting for the merchant's confirm.
    Ready,
    /// Being approved.
    InProgress,
    /// A virtual account waiting for the deposit (not produced by this sandbox).
    WaitingForDeposit,
    /// Approved: the money moved.
    Done,
    /// Cancelled in full.
    Canceled,
    /// Cancelled in part; `balanceAmount` is what is left.
    PartialCanceled,
    /// The approval failed (declined).
    Aborted,
    /// Not confirmed within the confirm window.
    Expired,
}

impl Status {
    /// Toss's spelling (`DONE`, `PARTIAL_CANCELED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "READY",
            Self::InProgress => "IN_PROGRESS",
            Self::WaitingForDeposit => "WAITING_FOR_DEPOSIT",
            Self::Done => "DONE",
            Self::Canceled => "CANCELED",
            Self::PartialCanceled => "PARTIAL_CANCELED",
            Self::Aborted => "ABORTED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// How the buyer paid at the checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A card (`카드`).
    Card,
    /// An easy-pay wallet (`간편결제`, e.g. 토스페이).
    EasyPay,
}

impl Method {
    /// Toss's `method` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "카드",
            Self::EasyPay => "간편결제",
        }
    }

    /// `card` or `easypay` (the checkout's form and the sandbox call).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "card" | "카드" => Some(Self::Card),
            "easypay" | "easy_pay" | "간편결제" => Some(Self::EasyPay),
            _ => None,
        }
    }
}

/// One entry of `cancels[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    pub transaction_key: String,
    pub cancel_reason: String,
    pub cancel_amount: i64,
    pub tax_free_amount: i64,
    pub tax_exemption_amount: i64,
    /// What can still be cancelled after this one.
    pub refundable_amount: i64,
    pub canceled_at: String,
    pub cancel_status: &'static str,
}

/// Toss's `failure`.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// A payment as the PG keeps it.
#[derive(Debug, Clone)]
pub struct Payment {
    pub payment_key: String,
    pub order_id: String,
    pub order_name: String,
    pub status: Status,
    pub method: Method,
    pub total_amount: i64,
    pub balance_amount: i64,
    pub requested_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub last_transaction_key: Option<String>,
    pub cancels: Vec<Cancel>,
    pub failure: Option<Failure>,
}

/// The PG's time zone: Toss answers times in KST (`+09:00`).
pub fn kst(t: DateTime<Utc>) -> String {
    let local = t.naive_utc() + chrono::Duration::hours(9);
    format!("{}+09:00", local.format("%Y-%m-%dT%H:%M:%S"))
}

impl Payment {
    /// A payment authenticated at the checkout, waiting for the confirm.
    pub fn ready(
        payment_key: String,
        order_id: String,
        order_name: String,
        amount: i64,
        method: Method,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            payment_key,
            order_id,
            order_name,
            status: Status::Ready,
            method,
            total_amount: amount,
            balance_amount: amount,
            requested_at: now,
            approved_at: None,
            last_transaction_key: None,
            cancels: Vec::new(),
            failure: None,
        }
    }

    /// Marks a `READY` payment older than `window` `EXPIRED`; whether it changed.
    pub fn expire_if_due(&mut self, now: DateTime<Utc>, window: chrono::Duration) -> bool {
        if self.status == Status::Ready && now - self.requested_at >= window {
            self.status = Status::Expired;
            return true;
        }
        false
    }

    /// Checks a confirm of `order_id` / `amount` against this payment (nothing changes).
    pub fn check_confirm(&self, order_id: &str, amount: i64) -> Result<(), PgError> {
        match self.status {
            Status::Ready => {}
            Status::Expired => return Err(PgError::SessionExpired),
            Status::InProgress | Status::WaitingForDeposit => return Err(PgError::InProgress),
            Status::Done | Status::Canceled | Status::PartialCanceled | Status::Aborted => {
                return Err(PgError::AlreadyProcessed);
            }
        }
        if self.order_id != order_id {
            return Err(PgError::OrderMismatch);
        }
        if self.total_amount != amount {
            return Err(PgError::AmountMismatch);
        }
        Ok(())
    }

    /// Approves a `READY` payment (after [`Payment::check_confirm`]).
    pub fn approve(&mut self, transaction_key: String, now: DateTime<Utc>) {
        self.status = Status::Done;
        self.approved_at = Some(now);
        self.last_transaction_key = Some(transaction_key);
    }

    /// The card company declined the approval.
    pub fn abort(&mut self, code: &str, message: &str) {
        self.status = Status::Aborted;
        self.failure = Some(Failure {
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Cancels `amount` (the whole balance when `None`).
    pub fn cancel(
        &mut self,
        reason: String,
        amount: Option<i64>,
        transaction_key: String,
        now: DateTime<Utc>,
    ) -> Result<(), PgError> {
        match self.status {
            Status::Done | Status::PartialCanceled => {}
            Status::Canceled => return Err(PgError::AlreadyCanceled),
            _ => return Err(PgError::NotCancelable),
        }
        let amount = amount.unwrap_or(self.balance_amount);
        if amount <= 0 {
            return Err(PgError::Invalid("cancelAmount must be above 0".into()));
        }
        if amount > self.balance_amount {
            return Err(PgError::NotCancelableAmount);
        }
        self.balance_amount -= amount;
        self.status = if self.balance_amount == 0 {
            Status::Canceled
        } else {
            Status::PartialCanceled
        };
        self.last_transaction_key = Some(transaction_key.clone());
        self.cancels.push(Cancel {
            transaction_key,
            cancel_reason: reason,
            cancel_amount: amount,
            tax_free_amount: 0,
            tax_exemption_amount: 0,
            refundable_amount: self.balance_amount,
            canceled_at: kst(now),
            cancel_status: "DONE",
        });
        Ok(())
    }

    /// The Payment object as Toss answers it.
    pub fn to_json(&self) -> serde_json::Value {
        let vat = (self.balance_amount as f64 / 11.0).round() as i64;
        let card = (self.method == Method::Card && self.approved_at.is_some()).then(|| {
            serde_json::json!({
                "issuerCode": "61",
                "acquirerCode": "31",
                "number": "43301234****123*",
                "installmentPlanMonths": 0,
                "isInterestFree": false,
                "interestPayer": null,
                "approveNo": "00000000",
                "useCardPoint": false,
                "cardType": "신용",
                "ownerType": "개인",
                "acquireStatus": "READY",
                "amount": self.total_amount,
            })
        });
        let easy_pay = (self.method == Method::EasyPay).then(|| {
            serde_json::json!({"provider": "토스페이", "amount": self.total_amount, "discountAmount": 0})
        });
        serde_json::json!({
            "mId": "tboxoffice",
            "version": "2022-11-16",
            "lastTransactionKey": self.last_transaction_key,
            "paymentKey": self.payment_key,
            "orderId": self.order_id,
            "orderName": self.order_name,
            "taxExemptionAmount": 0,
            "status": self.status,
            "requestedAt": kst(self.requested_at),
            "approvedAt": self.approved_at.map(kst),
            "useEscrow": false,
            "cultureExpense": false,
            "card": card,
            "virtualAccount": null,
            "transfer": null,
            "mobilePhone": null,
            "giftCertificate": null,
            "cashReceipt": null,
            "cashReceipts": null,
            "discount": null,
            "cancels": if self.cancels.is_empty() { None } else { Some(&self.cancels) },
            "secret": null,
            "type": "NORMAL",
            "easyPay": easy_pay,
            "country": "KR",
            "failure": self.failure,
            "isPartialCancelable": true,
            "currency": "KRW",
            "totalAmount": self.total_amount,
            "balanceAmount": self.balance_amount,
            "suppliedAmount": self.balance_amount - vat,
            "vat": vat,
            "taxFreeAmount": 0,
            "method": self.method.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(amount: i64) -> Payment {
        let now = Utc::now();
        let mut p = Payment::ready(
            "pk".into(),
            "order-1".into(),
            "n".into(),
            amount,
            Method::Card,
            now,
        );
        p.approve("tx".into(), now);
        p
    }

    #[test]
    fn partial_cancels_leave_a_balance_and_the_last_one_cancels() {
        let mut p = done(10_000);
        let now = Utc::now();
        p.cancel("a".into(), Some(3_000), "t1".into(), now).unwrap();
        assert_eq!(
            (p.status, p.balance_amount),
            (Status::PartialCanceled, 7_000)
        );
        assert!(matches!(
            p.cancel("b".into(), Some(7_001), "t2".into(), now),
            Err(PgError::NotCancelableAmount)
        ));
        p.cancel("c".into(), None, "t3".into(), now).unwrap();
        assert_eq!((p.status, p.balance_amount), (Status::Canceled, 0));
        assert_eq!(p.cancels.len(), 2);
        assert_eq!(p.cancels[1].cancel_amount, 7_000);
        assert!(matches!(
            p.cancel("d".into(), None, "t4".into(), now),
            Err(PgError::AlreadyCanceled)
        ));
    }

    #[test]
    fn only_a_ready_payment_with_the_same_order_and_amount_confirms() {
        let now = Utc::now();
        let mut p = Payment::ready(
            "pk".into(),
            "order-1".into(),
            "n".into(),
            5_000,
            Method::Card,
            now,
        );
        assert!(matches!(
            p.check_confirm("order-1", 4_999),
            Err(PgError::AmountMismatch)
        ));
        assert!(matches!(
            p.check_confirm("order-2", 5_000),
            Err(PgError::OrderMismatch)
        ));
        assert!(p.check_confirm("order-1", 5_000).is_ok());
        assert!(!p.expire_if_due(now, chrono::Duration::minutes(10)));
        assert!(p.expire_if_due(
            now + chrono::Duration::minutes(10),
            chrono::Duration::minutes(10)
        ));
        assert!(matches!(
            p.check_confirm("order-1", 5_000),
            Err(PgError::SessionExpired)
        ));
        let p = done(5_000);
        assert!(matches!(
            p.check_confirm("order-1", 5_000),
            Err(PgError::AlreadyProcessed)
        ));
    }

    #[test]
    fn times_are_in_kst() {
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(kst(t), "2024-01-01T09:00:00+09:00");
    }
}
