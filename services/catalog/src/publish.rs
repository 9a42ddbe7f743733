//! Publishing a performance: the catalog tells the seat service what to sell (every seat, every
//! general-admission area, every price) through the outbox, in the transaction that marks the
//! performance published. A stadium's seats would make one event of 2.5–2.8 MB, over a broker's
//! 1 MB limit, so the publication goes out as `performance.seats` chunks (each well under the
//! bus's 256 KiB) followed by the `performance.published` header that counts them and carries
//! their digest, all on the performance's key, in that order ([`PerformanceSpec::split`]).
//! Re-publishing after a change sends all of it again with a higher `revision`; cancelling sends
//! `performance.cancelled`.

use std::collections::BTreeSet;

use contracts::events::{
    AreaSpec, PerformanceCancelled, PerformancePublished, PerformanceSpec, PriceSpec, SeatSpec,
};
use platform::bus::{BusError, outbox};
use sqlx::PgConnection;

use crate::{
    domain::PerformanceState,
    store::events::{self, EventRow, PerformanceRow},
};

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Some grades of the venue have no price.
    #[error("grades without a price: {0:?}")]
    MissingPrices(Vec<String>),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The outbox failed, or refused an event (one too large for the bus).
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A venue's inventory: reserved seats and general-admission areas.
pub type Inventory = (Vec<SeatSpec>, Vec<AreaSpec>);

/// The grades that are sold at the venue but have no price.
pub fn missing_prices(inventory: &Inventory, prices: &[PriceSpec]) -> Vec<String> {
    let used: BTreeSet<&str> = inventory
        .0
        .iter()
        .map(|s| s.grade.as_str())
        .chain(inventory.1.iter().map(|a| a.grade.as_str()))
        .collect();
    used.into_iter()
        .filter(|g| !prices.iter().any(|p| p.grade == *g))
        .map(str::to_owned)
        .collect()
}

/// Marks `perf` published (revision + 1) and enqueues its `performance.seats` chunks and then
/// its `performance.published` header on `conn`, which must be the transaction of the change.
/// A sold-out performance stays sold out. Returns the header.
pub async fn publish(
    conn: &mut PgConnection,
    event: &EventRow,
    perf: &PerformanceRow,
    inventory: &Inventory,
) -> Result<PerformancePublished, PublishError> {
    let prices: Vec<PriceSpec> = events::tiers(conn, event.id)
        .await?
        .into_iter()
        .map(|t| PriceSpec {
            grade: t.grade,
            name: t.name,
            price_krw: t.price_krw,
            ticket_types: vec![],
        })
        .collect();
    // Each grade's other ticket types (권종), and who may buy in presale (선예매).
    let prices = crate::ticket_types::attach(conn, event.id, prices).await?;
    let presale = crate::presale::rules(conn, perf.id).await?;
    let missing = missing_prices(inventory, &prices);
    if !missing.is_empty() {
        return Err(PublishError::MissingPrices(missing));
    }
    let revision = perf.revision + 1;
    let state = match perf.state() {
        PerformanceState::SoldOut => PerformanceState::SoldOut,
        _ => PerformanceState::Published,
    };
    events::set_state(conn, perf.id, state, revision, None).await?;
    let spec = PerformanceSpec {
        performance_id: perf.id,
        event_id: event.id,
        venue_id: event.venue_id,
        starts_at: perf.starts_at,
        ticket_limit: event.ticket_limit,
        waiting_room: event.waiting_room,
        sale_opens_at: perf.sale_opens_at,
        sale_closes_at: perf.sale_closes_at,
        seats: inventory.0.clone(),
        areas: inventory.1.clone(),
        prices,
        revision,
        presale,
    };
    let (chunks, mut header) = spec.split().map_err(BusError::from)?;
    // The order service freezes it onto orders; the seat service does not need it.
    header.cancellation_policy = event.cancellation_policy.clone().map(|p| p.0);
    // The admission and order services let this organizer (and admins) operate it.
    header.organizer_id = event.organizer_id;
    // One key, in this order: the relay and the broker keep it, so the header comes last.
    for chunk in &chunks {
        outbox::enqueue(conn, chunk).await?;
    }
    outbox::enqueue(conn, &header).await?;
    Ok(header)
}

/// Marks `perf` cancelled and enqueues `performance.cancelled` on `conn`.
pub async fn cancel(
    conn: &mut PgConnection,
    perf: &PerformanceRow,
    reason: &str,
) -> Result<(), PublishError> {
    events::set_state(
        conn,
        perf.id,
        PerformanceState::Cancelled,
        perf.revision,
        Some(reason),
    )
    .await?;
    // Only a performance whose inventory went out needs the seat service to hear about it.
    if perf.revision > 0 {
        let cancelled = PerformanceCancelled {
            performance_id: perf.id,
            reason: reason.to_owned(),
        };
        outbox::enqueue(conn, &cancelled).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(grade: &str) -> SeatSpec {
        SeatSpec {
            seat_id: "a".into(),
            section: "s".into(),
            row: "1".into(),
            number: 1,
            grade: grade.into(),
            rank: 0,
            wheelchair: false,
            table: None,
            companion_of: None,
        }
    }

    #[test]
    fn every_sold_grade_needs_a_price() {
        let inv = (
            vec![seat("blue"), seat("red")],
            vec![AreaSpec {
                area_id: "lawn".into(),
                grade: "lawn".into(),
                capacity: 10,
            }],
        );
        let prices = vec![PriceSpec {
            grade: "blue".into(),
            name: "Blue".into(),
            price_krw: 1,
            ticket_types: vec![],
        }];
        assert_eq!(missing_prices(&inv, &prices), vec!["lawn", "red"]);
    }
}
