//! OrderDB's queries. Only [`crate::orders::Orders`] changes an order's status, through
//! [`record`], which takes a [`Transition`] (only the state machine makes one) and moves the
//! row and the append-only record together, compare-and-set on the status it leaves.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow, types::Json};
use uuid::Uuid;

use contracts::events::PriceSpec;

use crate::domain::{
    policy::{Booking, CancellationPolicy},
    status::{OrderStatus, Transition},
    ticket_types::{self, OrderLine},
};

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub order_id: Uuid,
    /// Its buyer.
    pub buyer_id: Uuid,
    /// The hold it was made from.
    pub hold_id: Uuid,
    /// The performance.
    pub performance_id: Uuid,
    /// The hold's seats.
    pub seat_ids: Vec<String>,
    /// The hold's general-admission places, by area.
    pub areas: Vec<(String, i32)>,
    /// Seats and places together.
    pub ticket_count: i32,
    /// Ticket prices, KRW.
    pub tickets_krw: i64,
    /// Booking fee, KRW.
    pub booking_fee_krw: i64,
    /// What the buyer pays, KRW.
    pub amount_krw: i64,
    /// Its status.
    pub status: OrderStatus,
    /// The cancellation policy frozen onto it.
    pub policy: CancellationPolicy,
    /// When the performance starts.
    pub starts_at: DateTime<Utc>,
    /// When the payment window ends.
    pub expires_at: DateTime<Utc>,
    /// The seat service's checkout deadline.
    pub hold_expires_at: DateTime<Utc>,
    /// The PG's payment key, once paid.
    pub payment_key: Option<String>,
    /// What the PG took.
    pub paid_krw: Option<i64>,
    /// When.
    pub paid_at: Option<DateTime<Utc>>,
    /// The last declined attempt's code.
    pub last_payment_error: Option<String>,
    /// The refund's id, once asked for.
    pub refund_id: Option<Uuid>,
    /// The refund's amount (`None`: everything).
    pub refund_krw: Option<i64>,
    /// Why.
    pub refund_reason: Option<String>,
    /// What came back so far.
    pub refunded_krw: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Each seat and place with its ticket type and price (empty: an order from before ticket
    /// types, all standard).
    pub lines: Vec<OrderLine>,
}

impl Order {
    /// What its cancellation schedule counts from.
    pub fn booking(&self) -> Booking {
        Booking {
            booked_at: self.created_at,
            starts_at: self.starts_at,
            tickets_krw: self.tickets_krw,
            booking_fee_krw: self.booking_fee_krw,
            tickets: i64::from(self.ticket_count),
        }
    }
}

const COLUMNS: &str = "order_id, buyer_id, hold_id, performance_id, seat_ids, areas, ticket_count, \
    tickets_krw, booking_fee_krw, amount_krw, status, policy, starts_at, expires_at, \
    hold_expires_at, payment_key, paid_krw, paid_at, last_payment_error, refund_id, refund_krw, \
    refund_reason, refunded_krw, created_at, updated_at, lines";

fn order_of(r: &PgRow) -> Result<Order, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let Json(seat_ids): Json<Vec<String>> = r.try_get("seat_ids")?;
    let Json(areas): Json<Vec<(String, i32)>> = r.try_get("areas")?;
    let Json(policy): Json<CancellationPolicy> = r.try_get("policy")?;
    let Json(lines): Json<Vec<OrderLine>> = r.try_get("lines")?;
    Ok(Order {
        order_id: r.try_get("order_id")?,
        buyer_id: r.try_get("buyer_id")?,
        hold_id: r.try_get("hold_id")?,
        performance_id: r.try_get("performance_id")?,
        seat_ids,
        areas,
        ticket_count: r.try_get("ticket_count")?,
        tickets_krw: r.try_get("tickets_krw")?,
        booking_fee_krw: r.try_get("booking_fee_krw")?,
        amount_krw: r.try_get("amount_krw")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("order status `{status}`").into()))?,
        policy,
        starts_at: r.try_get("starts_at")?,
        expires_at: r.try_get("expires_at")?,
        hold_expires_at: r.try_get("hold_expires_at")?,
        payment_key: r.try_get("payment_key")?,
        paid_krw: r.try_get("paid_krw")?,
        paid_at: r.try_get("paid_at")?,
        last_payment_error: r.try_get("last_payment_error")?,
        refund_id: r.try_get("refund_id")?,
        refund_krw: r.try_get("refund_krw")?,
        refund_reason: r.try_get("refund_reason")?,
        refunded_krw: r.try_get("refunded_krw")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        lines,
    })
}

/// Stores a new order (`pending_payment`) with its creation in the record (one statement).
pub async fn insert(conn: &mut PgConnection, o: &Order) -> Result<(), sqlx::Error> {
    let created = Transition::created();
    sqlx::query(
        "WITH o AS (INSERT INTO orders (order_id, buyer_id, hold_id, performance_id, seat_ids, \
                    areas, ticket_count, tickets_krw, booking_fee_krw, amount_krw, status, policy, \
                    starts_at, expires_at, hold_expires_at, created_at, updated_at, lines) \
                    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$16,$17) \
                    RETURNING order_id) \
         INSERT INTO order_transitions (order_id, from_status, to_status, reason) \
         SELECT order_id, NULL, $11, $18 FROM o",
    )
    .bind(o.order_id)
    .bind(o.buyer_id)
    .bind(o.hold_id)
    .bind(o.performance_id)
    .bind(Json(&o.seat_ids))
    .bind(Json(&o.areas))
    .bind(o.ticket_count)
    .bind(o.tickets_krw)
    .bind(o.booking_fee_krw)
    .bind(o.amount_krw)
    .bind(created.to().as_str())
    .bind(Json(&o.policy))
    .bind(o.starts_at)
    .bind(o.expires_at)
    .bind(o.hold_expires_at)
    .bind(o.created_at)
    .bind(Json(&o.lines))
    .bind(created.reason().as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Why a status change was not written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The order is no longer in the status the change leaves (someone else moved it).
    #[error("the order moved on")]
    Moved,
    /// OrderDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The channel every status change of an order is notified on, with its id
/// (`GET /api/v1/orders/{id}?wait_ms=` waits on it).
pub const STATUS_CHANNEL: &str = "order_status";

/// Moves `order_id` along `t` (compare-and-set on `t.from()`) and records it.
pub async fn record(
    conn: &mut PgConnection,
    order_id: Uuid,
    t: &Transition,
) -> Result<(), RecordError> {
    let Some(from) = t.from() else {
        return Err(RecordError::Moved);
    };
    // One statement: the compare-and-set, its record, and the notice that whoever waits on the
    // order's status hears when this commits.
    let done = sqlx::query(
        "WITH moved AS (UPDATE orders SET status = $3, updated_at = now() \
                        WHERE order_id = $1 AND status = $2 RETURNING order_id), \
              noted AS (INSERT INTO order_transitions (order_id, from_status, to_status, reason) \
                        SELECT order_id, $2, $3, $5 FROM moved) \
         SELECT pg_notify($4, order_id::text) FROM moved",
    )
    .bind(order_id)
    .bind(from.as_str())
    .bind(t.to().as_str())
    .bind(STATUS_CHANNEL)
    .bind(t.reason().as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(RecordError::Moved);
    }
    Ok(())
}

/// The order, locked for this transaction.
pub async fn lock(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE order_id = $1 FOR UPDATE"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(order_of).transpose()
}

/// The order.
pub async fn find(pool: &PgPool, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE order_id = $1"
    )))
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(order_of).transpose()
}

/// The order made from `hold_id`.
pub async fn by_hold(conn: &mut PgConnection, hold_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE hold_id = $1"
    )))
    .bind(hold_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(order_of).transpose()
}

/// A buyer's orders, newest first, before `before` (cursor), at most `limit`.
pub async fn of_buyer(
    pool: &PgPool,
    buyer: Uuid,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE buyer_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2) \
         ORDER BY created_at DESC, order_id DESC LIMIT $3"
    )))
    .bind(buyer)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(order_of).collect()
}

/// Ids of pending orders whose window ended, at most `limit`, skipping locked ones.
pub async fn lapsed(conn: &mut PgConnection, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE status = 'pending_payment' AND expires_at < now() \
         ORDER BY expires_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Ids of orders `paid` or `refunding` untouched for `stuck_ms`, at most `limit`.
pub async fn stuck(
    conn: &mut PgConnection,
    stuck_ms: i64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE status IN ('paid', 'refunding') \
         AND updated_at < now() - make_interval(secs => $1::double precision / 1000) \
         ORDER BY updated_at LIMIT $2",
    )
    .bind(stuck_ms)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Ids of a performance's orders that may hold money or seats.
pub async fn of_performance(conn: &mut PgConnection, perf: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE performance_id = $1 \
         AND status IN ('pending_payment', 'paid', 'confirmed') ORDER BY created_at",
    )
    .bind(perf)
    .fetch_all(conn)
    .await
}

/// Records the payment on the order.
pub async fn set_payment(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_key: &str,
    amount: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET payment_key = $2, paid_krw = $3, paid_at = $4, updated_at = now() \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(payment_key)
    .bind(amount)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a declined attempt.
pub async fn set_payment_error(
    conn: &mut PgConnection,
    order_id: Uuid,
    code: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE orders SET last_payment_error = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(code)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the refund asked for (once: an order has one refund).
pub async fn set_refund(
    conn: &mut PgConnection,
    order_id: Uuid,
    refund_id: Uuid,
    amount: Option<i64>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET refund_id = COALESCE(refund_id, $2), refund_krw = $3, \
         refund_reason = $4, updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(refund_id)
    .bind(amount)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds money that came back.
pub async fn add_refunded(
    conn: &mut PgConnection,
    order_id: Uuid,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET refunded_krw = refunded_krw + $2, updated_at = now() WHERE order_id = $1")
        .bind(order_id)
        .bind(amount)
        .execute(conn)
        .await?;
    Ok(())
}

/// Touches the order so the stuck sweeper waits again before the next nudge.
pub async fn touch(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET updated_at = now() WHERE order_id = $1")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The record of an order's changes: `(from, to, reason)` in order.
pub async fn history(
    pool: &PgPool,
    order_id: Uuid,
) -> Result<Vec<(Option<String>, String, String, DateTime<Utc>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT from_status, to_status, reason, recorded_at FROM order_transitions \
         WHERE order_id = $1 ORDER BY seq",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

// ---------------------------------------------------------------- tickets

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id.
    pub ticket_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// Its owner.
    pub buyer_id: Uuid,
    /// The performance.
    pub performance_id: Uuid,
    /// The seat, for a reserved seat.
    pub seat_id: Option<String>,
    /// The area, for a general-admission place.
    pub area_id: Option<String>,
    /// Its secret's version.
    pub secret_version: i32,
    /// `valid` or `void`.
    pub status: String,
    /// When it was let in, if it was.
    pub checked_in_at: Option<DateTime<Utc>>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Its ticket type code (`adult` for tickets from before ticket types).
    pub ticket_type: String,
}

const TICKET_COLUMNS: &str = "ticket_id, order_id, buyer_id, performance_id, seat_id, area_id, \
    secret_version, status, checked_in_at, issued_at, ticket_type";

fn ticket_of(r: &PgRow) -> Result<Ticket, sqlx::Error> {
    Ok(Ticket {
        ticket_id: r.try_get("ticket_id")?,
        order_id: r.try_get("order_id")?,
        buyer_id: r.try_get("buyer_id")?,
        performance_id: r.try_get("performance_id")?,
        seat_id: r.try_get("seat_id")?,
        area_id: r.try_get("area_id")?,
        secret_version: r.try_get("secret_version")?,
        status: r.try_get("status")?,
        checked_in_at: r.try_get("checked_in_at")?,
        issued_at: r.try_get("issued_at")?,
        ticket_type: r.try_get("ticket_type")?,
    })
}

/// Issues one ticket per seat and place of `o` (none twice); returns every ticket of the order.
pub async fn issue_tickets(conn: &mut PgConnection, o: &Order) -> Result<Vec<Ticket>, sqlx::Error> {
    let mut items: Vec<(String, Option<&str>, Option<&str>)> = o
        .seat_ids
        .iter()
        .map(|s| (s.clone(), Some(s.as_str()), None))
        .collect();
    for (area, quantity) in &o.areas {
        for n in 1..=*quantity {
            items.push((format!("{area}#{n}"), None, Some(area.as_str())));
        }
    }
    // One statement for all of them.
    let mut ids = Vec::with_capacity(items.len());
    let mut names = Vec::with_capacity(items.len());
    let mut seats = Vec::with_capacity(items.len());
    let mut areas = Vec::with_capacity(items.len());
    let mut types = Vec::with_capacity(items.len());
    for (item, seat, area) in items {
        ids.push(Uuid::now_v7());
        types.push(
            ticket_types::type_of_item(&o.lines, &item).unwrap_or_else(|| "adult".to_owned()),
        );
        names.push(item);
        seats.push(seat);
        areas.push(area);
    }
    let wanted = ids.len();
    let issued = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH issued AS ( \
            INSERT INTO tickets (ticket_id, order_id, buyer_id, performance_id, item, seat_id, \
                                 area_id, ticket_type) \
            SELECT t.id, $2, $3, $4, t.item, t.seat, t.area, t.kind \
            FROM unnest($1::uuid[], $5::text[], $6::text[], $7::text[], $8::text[]) \
                 WITH ORDINALITY AS t(id, item, seat, area, kind, n) \
            ORDER BY t.n \
            ON CONFLICT (order_id, item) DO NOTHING \
            RETURNING {TICKET_COLUMNS}, item) \
         SELECT {TICKET_COLUMNS} FROM issued ORDER BY item"
    )))
    .bind(&ids)
    .bind(o.order_id)
    .bind(o.buyer_id)
    .bind(o.performance_id)
    .bind(&names)
    .bind(&seats)
    .bind(&areas)
    .bind(&types)
    .fetch_all(&mut *conn)
    .await?;
    // Every one new (the usual case): they are all the order's tickets. Otherwise some were
    // issued before (a redelivery, the stuck sweeper): read them all.
    if issued.len() == wanted {
        return issued.iter().map(ticket_of).collect();
    }
    tickets_of_order(conn, o.order_id).await
}

/// Every ticket of an order, in issue order.
pub async fn tickets_of_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Vec<Ticket>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE order_id = $1 ORDER BY item"
    )))
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(ticket_of).collect()
}

/// Voids every ticket of an order.
pub async fn void_tickets(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tickets SET status = 'void' WHERE order_id = $1")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A ticket.
pub async fn ticket(pool: &PgPool, ticket_id: Uuid) -> Result<Option<Ticket>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE ticket_id = $1"
    )))
    .bind(ticket_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(ticket_of).transpose()
}

/// Lets a valid ticket in once: its first check-in time, or `None` when it was let in before.
pub async fn check_in(
    pool: &PgPool,
    ticket_id: Uuid,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE tickets SET checked_in_at = now() WHERE ticket_id = $1 AND status = 'valid' \
         AND checked_in_at IS NULL RETURNING checked_in_at",
    )
    .bind(ticket_id)
    .fetch_optional(pool)
    .await
}

// ---------------------------------------------------------------- performances

/// Records a performance's start and the event's cancellation policy (`None`: the platform
/// default) from its publication; newer revisions only, so a late or replayed older one changes
/// nothing.
pub async fn save_performance(
    conn: &mut PgConnection,
    perf: Uuid,
    starts_at: DateTime<Utc>,
    revision: i64,
    policy: Option<&CancellationPolicy>,
    organizer: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO performances (performance_id, starts_at, revision, cancellation_policy, \
         organizer_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (performance_id) DO UPDATE SET \
         starts_at = EXCLUDED.starts_at, revision = EXCLUDED.revision, \
         cancellation_policy = EXCLUDED.cancellation_policy, \
         organizer_id = EXCLUDED.organizer_id \
         WHERE performances.revision < EXCLUDED.revision",
    )
    .bind(perf)
    .bind(starts_at)
    .bind(revision)
    .bind(policy.map(Json))
    .bind(organizer)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the prices (by grade and ticket type) of `revision` of a performance, when that is
/// the revision stored (call after [`save_performance`]).
pub async fn save_prices(
    conn: &mut PgConnection,
    perf: Uuid,
    revision: i64,
    prices: &[PriceSpec],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE performances SET prices = $3 WHERE performance_id = $1 AND revision = $2")
        .bind(perf)
        .bind(revision)
        .bind(Json(prices))
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a performance cancelled (once); it may be unknown so far.
pub async fn cancel_performance(
    conn: &mut PgConnection,
    perf: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO performances (performance_id, starts_at, cancelled_at, cancel_reason) \
         VALUES ($1, now(), now(), $2) ON CONFLICT (performance_id) DO UPDATE SET \
         cancelled_at = COALESCE(performances.cancelled_at, now()), \
         cancel_reason = COALESCE(performances.cancel_reason, EXCLUDED.cancel_reason)",
    )
    .bind(perf)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// What an order of a performance is made against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performance {
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// Whether the organizer cancelled it.
    pub cancelled: bool,
    /// The event's cancellation policy as last published (`None`: the platform default).
    pub policy: Option<CancellationPolicy>,
    /// Its prices by grade and ticket type as last published (empty: unknown, standard only).
    pub prices: Vec<PriceSpec>,
}

/// The organizer who owns `perf` as last published: `Ok(None)` when it is unknown here,
/// `Ok(Some(None))` when it has no organizer (administrators only).
pub async fn performance_owner(
    pool: &PgPool,
    perf: Uuid,
) -> Result<Option<Option<Uuid>>, sqlx::Error> {
    sqlx::query_scalar("SELECT organizer_id FROM performances WHERE performance_id = $1")
        .bind(perf)
        .fetch_optional(pool)
        .await
}

/// A performance as last published.
pub async fn performance(pool: &PgPool, perf: Uuid) -> Result<Option<Performance>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT starts_at, cancelled_at IS NOT NULL, cancellation_policy, prices FROM performances \
         WHERE performance_id = $1",
    )
    .bind(perf)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        let policy: Option<Json<CancellationPolicy>> = r.try_get(2)?;
        let prices: Option<Json<Vec<PriceSpec>>> = r.try_get(3)?;
        Ok(Performance {
            starts_at: r.try_get(0)?,
            cancelled: r.try_get(1)?,
            policy: policy.map(|Json(p)| p),
            prices: prices.map(|Json(p)| p).unwrap_or_default(),
        })
    })
    .transpose()
}

// ---------------------------------------------------------------- idempotency keys

/// What an `Idempotency-Key` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// New: this request runs.
    Claimed,
    /// The same body ran to its end: its stored answer.
    Done(u16, serde_json::Value),
    /// The same body is running now.
    InFlight,
    /// Another body used the key.
    OtherBody,
}

/// How long an unfinished `Idempotency-Key` claim holds off the same request (longer than a
/// request may run: the HTTP layer's timeout plus the seat call's retries).
pub const STALE_CLAIM_SECS: f64 = 120.0;

/// Claims `(buyer, key)` for a body of `fingerprint`; a claim unfinished for
/// [`STALE_CLAIM_SECS`] (its process died) is taken over by the same request.
pub async fn claim(
    pool: &PgPool,
    buyer: Uuid,
    key: &str,
    fingerprint: &str,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO order_requests (buyer_id, idempotency_key, fingerprint) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(buyer)
    .bind(key)
    .bind(fingerprint)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    // A claim left unfinished for longer than any request runs belongs to a process that died
    // in the middle: the same request takes it over (creating an order is idempotent per hold:
    // the retry finds the order the dead one may have made).
    let taken_over = sqlx::query(
        "UPDATE order_requests SET created_at = now() \
         WHERE buyer_id = $1 AND idempotency_key = $2 AND fingerprint = $3 AND NOT done \
           AND created_at < now() - make_interval(secs => $4)",
    )
    .bind(buyer)
    .bind(key)
    .bind(fingerprint)
    .bind(STALE_CLAIM_SECS)
    .execute(pool)
    .await?;
    if taken_over.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    let row = sqlx::query(
        "SELECT fingerprint, done, status_code, response FROM order_requests \
         WHERE buyer_id = $1 AND idempotency_key = $2",
    )
    .bind(buyer)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        // Released between the insert and the read: the caller may simply retry.
        return Ok(Claim::InFlight);
    };
    let stored: String = row.try_get(0)?;
    if stored != fingerprint {
        return Ok(Claim::OtherBody);
    }
    let done: bool = row.try_get(1)?;
    if !done {
        return Ok(Claim::InFlight);
    }
    let status: Option<i32> = row.try_get(2)?;
    let body: Option<serde_json::Value> = row.try_get(3)?;
    Ok(Claim::Done(
        status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
        body.unwrap_or_default(),
    ))
}

/// Stores the answer of a claimed key.
pub async fn finish(
    conn: &mut PgConnection,
    buyer: Uuid,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE order_requests SET done = true, status_code = $3, response = $4 \
         WHERE buyer_id = $1 AND idempotency_key = $2",
    )
    .bind(buyer)
    .bind(key)
    .bind(i32::from(status))
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Lets a claimed key go (the request failed in a way a retry may fix).
pub async fn release(pool: &PgPool, buyer: Uuid, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM order_requests WHERE buyer_id = $1 AND idempotency_key = $2 AND NOT done",
    )
    .bind(buyer)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}
