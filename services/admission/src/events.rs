//! What the admission service consumes: `performance.published` (a room for each performance,
//! with or without a waiting room; a newer revision updates it, the seed and the draw stay) and
//! `order.confirmed` (the buyer bought: it stops counting as an active buyer, so the next fan
//! can come in). Both are idempotent: a redelivery changes nothing.

use contracts::Event as _;
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
    fn wants(&self, event_type: &str) -> bool {
        [PerformancePublished::TYPE, OrderConfirmed::TYPE].contains(&event_type)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The consumer skips what the handler does not want without a transaction: it must want
    /// exactly the types it acts on (one it acts on but did not want would be lost).
    #[tokio::test]
    async fn the_handler_wants_exactly_the_events_it_acts_on() {
        let handler = AdmissionHandler {
            store: std::sync::Arc::new(crate::store::memory::MemoryQueueStore::new()),
            defaults: crate::rooms::Defaults {
                rate_per_sec: 1.0,
                max_active: None,
            },
        };
        let acted = platform::testing::types_handled(&handler, contracts::events::ALL_TYPES).await;
        assert!(!acted.is_empty());
        for t in contracts::events::ALL_TYPES {
            assert_eq!(handler.wants(t), acted.contains(t), "{t}");
        }
    }
}
