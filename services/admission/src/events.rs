//! What the admission service consumes: `performance.published` (a room for each performance,
//! with or without a waiting room; a newer revision updates it, the seed and the draw stay) and
//! `order.confirmed` (the buyer bought: it stops counting as an active buyer, so the next fan
//! can come in). Both are idempotent: a redelivery changes nothing.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::{
    Envelope,
    events::{OrderConfirmed, PerformancePublished},
};
use platform::bus::consumer::{HandleError, Handler};
use sqlx::PgConnection;

use crate::{
    rooms::{Defaults, Rooms},
    store::QueueStore,
};

/// Applies catalog and order events.
pub struct AdmissionHandler {
    /// The queue store (buyers who bought leave the active set).
    pub store: Arc<dyn QueueStore>,
    /// The admission settings new rooms start with.
    pub defaults: Defaults,
}

#[async_trait]
impl Handler for AdmissionHandler {
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<PerformancePublished>() {
            let p: PerformancePublished = env.decode()?;
            Rooms::published(tx, &p, self.defaults).await?;
        } else if env.is::<OrderConfirmed>() {
            let e: OrderConfirmed = env.decode()?;
            self.store
                .leave(e.performance_id, e.buyer_id)
                .await
                .map_err(HandleError::transient)?;
        }
        Ok(())
    }
}
