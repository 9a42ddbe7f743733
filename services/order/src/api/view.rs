//! An order as the API shows it (with its tickets, its payment details while payable, and what
//! can still be done), `GET /api/v1/orders/{order_id}` and `GET /api/v1/me/orders`.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    auth::AuthUser,
    problem::{ApiPath, ApiQuery, FieldError},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AppState, docs::Problem, parse_id};
use crate::{
    domain::{policy::Quote, status::OrderStatus, ticket_types::OrderLine},
    store::{self, Order, Ticket},
};

/// A ticket in an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketSummary {
    /// Its id (`GET /api/v1/tickets/{ticket_id}` shows its entry code).
    pub ticket_id: Uuid,
    /// The seat, for a reserved seat.
    pub seat_id: Option<String>,
    /// The area, for a general-admission place.
    pub area_id: Option<String>,
    /// `valid` or `void`.
    pub status: String,
    /// Its ticket type (권종).
    pub ticket_type: String,
    /// Whether the gate checks the holder's proof of the type.
    pub proof_required: bool,
}

/// An order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    /// Its id (the PG's `orderId`).
    pub order_id: Uuid,
    /// Its status.
    pub status: OrderStatus,
    /// The hold it was made from.
    pub hold_id: Uuid,
    /// The performance.
    pub performance_id: Uuid,
    /// Reserved seats.
    pub seat_ids: Vec<String>,
    /// General-admission places: `{area_id, quantity}`.
    #[schema(value_type = Vec<Object>)]
    pub areas: Vec<Value>,
    /// Ticket prices, KRW.
    pub tickets_krw: i64,
    /// The booking fee, KRW (per ticket × tickets; refunded on the booking day only).
    pub booking_fee_krw: i64,
    /// What the buyer pays, KRW.
    pub amount: i64,
    /// Always `KRW`.
    pub currency: &'static str,
    /// When the payment window ends.
    pub expires_at: DateTime<Utc>,
    /// When the order was made.
    pub created_at: DateTime<Utc>,
    /// What the PG's checkout needs (`null` once not payable).
    #[schema(value_type = Option<Object>)]
    pub payment: Option<Value>,
    /// The last declined payment's PG code, if any.
    pub last_payment_error: Option<String>,
    /// Its tickets (once confirmed).
    pub tickets: Vec<TicketSummary>,
    /// Each seat and place with its ticket type (권종) and price (empty for an order made
    /// before ticket types).
    pub lines: Vec<OrderLine>,
    /// Its refund, once asked for: `{refund_krw, refunded_krw, reason}`.
    #[schema(value_type = Option<Object>)]
    pub refund: Option<Value>,
    /// What can still be done: `pay` (bool) and `cancel` (`{allowed, refund_krw, fee_krw,
    /// rule}` or `{allowed: false, reason, closed_at?}`).
    #[schema(value_type = Object)]
    pub actions: Value,
}

fn cancel_action(o: &Order, now: DateTime<Utc>) -> Value {
    match o.status {
        OrderStatus::PendingPayment => {
            json!({"allowed": true, "refund_krw": 0, "fee_krw": 0, "rule": "unpaid"})
        }
        OrderStatus::Confirmed => match o.policy.quote(&o.booking(), now) {
            Quote::Allowed {
                fee_krw,
                refund_krw,
                booking_fee_refunded,
                rule,
            } => json!({
                "allowed": true, "refund_krw": refund_krw, "fee_krw": fee_krw,
                "booking_fee_refunded": booking_fee_refunded, "rule": rule,
                "closes_at": o.policy.cutoff(o.starts_at),
            }),
            Quote::Closed { closed_at } => {
                json!({"allowed": false, "reason": "past_cutoff", "closed_at": closed_at})
            }
        },
        s => json!({"allowed": false, "reason": s.as_str()}),
    }
}

/// The view of `o` with `tickets`.
pub fn view(
    o: &Order,
    tickets: &[Ticket],
    config: &crate::Config,
    now: DateTime<Utc>,
) -> OrderView {
    let payable = o.status == OrderStatus::PendingPayment && o.expires_at > now;
    let payment = payable.then(|| {
        json!({
            "provider": "toss",
            "client_key": config.pg_client_key,
            "order_id": o.order_id,
            "order_name": format!("Boxoffice {} ticket(s)", o.ticket_count),
            "amount": o.amount_krw,
            "currency": "KRW",
            "customer_key": o.buyer_id,
            "confirm_url": "/api/v1/payments/confirm",
            "expires_at": o.expires_at,
        })
    });
    OrderView {
        order_id: o.order_id,
        status: o.status,
        hold_id: o.hold_id,
        performance_id: o.performance_id,
        seat_ids: o.seat_ids.clone(),
        areas: o.areas.iter().map(|(a, q)| json!({"area_id": a, "quantity": q})).collect(),
        tickets_krw: o.tickets_krw,
        booking_fee_krw: o.booking_fee_krw,
        amount: o.amount_krw,
        currency: "KRW",
        expires_at: o.expires_at,
        created_at: o.created_at,
        payment,
        last_payment_error: o.last_payment_error.clone(),
        tickets: tickets
            .iter()
            .map(|t| TicketSummary {
                ticket_id: t.ticket_id,
                seat_id: t.seat_id.clone(),
                area_id: t.area_id.clone(),
                status: t.status.clone(),
                ticket_type: t.ticket_type.clone(),
                proof_required: super::tickets::proof_required(&t.ticket_type),
            })
            .collect(),
        lines: o.lines.clone(),
        refund: o.refund_id.map(|_| {
            json!({"refund_krw": o.refund_krw.unwrap_or(o.amount_krw), "refunded_krw": o.refunded_krw,
                   "reason": o.refund_reason})
        }),
        actions: json!({"pay": payable, "cancel": cancel_action(o, now)}),
    }
}

/// The view of an order read from OrderDB.
pub async fn load(state: &AppState, o: &Order) -> Result<OrderView, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let tickets = store::tickets_of_order(&mut conn, o.order_id).await?;
    Ok(view(o, &tickets, &state.config, Utc::now()))
}

/// The caller's own order, or 404 (someone else's is not told apart from none).
pub async fn own(state: &AppState, user: &AuthUser, id: Uuid) -> Result<Order, ApiError> {
    store::find(&state.pool, id)
        .await?
        .filter(|o| o.buyer_id == user.id())
        .ok_or_else(|| ApiError::not_found(format!("no order `{id}`")))
}

/// Longest `wait_ms` of `GET /api/v1/orders/{order_id}`.
pub const MAX_WAIT_MS: u64 = 8_000;

/// `GET /api/v1/orders/{order_id}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindParams {
    /// When the order is in a status the saga or the clock moves on (`pending_payment`, `paid`,
    /// `refunding`): answer once its status changes, or after this many milliseconds
    /// (0–8,000: under the gateway's upstream timeout), whichever comes first. A client waiting for
    /// its payment's outcome asks once
    /// instead of polling.
    wait_ms: Option<u64>,
}

/// `GET /api/v1/orders/{order_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{order_id}",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order"), FindParams),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "`validation_failed`: `wait_ms` over 8,000; `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no order of the caller's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn find(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(params): ApiQuery<FindParams>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&raw, "order")?;
    let wait = params.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::validation(vec![FieldError::new(
            "wait_ms",
            format!("at most {MAX_WAIT_MS}"),
        )]));
    }
    let mut o = own(&state, &user, id).await?;
    if wait > 0 && !o.status.is_final() {
        let seen = o.status;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait);
        let key = id.to_string();
        loop {
            // Subscribed before the look: a change committed in between is not missed.
            let mut change = state.status_changes.subscribe(&key);
            o = own(&state, &user, id).await?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if o.status != seen || left.is_zero() || !change.wait(left).await {
                break;
            }
        }
        if o.status == seen {
            o = own(&state, &user, id).await?;
        }
    }
    Ok(Json(load(&state, &o).await?))
}

/// `GET /api/v1/me/orders` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Orders made before this instant (the previous page's `next`).
    before: Option<DateTime<Utc>>,
    /// At most this many (1–100, default 20).
    limit: Option<i64>,
}

/// The caller's orders, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderList {
    /// This page.
    pub orders: Vec<OrderView>,
    /// The cursor of the next page (`?before=`), when there may be one.
    pub next: Option<DateTime<Utc>>,
}

/// `GET /api/v1/me/orders`.
#[utoipa::path(
    get,
    path = "/api/v1/me/orders",
    tag = "orders",
    params(ListParams),
    responses(
        (status = 200, description = "The caller's orders with their tickets, statuses and actions", body = OrderList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn mine(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<OrderList>, ApiError> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation(vec![
            platform::problem::FieldError::new("limit", "must be between 1 and 100"),
        ]));
    }
    let orders = store::of_buyer(&state.pool, user.id(), p.before, limit).await?;
    let next = (orders.len() as i64 == limit)
        .then(|| orders.last().map(|o| o.created_at))
        .flatten();
    let mut views = Vec::with_capacity(orders.len());
    for o in &orders {
        views.push(load(&state, o).await?);
    }
    Ok(Json(OrderList {
        orders: views,
        next,
    }))
}
