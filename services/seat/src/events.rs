//! What the seat service consumes — `performance.published` (inventory), `order.confirmed`
//! (seats become sold) and `order.cancelled` (seats go back on sale), each idempotent — and how
//! it emits its own events (`hold.placed`, `hold.ended`) through the outbox.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::{
    Envelope, Event,
    events::{OrderCancelled, OrderConfirmed, PerformancePublished},
};
use platform::bus::consumer::{HandleError, Handler};
use sqlx::{PgConnection, PgPool};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    db,
    map::{Layout, registry::SeatMaps},
    store::{Confirmed, Hold, HoldStatus, HoldStore},
};

/// Applies catalog and order events to SeatDB, the hold store and the maps.
pub struct SeatHandler {
    /// The maps of this replica.
    pub maps: SeatMaps,
    /// The hold store.
    pub store: Arc<dyn HoldStore>,
}

fn reject(e: impl std::fmt::Display) -> HandleError {
    HandleError::domain("seat_rule", e)
}

fn retry(e: impl std::fmt::Display) -> HandleError {
    HandleError::transient(e)
}

#[async_trait]
impl Handler for SeatHandler {
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<PerformancePublished>() {
            let p: PerformancePublished = env.decode().map_err(reject)?;
            self.published(tx, &p).await
        } else if env.is::<OrderConfirmed>() {
            let e: OrderConfirmed = env.decode().map_err(reject)?;
            self.confirmed(tx, &e).await
        } else if env.is::<OrderCancelled>() {
            let e: OrderCancelled = env.decode().map_err(reject)?;
            self.cancelled(tx, &e).await
        } else {
            Ok(())
        }
    }
}

impl SeatHandler {
    async fn published(
        &self,
        tx: &mut PgConnection,
        p: &PerformancePublished,
    ) -> Result<(), HandleError> {
        if p.seats.is_empty() && p.areas.is_empty() {
            return Err(reject("a performance without seats or areas"));
        }
        if !db::save_published(tx, p).await? {
            return Ok(()); // an older or repeated revision
        }
        self.maps
            .install(Arc::new(Layout::from_published(p)))
            .await
            .map_err(retry)?;
        Ok(())
    }

    async fn confirmed(
        &self,
        tx: &mut PgConnection,
        e: &OrderConfirmed,
    ) -> Result<(), HandleError> {
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
        };
        let sold = db::sold_among(tx, e.performance_id, &e.seat_ids).await?;
        if let Some(other) = sold.iter().find(|s| s.order_id != e.order_id) {
            tracing::error!(order_id = %e.order_id, seat = %other.seat_id, other = %other.order_id,
                "order confirmed for a seat sold to another order; not applied");
            return Err(reject(format!(
                "seat {} is sold to another order",
                other.seat_id
            )));
        }
        let mut new = sale.clone();
        new.seat_ids
            .retain(|s| !sold.iter().any(|x| &x.seat_id == s));
        if let Err(err) = db::record_sale(tx, &new, e.order_id).await {
            if let sqlx::Error::Database(d) = &err
                && d.is_unique_violation()
            {
                return Err(reject(
                    "a seat of the order is already sold (sold_seats_once)",
                ));
            }
            return Err(err.into());
        }
        match self.store.confirm(&sale).await.map_err(retry)? {
            Confirmed::Sold(change) => self.maps.apply(e.performance_id, &change),
            Confirmed::AlreadySold => {}
            Confirmed::Conflict(seats) => {
                tracing::error!(order_id = %e.order_id, ?seats,
                    "order confirmed for seats another hold has; not applied");
                return Err(reject(format!("seats taken by another hold: {seats:?}")));
            }
        }
        Ok(())
    }

    async fn cancelled(
        &self,
        tx: &mut PgConnection,
        e: &OrderCancelled,
    ) -> Result<(), HandleError> {
        let Some(sale) = db::remove_sale(tx, e.order_id).await? else {
            return Ok(()); // never confirmed, or already returned
        };
        if let Some(change) = self.store.unsell(&sale).await.map_err(retry)? {
            self.maps.apply(sale.performance_id, &change);
        }
        Ok(())
    }
}

/// Writes the service's events to the outbox in batches, off the request path.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<(&'static str, Envelope)>,
}

impl Outbox {
    /// Starts the writer on `pool`; it drains what is queued before it stops at shutdown.
    pub fn spawn(pool: PgPool, shutdown: CancellationToken) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(10_000);
        (Self { tx }, tokio::spawn(write_batches(pool, rx, shutdown)))
    }

    /// Queues `event` for the outbox.
    pub async fn emit<E: Event>(&self, event: &E) {
        match Envelope::new(event) {
            Ok(env) => {
                if self.tx.send((E::TOPIC, env)).await.is_err() {
                    tracing::error!(event = E::TYPE, "outbox writer stopped; event dropped");
                }
            }
            Err(e) => tracing::error!(error = %e, "event not encodable"),
        }
    }
}

async fn write_batches(
    pool: PgPool,
    mut rx: mpsc::Receiver<(&'static str, Envelope)>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => { rx.close(); rx.recv().await }
            m = rx.recv() => m,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        for attempt in 1..=5 {
            match write(&pool, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "outbox batch not written; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
            }
        }
    }
}

async fn write(pool: &PgPool, batch: &[(&'static str, Envelope)]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (topic, env) in batch {
        platform::bus::outbox::enqueue_envelope(&mut tx, topic, env)
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    }
    tx.commit().await
}
