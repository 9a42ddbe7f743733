//! [`HoldService`]: the one owner of every write that touches the hold store. A store change, this
//! replica's seat map and its metrics go together here, so the API, the sweeper and the consumer
//! cannot update one and forget another. The event of a hold placed or ended is the store's own:
//! it records it in the same atomic step as the change (see [`crate::store::outbox`]); this only
//! nudges the [`crate::store_relay`] to move it to the outbox at once. Sales also own their SeatDB
//! rows: a sale is recorded against SeatDB's guards (in a savepoint of the consumer's
//! transaction), then in the store; a sale either guard refuses emits `sale.rejected` in the same
//! transaction as the consumer's inbox row.

use std::sync::Arc;

pub mod withheld;

use contracts::events::{
    HoldEndReason, OrderCancelled, OrderConfirmed, SaleRejectReason, SaleRejected,
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{
    db::{self, Recorded, Refusal},
    domain::Change,
    map::registry::SeatMaps,
    store::{Confirmed, Hold, HoldStatus, HoldStore, StoreError},
    store_relay::Nudges,
};

/// What became of an `order.confirmed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sale {
    /// Sold now.
    Sold,
    /// Sold before (a redelivery).
    AlreadySold,
    /// Refused now: `sale.rejected` is in the outbox.
    Rejected(SaleRejectReason),
    /// Refused before: nothing to do.
    AlreadyRejected,
}

/// Why a sale could not be decided now (retry it).
#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    /// SeatDB failed.
    #[error("seat database: {0}")]
    Db(#[from] sqlx::Error),
    /// The hold store failed, or lacks the performance SeatDB has.
    #[error(transparent)]
    Store(StoreError),
    /// The outbox write failed.
    #[error("outbox: {0}")]
    Outbox(#[from] platform::bus::BusError),
}

/// Holds, checkouts, expiry and sales of every performance, through one hold store.
#[derive(Clone)]
pub struct HoldService {
    store: Arc<dyn HoldStore>,
    maps: SeatMaps,
    relay: Nudges,
    checkout_ttl_ms: i64,
}

fn count(name: &'static str, label: &'static str, value: &'static str) {
    metrics::counter!(name, label => value).increment(1);
}

impl HoldService {
    /// One service over `store`, this replica's `maps` and its store relay's nudges; holds in
    /// checkout last `checkout_ttl_ms`.
    pub fn new(
        store: Arc<dyn HoldStore>,
        maps: SeatMaps,
        relay: Nudges,
        checkout_ttl_ms: u64,
    ) -> Self {
        Self {
            store,
            maps,
            relay,
            checkout_ttl_ms: i64::try_from(checkout_ttl_ms).unwrap_or(i64::MAX),
        }
    }

    /// This replica's seat maps.
    pub fn maps(&self) -> &SeatMaps {
        &self.maps
    }

    /// A hold by id, in whatever status.
    pub async fn find(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        self.store.find_hold(hold_id).await
    }

    /// Runs `op` against the store; when the store lost the performance (flushed, restarted
    /// empty), recovers it from SeatDB first (see [`SeatMaps::recover`]) and runs `op` again.
    async fn recovering<T, F, Fut>(&self, perf: Uuid, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        match op().await {
            Err(StoreError::UnknownPerformance) => {
                if let Err(e) = self.maps.recover(perf).await {
                    tracing::warn!(performance_id = %perf, error = %e,
                        "the hold store lost the performance and it could not be recovered yet");
                    return Err(StoreError::Transient(format!(
                        "recovering the performance: {e}"
                    )));
                }
                op().await
            }
            other => other,
        }
    }

    /// Places `hold` (all or nothing); the store records its `hold.placed`.
    pub async fn place(&self, hold: &Hold) -> Result<Change, StoreError> {
        let result = self
            .recovering(hold.performance_id, || self.store.hold(hold))
            .await;
        let outcome = match &result {
            Ok(_) => "held",
            Err(StoreError::Unavailable { .. }) => "unavailable",
            Err(StoreError::LimitExceeded { .. }) => "limit",
            Err(StoreError::NotOnSale { .. }) => "not_on_sale",
            Err(_) => "failed",
        };
        count("boxoffice_holds_total", "result", outcome);
        let change = result?;
        self.maps.apply(hold.performance_id, &change);
        if change.version > 0 {
            self.relay.nudge(hold.performance_id);
        }
        Ok(change)
    }

    /// Releases an active hold for its buyer (the store records its `hold.ended`); `None` when
    /// it was over
    /// already; [`StoreError::InCheckout`] for a hold an order is paying for.
    pub async fn release(&self, perf: Uuid, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        let ended = self
            .recovering(perf, || {
                self.store.release(perf, hold_id, HoldStatus::Released)
            })
            .await?;
        Ok(match ended {
            Some((hold, change)) => {
                self.ended(perf, &change, HoldEndReason::Released);
                Some(hold)
            }
            None => None,
        })
    }

    /// Moves an active hold into checkout for `checkout_ttl_ms` (see [`HoldStore::checkout`]).
    pub async fn checkout(&self, perf: Uuid, hold_id: Uuid) -> Result<Hold, StoreError> {
        let result = self
            .recovering(perf, || {
                self.store.checkout(perf, hold_id, self.checkout_ttl_ms)
            })
            .await;
        let outcome = if result.is_ok() {
            "checkout"
        } else {
            "refused"
        };
        count("boxoffice_checkouts_total", "result", outcome);
        result
    }

    fn ended(&self, perf: Uuid, change: &Change, reason: HoldEndReason) {
        self.maps.apply(perf, change);
        let label = match reason {
            HoldEndReason::Released => "released",
            HoldEndReason::Expired => "expired",
        };
        count("boxoffice_holds_ended_total", "reason", label);
        self.relay.nudge(perf);
    }

    /// Ends the live hold `hold_id` of `buyer` whatever its state (see [`HoldStore::abandon`]),
    /// with its `hold.ended`; a hold of another buyer or performance is left alone.
    async fn abandon(&self, perf: Uuid, hold_id: Uuid, buyer: Uuid) -> Result<(), StoreError> {
        let Some(hold) = self.store.find_hold_in(perf, hold_id).await? else {
            return Ok(());
        };
        if hold.buyer_id != buyer || hold.performance_id != perf || !hold.status.is_live() {
            return Ok(());
        }
        if let Some((_, change)) = self.store.abandon(perf, hold_id).await? {
            self.ended(perf, &change, HoldEndReason::Released);
        }
        Ok(())
    }

    /// One sweep of every performance this replica follows (see [`HoldService::sweep`]).
    pub async fn sweep_all(&self) {
        for perf in self.maps.ids() {
            self.sweep(perf).await;
        }
    }

    /// Expires the holds of one performance that lapsed by the store's clock, one per store
    /// call, each with its `hold.ended` (recorded by the store).
    pub async fn sweep(&self, perf: Uuid) {
        loop {
            match self.store.expire_next(perf).await {
                Ok(Some((_, change))) => {
                    self.ended(perf, &change, HoldEndReason::Expired);
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(performance_id = %perf, error = %e, "expiry sweep failed");
                    return;
                }
            }
        }
    }

    /// Sells what `e` bought, exactly its hold's seats and places, once: SeatDB's guards
    /// first (in a savepoint of `tx`), then the store. A sale either refuses is remembered and
    /// answered with `sale.rejected` on `tx`, so the order side refunds.
    pub async fn sell(&self, tx: &mut PgConnection, e: &OrderConfirmed) -> Result<Sale, SaleError> {
        let sale = Hold {
            hold_id: e.hold_id,
            performance_id: e.performance_id,
            buyer_id: e.buyer_id,
            seat_ids: e.seat_ids.clone(),
            areas: e
                .areas
                .iter()
                .map(|(a, q)| (a.clone(), i64::from(*q)))
                .collect(),
            amount_krw: e.amount_krw,
            expires_at_ms: 0,
            status: HoldStatus::Sold,
            presale_limit: None,
        };
        // The hold may be on a performance whose publication is still committing (the store had
        // it first): wait for it, or SeatDB would not know the performance yet.
        db::await_publication(tx, e.performance_id).await?;
        let Some(limit) = db::ticket_limit(tx, e.performance_id).await? else {
            let detail = "no such performance in SeatDB".to_owned();
            return self
                .reject(tx, e, SaleRejectReason::UnknownPerformance, detail)
                .await;
        };
        db::lock_hold(tx, e.hold_id).await?;
        let mut savepoint = tx.begin().await?;
        let recorded = db::record_sale(&mut savepoint, &sale, e.order_id, limit).await?;
        let refusal = match &recorded {
            Recorded::Rejected => {
                savepoint.rollback().await?;
                return Ok(Sale::AlreadyRejected);
            }
            Recorded::Refused(r) => Some(r.clone()),
            Recorded::New | Recorded::Already => None,
        };
        if let Some(refusal) = refusal {
            savepoint.rollback().await?;
            self.undo_store_sale(tx, &sale).await?;
            let (reason, detail) = match refusal {
                Refusal::HoldUsed => (
                    SaleRejectReason::HoldUsed,
                    "the hold was sold to another order".to_owned(),
                ),
                Refusal::SeatsTaken(s) => (
                    SaleRejectReason::SeatsTaken,
                    format!("seats sold to another order: {s:?}"),
                ),
                Refusal::SoldOut(a) => (
                    SaleRejectReason::SoldOut,
                    format!("areas without room: {a:?}"),
                ),
                Refusal::LimitExceeded { limit, current } => (
                    SaleRejectReason::LimitExceeded,
                    format!("at most {limit} tickets per buyer; {current} sold already"),
                ),
            };
            return self.reject(tx, e, reason, detail).await;
        }
        match self
            .recovering(e.performance_id, || self.store.confirm(&sale))
            .await
        {
            Ok(Confirmed::Sold(change)) => {
                savepoint.commit().await?;
                self.maps.apply(e.performance_id, &change);
                count("boxoffice_sales_total", "result", "sold");
                Ok(Sale::Sold)
            }
            Ok(Confirmed::AlreadySold) => {
                savepoint.commit().await?;
                Ok(Sale::AlreadySold)
            }
            Err(err) if err.is_failure() || matches!(err, StoreError::UnknownPerformance) => {
                // SeatDB has the performance, the store lost it: retry, never refund a sale
                // only because the store is behind.
                Err(SaleError::Store(err))
            }
            Err(err) if recorded == Recorded::Already => {
                // SeatDB sold it before: SeatDB is the record of sales.
                tracing::error!(order_id = %e.order_id, error = %err,
                    "the hold store disagrees with a sale SeatDB recorded; keeping the sale");
                savepoint.commit().await?;
                Ok(Sale::AlreadySold)
            }
            Err(err) => {
                savepoint.rollback().await?;
                let reason = match &err {
                    StoreError::Unavailable { seat_ids, .. } if !seat_ids.is_empty() => {
                        SaleRejectReason::SeatsTaken
                    }
                    StoreError::Unavailable { .. } => SaleRejectReason::SoldOut,
                    StoreError::LimitExceeded { .. } => SaleRejectReason::LimitExceeded,
                    StoreError::UnknownHold => SaleRejectReason::UnknownHold,
                    _ => SaleRejectReason::NotTheHold,
                };
                self.reject(tx, e, reason, err.to_string()).await
            }
        }
    }

    /// A store that sold this hold in an attempt whose SeatDB transaction was lost (SeatDB has
    /// no sale through the hold) gives the seats back before the sale is refused, so store and
    /// SeatDB agree.
    async fn undo_store_sale(&self, tx: &mut PgConnection, sale: &Hold) -> Result<(), SaleError> {
        if db::hold_sold(tx, sale.hold_id).await? {
            return Ok(());
        }
        let found = self
            .store
            .find_hold_in(sale.performance_id, sale.hold_id)
            .await;
        let hold = found.map_err(SaleError::Store)?;
        if let Some(hold) = hold.filter(|h| h.status == HoldStatus::Sold)
            && let Some(change) = self.store.unsell(&hold).await.map_err(SaleError::Store)?
        {
            tracing::warn!(hold_id = %hold.hold_id, "undid a store sale SeatDB refuses");
            self.maps.apply(hold.performance_id, &change);
        }
        Ok(())
    }

    async fn reject(
        &self,
        tx: &mut PgConnection,
        e: &OrderConfirmed,
        reason: SaleRejectReason,
        detail: String,
    ) -> Result<Sale, SaleError> {
        let name = reason_name(reason);
        tracing::warn!(order_id = %e.order_id, hold_id = %e.hold_id, reason = name, %detail,
            "sale refused; sale.rejected emitted");
        db::record_rejection(tx, e.order_id, e.performance_id, e.hold_id, name).await?;
        platform::bus::outbox::enqueue(
            tx,
            &SaleRejected {
                order_id: e.order_id,
                hold_id: e.hold_id,
                performance_id: e.performance_id,
                buyer_id: e.buyer_id,
                reason,
                detail,
            },
        )
        .await?;
        metrics::counter!("boxoffice_sales_total", "result" => "rejected", "reason" => name)
            .increment(1);
        Ok(Sale::Rejected(reason))
    }

    /// Puts what `e`'s order bought back on sale, once; false when nothing was sold to it.
    pub async fn unsell(
        &self,
        tx: &mut PgConnection,
        e: &OrderCancelled,
    ) -> Result<bool, SaleError> {
        let removed = db::remove_sale(tx, e.order_id).await?;
        // A cancelled order is never sold afterwards: a confirmation that arrives later (reordered
        // behind the cancel, or sent again) finds it refused, as a rejected sale is.
        let hold = removed
            .as_ref()
            .map(|s| s.hold_id)
            .or(e.hold_id)
            .unwrap_or_default();
        db::record_rejection(tx, e.order_id, e.performance_id, hold, "cancelled").await?;
        let Some(sale) = removed else {
            // Never confirmed (expired or cancelled unpaid): its hold, in checkout, goes back on
            // sale now rather than at its checkout deadline — only the order's own buyer's.
            if let Some(hold_id) = e.hold_id {
                self.abandon(e.performance_id, hold_id, e.buyer_id)
                    .await
                    .map_err(SaleError::Store)?;
            }
            return Ok(false);
        };
        if let Some(change) = self.store.unsell(&sale).await.map_err(SaleError::Store)? {
            self.maps.apply(sale.performance_id, &change);
            count("boxoffice_sales_total", "result", "returned");
        }
        Ok(true)
    }
}

/// The wire name of a rejection reason (as `sale.rejected` spells it).
fn reason_name(reason: SaleRejectReason) -> &'static str {
    match reason {
        SaleRejectReason::SeatsTaken => "seats_taken",
        SaleRejectReason::SoldOut => "sold_out",
        SaleRejectReason::LimitExceeded => "limit_exceeded",
        SaleRejectReason::NotTheHold => "not_the_hold",
        SaleRejectReason::HoldUsed => "hold_used",
        SaleRejectReason::UnknownHold => "unknown_hold",
        SaleRejectReason::UnknownPerformance => "unknown_performance",
    }
}
