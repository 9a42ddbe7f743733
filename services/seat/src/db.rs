//! SeatDB: the published inventory of each performance and what was sold, with the last guards
//! whatever the hold store did: the unique constraint on (performance, seat) for seats, a row per
//! general-admission area with `CHECK (sold <= capacity)`, and a row per buyer and performance
//! whose lock serializes the buyer's sales while the limit is checked against it.
//!
//! Publications arrive in pieces (`performance.seats` chunks, then the `performance.published`
//! header): `publication_chunks` and `publication_headers` keep what has come of revisions newer
//! than the installed one until the whole is there (see [`crate::events`]).

use std::collections::BTreeMap;

use contracts::events::{PerformancePublished, PerformanceSeats, PerformanceSpec};
use sqlx::{PgConnection, PgPool, Row, types::Json};
use uuid::Uuid;

use crate::map::Layout;

/// The advisory-lock space of publication work on one performance (two-key form).
const PUBLICATION_LOCK_SPACE: i32 = 0x5EA8;

/// Serializes the publication work on `perf` until the transaction ends: a chunk and its header
/// handled at once (two replicas during a rebalance) must not each miss the other's row and
/// leave a complete revision uninstalled.
pub async fn lock_publication(conn: &mut PgConnection, perf: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(PUBLICATION_LOCK_SPACE)
        .bind(perf)
        .execute(conn)
        .await?;
    Ok(())
}

/// Waits for the publication work on `perf` in flight (see [`lock_publication`]) to end, and
/// keeps new publication work on it out until the transaction ends (shared: sales do not wait for
/// each other). A publication installs its performance in the hold store, so holds can be placed
/// on it, before its transaction commits SeatDB's rows: a sale through such a hold that read
/// SeatDB without this could find no performance (or an older revision) and refuse a good sale.
pub async fn await_publication(conn: &mut PgConnection, perf: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, hashtext($2::text))")
        .bind(PUBLICATION_LOCK_SPACE)
        .bind(perf)
        .execute(conn)
        .await?;
    Ok(())
}

/// The revision SeatDB has installed for `perf`; `None` when never published.
pub async fn installed_revision(
    conn: &mut PgConnection,
    perf: Uuid,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT revision FROM performances WHERE performance_id = $1")
        .bind(perf)
        .fetch_optional(conn)
        .await
}

/// Keeps `chunk` until its revision is complete; a copy already kept is replaced (a redelivery
/// carries the same seats).
pub async fn stage_chunk(
    conn: &mut PgConnection,
    chunk: &PerformanceSeats,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO publication_chunks (performance_id, revision, chunk, chunks, body) \
         VALUES ($1, $2, $3::int4, $4::int4, $5) \
         ON CONFLICT (performance_id, revision, chunk) DO UPDATE \
         SET chunks = EXCLUDED.chunks, body = EXCLUDED.body, received_at = now()",
    )
    .bind(chunk.performance_id)
    .bind(chunk.revision)
    .bind(i64::from(chunk.chunk))
    .bind(i64::from(chunk.chunks))
    .bind(Json(chunk))
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps `header` until its revision's chunks are all there.
pub async fn stage_header(
    conn: &mut PgConnection,
    header: &PerformancePublished,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO publication_headers (performance_id, revision, body) VALUES ($1, $2, $3) \
         ON CONFLICT (performance_id, revision) DO UPDATE \
         SET body = EXCLUDED.body, received_at = now()",
    )
    .bind(header.performance_id)
    .bind(header.revision)
    .bind(Json(header))
    .execute(conn)
    .await?;
    Ok(())
}

/// The kept header of `perf`'s `revision`, if it came.
pub async fn staged_header(
    conn: &mut PgConnection,
    perf: Uuid,
    revision: i64,
) -> Result<Option<PerformancePublished>, sqlx::Error> {
    let row: Option<Json<PerformancePublished>> = sqlx::query_scalar(
        "SELECT body FROM publication_headers WHERE performance_id = $1 AND revision = $2",
    )
    .bind(perf)
    .bind(revision)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|Json(h)| h))
}

/// How many chunks of `perf`'s `revision` are kept.
pub async fn staged_chunk_count(
    conn: &mut PgConnection,
    perf: Uuid,
    revision: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM publication_chunks WHERE performance_id = $1 AND revision = $2",
    )
    .bind(perf)
    .bind(revision)
    .fetch_one(conn)
    .await
}

/// The kept chunks of `perf`'s `revision`, in chunk order.
pub async fn staged_chunks(
    conn: &mut PgConnection,
    perf: Uuid,
    revision: i64,
) -> Result<Vec<PerformanceSeats>, sqlx::Error> {
    let rows: Vec<Json<PerformanceSeats>> = sqlx::query_scalar(
        "SELECT body FROM publication_chunks WHERE performance_id = $1 AND revision = $2 \
         ORDER BY chunk",
    )
    .bind(perf)
    .bind(revision)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|Json(c)| c).collect())
}

/// Forgets what is kept of `perf`'s revisions up to `revision` (installed, or overtaken by it).
pub async fn drop_staged(
    conn: &mut PgConnection,
    perf: Uuid,
    revision: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM publication_chunks WHERE performance_id = $1 AND revision <= $2")
        .bind(perf)
        .bind(revision)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM publication_headers WHERE performance_id = $1 AND revision <= $2")
        .bind(perf)
        .bind(revision)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a whole publication (the spec assembled from its chunks and header); false when
/// SeatDB already has this revision or a newer one.
pub async fn save_published(
    conn: &mut PgConnection,
    p: &PerformanceSpec,
) -> Result<bool, sqlx::Error> {
    save_publication(conn, p, None).await
}

/// [`save_published`] with the organizer the publication's header names (`None`: a
/// performance only administrators manage).
pub async fn save_publication(
    conn: &mut PgConnection,
    p: &PerformanceSpec,
    organizer: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO performances (performance_id, revision, spec, organizer_id) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (performance_id) DO UPDATE \
         SET revision = EXCLUDED.revision, spec = EXCLUDED.spec, \
             organizer_id = EXCLUDED.organizer_id, updated_at = now() \
         WHERE performances.revision < EXCLUDED.revision",
    )
    .bind(p.performance_id)
    .bind(p.revision)
    .bind(Json(p))
    .bind(organizer)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    let mut areas: BTreeMap<&str, i32> = BTreeMap::new();
    for a in &p.areas {
        areas.insert(&a.area_id, a.capacity.max(0));
    }
    let (ids, caps): (Vec<&str>, Vec<i32>) = areas.iter().map(|(a, c)| (*a, *c)).unzip();
    // A capacity cut below what is sold already keeps the sold count (never unsold here).
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "INSERT INTO area_sales (performance_id, area_id, capacity) \
         SELECT $1, a, c FROM unnest($2::text[], $3::int[]) AS t(a, c) \
         ON CONFLICT (performance_id, area_id) DO UPDATE \
         SET capacity = GREATEST(EXCLUDED.capacity, area_sales.sold) \
         RETURNING area_id, capacity",
    )
    .bind(p.performance_id)
    .bind(&ids)
    .bind(&caps)
    .fetch_all(&mut *conn)
    .await?;
    let squeezed: Vec<&String> = rows
        .iter()
        .filter(|(a, c)| areas.get(a.as_str()).is_some_and(|want| c > want))
        .map(|(a, _)| a)
        .collect();
    if !squeezed.is_empty() {
        tracing::warn!(performance_id = %p.performance_id, areas = ?squeezed,
            "re-published capacity is below what is sold; keeping the sold count");
    }
    Ok(true)
}

/// The performance's per-buyer ticket limit (0 = none); `None` when never published.
pub async fn ticket_limit(conn: &mut PgConnection, perf: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT ticket_limit FROM performances WHERE performance_id = $1")
        .bind(perf)
        .fetch_optional(conn)
        .await
}

/// The layout of a performance, if published.
pub async fn load_layout(pool: &PgPool, perf: Uuid) -> Result<Option<Layout>, sqlx::Error> {
    let row: Option<Json<PerformanceSpec>> =
        sqlx::query_scalar("SELECT spec FROM performances WHERE performance_id = $1")
            .bind(perf)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|Json(p)| Layout::from_published(&p)))
}

/// Every published performance.
pub async fn performance_ids(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT performance_id FROM performances")
        .fetch_all(pool)
        .await
}

/// Why SeatDB refused a sale (nothing of it is kept once the caller rolls back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The hold was sold to another order already.
    HoldUsed,
    /// These seats are sold to another order.
    SeatsTaken(Vec<String>),
    /// These areas have no room for the sale's places.
    SoldOut(Vec<String>),
    /// The buyer would own more tickets of the performance than `limit`.
    LimitExceeded {
        /// The limit.
        limit: i64,
        /// Tickets the buyer had bought before this sale.
        current: i64,
    },
}

/// What recording a sale did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now.
    New,
    /// The order's sale was recorded before (a redelivery).
    Already,
    /// The order's sale was refused before: never sell it now.
    Rejected,
    /// Refused; roll back what this call wrote (run it in a savepoint).
    Refused(Refusal),
}

/// The advisory-lock space of sales through one hold (the two-key form, apart from the bus's).
const HOLD_LOCK_SPACE: i32 = 0x5EA7;

/// Serializes the sales through `hold` until the transaction ends: two orders naming one hold
/// (on different partitions, or a redelivery beside a new order) are decided one after the
/// other, so the second sees the first's rows. Take it before any savepoint: a rolled-back
/// savepoint would release it.
pub async fn lock_hold(conn: &mut PgConnection, hold: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(HOLD_LOCK_SPACE)
        .bind(hold)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the sale of `order` (seats and places) for `sale`'s buyer, once, checking every
/// guard: seats not sold to another order, areas within capacity, the buyer within `limit`
/// (0 = none) counting what it bought before. On [`Recorded::Refused`] some rows may be written:
/// run it in a savepoint and roll that back.
pub async fn record_sale(
    conn: &mut PgConnection,
    sale: &crate::store::Hold,
    order: Uuid,
    limit: i64,
) -> Result<Recorded, sqlx::Error> {
    let (sold, rejected, other): (bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM sold_seats WHERE order_id = $1) \
             OR EXISTS (SELECT 1 FROM sold_areas WHERE order_id = $1), \
         EXISTS (SELECT 1 FROM rejected_sales WHERE order_id = $1), \
         EXISTS (SELECT 1 FROM sold_seats WHERE hold_id = $2 AND order_id <> $1) \
             OR EXISTS (SELECT 1 FROM sold_areas WHERE hold_id = $2 AND order_id <> $1)",
    )
    .bind(order)
    .bind(sale.hold_id)
    .fetch_one(&mut *conn)
    .await?;
    if rejected {
        return Ok(Recorded::Rejected);
    }
    if sold {
        return Ok(Recorded::Already);
    }
    if other {
        return Ok(Recorded::Refused(Refusal::HoldUsed));
    }
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO sold_seats (performance_id, seat_id, order_id, hold_id, buyer_id) \
         SELECT $1, s, $2, $3, $4 FROM unnest($5::text[]) AS s \
         ON CONFLICT ON CONSTRAINT sold_seats_once DO NOTHING RETURNING seat_id",
    )
    .bind(sale.performance_id)
    .bind(order)
    .bind(sale.hold_id)
    .bind(sale.buyer_id)
    .bind(&sale.seat_ids)
    .fetch_all(&mut *conn)
    .await?;
    if inserted.len() != sale.seat_ids.len() {
        let mut taken: Vec<String> = sale
            .seat_ids
            .iter()
            .filter(|s| !inserted.contains(s))
            .cloned()
            .collect();
        taken.sort();
        taken.dedup();
        return Ok(Recorded::Refused(Refusal::SeatsTaken(taken)));
    }
    let mut areas: BTreeMap<&str, i64> = BTreeMap::new();
    for (a, q) in &sale.areas {
        *areas.entry(a).or_default() += q;
    }
    let mut short = Vec::new();
    for (&area, &qty) in &areas {
        let qty = i32::try_from(qty).unwrap_or(i32::MAX);
        let room: Option<i32> = sqlx::query_scalar(
            "UPDATE area_sales SET sold = sold + $3 \
             WHERE performance_id = $1 AND area_id = $2 AND sold + $3 <= capacity RETURNING sold",
        )
        .bind(sale.performance_id)
        .bind(area)
        .bind(qty)
        .fetch_optional(&mut *conn)
        .await?;
        if room.is_none() {
            short.push(area.to_owned());
            continue;
        }
        sqlx::query(
            "INSERT INTO sold_areas (order_id, area_id, performance_id, hold_id, buyer_id, quantity) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(order)
        .bind(area)
        .bind(sale.performance_id)
        .bind(sale.hold_id)
        .bind(sale.buyer_id)
        .bind(qty)
        .execute(&mut *conn)
        .await?;
    }
    if !short.is_empty() {
        return Ok(Recorded::Refused(Refusal::SoldOut(short)));
    }
    let n = sale.tickets();
    if n > 0 {
        let tickets: i32 = sqlx::query_scalar(
            "INSERT INTO buyer_sales (performance_id, buyer_id, tickets) VALUES ($1, $2, $3) \
             ON CONFLICT (performance_id, buyer_id) \
             DO UPDATE SET tickets = buyer_sales.tickets + EXCLUDED.tickets RETURNING tickets",
        )
        .bind(sale.performance_id)
        .bind(sale.buyer_id)
        .bind(i32::try_from(n).unwrap_or(i32::MAX))
        .fetch_one(&mut *conn)
        .await?;
        let tickets = i64::from(tickets);
        if limit > 0 && tickets > limit {
            return Ok(Recorded::Refused(Refusal::LimitExceeded {
                limit,
                current: tickets - n,
            }));
        }
    }
    Ok(Recorded::New)
}

/// Whether SeatDB has a sale through `hold` (by any order).
pub async fn hold_sold(conn: &mut PgConnection, hold: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sold_seats WHERE hold_id = $1) \
             OR EXISTS (SELECT 1 FROM sold_areas WHERE hold_id = $1)",
    )
    .bind(hold)
    .fetch_one(conn)
    .await
}

/// Remembers that `order`'s sale was refused, so no later delivery sells it.
pub async fn record_rejection(
    conn: &mut PgConnection,
    order: Uuid,
    perf: Uuid,
    hold: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rejected_sales (order_id, performance_id, hold_id, reason) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(order)
    .bind(perf)
    .bind(hold)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes what `order` bought; returns the sale (hold id, buyer, seats, places) or `None`
/// when nothing was sold to it (never confirmed, or already returned).
pub async fn remove_sale(
    conn: &mut PgConnection,
    order: Uuid,
) -> Result<Option<crate::store::Hold>, sqlx::Error> {
    let seats = sqlx::query(
        "DELETE FROM sold_seats WHERE order_id = $1 \
         RETURNING performance_id, seat_id, hold_id, buyer_id",
    )
    .bind(order)
    .fetch_all(&mut *conn)
    .await?;
    let areas = sqlx::query(
        "DELETE FROM sold_areas WHERE order_id = $1 \
         RETURNING performance_id, area_id, hold_id, buyer_id, quantity",
    )
    .bind(order)
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = seats.first().or(areas.first()) else {
        return Ok(None);
    };
    let mut sale = crate::store::Hold {
        hold_id: first.try_get("hold_id")?,
        performance_id: first.try_get("performance_id")?,
        buyer_id: first.try_get("buyer_id")?,
        seat_ids: Vec::new(),
        areas: Vec::new(),
        amount_krw: 0,
        expires_at_ms: 0,
        status: crate::store::HoldStatus::Sold,
        presale_limit: None,
    };
    for r in &seats {
        sale.seat_ids.push(r.try_get("seat_id")?);
    }
    for r in &areas {
        let q: i32 = r.try_get("quantity")?;
        sale.areas.push((r.try_get("area_id")?, i64::from(q)));
    }
    for (area, q) in &sale.areas {
        sqlx::query(
            "UPDATE area_sales SET sold = GREATEST(sold - $3, 0) \
             WHERE performance_id = $1 AND area_id = $2",
        )
        .bind(sale.performance_id)
        .bind(area)
        .bind(i32::try_from(*q).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE buyer_sales SET tickets = GREATEST(tickets - $3, 0) \
         WHERE performance_id = $1 AND buyer_id = $2",
    )
    .bind(sale.performance_id)
    .bind(sale.buyer_id)
    .bind(i32::try_from(sale.tickets()).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(Some(sale))
}

/// Every sale of a performance, one per hold (to rebuild an empty in-memory store after a
/// restart).
pub async fn sales_of(pool: &PgPool, perf: Uuid) -> Result<Vec<crate::store::Hold>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT hold_id, buyer_id, array_agg(seat_id ORDER BY seat_id) AS seats \
         FROM sold_seats WHERE performance_id = $1 GROUP BY hold_id, buyer_id",
    )
    .bind(perf)
    .fetch_all(pool)
    .await?;
    let areas = sqlx::query(
        "SELECT hold_id, buyer_id, area_id, quantity FROM sold_areas WHERE performance_id = $1",
    )
    .bind(perf)
    .fetch_all(pool)
    .await?;
    let mut sales: std::collections::BTreeMap<Uuid, crate::store::Hold> = Default::default();
    let empty = |hold_id: Uuid, buyer_id: Uuid| crate::store::Hold {
        hold_id,
        performance_id: perf,
        buyer_id,
        seat_ids: Vec::new(),
        areas: Vec::new(),
        amount_krw: 0,
        expires_at_ms: 0,
        status: crate::store::HoldStatus::Sold,
        presale_limit: None,
    };
    for r in &rows {
        let (hold, buyer): (Uuid, Uuid) = (r.try_get("hold_id")?, r.try_get("buyer_id")?);
        sales
            .entry(hold)
            .or_insert_with(|| empty(hold, buyer))
            .seat_ids = r.try_get("seats")?;
    }
    for r in &areas {
        let (hold, buyer): (Uuid, Uuid) = (r.try_get("hold_id")?, r.try_get("buyer_id")?);
        let q: i32 = r.try_get("quantity")?;
        let area: String = r.try_get("area_id")?;
        sales
            .entry(hold)
            .or_insert_with(|| empty(hold, buyer))
            .areas
            .push((area, i64::from(q)));
    }
    Ok(sales.into_values().collect())
}

/// Who may manage a published performance: `Some(organizer)` (`None` inside: administrators
/// only); `None` when never published.
pub async fn organizer_of(pool: &PgPool, perf: Uuid) -> Result<Option<Option<Uuid>>, sqlx::Error> {
    sqlx::query_scalar("SELECT organizer_id FROM performances WHERE performance_id = $1")
        .bind(perf)
        .fetch_optional(pool)
        .await
}

/// One seat withheld from sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldSeat {
    /// The seat.
    pub seat_id: String,
    /// Why (`season_ticket`, `club`, `media`, `obstructed`, `other`).
    pub reason: String,
    /// Who withheld it.
    pub withheld_by: Uuid,
    /// When.
    pub withheld_at: chrono::DateTime<chrono::Utc>,
}

/// The advisory-lock space of withholding on one performance (the two-key form).
const WITHHELD_LOCK_SPACE: i32 = 0x5EA9;

/// Serializes the withholding work on `perf` (withhold, release, the maintenance that restores
/// the withheld set into the store) until the transaction ends, so a pass never reads rows a
/// release is about to delete and withholds those seats again.
pub async fn lock_withheld(conn: &mut PgConnection, perf: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(WITHHELD_LOCK_SPACE)
        .bind(perf)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records `seats` of `perf` as withheld for `reason` by `by`; a seat withheld already takes
/// the new reason (and keeps when it was first withheld).
pub async fn record_withheld(
    conn: &mut PgConnection,
    perf: Uuid,
    seats: &[String],
    reason: &str,
    by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO withheld_seats (performance_id, seat_id, reason, withheld_by) \
         SELECT $1, s, $3, $4 FROM unnest($2::text[]) AS s \
         ON CONFLICT (performance_id, seat_id) DO UPDATE \
         SET reason = EXCLUDED.reason, withheld_by = EXCLUDED.withheld_by",
    )
    .bind(perf)
    .bind(seats)
    .bind(reason)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets `seats` of `perf` as withheld; returns those that were.
pub async fn remove_withheld(
    conn: &mut PgConnection,
    perf: Uuid,
    seats: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM withheld_seats WHERE performance_id = $1 AND seat_id = ANY($2::text[]) \
         RETURNING seat_id",
    )
    .bind(perf)
    .bind(seats)
    .fetch_all(conn)
    .await
}

/// Every seat of `perf` withheld from sale, by seat id.
pub async fn withheld_of(
    conn: &mut PgConnection,
    perf: Uuid,
) -> Result<Vec<WithheldSeat>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seat_id, reason, withheld_by, withheld_at FROM withheld_seats \
         WHERE performance_id = $1 ORDER BY seat_id",
    )
    .bind(perf)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WithheldSeat {
                seat_id: r.try_get("seat_id")?,
                reason: r.try_get("reason")?,
                withheld_by: r.try_get("withheld_by")?,
                withheld_at: r.try_get("withheld_at")?,
            })
        })
        .collect()
}

/// The seat ids of `perf` withheld from sale (to rebuild a store that lost them).
pub async fn withheld_seat_ids(pool: &PgPool, perf: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT seat_id FROM withheld_seats WHERE performance_id = $1 ORDER BY seat_id",
    )
    .bind(perf)
    .fetch_all(pool)
    .await
}
