//! [`Payments`]: the one owner of every payment write — the confirm a buyer asks for, the
//! settlement of an unknown outcome (by the reconciler, a webhook or a buyer's retry) and refunds.
//! Each change goes through [`store::transition`] with its event in the outbox, in one
//! transaction; no transaction is open while the PG is called.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use contracts::events::{PaymentApproved, PaymentFailed, PaymentRefundFailed, PaymentRefunded};
use platform::{bus::outbox, wakeups::Wakeups};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    config::SettleSettings,
    domain::{Entry, Payment, PaymentStatus},
    gateway::{
        self, Cancel, Confirm, PG_CANCELED_UNAPPROVED, PaymentGateway, PgError, PgPayment, Verdict,
        guard::{Guard, Permit},
    },
    store::{self, KeyUse, Refund, StoreError},
};

/// The longest wait between two looks at a payment failed as undecided.
const RECHECK_MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A buyer's confirm.
#[derive(Debug, Clone)]
pub struct ConfirmRequest {
    /// The buyer (from the access token).
    pub buyer_id: Uuid,
    /// The buyer's `Idempotency-Key`.
    pub idempotency_key: String,
    /// The PG's key from the checkout redirect.
    pub payment_key: String,
    /// The order.
    pub order_id: Uuid,
    /// The amount the checkout redirect carried.
    pub amount_krw: i64,
}

impl ConfirmRequest {
    /// What identifies the request for its idempotency key.
    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!(
            "{}\n{}\n{}",
            self.order_id, self.payment_key, self.amount_krw
        ));
        hex::encode(digest)
    }
}

/// Why a confirm was refused (or could not be made now).
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// The order has not reached this service yet (its event is on the way): try again shortly.
    #[error("the order is not known yet")]
    OrderNotReady,
    /// No such order for this buyer.
    #[error("no such order")]
    NotFound,
    /// The amount is not the order's: nothing was charged.
    #[error("the amount is not the order's")]
    AmountMismatch,
    /// The buyer's idempotency key was used for another request.
    #[error("the idempotency key was used for another request")]
    KeyReused,
    /// The order was cancelled.
    #[error("the order was cancelled")]
    OrderCancelled,
    /// The order lapsed unpaid.
    #[error("the order expired")]
    OrderExpired,
    /// The order is being paid with another payment key.
    #[error("the order has another payment")]
    OtherPayment,
    /// The first confirm of this order is still waiting for the PG.
    #[error("a confirm of this order is in progress")]
    InProgress,
    /// The PG was not called (circuit open, too many calls): nothing was recorded.
    #[error("the PG is unavailable: {0}")]
    PgUnavailable(&'static str),
    /// The PG refuses our secret key (a misconfiguration): nothing was charged.
    #[error("the PG refuses our secret key")]
    PgMisconfigured,
    /// No PG is configured.
    #[error("no PG is configured")]
    PgOff,
    /// PayDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a look at the PG found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The payment is in this state now (changed or not).
    Payment(Payment),
    /// The order has no payment here.
    NoPayment,
    /// The PG has not decided yet (the payment is still `READY` or `IN_PROGRESS` there).
    Undecided(String),
    /// The PG could not be asked (down, circuit open, not configured): look again later.
    Unreachable(String),
}

/// How to find the payment at the PG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `GET /v1/payments/orders/{orderId}` (reconciliation).
    ByOrder,
    /// `GET /v1/payments/{paymentKey}` (a webhook's hint).
    ByKey,
}

/// The one owner of payment writes.
#[derive(Clone)]
pub struct Payments {
    pool: PgPool,
    pg: Option<Arc<dyn PaymentGateway>>,
    guard: Arc<Guard>,
    settle: SettleSettings,
    /// The PG call timeout: a confirm's outcome is looked at after it (and a backoff).
    pg_timeout: Duration,
    /// Orders arriving and payments changing ([`WAKEUPS`]), for requests that wait on them.
    wakeups: Option<Wakeups>,
    /// The confirms waiting for their order, per buyer ([`MAX_ORDER_WAITS`]).
    waiting: WaitSlots,
}

/// Most confirms of one buyer that wait for their order at once, per replica. A buyer pays one
/// order at a time (a few in a hurry); a flood of confirms for orders that never come (made-up
/// ids) would otherwise hold a request and one more read each for [`ORDER_WAIT`]. Past it a
/// confirm of an order not there yet answers `order_not_ready` at once, after one read.
pub const MAX_ORDER_WAITS: u32 = 4;

/// Counts the confirms waiting per buyer; a slot is given back when its [`WaitSlot`] drops.
#[derive(Clone, Default)]
pub struct WaitSlots(Arc<std::sync::Mutex<std::collections::HashMap<Uuid, u32>>>);

/// One waiting confirm's place in its buyer's count.
pub struct WaitSlot {
    slots: WaitSlots,
    buyer: Uuid,
}

impl WaitSlots {
    /// A slot for one more waiting confirm of `buyer`, unless [`MAX_ORDER_WAITS`] wait already.
    pub fn take(&self, buyer: Uuid) -> Option<WaitSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(buyer).or_default();
        if *n >= MAX_ORDER_WAITS {
            return None;
        }
        *n += 1;
        Some(WaitSlot {
            slots: self.clone(),
            buyer,
        })
    }

    /// How many confirms of `buyer` wait now.
    pub fn waiting(&self, buyer: Uuid) -> u32 {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&buyer).copied().unwrap_or(0)
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.buyer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.buyer);
            }
        }
    }
}

/// The channel PayDB notifies (at commit) when an order arrives ([`arrival_key`]) and when a
/// payment changes status ([`change_key`]), for the requests waiting on either.
pub const WAKEUPS: &str = "payment_wakeups";

/// The key notified when the order `order_id` reaches PayDB.
pub fn arrival_key(order_id: Uuid) -> String {
    format!("order {order_id}")
}

/// The key notified when the payment of `order_id` changes status.
pub fn change_key(order_id: Uuid) -> String {
    format!("payment {order_id}")
}
/// How long a confirm waits for its order's event before it answers `order_not_ready`: the
/// buyer's client confirms the moment the PG's checkout returns, which is often before
/// `order.created` has come over the bus.
pub const ORDER_WAIT: Duration = Duration::from_secs(2);

fn after(d: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Payments {
    /// Payments on `pool` through `pg` (none: every confirm is refused) behind `guard`.
    pub fn new(
        pool: PgPool,
        pg: Option<Arc<dyn PaymentGateway>>,
        guard: Arc<Guard>,
        settle: SettleSettings,
        pg_timeout: Duration,
    ) -> Self {
        Self {
            pool,
            pg,
            guard,
            settle,
            pg_timeout,
            wakeups: None,
            waiting: WaitSlots::default(),
        }
    }

    /// Lets a confirm whose order has not arrived yet wait for it (up to [`ORDER_WAIT`]), and a
    /// webhook wait for the confirm in flight, on `wakeups` (of [`WAKEUPS`]).
    pub fn with_wakeups(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = Some(wakeups);
        self
    }

    /// What requests wait on, if anything.
    pub fn wakeups(&self) -> Option<&Wakeups> {
        self.wakeups.as_ref()
    }

    /// The PG call timeout.
    pub fn pg_timeout(&self) -> Duration {
        self.pg_timeout
    }

    /// PayDB.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The breaker and in-flight bound around the PG.
    pub fn guard(&self) -> &Arc<Guard> {
        &self.guard
    }

    /// The wait before the `attempt`-th look (from 1): the first backoff doubling, capped.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let first = self.settle.first_backoff_ms.max(1);
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        Duration::from_millis(
            first
                .saturating_mul(1u64 << exp)
                .min(self.settle.max_backoff_ms.max(first)),
        )
    }

    /// The wait before the `attempt`-th look at a payment failed as undecided: the first backoff
    /// doubling, capped at [`RECHECK_MAX_BACKOFF`] (sparse: the PG rarely completes it late).
    pub fn recheck_backoff(&self, attempt: i32) -> Duration {
        let first = self.settle.first_backoff_ms.max(1);
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let cap = u64::try_from(RECHECK_MAX_BACKOFF.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(first.saturating_mul(1u64 << exp).min(cap.max(first)))
    }

    /// The payment of `order_id`, if it belongs to `buyer_id` (else `None`, as for no payment).
    pub async fn find(
        &self,
        buyer_id: Uuid,
        order_id: Uuid,
    ) -> Result<Option<Payment>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::payment(&mut conn, order_id)
            .await?
            .filter(|p| p.buyer_id == buyer_id))
    }

    /// Confirms a buyer's payment: checks the order (the buyer's, known, open, the same amount),
    /// the buyer's key, and the order's payment so far; then calls the PG's confirm under the
    /// order's own idempotency key and records what it said. A retry gets the payment as it is.
    pub async fn confirm(&self, req: &ConfirmRequest) -> Result<Payment, ConfirmError> {
        let Some(wakeups) = &self.wakeups else {
            return self.confirm_once(req).await;
        };
        // Subscribed before the first look: an arrival between the look and the wait is not
        // missed. (A buyer's confirm usually comes before its `order.created` has crossed the
        // bus; looking once more after subscribing cost a query for each of those.)
        let mut arrival = wakeups.subscribe(&arrival_key(req.order_id));
        let first = self.confirm_once(req).await;
        let Err(ConfirmError::OrderNotReady) = &first else {
            return first;
        };
        let Some(_slot) = self.waiting.take(req.buyer_id) else {
            metrics::counter!("boxoffice_payment_confirm_wait_refused_total").increment(1);
            return first;
        };
        arrival.wait(ORDER_WAIT).await;
        self.confirm_once(req).await
    }

    async fn confirm_once(&self, req: &ConfirmRequest) -> Result<Payment, ConfirmError> {
        let order = store::order(&self.pool, req.order_id)
            .await?
            .ok_or(ConfirmError::OrderNotReady)?;
        if order.buyer_id != req.buyer_id {
            return Err(ConfirmError::NotFound);
        }
        if order.amount_krw != req.amount_krw {
            metrics::counter!("boxoffice_payment_amount_mismatch_total").increment(1);
            tracing::warn!(order_id = %req.order_id, "confirm with another amount than the order's");
            return Err(ConfirmError::AmountMismatch);
        }
        let fingerprint = req.fingerprint();
        if store::use_key(
            &self.pool,
            req.buyer_id,
            &req.idempotency_key,
            req.order_id,
            &fingerprint,
        )
        .await?
            == KeyUse::Other
        {
            return Err(ConfirmError::KeyReused);
        }
        if let Some(existing) = self.existing(req).await? {
            return Ok(existing);
        }
        if order.cancelled_at.is_some() {
            return Err(ConfirmError::OrderCancelled);
        }
        if order.expires_at <= Utc::now() {
            return Err(ConfirmError::OrderExpired);
        }
        let pg = self.pg.clone().ok_or(ConfirmError::PgOff)?;
        let permit = self.guard.admit().map_err(|e| match e {
            PgError::NotCalled(why) => ConfirmError::PgUnavailable(why),
            PgError::Misconfigured(_) => ConfirmError::PgMisconfigured,
            _ => ConfirmError::PgUnavailable("the PG cannot be called"),
        })?;
        let start = Entry::ConfirmStarted {
            buyer_id: req.buyer_id,
            payment_key: req.payment_key.clone(),
            amount_krw: order.amount_krw,
        };
        // Should this confirm never record its outcome (a crash), the reconciler finds it.
        let check_at = after(self.pg_timeout + self.backoff(1));
        let mut tx = self.pool.begin().await?;
        let started = match store::start(&mut tx, req.order_id, &start, check_at).await {
            Ok(Some(p)) => Some(p),
            // The order has a payment: a new attempt after a definite failure, if it still is one.
            Ok(None) => match transition(&mut tx, req.order_id, &start, Some(check_at)).await {
                Ok(p) => Some(p),
                Err(StoreError::Db(e)) => return Err(e.into()),
                Err(StoreError::Refused(_) | StoreError::Missing) => None,
            },
            Err(StoreError::Db(e)) => return Err(e.into()),
            Err(e) => return Err(ConfirmError::Db(sqlx::Error::Protocol(e.to_string()))),
        };
        tx.commit().await?;
        let Some(payment) = started else {
            // Another confirm of this order got there first.
            drop(permit);
            return self.existing(req).await?.ok_or(ConfirmError::InProgress);
        };
        Ok(self.attempt(pg.as_ref(), permit, &payment, true).await?)
    }

    /// Calls the PG's confirm for `payment` (open) under the order's idempotency key and records
    /// what it said. An outcome still unknown is recorded only the first time (`confirming` →
    /// `unknown`); the reconciler looks again later.
    /// `first`: this is the attempt's first call (just started by this confirm), so no earlier
    /// call of it can have reached the PG.
    async fn attempt(
        &self,
        pg: &dyn PaymentGateway,
        permit: Permit,
        payment: &Payment,
        first: bool,
    ) -> Result<Payment, sqlx::Error> {
        let order_id = payment.order_id;
        let call = Confirm {
            payment_key: payment.payment_key.clone(),
            order_id,
            amount_krw: payment.amount_krw,
        };
        let started_at = std::time::Instant::now();
        let outcome = pg
            .confirm(&call, &gateway::confirm_key(order_id, payment.attempt))
            .await;
        permit.record(&outcome);
        metrics::histogram!("boxoffice_payment_pg_seconds", "call" => "confirm")
            .record(started_at.elapsed().as_secs_f64());
        let entry = match &outcome {
            // An answer about another order, payment or amount is never an approval.
            Ok(p) => match p.mismatch(order_id, &payment.payment_key, payment.amount_krw) {
                Some((code, reason)) => Entry::Flagged {
                    code: code.to_owned(),
                    reason: format!("confirm: {reason}"),
                },
                None => match p.status.verdict() {
                    Verdict::Approved => Entry::Approved {
                        approved_at: p.approved_at.unwrap_or_else(Utc::now),
                    },
                    Verdict::Failed => Entry::Failed {
                        code: format!("PG_{}", status_name(p)),
                        message: "the PG did not complete the payment".to_owned(),
                    },
                    Verdict::CancelledUnapproved => Entry::Flagged {
                        code: PG_CANCELED_UNAPPROVED.to_owned(),
                        reason: format!(
                            "confirm: the PG answered {} (balance {} KRW)",
                            status_name(p),
                            p.balance_amount
                        ),
                    },
                    Verdict::Undecided => Entry::OutcomeUnknown {
                        reason: format!("the PG answered {}", status_name(p)),
                    },
                },
            },
            // Confirmed before, by a call whose answer was lost: the PG knows how it ended.
            Err(PgError::Refused { code, .. }) if code == "ALREADY_PROCESSED_PAYMENT" => {
                Entry::OutcomeUnknown {
                    reason: "the PG says the payment was processed already".to_owned(),
                }
            }
            Err(PgError::Refused { code, message, .. }) => Entry::Failed {
                code: code.clone(),
                message: message.clone(),
            },
            // The PG did not authenticate the call: nothing happened there. When no earlier call
            // of this attempt can have reached it, no money moved: failed, and the same payment
            // key may be confirmed again once the key is fixed. (A confirm sent again for an
            // unknown outcome stays unknown: the first call may have charged.)
            Err(PgError::Misconfigured(why)) if first => Entry::Failed {
                code: crate::domain::MISCONFIGURED.to_owned(),
                message: format!("the PG refused our secret key ({why}); nothing was charged"),
            },
            Err(e) => Entry::OutcomeUnknown {
                reason: e.to_string(),
            },
        };
        let unknown = matches!(entry, Entry::OutcomeUnknown { .. });
        let result = if unknown && payment.status == PaymentStatus::Unknown {
            tracing::info!(%order_id, ?outcome, "confirm retried; outcome still unknown");
            payment.clone()
        } else {
            self.record(order_id, &entry, Some(after(self.backoff(1))))
                .await?
        };
        metrics::counter!("boxoffice_payment_confirms_total", "result" => result.status.as_str())
            .increment(1);
        if unknown && matches!(&outcome, Err(PgError::Refused { .. })) {
            // The PG has an answer for it: ask now rather than later.
            if let Ok(Settled::Payment(p)) = self.look(order_id, Lookup::ByOrder).await {
                return Ok(p);
            }
        }
        Ok(result)
    }

    /// The order's payment for a repeated confirm: as it is, after one look at the PG when its
    /// outcome is unknown. Errors when the order is paid with another key or still confirming.
    async fn existing(&self, req: &ConfirmRequest) -> Result<Option<Payment>, ConfirmError> {
        let mut conn = self.pool.acquire().await?;
        let Some(p) = store::payment(&mut conn, req.order_id).await? else {
            return Ok(None);
        };
        drop(conn);
        if p.payment_key != req.payment_key {
            // A declined attempt may be followed by another, with the new checkout's key.
            return if p.can_retry() {
                Ok(None)
            } else {
                Err(ConfirmError::OtherPayment)
            };
        }
        match p.status {
            PaymentStatus::Confirming => Err(ConfirmError::InProgress),
            // The PG never saw it (our key was refused): confirm it again.
            PaymentStatus::Failed if p.misconfigured_failure() => Ok(None),
            PaymentStatus::Unknown => match self.settle(req.order_id, Lookup::ByOrder).await {
                Ok(Settled::Payment(now)) => Ok(Some(now)),
                _ => Ok(Some(p)),
            },
            _ => Ok(Some(p)),
        }
    }

    /// Applies `entry` with its event, in one transaction. A refused transition (the payment is
    /// past it already: a duplicate, a late answer) leaves the payment as it is and says so.
    pub async fn record(
        &self,
        order_id: Uuid,
        entry: &Entry,
        check_at: Option<DateTime<Utc>>,
    ) -> Result<Payment, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The outcome of an open payment is the PG's to tell again: should a crash lose this
        // commit, the payment is open as before (durably, with its next check due) and the
        // reconciler asks the PG and records it anew, event included. So it need not wait for its
        // WAL flush — which matters because its outbox NOTIFY serializes every notifying commit,
        // flush included, database-wide. A late charge (its refund) and refunds stay durable.
        if matches!(
            entry,
            Entry::Approved { .. } | Entry::Failed { .. } | Entry::OutcomeUnknown { .. }
        ) {
            sqlx::query("SET LOCAL synchronous_commit TO OFF")
                .execute(&mut *tx)
                .await?;
        }
        match transition(&mut tx, order_id, entry, check_at).await {
            Ok(after) => {
                tx.commit().await?;
                tracing::info!(%order_id, entry = entry.kind(), status = after.status.as_str(), "payment changed");
                if let Entry::Flagged { code, reason } = entry {
                    metrics::counter!("boxoffice_payment_flagged_total", "code" => code.clone())
                        .increment(1);
                    tracing::error!(%order_id, code, reason, payment_key = %after.payment_key, amount_krw = after.amount_krw, "the PG's answer does not match the payment: flagged for an operator, nothing approved");
                }
                Ok(after)
            }
            Err(StoreError::Refused(refused)) => {
                tx.rollback().await?;
                tracing::info!(%order_id, %refused, "payment change not applied");
                let mut conn = self.pool.acquire().await?;
                store::payment(&mut conn, order_id)
                    .await?
                    .ok_or(sqlx::Error::RowNotFound)
            }
            Err(StoreError::Missing) => Err(sqlx::Error::RowNotFound),
            Err(StoreError::Db(e)) => Err(e),
        }
    }

    /// Settles the payment of `order_id` from what the PG says: the one way an unknown outcome
    /// is settled (reconciler, webhook, a buyer's retry). When the PG still waits for our confirm
    /// (the first call never reached it, or failed there without a verdict) the confirm is sent
    /// again under the same idempotency key while the order is open; once the order is closed
    /// the payment fails (no money moved, and none will). Idempotent: the same answer twice, or
    /// an older one, changes nothing.
    pub async fn settle(&self, order_id: Uuid, lookup: Lookup) -> Result<Settled, sqlx::Error> {
        let why = match self.look(order_id, lookup).await? {
            Settled::Undecided(why) => why,
            other => return Ok(other),
        };
        let mut conn = self.pool.acquire().await?;
        let payment = store::payment(&mut conn, order_id).await?;
        drop(conn);
        let Some(payment) = payment.filter(|p| p.status.is_open()) else {
            return Ok(Settled::Undecided(why));
        };
        let order = store::order(&self.pool, order_id).await?;
        let open = order.is_some_and(|o| o.cancelled_at.is_none() && o.expires_at > Utc::now());
        if !open {
            let p = self
                .give_up(
                    order_id,
                    "the order closed before its payment was confirmed",
                )
                .await?;
            return Ok(Settled::Payment(p));
        }
        let Some(pg) = self.pg.clone() else {
            return Ok(Settled::Unreachable("no PG is configured".to_owned()));
        };
        let permit = match self.guard.admit() {
            Ok(permit) => permit,
            Err(e) => return Ok(Settled::Unreachable(e.to_string())),
        };
        let p = self.attempt(pg.as_ref(), permit, &payment, false).await?;
        // No answer to the confirm sent again (the first may still be running at the PG): the
        // PG could not tell, which is never taken for a "no".
        Ok(if p.status.is_open() {
            Settled::Unreachable(format!("{why}; the confirm sent again has no answer yet"))
        } else {
            Settled::Payment(p)
        })
    }

    /// Asks the PG how the payment of `order_id` stands and records a verdict it gives.
    async fn look(&self, order_id: Uuid, lookup: Lookup) -> Result<Settled, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let Some(ours) = store::payment(&mut conn, order_id).await? else {
            return Ok(Settled::NoPayment);
        };
        drop(conn);
        // Only an open payment, or a failed one (a charge may come after all), has anything to
        // learn from the PG.
        if !ours.status.is_open() && ours.status != PaymentStatus::Failed {
            return Ok(Settled::Payment(ours));
        }
        let Some(pg) = self.pg.clone() else {
            return Ok(Settled::Unreachable("no PG is configured".to_owned()));
        };
        let answer = match self.guard.admit() {
            Ok(permit) => {
                let answer = match lookup {
                    Lookup::ByOrder => match pg.payment_by_order(order_id).await {
                        // The order's latest payment at the PG is not ours: ask for ours.
                        Ok(Some(p)) if p.payment_key != ours.payment_key => {
                            pg.payment(&ours.payment_key).await
                        }
                        other => other,
                    },
                    Lookup::ByKey => pg.payment(&ours.payment_key).await,
                };
                permit.record(&answer);
                answer
            }
            Err(e) => Err(e),
        };
        let found = match answer {
            Ok(found) => found,
            Err(e) => return Ok(Settled::Unreachable(e.to_string())),
        };
        let entry = match (&found, ours.status) {
            (Some(p), _) => match p.mismatch(order_id, &ours.payment_key, ours.amount_krw) {
                // An answer about another order, payment or amount is never applied.
                Some((code, reason)) => Entry::Flagged {
                    code: code.to_owned(),
                    reason: format!("lookup: {reason}"),
                },
                None => match (p.status.verdict(), ours.status) {
                    (Verdict::Approved, PaymentStatus::Failed) => Entry::LateApproval {
                        approved_at: p.approved_at.unwrap_or_else(Utc::now),
                    },
                    (Verdict::Approved, _) => Entry::Approved {
                        approved_at: p.approved_at.unwrap_or_else(Utc::now),
                    },
                    // Cancelled at the PG though we never approved it: not an approval, and not
                    // ours to settle automatically.
                    (Verdict::CancelledUnapproved, _) => Entry::Flagged {
                        code: PG_CANCELED_UNAPPROVED.to_owned(),
                        reason: format!(
                            "lookup: the PG says {} (balance {} of {} KRW) for a payment we never approved",
                            status_name(p),
                            p.balance_amount,
                            p.total_amount
                        ),
                    },
                    (Verdict::Failed | Verdict::Undecided, PaymentStatus::Failed) => {
                        return Ok(Settled::Payment(ours));
                    }
                    (Verdict::Failed, _) => Entry::Failed {
                        code: format!("PG_{}", status_name(p)),
                        message: "the PG did not complete the payment".to_owned(),
                    },
                    (Verdict::Undecided, _) => {
                        return Ok(Settled::Undecided(format!(
                            "the PG says {}",
                            status_name(p)
                        )));
                    }
                },
            },
            (None, PaymentStatus::Failed) => return Ok(Settled::Payment(ours)),
            (None, _) => Entry::Failed {
                code: "NOT_FOUND_PAYMENT".to_owned(),
                message: "the PG has no such payment".to_owned(),
            },
        };
        Ok(Settled::Payment(self.record(order_id, &entry, None).await?))
    }

    /// Gives up on an outcome the PG still leaves undecided after every attempt: no money moved
    /// (a charge that shows up later is refunded, see [`Entry::LateApproval`]).
    pub async fn give_up(&self, order_id: Uuid, why: &str) -> Result<Payment, sqlx::Error> {
        let entry = Entry::Failed {
            code: crate::domain::UNDECIDED.to_owned(),
            message: format!("the PG did not settle the payment in time: {why}"),
        };
        // Looked at again on a sparse schedule: should the PG complete it after all (and no
        // webhook come), the late charge is found and refunded.
        let check_at = after(self.recheck_backoff(1));
        self.record(order_id, &entry, Some(check_at)).await
    }

    /// Makes one refund at the PG. `Ok(false)`: it must be tried again later (already
    /// rescheduled). A refund the PG refuses for good (a 4xx that is not "try again"), one over
    /// what is left, or one still failing after `settle.refund_max_attempts` ends `rejected` or
    /// `failed` with `payment.refund_failed` (an operator must act); `ALREADY_CANCELED_PAYMENT`,
    /// or a PG whose record shows the money back when we give up, ends it `done` instead.
    pub async fn refund(&self, refund: &Refund) -> Result<bool, sqlx::Error> {
        let key = refund.refund_key.as_str();
        let mut conn = self.pool.acquire().await?;
        let payment = store::payment(&mut conn, refund.order_id).await?;
        drop(conn);
        let retry_at = after(self.backoff(refund.attempts));
        let end = |status: &'static str, error: Option<String>| async move {
            let mut tx = self.pool.begin().await?;
            store::end_refund(&mut tx, key, status, error.as_deref()).await?;
            tx.commit().await?;
            tracing::info!(refund_key = key, status, ?error, "refund ended");
            Ok::<bool, sqlx::Error>(true)
        };
        let Some(payment) = payment else {
            return end("nothing_to_refund", Some("the order has no payment".into())).await;
        };
        if payment.status.is_open() {
            // Not settled yet: the refund waits for it.
            store::retry_refund(&self.pool, key, retry_at, "the payment is not settled yet")
                .await?;
            return Ok(false);
        }
        let amount = match refund.cancel_krw {
            Some(fixed) => fixed,
            None => {
                let balance = payment.refundable_krw();
                let amount = refund.amount_krw.unwrap_or(balance);
                if balance == 0 {
                    return end("nothing_to_refund", None).await;
                }
                if amount > balance {
                    return self
                        .refund_failed(
                            refund,
                            None,
                            "rejected",
                            "OVER_BALANCE",
                            &format!("asked {amount} KRW, {balance} KRW left to refund"),
                        )
                        .await;
                }
                store::fix_refund_amount(&self.pool, key, amount).await?;
                amount
            }
        };
        let Some(pg) = self.pg.clone() else {
            store::retry_refund(&self.pool, key, retry_at, "no PG is configured").await?;
            return Ok(false);
        };
        let outcome = match self.guard.admit() {
            Ok(permit) => {
                let cancel = Cancel {
                    reason: refund.reason.clone(),
                    amount_krw: amount,
                };
                let outcome = pg
                    .cancel(&payment.payment_key, &cancel, &gateway::refund_key(key))
                    .await;
                permit.record(&outcome);
                outcome
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => self.refund_done(refund, amount).await,
            // The money is back already (another refund, or someone at the PG's console): the
            // PG's record decides whether this refund's worth is back.
            Err(PgError::Refused { code, message, .. }) if code == "ALREADY_CANCELED_PAYMENT" => {
                match self.money_back(pg.as_ref(), &payment, amount).await {
                    Ok(true) => {
                        tracing::warn!(
                            refund_key = key,
                            amount,
                            "the PG says the payment was cancelled already; refund recorded as done"
                        );
                        self.refund_done(refund, amount).await
                    }
                    Ok(false) => {
                        self.refund_failed(refund, Some(amount), "rejected", &code, &message)
                            .await
                    }
                    Err(e) => {
                        store::retry_refund(&self.pool, key, retry_at, &e.to_string()).await?;
                        Ok(false)
                    }
                }
            }
            Err(PgError::Refused { code, message, .. }) => {
                self.refund_failed(refund, Some(amount), "rejected", &code, &message)
                    .await
            }
            Err(e) if refund.attempts >= self.settle.refund_max_attempts.max(1) => {
                // Given up: unless the PG's record shows the money back (a lost reply), an
                // operator takes over.
                match self.money_back(pg.as_ref(), &payment, amount).await {
                    Ok(true) => self.refund_done(refund, amount).await,
                    Ok(false) | Err(_) => {
                        self.refund_failed(
                            refund,
                            Some(amount),
                            "failed",
                            "REFUND_GAVE_UP",
                            &format!("still failing after {} attempts: {e}", refund.attempts),
                        )
                        .await
                    }
                }
            }
            Err(e) => {
                if refund.attempts >= self.settle.max_attempts {
                    tracing::error!(refund_key = key, attempts = refund.attempts, error = %e, "refund still failing; retrying");
                }
                store::retry_refund(&self.pool, key, retry_at, &e.to_string()).await?;
                Ok(false)
            }
        }
    }

    /// Whether the PG's record of `payment` shows `amount` more given back than our ledger has
    /// (its balance at most what ours will be after this refund).
    async fn money_back(
        &self,
        pg: &dyn PaymentGateway,
        payment: &Payment,
        amount: i64,
    ) -> Result<bool, PgError> {
        let permit = self.guard.admit()?;
        let found = pg.payment(&payment.payment_key).await;
        permit.record(&found);
        let Some(at_pg) = found? else {
            return Ok(false);
        };
        if at_pg
            .mismatch(payment.order_id, &payment.payment_key, payment.amount_krw)
            .is_some()
        {
            return Ok(false);
        }
        let ours_after = payment.amount_krw - payment.refunded_krw - amount;
        if at_pg.balance_amount < ours_after {
            tracing::error!(order_id = %payment.order_id, pg_balance = at_pg.balance_amount, ours_after, "the PG gave back more than our ledger records");
        }
        Ok(at_pg.balance_amount <= ours_after)
    }

    /// Records a refund the PG made: the ledger entry, `payment.refunded`, the refund `done`.
    async fn refund_done(&self, refund: &Refund, amount: i64) -> Result<bool, sqlx::Error> {
        let key = refund.refund_key.as_str();
        let entry = Entry::Refunded {
            refund_key: key.to_owned(),
            amount_krw: amount,
            reason: refund.reason.clone(),
        };
        let mut tx = self.pool.begin().await?;
        // A replica whose lease on this refund ran out while its PG call was running may have
        // recorded it already (the PG replays the same idempotency key): the ledger entry and
        // the event are written once.
        if !store::lock_pending_refund(&mut tx, key).await? {
            tx.rollback().await?;
            tracing::info!(refund_key = key, "refund already recorded");
            return Ok(true);
        }
        let error = match transition(&mut tx, refund.order_id, &entry, None).await {
            Ok(_) => None,
            Err(StoreError::Db(e)) => return Err(e),
            // The PG refunded what our books cannot take: keep the PG's word on record.
            Err(e) => {
                tracing::error!(refund_key = key, error = %e, "the PG refunded more than the ledger allows");
                Some(e.to_string())
            }
        };
        store::end_refund(&mut tx, key, "done", error.as_deref()).await?;
        tx.commit().await?;
        metrics::counter!("boxoffice_payment_refunds_total", "result" => "done").increment(1);
        tracing::info!(refund_key = key, amount, "refunded");
        Ok(true)
    }

    /// Ends a refund that will not be made (`status`: `rejected` or `failed`) with
    /// `payment.refund_failed`, in one transaction, once.
    async fn refund_failed(
        &self,
        refund: &Refund,
        amount: Option<i64>,
        status: &'static str,
        code: &str,
        message: &str,
    ) -> Result<bool, sqlx::Error> {
        let key = refund.refund_key.as_str();
        let mut tx = self.pool.begin().await?;
        if !store::lock_pending_refund(&mut tx, key).await? {
            tx.rollback().await?;
            tracing::info!(refund_key = key, "refund already ended");
            return Ok(true);
        }
        let error = format!("{code}: {message}");
        store::end_refund(&mut tx, key, status, Some(&error)).await?;
        outbox::enqueue(
            &mut tx,
            &PaymentRefundFailed {
                order_id: refund.order_id,
                refund_key: key.to_owned(),
                amount_krw: amount.or(refund.amount_krw),
                code: code.to_owned(),
                message: message.to_owned(),
            },
        )
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        tx.commit().await?;
        metrics::counter!("boxoffice_payment_refunds_total", "result" => status).increment(1);
        tracing::error!(refund_key = key, order_id = %refund.order_id, status, code, message, "refund not made: an operator must act");
        Ok(true)
    }
}

fn status_name(p: &PgPayment) -> String {
    p.status.name().to_owned()
}

/// [`store::transition`] and the event it owes: `payment.approved`, `payment.failed` (also for
/// a flagged payment), `payment.refunded`; a late charge queues its refund instead (the buyer heard "failed").
async fn transition(
    conn: &mut PgConnection,
    order_id: Uuid,
    entry: &Entry,
    check_at: Option<DateTime<Utc>>,
) -> Result<Payment, StoreError> {
    let (_, after) = store::transition(conn, order_id, entry, check_at).await?;
    let bus = |e: platform::bus::BusError| StoreError::Db(sqlx::Error::Protocol(e.to_string()));
    match entry {
        Entry::Approved { approved_at } => {
            outbox::enqueue(
                conn,
                &PaymentApproved {
                    order_id,
                    payment_key: after.payment_key.clone(),
                    amount_krw: after.amount_krw,
                    approved_at: *approved_at,
                },
            )
            .await
            .map_err(bus)?;
        }
        Entry::Failed { code, message } => {
            outbox::enqueue(
                conn,
                &PaymentFailed {
                    order_id,
                    code: code.clone(),
                    message: message.clone(),
                },
            )
            .await
            .map_err(bus)?;
        }
        Entry::Refunded {
            amount_krw, reason, ..
        } => {
            outbox::enqueue(
                conn,
                &PaymentRefunded {
                    order_id,
                    payment_key: after.payment_key.clone(),
                    amount_krw: *amount_krw,
                    reason: reason.clone(),
                },
            )
            .await
            .map_err(bus)?;
        }
        Entry::LateApproval { .. } => {
            tracing::warn!(%order_id, "the PG took money for a payment reported failed; refunding it");
            store::request_refund(
                conn,
                &format!("late-{order_id}"),
                order_id,
                None,
                "charged after the payment was reported failed",
            )
            .await?;
        }
        // Not approved here: the order hears that this payment did not complete (it stays
        // payable until its window ends; this payment cannot be attempted again).
        Entry::Flagged { code, .. } => {
            outbox::enqueue(
                conn,
                &PaymentFailed {
                    order_id,
                    code: code.clone(),
                    message: "the payment gateway's answer did not match the order; under review"
                        .to_owned(),
                },
            )
            .await
            .map_err(bus)?;
        }
        Entry::ConfirmStarted { .. } | Entry::OutcomeUnknown { .. } => {}
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buyer_waits_for_at_most_a_few_orders_at_once() {
        let slots = WaitSlots::default();
        let (buyer, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut held: Vec<WaitSlot> = (0..MAX_ORDER_WAITS)
            .map(|_| slots.take(buyer).expect("a slot"))
            .collect();
        assert!(slots.take(buyer).is_none(), "one more than the cap");
        assert_eq!(slots.waiting(buyer), MAX_ORDER_WAITS);
        assert!(
            slots.take(other).is_some(),
            "another buyer is not held back"
        );
        held.pop();
        let again = slots.take(buyer);
        assert!(again.is_some(), "a slot given back is free again");
        drop(again);
        drop(held);
        assert_eq!(slots.waiting(buyer), 0, "every slot given back");
    }
}
