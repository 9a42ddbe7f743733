//! What the seat service consumes — `performance.seats` and `performance.published` (inventory,
//! see [`SeatHandler::published`]), `order.confirmed`
//! (seats become sold, or `sale.rejected` when that can no longer be honoured) and
//! `order.cancelled` (seats go back on sale), each idempotent. What the service emits goes to the
//! outbox elsewhere: `sale.rejected` in the consumer's own transaction (see [`crate::holds`]),
//! `hold.placed` and `hold.ended` from the hold store's own log (see [`crate::store_relay`]).

use contracts::Event as _;
use std::sync::Arc;

use async_trait::async_trait;
use contracts::{
    Envelope,
    events::{
        OrderCancelled, OrderConfirmed, PerformancePublished, PerformanceSeats, PerformanceSpec,
    },
};
use platform::bus::consumer::{HandleError, Handler};
use sqlx::PgConnection;

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
    fn wants(&self, event_type: &str) -> bool {
        [
            PerformancePublished::TYPE,
            PerformanceSeats::TYPE,
            OrderConfirmed::TYPE,
            OrderCancelled::TYPE,
        ]
        .contains(&event_type)
    }
    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<PerformancePublished>() {
            self.published(tx, env).await
        } else if env.is::<PerformanceSeats>() {
            let chunk: PerformanceSeats = env.decode()?;
            self.seats(tx, &chunk).await
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
    /// `performance.published`. Version 2 is the header of a publication whose seats come in
    /// `performance.seats` chunks, before it on its key: it is kept, and the publication installed
    /// once the header and every chunk of its revision are in SeatDB and match its count and
    /// digest — now, or when a chunk that was late arrives ([`SeatHandler::seats`]). Version 1
    /// (a catalog not upgraded yet) carries the whole publication.
    ///
    /// Whatever the order of arrival, redeliveries included, a revision is installed once, never
    /// over a newer one: anything of a revision at or below the installed one is ignored, and
    /// installing a revision forgets what was kept of it and of older ones. A header and a chunk
    /// of one performance are handled one at a time ([`db::lock_publication`]). Pieces that do
    /// not fit together (another chunk count, a wrong digest) are rejected (dead-lettered, with
    /// its alert): redelivering them cannot make them fit.
    async fn published(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.version < 2 {
            let spec: PerformanceSpec = serde_json::from_value(env.payload.clone())?;
            db::lock_publication(tx, spec.performance_id).await?;
            return self.install(tx, spec, None).await;
        }
        let header: PerformancePublished = env.decode()?;
        if header.seat_count == 0 && header.areas.is_empty() {
            return Err(empty_inventory());
        }
        db::lock_publication(tx, header.performance_id).await?;
        if self
            .outdated(tx, header.performance_id, header.revision)
            .await?
        {
            return Ok(()); // an older or repeated revision
        }
        db::stage_header(tx, &header).await?;
        self.complete(tx, &header).await
    }

    /// `performance.seats`: kept until its revision is complete; completes it when its header
    /// came first.
    async fn seats(
        &self,
        tx: &mut PgConnection,
        chunk: &PerformanceSeats,
    ) -> Result<(), HandleError> {
        if chunk.chunk >= chunk.chunks {
            return Err(HandleError::domain(
                "publication_mismatch",
                format!("chunk {} of {}", chunk.chunk, chunk.chunks),
            ));
        }
        db::lock_publication(tx, chunk.performance_id).await?;
        if self
            .outdated(tx, chunk.performance_id, chunk.revision)
            .await?
        {
            return Ok(()); // a late chunk of a revision installed or overtaken
        }
        db::stage_chunk(tx, chunk).await?;
        match db::staged_header(tx, chunk.performance_id, chunk.revision).await? {
            Some(header) => self.complete(tx, &header).await,
            None => Ok(()),
        }
    }

    /// Whether SeatDB has `revision` of `perf` or a newer one installed.
    async fn outdated(
        &self,
        tx: &mut PgConnection,
        perf: uuid::Uuid,
        revision: i64,
    ) -> Result<bool, HandleError> {
        Ok(db::installed_revision(tx, perf)
            .await?
            .is_some_and(|installed| installed >= revision))
    }

    /// Installs `header`'s revision when all its chunks are kept; else leaves it waiting.
    async fn complete(
        &self,
        tx: &mut PgConnection,
        header: &PerformancePublished,
    ) -> Result<(), HandleError> {
        let (perf, revision) = (header.performance_id, header.revision);
        let have = db::staged_chunk_count(tx, perf, revision).await?;
        if have < i64::from(header.seat_chunks) {
            tracing::info!(performance_id = %perf, revision, have, want = header.seat_chunks,
                "publication waits for the rest of its seat chunks");
            return Ok(());
        }
        let chunks = db::staged_chunks(tx, perf, revision).await?;
        let spec = PerformanceSpec::assemble(header, &chunks)
            .map_err(|e| HandleError::domain("publication_mismatch", e))?;
        self.install(tx, spec, header.organizer_id).await
    }

    /// Stores a whole publication in SeatDB (unless it has this revision or a newer one) and
    /// installs its layout in the hold store and the maps; `organizer` (from the header) may
    /// manage it besides administrators.
    async fn install(
        &self,
        tx: &mut PgConnection,
        spec: PerformanceSpec,
        organizer: Option<uuid::Uuid>,
    ) -> Result<(), HandleError> {
        if spec.seats.is_empty() && spec.areas.is_empty() {
            return Err(empty_inventory());
        }
        db::drop_staged(tx, spec.performance_id, spec.revision).await?;
        if !db::save_publication(tx, &spec, organizer).await? {
            return Ok(()); // an older or repeated revision
        }
        self.holds
            .maps()
            .install(Arc::new(Layout::from_published(&spec)))
            .await
            .map_err(HandleError::transient)?;
        Ok(())
    }
}

fn empty_inventory() -> HandleError {
    HandleError::domain("empty_inventory", "a performance without seats or areas")
}
