//! A payment's states and the ledger entries that move it between them (no I/O). The live
//! state in PayDB and a replay of the ledger are both folds of the same [`Payment::apply`], so
//! they cannot disagree unless a row was written around it.
//!
//! ```text
//! (none) --ConfirmStarted--> confirming --OutcomeUnknown--> unknown
//! confirming | unknown --Approved--> approved --Refunded--> partially_refunded | refunded
//! confirming | unknown --Failed--> failed --LateApproval--> approved (late: refunded at once)
//! failed (a definite refusal) --ConfirmStarted (another payment key)--> confirming (next attempt)
//! failed (PG_MISCONFIGURED: the PG refused our key) --ConfirmStarted (any key)--> confirming
//! confirming | unknown | failed --Flagged--> flagged (the PG's answer cannot be ours: an operator
//!                                                   decides; nothing automatic follows)
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The failure code of a payment given up on while the PG had not decided: money may still
/// move for it (then it is refunded), so it is never attempted again.
pub const UNDECIDED: &str = "PG_UNDECIDED";

/// The failure code of a confirm the PG did not authenticate (our secret key is refused): the
/// PG did nothing, so the same payment key may be confirmed again once the key is fixed.
pub const MISCONFIGURED: &str = "PG_MISCONFIGURED";

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The PG's confirm was called and has not answered yet.
    Confirming,
    /// The PG did not say (a timeout, a 5xx, a lost connection): money may have moved; the
    /// reconciler asks the PG until it knows.
    Unknown,
    /// The PG took the money.
    Approved,
    /// The PG refused, or the payment never completed there: no money moved.
    Failed,
    /// Part of the money went back.
    PartiallyRefunded,
    /// All of it went back.
    Refunded,
    /// The PG's answer cannot be about this payment (another order, payment or amount), or
    /// shows it cancelled though we never approved it: never approved here, looked at no more;
    /// an operator settles the money with the PG (see the runbook).
    Flagged,
}

impl PaymentStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirming => "confirming",
            Self::Unknown => "unknown",
            Self::Approved => "approved",
            Self::Failed => "failed",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Flagged => "flagged",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "confirming" => Self::Confirming,
            "unknown" => Self::Unknown,
            "approved" => Self::Approved,
            "failed" => Self::Failed,
            "partially_refunded" => Self::PartiallyRefunded,
            "refunded" => Self::Refunded,
            "flagged" => Self::Flagged,
            _ => return None,
        })
    }

    /// Whether the PG's answer is still awaited.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Confirming | Self::Unknown)
    }
}

/// One state change, as the ledger stores it (`entry` jsonb).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// We asked the PG to confirm `payment_key` for `amount_krw`.
    ConfirmStarted {
        /// The buyer.
        buyer_id: Uuid,
        /// The PG's payment key.
        payment_key: String,
        /// The order's amount.
        amount_krw: i64,
    },
    /// The confirm's outcome was lost.
    OutcomeUnknown {
        /// What happened (timeout, 5xx, ...).
        reason: String,
    },
    /// The PG took the money.
    Approved {
        /// When, by the PG.
        approved_at: DateTime<Utc>,
    },
    /// No money moved.
    Failed {
        /// The PG's (or our) code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The PG took the money after the payment had been reported failed: it is refunded at once.
    LateApproval {
        /// When, by the PG.
        approved_at: DateTime<Utc>,
    },
    /// The PG's answer was not applied: it names another order, payment or amount, or shows a
    /// payment we never approved cancelled. For an operator.
    Flagged {
        /// `PG_ORDER_MISMATCH`, `PG_AMOUNT_MISMATCH`, `PG_CANCELED_UNAPPROVED`.
        code: String,
        /// What the PG said, for the operator.
        reason: String,
    },
    /// Money went back.
    Refunded {
        /// The refund it was.
        refund_key: String,
        /// How much.
        amount_krw: i64,
        /// Why.
        #[serde(default)]
        reason: String,
    },
}

impl Entry {
    /// The entry's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConfirmStarted { .. } => "confirm_started",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::Approved { .. } => "approved",
            Self::Failed { .. } => "failed",
            Self::LateApproval { .. } => "late_approval",
            Self::Flagged { .. } => "flagged",
            Self::Refunded { .. } => "refunded",
        }
    }
}

/// A payment's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// The order it pays (one payment per order).
    pub order_id: Uuid,
    /// The buyer.
    pub buyer_id: Uuid,
    /// The PG's payment key.
    pub payment_key: String,
    /// The amount charged (or to charge), KRW.
    pub amount_krw: i64,
    /// Where it stands.
    pub status: PaymentStatus,
    /// How much went back.
    pub refunded_krw: i64,
    /// When the PG took the money.
    pub approved_at: Option<DateTime<Utc>>,
    /// The money moved only after the payment had been reported failed.
    pub late: bool,
    /// Why it failed: the PG's code and message.
    pub failure: Option<(String, String)>,
    /// Which attempt this is (from 1): a definite failure may be followed by another.
    pub attempt: i32,
}

/// A change the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` cannot apply to a payment that is {from}")]
pub struct Refused {
    /// The entry's kind.
    pub entry: &'static str,
    /// The state it met (`none` before the first entry).
    pub from: &'static str,
}

impl Payment {
    /// Failed only because the PG never decided in time ([`UNDECIDED`]): the PG may still
    /// complete it, so it is looked at again on a sparse schedule (a late charge is refunded).
    pub fn undecided_failure(&self) -> bool {
        self.status == PaymentStatus::Failed
            && self
                .failure
                .as_ref()
                .is_some_and(|(code, _)| code == UNDECIDED)
    }

    /// Failed because the PG refused our secret key ([`MISCONFIGURED`]): nothing happened at
    /// the PG, so the same payment key may be confirmed again.
    pub fn misconfigured_failure(&self) -> bool {
        self.status == PaymentStatus::Failed
            && self
                .failure
                .as_ref()
                .is_some_and(|(code, _)| code == MISCONFIGURED)
    }

    /// The balance left to refund.
    pub fn refundable_krw(&self) -> i64 {
        match self.status {
            PaymentStatus::Approved | PaymentStatus::PartiallyRefunded => {
                self.amount_krw - self.refunded_krw
            }
            _ => 0,
        }
    }

    /// Whether another attempt may follow: it failed for sure (the PG refused, or said the
    /// payment ended without money), not given up on undecided, and never charged late.
    pub fn can_retry(&self) -> bool {
        self.status == PaymentStatus::Failed
            && !self.late
            && self
                .failure
                .as_ref()
                .is_some_and(|(code, _)| code != UNDECIDED)
    }

    /// The payment `entry` starts, when it is a [`Entry::ConfirmStarted`].
    pub fn start(order_id: Uuid, entry: &Entry) -> Result<Self, Refused> {
        match entry {
            Entry::ConfirmStarted {
                buyer_id,
                payment_key,
                amount_krw,
            } if *amount_krw > 0 => Ok(Self {
                order_id,
                buyer_id: *buyer_id,
                payment_key: payment_key.clone(),
                amount_krw: *amount_krw,
                status: PaymentStatus::Confirming,
                refunded_krw: 0,
                approved_at: None,
                late: false,
                failure: None,
                attempt: 1,
            }),
            e => Err(Refused {
                entry: e.kind(),
                from: "none",
            }),
        }
    }

    /// The state after `entry`, or why it cannot apply.
    pub fn apply(&self, entry: &Entry) -> Result<Self, Refused> {
        use PaymentStatus as S;
        let refused = || Refused {
            entry: entry.kind(),
            from: self.status.as_str(),
        };
        let mut next = self.clone();
        match (self.status, entry) {
            (S::Confirming, Entry::OutcomeUnknown { .. }) => next.status = S::Unknown,
            (S::Confirming | S::Unknown, Entry::Approved { approved_at }) => {
                next.status = S::Approved;
                next.approved_at = Some(*approved_at);
            }
            (S::Confirming | S::Unknown, Entry::Failed { code, message }) => {
                next.status = S::Failed;
                next.failure = Some((code.clone(), message.clone()));
            }
            (
                S::Failed,
                Entry::ConfirmStarted {
                    buyer_id,
                    payment_key,
                    amount_krw,
                },
            ) if self.can_retry()
                && (*payment_key != self.payment_key || self.misconfigured_failure())
                && *buyer_id == self.buyer_id
                && *amount_krw == self.amount_krw =>
            {
                next.status = S::Confirming;
                next.payment_key = payment_key.clone();
                next.failure = None;
                next.attempt += 1;
            }
            (S::Confirming | S::Unknown | S::Failed, Entry::Flagged { code, reason }) => {
                next.status = S::Flagged;
                next.failure = Some((code.clone(), reason.clone()));
            }
            (S::Failed, Entry::LateApproval { approved_at }) => {
                next.status = S::Approved;
                next.approved_at = Some(*approved_at);
                next.late = true;
            }
            (S::Approved | S::PartiallyRefunded, Entry::Refunded { amount_krw, .. })
                if *amount_krw > 0 && *amount_krw <= self.refundable_krw() =>
            {
                next.refunded_krw += amount_krw;
                next.status = if next.refunded_krw == next.amount_krw {
                    S::Refunded
                } else {
                    S::PartiallyRefunded
                };
            }
            _ => return Err(refused()),
        }
        Ok(next)
    }
}

/// Why a ledger does not replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger entry {seq} of order {order_id}: {refused}")]
pub struct ReplayError {
    /// The entry's sequence number.
    pub seq: i64,
    /// Its payment.
    pub order_id: Uuid,
    /// What the state machine said.
    pub refused: Refused,
}

/// Every payment's state rebuilt from ledger entries `(seq, order_id, entry)` in `seq` order.
pub fn replay<'a>(
    entries: impl IntoIterator<Item = (i64, Uuid, &'a Entry)>,
) -> Result<BTreeMap<Uuid, Payment>, ReplayError> {
    let mut payments: BTreeMap<Uuid, Payment> = BTreeMap::new();
    for (seq, order_id, entry) in entries {
        let next = match payments.get(&order_id) {
            None => Payment::start(order_id, entry),
            Some(p) => p.apply(entry),
        }
        .map_err(|refused| ReplayError {
            seq,
            order_id,
            refused,
        })?;
        payments.insert(order_id, next);
    }
    Ok(payments)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn started(amount: i64) -> (Payment, Entry) {
        let e = Entry::ConfirmStarted {
            buyer_id: Uuid::nil(),
            payment_key: "pk".into(),
            amount_krw: amount,
        };
        (Payment::start(Uuid::nil(), &e).unwrap(), e)
    }

    fn refund(amount: i64) -> Entry {
        Entry::Refunded {
            refund_key: "r".into(),
            amount_krw: amount,
            reason: "test".into(),
        }
    }

    #[test]
    fn a_payment_is_approved_then_refunded_in_parts() {
        let (p, _) = started(10_000);
        let p = p
            .apply(&Entry::Approved {
                approved_at: Utc::now(),
            })
            .unwrap();
        let p = p.apply(&refund(4_000)).unwrap();
        assert_eq!(p.status, PaymentStatus::PartiallyRefunded);
        assert_eq!(p.refundable_krw(), 6_000);
        assert!(p.apply(&refund(6_001)).is_err(), "over the balance");
        let p = p.apply(&refund(6_000)).unwrap();
        assert_eq!(p.status, PaymentStatus::Refunded);
        assert!(p.apply(&refund(1)).is_err());
    }

    #[test]
    fn settled_payments_do_not_settle_again() {
        let (p, _) = started(1_000);
        let failed = p
            .apply(&Entry::Failed {
                code: "REJECT_CARD_COMPANY".into(),
                message: "no".into(),
            })
            .unwrap();
        let approved = Entry::Approved {
            approved_at: Utc::now(),
        };
        assert!(failed.apply(&approved).is_err());
        assert!(
            failed
                .apply(&Entry::OutcomeUnknown { reason: "t".into() })
                .is_err()
        );
        assert!(failed.apply(&refund(1)).is_err(), "nothing was charged");
        let ok = p.apply(&approved).unwrap();
        assert!(ok.apply(&approved).is_err());
        assert!(
            ok.apply(&Entry::Failed {
                code: "x".into(),
                message: "y".into()
            })
            .is_err()
        );
        let late = failed
            .apply(&Entry::LateApproval {
                approved_at: Utc::now(),
            })
            .unwrap();
        assert!(late.late);
        assert_eq!(late.refundable_krw(), 1_000);
    }

    #[test]
    fn only_a_confirm_starts_a_payment() {
        assert!(Payment::start(Uuid::nil(), &refund(1)).is_err());
        let zero = Entry::ConfirmStarted {
            buyer_id: Uuid::nil(),
            payment_key: "pk".into(),
            amount_krw: 0,
        };
        assert!(Payment::start(Uuid::nil(), &zero).is_err());
        let (p, start) = started(5);
        assert!(p.apply(&start).is_err(), "started twice");
    }

    #[test]
    fn a_declined_payment_may_be_attempted_again_with_another_key_only() {
        let (p, start) = started(5_000);
        let declined = p
            .apply(&Entry::Failed {
                code: "REJECT_CARD_COMPANY".into(),
                message: "no".into(),
            })
            .unwrap();
        assert!(
            declined.apply(&start).is_err(),
            "the same payment key again"
        );
        let again = Entry::ConfirmStarted {
            buyer_id: Uuid::nil(),
            payment_key: "pk2".into(),
            amount_krw: 5_000,
        };
        let second = declined.apply(&again).unwrap();
        assert_eq!(
            (second.status, second.attempt, second.failure.as_ref()),
            (PaymentStatus::Confirming, 2, None)
        );
        let other_amount = Entry::ConfirmStarted {
            buyer_id: Uuid::nil(),
            payment_key: "pk3".into(),
            amount_krw: 1,
        };
        assert!(declined.apply(&other_amount).is_err());
        // Given up on undecided, or charged late: never again.
        let undecided = p
            .apply(&Entry::Failed {
                code: UNDECIDED.into(),
                message: "?".into(),
            })
            .unwrap();
        assert!(undecided.apply(&again).is_err());
        let late = declined
            .apply(&Entry::LateApproval {
                approved_at: Utc::now(),
            })
            .unwrap();
        assert!(late.apply(&again).is_err());
        // An open or approved payment is not restarted either.
        assert!(p.apply(&again).is_err());
    }

    #[test]
    fn a_flagged_payment_is_never_approved_refunded_or_attempted_again() {
        let (p, start) = started(5_000);
        let flag = Entry::Flagged {
            code: "PG_AMOUNT_MISMATCH".into(),
            reason: "the PG's totalAmount is 1 KRW".into(),
        };
        let flagged = p.apply(&flag).unwrap();
        assert_eq!(flagged.status, PaymentStatus::Flagged);
        assert_eq!(flagged.refundable_krw(), 0);
        assert!(!flagged.can_retry());
        let approved = Entry::Approved {
            approved_at: Utc::now(),
        };
        assert!(flagged.apply(&approved).is_err());
        assert!(flagged.apply(&refund(1)).is_err());
        assert!(flagged.apply(&flag).is_err(), "flagged once");
        let again = Entry::ConfirmStarted {
            buyer_id: Uuid::nil(),
            payment_key: "pk2".into(),
            amount_krw: 5_000,
        };
        assert!(flagged.apply(&again).is_err());
        assert!(flagged.apply(&start).is_err());
        // An approved payment is not flagged afterwards (its money is accounted for).
        assert!(p.apply(&approved).unwrap().apply(&flag).is_err());
    }

    #[test]
    fn a_confirm_the_pg_did_not_authenticate_may_be_sent_again_with_the_same_key() {
        let (p, start) = started(5_000);
        let failed = p
            .apply(&Entry::Failed {
                code: MISCONFIGURED.into(),
                message: "401".into(),
            })
            .unwrap();
        assert!(failed.misconfigured_failure());
        let again = failed.apply(&start).unwrap();
        assert_eq!(
            (again.status, again.attempt),
            (PaymentStatus::Confirming, 2)
        );
    }

    #[test]
    fn entries_round_trip_through_json() {
        let e = Entry::Refunded {
            refund_key: "k".into(),
            amount_krw: 3,
            reason: "buyer_cancelled".into(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "refunded");
        assert_eq!(serde_json::from_value::<Entry>(json).unwrap(), e);
    }

    fn any_entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            Just(Entry::OutcomeUnknown { reason: "t".into() }),
            Just(Entry::Approved {
                approved_at: DateTime::<Utc>::UNIX_EPOCH
            }),
            Just(Entry::Failed {
                code: "c".into(),
                message: "m".into()
            }),
            Just(Entry::LateApproval {
                approved_at: DateTime::<Utc>::UNIX_EPOCH
            }),
            Just(Entry::Flagged {
                code: "PG_AMOUNT_MISMATCH".into(),
                reason: "r".into()
            }),
            (1i64..6_000).prop_map(refund),
            (0u8..3).prop_map(|k| Entry::ConfirmStarted {
                buyer_id: Uuid::nil(),
                payment_key: format!("pk{k}"),
                amount_krw: 10_000,
            }),
        ]
    }

    proptest! {
        /// Whatever is thrown at it, a payment never refunds more than it took, and money only
        /// goes back from a payment that was approved.
        #[test]
        fn refunds_never_exceed_the_charge(entries in proptest::collection::vec(any_entry(), 0..20)) {
            let (mut p, _) = started(10_000);
            let mut accepted = 0;
            for e in &entries {
                if let Ok(next) = p.apply(e) {
                    accepted += 1;
                    p = next;
                }
                prop_assert!(p.refunded_krw <= p.amount_krw);
                if p.refunded_krw > 0 {
                    prop_assert!(p.approved_at.is_some());
                }
            }
            // The accepted entries replay to the same state.
            let mut kept = vec![started(10_000).1];
            let (mut q, _) = started(10_000);
            for e in &entries {
                if let Ok(next) = q.apply(e) {
                    q = next;
                    kept.push(e.clone());
                }
            }
            prop_assert_eq!(kept.len(), accepted + 1);
            let rebuilt = replay(kept.iter().enumerate().map(|(i, e)| (i as i64, Uuid::nil(), e))).unwrap();
            prop_assert_eq!(&rebuilt[&Uuid::nil()], &p);
        }
    }
}
