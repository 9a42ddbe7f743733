//! Sold out is live: the catalog follows `performance.availability` from the seat service (what is
//! left of each performance it follows, by grade, every few seconds while it changes) and keeps
//! the newest by `(epoch, version)`, ignoring repeats and late arrivals. A published performance
//! with nothing left on sale becomes `sold_out` (the listing, search and event detail say so, and
//! `on_sale` stops listing it); one that has seats again (a hold lapsed, an order was cancelled)
//! is `published` again. No other state is touched: a cancelled, draft or announced performance
//! stays what it is, whatever the seat service says.

use std::collections::BTreeMap;

use async_trait::async_trait;
use contracts::{Envelope, Event as _, events::PerformanceAvailability};
use platform::bus::consumer::{HandleError, Handler};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Applies the seat service's availability events.
pub struct CatalogHandler;

#[async_trait]
impl Handler for CatalogHandler {
    fn wants(&self, event_type: &str) -> bool {
        event_type == PerformanceAvailability::TYPE
    }

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        if env.is::<PerformanceAvailability>() {
            let e: PerformanceAvailability = env.decode()?;
            apply(tx, &e).await?;
        }
        Ok(())
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Older than (or the same as) what is kept, or of a performance the catalog does not know.
    Ignored,
    /// Kept; the performance's state is unchanged.
    Counts,
    /// Kept, and the performance became sold out.
    SoldOut,
    /// Kept, and the performance is on sale again.
    Back,
}

/// Keeps `e` if it is newer than what is kept, and moves the performance between `published`
/// and `sold_out` to match it, in `tx`.
pub async fn apply(
    tx: &mut PgConnection,
    e: &PerformanceAvailability,
) -> Result<Applied, sqlx::Error> {
    let available = serde_json::to_value(&e.available).unwrap_or_default();
    let version = i64::try_from(e.version).unwrap_or(i64::MAX);
    let kept = sqlx::query(
        "INSERT INTO performance_availability
           (performance_id, epoch, version, available, available_total, held, sold, counted_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
         WHERE EXISTS (SELECT 1 FROM performances WHERE id = $1)
         ON CONFLICT (performance_id) DO UPDATE SET
           epoch = EXCLUDED.epoch, version = EXCLUDED.version, available = EXCLUDED.available,
           available_total = EXCLUDED.available_total, held = EXCLUDED.held,
           sold = EXCLUDED.sold, counted_at = EXCLUDED.counted_at, updated_at = now()
         WHERE (performance_availability.epoch, performance_availability.version)
             < (EXCLUDED.epoch, EXCLUDED.version)",
    )
    .bind(e.performance_id)
    .bind(e.epoch)
    .bind(version)
    .bind(available)
    .bind(e.available_total())
    .bind(e.held)
    .bind(e.sold)
    .bind(e.at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if kept == 0 {
        return Ok(Applied::Ignored);
    }
    let (from, to, moved) = if e.available_total() == 0 {
        ("published", "sold_out", Applied::SoldOut)
    } else {
        ("sold_out", "published", Applied::Back)
    };
    let changed = sqlx::query(
        "UPDATE performances SET status = $3, updated_at = now() WHERE id = $1 AND status = $2",
    )
    .bind(e.performance_id)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(Applied::Counts);
    }
    // The listing row follows, under the performance's lock this update took.
    crate::store::listing::refresh_performances(tx, &[e.performance_id]).await?;
    tracing::info!(performance_id = %e.performance_id, status = to, "availability moved a performance");
    Ok(moved)
}

/// What is left of a performance, as the seat service last told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Remaining {
    /// Seats and places on sale, by grade code.
    pub by_grade: BTreeMap<String, i64>,
    /// All grades.
    pub total: i64,
    /// When the seat service counted them.
    pub counted_at: chrono::DateTime<chrono::Utc>,
}

/// A row of `performance_availability`: performance, by grade, total, when counted.
type RemainingRow = (
    Uuid,
    sqlx::types::Json<BTreeMap<String, i64>>,
    i64,
    chrono::DateTime<chrono::Utc>,
);

/// What is kept for `performances` (those the seat service told about).
pub async fn remaining(
    pool: &PgPool,
    performances: &[Uuid],
) -> Result<BTreeMap<Uuid, Remaining>, sqlx::Error> {
    if performances.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<RemainingRow> = sqlx::query_as(
        "SELECT performance_id, available, available_total, counted_at
             FROM performance_availability WHERE performance_id = ANY($1)",
    )
    .bind(performances)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, by_grade, total, counted_at)| {
            (
                id,
                Remaining {
                    by_grade: by_grade.0,
                    total,
                    counted_at,
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The consumer skips what the handler does not want without a transaction: it must want
    /// exactly the types it acts on (one it acts on but did not want would be lost).
    #[tokio::test]
    async fn the_handler_wants_exactly_the_events_it_acts_on() {
        let acted =
            platform::testing::types_handled(&CatalogHandler, contracts::events::ALL_TYPES).await;
        assert_eq!(acted, vec![PerformanceAvailability::TYPE]);
        for t in contracts::events::ALL_TYPES {
            assert_eq!(CatalogHandler.wants(t), acted.contains(t), "{t}");
        }
    }
}
