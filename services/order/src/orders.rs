//! [`Orders`]: the one owner of every order write — the API's create and cancel, the saga's
//! consumer and the sweepers all go through it, so a status change, its record, its tickets and
//! its events (through the outbox, in the same transaction) always go together. Every method
//! locks the order row first and acts on the status it finds, so a republished event (a new
//! envelope id the inbox cannot recognise) changes nothing twice.

use chrono::{DateTime, Utc};
use contracts::events::{OrderCancelled, OrderConfirmed, OrderCreated, RefundRequested};
use platform::bus::{BusError, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        policy::Quote,
        status::{CancelCause, RefundCause, State, Transition},
    },
    store::{self, Order, RecordError},
};

/// Why an order write did not happen (all worth retrying but [`SagaError::Unknown`]).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// OrderDB failed.
    #[error("order database: {0}")]
    Db(#[from] sqlx::Error),
    /// The outbox refused the event.
    #[error("outbox: {0}")]
    Outbox(#[from] BusError),
    /// The order moved under us (cannot happen under its row lock; retried if it does).
    #[error("the order moved on")]
    Moved,
    /// No such order.
    #[error("no such order")]
    Unknown,
}

impl From<RecordError> for SagaError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Moved => Self::Moved,
            RecordError::Db(e) => Self::Db(e),
        }
    }
}

/// Why a buyer's cancellation is refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// Not the buyer's order (or none).
    #[error("no such order")]
    NotFound,
    /// Past the cut-off.
    #[error("cancelling closed at {0}")]
    Closed(DateTime<Utc>),
    /// Its status allows no cancelling (expired, or ended otherwise).
    #[error("an order that is {0} cannot be cancelled")]
    NotCancellable(&'static str),
    /// The write failed.
    #[error(transparent)]
    Saga(#[from] SagaError),
}

/// What a payment did to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    /// Confirmed now, tickets issued, `order.confirmed` sent.
    Confirmed,
    /// It came too late: `refund.requested` sent.
    Refunding,
    /// Seen before.
    Already,
}

/// Every order write.
#[derive(Clone, Default)]
pub struct Orders;

fn cancelled_event(o: &Order, refund_krw: i64, reason: &str) -> OrderCancelled {
    OrderCancelled {
        order_id: o.order_id,
        buyer_id: o.buyer_id,
        performance_id: o.performance_id,
        seat_ids: o.seat_ids.clone(),
        areas: o.areas.clone(),
        refund_krw,
        reason: reason.to_owned(),
        hold_id: Some(o.hold_id),
    }
}

impl Orders {
    async fn record(
        &self,
        tx: &mut PgConnection,
        o: &Order,
        t: Transition,
    ) -> Result<(), SagaError> {
        store::record(tx, o.order_id, &t).await?;
        metrics::counter!("boxoffice_order_transitions_total",
            "to" => t.to().as_str(), "reason" => t.reason().as_str())
        .increment(1);
        Ok(())
    }

    /// Stores a new order and its `order.created`, on `tx`.
    pub async fn create(&self, tx: &mut PgConnection, o: &Order) -> Result<(), SagaError> {
        store::insert(tx, o).await?;
        outbox::enqueue(
            tx,
            &OrderCreated {
                order_id: o.order_id,
                buyer_id: o.buyer_id,
                hold_id: o.hold_id,
                performance_id: o.performance_id,
                amount_krw: o.amount_krw,
                expires_at: o.expires_at,
            },
        )
        .await?;
        metrics::counter!("boxoffice_orders_created_total").increment(1);
        Ok(())
    }

    async fn locked(&self, tx: &mut PgConnection, order_id: Uuid) -> Result<Order, SagaError> {
        store::lock(tx, order_id).await?.ok_or(SagaError::Unknown)
    }

    /// Issues the tickets of a paid order, confirms it and sends `order.confirmed`.
    async fn ticket(
        &self,
        tx: &mut PgConnection,
        o: &Order,
        paid: crate::domain::status::Paid,
    ) -> Result<(), SagaError> {
        let tickets = store::issue_tickets(tx, o).await?;
        let (_, t) = paid.confirm();
        self.record(tx, o, t).await?;
        outbox::enqueue(
            tx,
            &OrderConfirmed {
                order_id: o.order_id,
                buyer_id: o.buyer_id,
                hold_id: o.hold_id,
                performance_id: o.performance_id,
                seat_ids: o.seat_ids.clone(),
                areas: o.areas.clone(),
                amount_krw: o.amount_krw,
                ticket_ids: tickets.iter().map(|t| t.ticket_id).collect(),
            },
        )
        .await?;
        Ok(())
    }

    /// Asks for the order's one refund (same id every time it is asked).
    async fn ask_refund(
        &self,
        tx: &mut PgConnection,
        o: &Order,
        amount: Option<i64>,
        reason: &str,
    ) -> Result<(), SagaError> {
        let refund_id = o.refund_id.unwrap_or_else(Uuid::now_v7);
        store::set_refund(tx, o.order_id, refund_id, amount, reason).await?;
        store::void_tickets(tx, o.order_id).await?;
        outbox::enqueue(
            tx,
            &RefundRequested {
                refund_id,
                order_id: o.order_id,
                amount_krw: amount,
                reason: reason.to_owned(),
            },
        )
        .await?;
        Ok(())
    }

    /// `payment.approved`: confirm and ticket a pending order; refund a payment that came after
    /// the order expired or was cancelled.
    pub async fn paid(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        payment_key: &str,
        amount: i64,
        approved_at: DateTime<Utc>,
    ) -> Result<Paid, SagaError> {
        let o = self.locked(tx, order_id).await?;

        match State::of(o.status) {
            State::Pending(p) if approved_at <= o.expires_at => {
                if amount != o.amount_krw {
                    tracing::error!(%order_id, amount, due = o.amount_krw, "payment of another amount");
                }
                store::set_payment(tx, order_id, payment_key, amount, approved_at).await?;
                let (paid, t) = p.pay();
                self.record(tx, &o, t).await?;
                self.ticket(tx, &o, paid).await?;
                Ok(Paid::Confirmed)
            }
            State::Pending(p) => {
                // Approved after the window the sweeper has not closed yet: close it, refund.
                store::set_payment(tx, order_id, payment_key, amount, approved_at).await?;
                let (expired, t) = p.expire();
                self.record(tx, &o, t).await?;
                outbox::enqueue(tx, &cancelled_event(&o, 0, "expired")).await?;
                let (_, t) = expired.refund_late_payment();
                self.record(tx, &o, t).await?;
                self.ask_refund(tx, &o, None, "paid_after_expiry").await?;
                Ok(Paid::Refunding)
            }
            State::Paid(paid) => {
                self.ticket(tx, &o, paid).await?;
                Ok(Paid::Confirmed)
            }
            State::Expired(e) => {
                store::set_payment(tx, order_id, payment_key, amount, approved_at).await?;
                let (_, t) = e.refund_late_payment();
                self.record(tx, &o, t).await?;
                self.ask_refund(tx, &o, None, "paid_after_expiry").await?;
                Ok(Paid::Refunding)
            }
            State::Cancelled(c) if o.payment_key.is_none() => {
                store::set_payment(tx, order_id, payment_key, amount, approved_at).await?;
                let (_, t) = c.refund_late_payment();
                self.record(tx, &o, t).await?;
                self.ask_refund(tx, &o, None, "paid_after_expiry").await?;
                Ok(Paid::Refunding)
            }
            _ => {
                if o.payment_key.as_deref() != Some(payment_key) {
                    tracing::error!(%order_id, "a second payment approved for one order; the payment service refunds it");
                }
                Ok(Paid::Already)
            }
        }
    }

    /// `payment.failed`: the order stays payable until its window ends (the buyer may retry).
    pub async fn payment_failed(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        code: &str,
    ) -> Result<(), SagaError> {
        store::set_payment_error(tx, order_id, code).await?;
        Ok(())
    }

    /// `sale.rejected`: the seats could not be sold; the money goes back — all of it. When the
    /// buyer's cancellation got there first (refunded per the policy, minus its fee: refunding,
    /// refunded or failed), the rest goes back too, as a second refund of "everything left"
    /// (its own id, asked after the first, so the payment service makes it after the first ends
    /// and never gives back more than was charged). Once: the order's refund is then the
    /// sale's, and a republished `sale.rejected` changes nothing.
    pub async fn sale_rejected(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
    ) -> Result<bool, SagaError> {
        let o = self.locked(tx, order_id).await?;
        let (t, refund) = match State::of(o.status) {
            State::Confirmed(c) => (c.refund(RefundCause::SaleRejected).1, o.amount_krw),
            State::Paid(p) => (p.refund(RefundCause::SaleRejected).1, o.amount_krw),
            state => return self.refund_rest(tx, &o, state).await,
        };
        self.record(tx, &o, t).await?;
        self.ask_refund(tx, &o, None, "sale_rejected").await?;
        outbox::enqueue(tx, &cancelled_event(&o, refund, "sale_rejected")).await?;
        Ok(true)
    }

    /// The rest of a buyer's partial refund, the sale having been refused (see
    /// [`Orders::sale_rejected`]); whether anything was asked.
    async fn refund_rest(
        &self,
        tx: &mut PgConnection,
        o: &Order,
        state: State,
    ) -> Result<bool, SagaError> {
        let paid = o.paid_krw.unwrap_or(o.amount_krw);
        let partial = o.refund_reason.as_deref() == Some("buyer_cancelled")
            && o.refund_krw.is_some_and(|r| r < paid);
        if !partial {
            return Ok(false);
        }
        match state {
            State::Refunding(_) => {}
            State::Refunded(r) if o.refunded_krw < paid => {
                let (_, t) = r.refund_rest();
                self.record(tx, o, t).await?;
            }
            State::RefundFailed(f) => {
                let (_, t) = f.refund_rest();
                self.record(tx, o, t).await?;
            }
            _ => return Ok(false),
        }
        let refund_id = Uuid::now_v7();
        sqlx::query(
            "UPDATE orders SET refund_id = $2, refund_krw = NULL, refund_reason = 'sale_rejected', \
             updated_at = now() WHERE order_id = $1",
        )
        .bind(o.order_id)
        .bind(refund_id)
        .execute(&mut *tx)
        .await?;
        outbox::enqueue(
            tx,
            &RefundRequested {
                refund_id,
                order_id: o.order_id,
                amount_krw: None,
                reason: "sale_rejected".to_owned(),
            },
        )
        .await?;
        tracing::warn!(order_id = %o.order_id, first = ?o.refund_id, %refund_id, "sale refused after the buyer's partial refund: the rest goes back too");
        Ok(true)
    }

    /// `payment.refund_failed`: the payment service gave the order's refund up (the PG refused it,
    /// or it kept failing): a `refunding` order ends `refund_failed` for an operator, and the
    /// sweeper no longer asks again. Only the order's own refund counts (a refund the payment
    /// service made on its own, `late-<order>`, is not the order's). Whether it changed.
    pub async fn refund_failed(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        refund_key: &str,
    ) -> Result<bool, SagaError> {
        let o = self.locked(tx, order_id).await?;
        if o.refund_id.map(|id| id.to_string()).as_deref() != Some(refund_key) {
            return Ok(false);
        }
        match State::of(o.status) {
            State::Refunding(r) => {
                let (_, t) = r.refund_failed();
                self.record(tx, &o, t).await?;
                Ok(true)
            }
            // Refunded already (money back wins), or failed before: nothing changes.
            _ => Ok(false),
        }
    }

    /// `payment.refunded`: the order's refund came back. A refund of an earlier reason than the
    /// order's current one (the buyer's partial refund, its rest asked since) only records what
    /// came back; the current one ends the order `refunded` (also from `refund_failed`: money
    /// back wins). Amounts are set, not added, so a republication is harmless: a refund of
    /// "everything left" means all that was paid is back.
    pub async fn refunded(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        amount: i64,
        reason: &str,
    ) -> Result<(), SagaError> {
        let o = self.locked(tx, order_id).await?;
        let current = o.refund_reason.as_deref().is_none_or(|r| r == reason);
        let back = match (current, o.refund_krw) {
            (false, _) => o.refunded_krw.max(amount),
            (true, Some(_)) => amount,
            (true, None) => o.paid_krw.unwrap_or(o.amount_krw).max(amount),
        };
        sqlx::query("UPDATE orders SET refunded_krw = $2 WHERE order_id = $1")
            .bind(order_id)
            .bind(back)
            .execute(&mut *tx)
            .await?;
        if !current {
            return Ok(());
        }
        match State::of(o.status) {
            State::Refunding(r) => self.record(tx, &o, r.refunded()).await?,
            // Given up before, yet the money came back (an operator's retry, a late record).
            State::RefundFailed(f) => self.record(tx, &o, f.refunded()).await?,
            _ => {}
        }
        Ok(())
    }

    /// The sweeper: a pending order whose window ended expires and its seats go back.
    pub async fn expire(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, SagaError> {
        let o = self.locked(tx, order_id).await?;
        match State::of(o.status) {
            State::Pending(p) if o.expires_at < now => {
                let (_, t) = p.expire();
                self.record(tx, &o, t).await?;
                outbox::enqueue(tx, &cancelled_event(&o, 0, "expired")).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The stuck sweeper: a `paid` order is ticketed, a `refunding` one asks again (same id).
    pub async fn nudge(&self, tx: &mut PgConnection, order_id: Uuid) -> Result<(), SagaError> {
        let o = self.locked(tx, order_id).await?;
        match State::of(o.status) {
            State::Paid(paid) => self.ticket(tx, &o, paid).await?,
            State::Refunding(_) => {
                let reason = o
                    .refund_reason
                    .clone()
                    .unwrap_or_else(|| "refund".to_owned());
                self.ask_refund(tx, &o, o.refund_krw, &reason).await?;
                store::touch(tx, order_id).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The buyer cancels: an unpaid order ends, a paid one is refunded per its frozen policy.
    pub async fn cancel(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        buyer: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Order, CancelError> {
        let o = match store::lock(tx, order_id).await.map_err(SagaError::from)? {
            Some(o) if o.buyer_id == buyer => o,
            _ => return Err(CancelError::NotFound),
        };
        match State::of(o.status) {
            State::Pending(p) => {
                let (_, t) = p.cancel(CancelCause::Buyer);
                self.record(tx, &o, t).await?;
                outbox::enqueue(tx, &cancelled_event(&o, 0, "buyer_cancelled"))
                    .await
                    .map_err(SagaError::from)?;
            }
            State::Confirmed(c) => match o.policy.quote(&o.booking(), now) {
                Quote::Closed { closed_at } => return Err(CancelError::Closed(closed_at)),
                Quote::Allowed { refund_krw, .. } if refund_krw > 0 => {
                    let (_, t) = c.refund(RefundCause::Buyer);
                    self.record(tx, &o, t).await?;
                    self.ask_refund(tx, &o, Some(refund_krw), "buyer_cancelled")
                        .await?;
                    outbox::enqueue(tx, &cancelled_event(&o, refund_krw, "buyer_cancelled"))
                        .await
                        .map_err(SagaError::from)?;
                }
                Quote::Allowed { .. } => {
                    let (_, t) = c.cancel();
                    self.record(tx, &o, t).await?;
                    store::void_tickets(tx, order_id)
                        .await
                        .map_err(SagaError::from)?;
                    outbox::enqueue(tx, &cancelled_event(&o, 0, "buyer_cancelled"))
                        .await
                        .map_err(SagaError::from)?;
                }
            },
            // Cancelled or refunded already: the same answer again.
            State::Cancelled(_)
            | State::Refunding(_)
            | State::Refunded(_)
            | State::RefundFailed(_) => {}
            State::Paid(_) => return Err(CancelError::NotCancellable("being ticketed")),
            State::Expired(_) => return Err(CancelError::NotCancellable("expired")),
        }
        store::lock(tx, order_id)
            .await
            .map_err(SagaError::from)?
            .ok_or(CancelError::NotFound)
    }

    /// `performance.cancelled`: every order of it ends, paid ones refunded in full.
    pub async fn performance_cancelled(
        &self,
        tx: &mut PgConnection,
        perf: Uuid,
        reason: &str,
    ) -> Result<usize, SagaError> {
        store::cancel_performance(tx, perf, reason).await?;
        let ids = store::of_performance(tx, perf).await?;
        let mut n = 0;
        for id in ids {
            let o = self.locked(tx, id).await?;
            match State::of(o.status) {
                State::Pending(p) => {
                    let (_, t) = p.cancel(CancelCause::PerformanceCancelled);
                    self.record(tx, &o, t).await?;
                    outbox::enqueue(tx, &cancelled_event(&o, 0, "performance_cancelled")).await?;
                }
                State::Paid(p) => {
                    let (_, t) = p.refund(RefundCause::PerformanceCancelled);
                    self.record(tx, &o, t).await?;
                    self.ask_refund(tx, &o, None, "performance_cancelled")
                        .await?;
                    outbox::enqueue(
                        tx,
                        &cancelled_event(&o, o.amount_krw, "performance_cancelled"),
                    )
                    .await?;
                }
                State::Confirmed(c) => {
                    let (_, t) = c.refund(RefundCause::PerformanceCancelled);
                    self.record(tx, &o, t).await?;
                    self.ask_refund(tx, &o, None, "performance_cancelled")
                        .await?;
                    outbox::enqueue(
                        tx,
                        &cancelled_event(&o, o.amount_krw, "performance_cancelled"),
                    )
                    .await?;
                }
                _ => continue,
            }
            n += 1;
        }
        Ok(n)
    }
}
