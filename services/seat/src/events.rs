//! What the seat service consumes — `performance.published` (inventory), `order.confirmed`
//! (seats become sold, or `sale.rejected` when that can no longer be honoured) and
//! `order.cancelled` (seats go back on sale), each idempotent — and the batching writer that
//! puts `hold.placed` and `hold.ended` in the outbox off the request path (`sale.rejected` goes
//! in the consumer's own transaction, see [`crate::holds`]).

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
    holds::{HoldService, Sale, SaleError},
    map::Layout,
};

/// Applies catalog and order events to SeatDB, the hold store and the maps.
pub struct SeatHandler {
    /// Every hold-store write goes through it.
    pub holds: HoldService,
}

impl From<SaleError> for HandleError {
    /// A sale that could not be decided now is tried again (SeatDB errors by their SQLSTATE);
    /// refusals are answers (`sale.rejected`), not errors.
    fn from(e: SaleError) -> Self {
        match e {
            SaleError::Db(e) => e.into(),
            e @ (SaleError::Store(_) | SaleError::Outbox(_)) => HandleError::transient(e),
        }
    }
}

#[async_trait]
impl Handler for SeatHandler {
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<PerformancePublished>() {
            let p: PerformancePublished = env.decode()?;
            self.published(tx, &p).await
        } else if env.is::<OrderConfirmed>() {
            let e: OrderConfirmed = env.decode()?;
            match self.holds.sell(tx, &e).await? {
                Sale::Sold | Sale::AlreadySold | Sale::Rejected(_) => {}
                Sale::AlreadyRejected => {
                    tracing::info!(order_id = %e.order_id, "a refused sale delivered again");
                }
            }
            Ok(())
        } else if env.is::<OrderCancelled>() {
            let e: OrderCancelled = env.decode()?;
            self.holds.unsell(tx, &e).await?;
            Ok(())
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
            return Err(HandleError::domain(
                "empty_inventory",
                "a performance without seats or areas",
            ));
        }
        if !db::save_published(tx, p).await? {
            return Ok(()); // an older or repeated revision
        }
        self.holds
            .maps()
            .install(Arc::new(Layout::from_published(p)))
            .await
            .map_err(HandleError::transient)?;
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
