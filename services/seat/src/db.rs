//! SeatDB: the published inventory of each performance and the sold seats, with the unique
//! constraint on (performance, seat) that is the last guard against selling a seat twice.

use contracts::events::PerformancePublished;
use sqlx::{PgConnection, PgPool, Row, types::Json};
use uuid::Uuid;

use crate::map::Layout;

/// Stores a publication; false when SeatDB already has this revision or a newer one.
pub async fn save_published(
    conn: &mut PgConnection,
    p: &PerformancePublished,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO performances (performance_id, revision, spec) VALUES ($1, $2, $3) \
         ON CONFLICT (performance_id) DO UPDATE \
         SET revision = EXCLUDED.revision, spec = EXCLUDED.spec, updated_at = now() \
         WHERE performances.revision < EXCLUDED.revision",
    )
    .bind(p.performance_id)
    .bind(p.revision)
    .bind(Json(p))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// The layout of a performance, if published.
pub async fn load_layout(pool: &PgPool, perf: Uuid) -> Result<Option<Layout>, sqlx::Error> {
    let row: Option<Json<PerformancePublished>> =
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

/// A seat already sold to an order.
#[derive(Debug, Clone)]
pub struct SoldSeat {
    /// Seat id.
    pub seat_id: String,
    /// Order that bought it.
    pub order_id: Uuid,
}

/// Which of `seats` are sold, and to which order.
pub async fn sold_among(
    conn: &mut PgConnection,
    perf: Uuid,
    seats: &[String],
) -> Result<Vec<SoldSeat>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seat_id, order_id FROM sold_seats WHERE performance_id = $1 AND seat_id = ANY($2)",
    )
    .bind(perf)
    .bind(seats)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SoldSeat {
                seat_id: r.try_get("seat_id")?,
                order_id: r.try_get("order_id")?,
            })
        })
        .collect()
}

/// Records a sale (seats and places) of `order`; pass only seats not yet recorded for it. A
/// seat already sold (to anyone) violates `sold_seats_once` and fails the statement.
pub async fn record_sale(
    conn: &mut PgConnection,
    sale: &crate::store::Hold,
    order: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sold_seats (performance_id, seat_id, order_id, hold_id, buyer_id) \
         SELECT $1, s, $2, $3, $4 FROM unnest($5::text[]) AS s",
    )
    .bind(sale.performance_id)
    .bind(order)
    .bind(sale.hold_id)
    .bind(sale.buyer_id)
    .bind(&sale.seat_ids)
    .execute(&mut *conn)
    .await?;
    for (area, qty) in &sale.areas {
        sqlx::query(
            "INSERT INTO sold_areas (order_id, area_id, performance_id, hold_id, buyer_id, quantity) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(order)
        .bind(area)
        .bind(sale.performance_id)
        .bind(sale.hold_id)
        .bind(sale.buyer_id)
        .bind(i32::try_from(*qty).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await?;
    }
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
    };
    for r in &seats {
        sale.seat_ids.push(r.try_get("seat_id")?);
    }
    for r in &areas {
        let q: i32 = r.try_get("quantity")?;
        sale.areas.push((r.try_get("area_id")?, i64::from(q)));
    }
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
