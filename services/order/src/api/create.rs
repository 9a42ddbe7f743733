//! `POST /api/v1/orders {hold_id}` with `Idempotency-Key`: the hold goes into checkout at the
//! seat service, the order is priced from it and stored `pending_payment` with its frozen
//! cancellation policy (the event's, as last published with the performance, else
//! `order.cancellation`) and `order.created`, in one transaction with the key's stored answer.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{Duration, Utc};
use platform::{
    ApiError,
    auth::AuthUser,
    problem::{ApiJson, FieldError},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AppState, docs::Problem, view};
use crate::{
    domain::{
        pricing,
        status::OrderStatus,
        ticket_types::{self, ChoiceError, OrderLine, TicketChoice},
    },
    seat_client::{CheckedOut, CheckoutError},
    store::{self, Claim, Order},
};

/// Longest `Idempotency-Key`.
const MAX_KEY_LEN: usize = 300;

/// The body of `POST /api/v1/orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The buyer's hold (from `POST /api/v1/holds`).
    hold_id: Uuid,
    /// The ticket type (권종) of some of its seats or places, at most 50 entries; every seat or
    /// place not listed is the grade's standard type (`adult`).
    #[serde(default)]
    #[schema(max_items = 50)]
    tickets: Vec<TicketChoice>,
}

/// Most entries in `tickets`.
const MAX_CHOICES: usize = 50;

fn type_unavailable(index: usize, ticket_type: &str, detail: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "ticket_type_unavailable", detail)
        .with("index", index)
        .with("ticket_type", ticket_type)
}

fn choice_refused(e: ChoiceError) -> ApiError {
    match &e {
        ChoiceError::NotInHold { index, why } => ApiError::validation(vec![FieldError::new(
            format!("tickets[{index}]"),
            why.clone(),
        )]),
        ChoiceError::Unavailable {
            index, ticket_type, ..
        } => type_unavailable(*index, ticket_type, e.to_string()),
    }
}

/// The body's fingerprint: the hold alone as before ticket types when no type is chosen, so a
/// key stored then still replays; with choices, the choices too, so another choice under the
/// same key is another body.
fn fingerprint(body: &CreateBody) -> String {
    let text = if body.tickets.is_empty() {
        format!("hold_id={}", body.hold_id)
    } else {
        format!(
            "hold_id={}&tickets={}",
            body.hold_id,
            serde_json::to_string(&body.tickets).unwrap_or_default()
        )
    };
    hex::encode(Sha256::digest(text))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "an Idempotency-Key header is required",
            )
        })?
        .to_str()
        .unwrap_or_default()
        .trim();
    if value.is_empty() || value.len() > MAX_KEY_LEN || value.bytes().any(|b| !b.is_ascii_graphic())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("the Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(value.to_owned())
}

fn seat_refusal(e: CheckoutError, hold_id: Uuid) -> ApiError {
    match e {
        CheckoutError::Refused { status: 404, .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "hold_not_found",
            format!("no hold `{hold_id}` of yours"),
        ),
        CheckoutError::Refused { status: 401, .. } => {
            ApiError::unauthorized("the seat service refused the token")
        }
        CheckoutError::Refused {
            status: 403,
            detail,
            ..
        } => ApiError::new(StatusCode::FORBIDDEN, "hold_forbidden", detail),
        CheckoutError::Refused { code, detail, .. } => {
            let code: &'static str = match code.as_str() {
                "hold_sold" => "hold_sold",
                "hold_expired" => "hold_expired",
                "hold_released" => "hold_released",
                "hold_in_checkout" => "hold_in_checkout",
                "not_on_sale" => "not_on_sale",
                _ => "hold_unavailable",
            };
            ApiError::conflict(code, format!("the hold cannot be ordered: {detail}"))
        }
        CheckoutError::Unavailable(why) => {
            tracing::warn!(%hold_id, reason = %why, "seat checkout unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "seat_unavailable",
                "the seat service is unavailable; try again shortly",
            )
            .with("retry_after_secs", 2)
        }
    }
}

/// `POST /api/v1/orders`.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    request_body = CreateBody,
    params(("Idempotency-Key" = String, Header,
        description = "1 to 300 visible ASCII characters; the same key and body replay the first answer, \
                       another body answers 422 `idempotency_key_reused`, a request still running 409")),
    responses(
        (status = 201, description = "The order, `pending_payment`, with what the PG checkout needs", body = view::OrderView),
        (status = 200, description = "The hold was ordered already (by the caller): that order", body = view::OrderView),
        (status = 400, description = "`validation_failed` (also `tickets[i]`: a seat or area not in the hold, listed twice, too many places, more than 50 entries), `idempotency_key_required`, `invalid_idempotency_key`, `ticket_type_unavailable` (with `index`, `ticket_type`): an unknown ticket type, or one the seat's grade is not sold as; no order is made", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`hold_forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`hold_not_found`: no such hold of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_in_flight`, `hold_sold`, `hold_expired`, `hold_released`, \
                        `hold_expiring`, `hold_unavailable`, `performance_cancelled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`seat_unavailable`, `performance_unknown` (retry)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all, fields(hold_id = %body.hold_id))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let fingerprint = fingerprint(&body);
    match store::claim(&state.pool, user.id(), &key, &fingerprint).await? {
        Claim::Claimed => {}
        Claim::Done(status, stored) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return Ok(replay(status, stored));
        }
        Claim::InFlight => {
            return Err(ApiError::conflict(
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still running",
            )
            .with("retry_after_secs", 1));
        }
        Claim::OtherBody => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request",
            ));
        }
    }
    match make(&state, &user, &bearer, &body, &key).await {
        Ok(response) => Ok(response),
        Err(e) => {
            // A refusal is the key's answer; a failure a retry may fix lets the key go.
            let keep = e.status.is_client_error()
                && e.status != StatusCode::CONFLICT
                && e.status != StatusCode::UNAUTHORIZED;
            let stored = if keep {
                let mut conn = state.pool.acquire().await?;
                store::finish(&mut conn, user.id(), &key, e.status.as_u16(), &e.body())
                    .await
                    .is_ok()
            } else {
                false
            };
            if !stored {
                store::release(&state.pool, user.id(), &key).await?;
            }
            Err(e)
        }
    }
}

fn replay(status: StatusCode, body: serde_json::Value) -> Response {
    if status.is_success() {
        (status, Json(body)).into_response()
    } else {
        let mut r = (status, Json(body)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(platform::problem::PROBLEM_JSON),
        );
        r
    }
}

/// An existing order of `hold_id`: the caller's answers 200, anyone else's as no hold.
async fn existing(
    state: &AppState,
    user: &AuthUser,
    o: &Order,
    key: &str,
) -> Result<Response, ApiError> {
    if o.buyer_id != user.id() {
        return Err(seat_refusal(
            CheckoutError::Refused {
                status: 404,
                code: String::new(),
                detail: String::new(),
            },
            o.hold_id,
        ));
    }
    let body = serde_json::to_value(view::load(state, o).await?).unwrap_or_default();
    let mut conn = state.pool.acquire().await?;
    store::finish(&mut conn, user.id(), key, 200, &body).await?;
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// The performance of an order as the order service knows it: 503 `performance_unknown` before
/// its publication arrived, 409 `performance_cancelled` once called off.
async fn known_performance(
    state: &AppState,
    performance_id: Uuid,
) -> Result<store::Performance, ApiError> {
    let performance = store::performance(&state.pool, performance_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "performance_unknown",
                "the performance is not known to orders yet; try again shortly",
            )
            .with("retry_after_secs", 1)
        })?;
    if performance.cancelled {
        return Err(ApiError::conflict(
            "performance_cancelled",
            "the performance was cancelled",
        ));
    }
    Ok(performance)
}

/// Each seat and place of `hold` with its type: priced by type when the buyer chose types, else
/// at the hold's price (the grades' standard prices), as before ticket types.
fn choose(
    hold: &CheckedOut,
    performance: &store::Performance,
    tickets: &[TicketChoice],
) -> Result<Vec<OrderLine>, ApiError> {
    let graded =
        hold.held_seats.len() == hold.seat_ids.len() && hold.held_areas.len() == hold.areas.len();
    if graded {
        ticket_types::lines(
            &hold.held_seats,
            &hold.held_areas,
            &performance.prices,
            tickets,
        )
        .map_err(choice_refused)
    } else if tickets.is_empty() {
        Ok(Vec::new())
    } else {
        Err(type_unavailable(
            0,
            &tickets[0].ticket_type,
            "the seats' grades are not known yet; order them at the standard type or retry".into(),
        ))
    }
}

async fn make(
    state: &AppState,
    user: &AuthUser,
    bearer: &str,
    body: &CreateBody,
    key: &str,
) -> Result<Response, ApiError> {
    let hold_id = body.hold_id;
    // An unknown type is refused before the seat service hears of the order.
    if body.tickets.len() > MAX_CHOICES {
        return Err(ApiError::validation(vec![FieldError::new(
            "tickets",
            format!("at most {MAX_CHOICES} entries"),
        )]));
    }
    if let Some((index, t)) = ticket_types::unknown_type(&body.tickets) {
        return Err(type_unavailable(
            index,
            &t,
            format!(
                "`{t}` is not a ticket type (adult, youth, child, senior, disabled, national_merit)"
            ),
        ));
    }
    {
        let mut conn = state.pool.acquire().await?;
        if let Some(o) = store::by_hold(&mut conn, hold_id).await? {
            drop(conn);
            return existing(state, user, &o, key).await;
        }
    }
    if !body.tickets.is_empty() {
        // Checked against the hold as it stands before it goes into checkout: a hold in
        // checkout cannot be released by its buyer and lasts until the checkout deadline, so a
        // choice refused after it would leave the seats locked and unsold, and every retry
        // would stretch the checkout again.
        let seen = state
            .seat
            .hold(hold_id, bearer)
            .await
            .map_err(|e| seat_refusal(e, hold_id))?;
        if seen.buyer_id == user.id() && seen.hold_id == hold_id {
            let performance = known_performance(state, seen.performance_id).await?;
            choose(&seen, &performance, &body.tickets)?;
        }
    }
    let hold = state
        .seat
        .checkout(hold_id, bearer)
        .await
        .map_err(|e| seat_refusal(e, hold_id))?;
    if hold.buyer_id != user.id() || hold.hold_id != hold_id {
        // An admin's token checks out anyone's hold; an order is only ever its own buyer's.
        return Err(seat_refusal(
            CheckoutError::Refused {
                status: 404,
                code: String::new(),
                detail: String::new(),
            },
            hold_id,
        ));
    }
    if hold.status != "checkout" {
        return Err(ApiError::conflict(
            "hold_unavailable",
            format!("the hold is {}", hold.status),
        ));
    }
    let performance = known_performance(state, hold.performance_id).await?;
    let tickets =
        hold.seat_ids.len() as i64 + hold.areas.iter().map(|(_, q)| i64::from(*q)).sum::<i64>();
    let lines = choose(&hold, &performance, &body.tickets)?;
    let tickets_krw = if body.tickets.is_empty() {
        hold.amount_krw
    } else {
        ticket_types::total(&lines)
            .ok_or_else(|| ApiError::conflict("hold_unavailable", "the amount overflows"))?
    };
    let price = pricing::price(tickets_krw, tickets, state.config.booking_fee_krw)
        .map_err(|e| ApiError::conflict("hold_unavailable", e.to_string()))?;
    let now = Utc::now();
    let window =
        Duration::milliseconds(i64::try_from(state.config.payment_window_ms).unwrap_or(900_000));
    let margin =
        Duration::milliseconds(i64::try_from(state.config.checkout_margin_ms).unwrap_or(120_000));
    let expires_at = (now + window).min(hold.expires_at - margin);
    if expires_at <= now + Duration::seconds(10) {
        return Err(ApiError::conflict(
            "hold_expiring",
            "the hold's checkout ends too soon to pay for it",
        ));
    }
    let order = Order {
        order_id: Uuid::now_v7(),
        buyer_id: user.id(),
        hold_id,
        performance_id: hold.performance_id,
        seat_ids: hold.seat_ids.clone(),
        areas: hold.areas.clone(),
        ticket_count: i32::try_from(tickets).unwrap_or(i32::MAX),
        tickets_krw: price.tickets_krw,
        booking_fee_krw: price.booking_fee_krw,
        amount_krw: price.total_krw,
        status: OrderStatus::PendingPayment,
        // The event's own policy as last published, else the platform's: frozen from here on.
        policy: performance
            .policy
            .unwrap_or_else(|| state.config.cancellation.clone()),
        starts_at: performance.starts_at,
        expires_at,
        hold_expires_at: hold.expires_at,
        payment_key: None,
        paid_krw: None,
        paid_at: None,
        last_payment_error: None,
        refund_id: None,
        refund_krw: None,
        refund_reason: None,
        refunded_krw: 0,
        created_at: now,
        updated_at: now,
        lines,
    };
    let body =
        serde_json::to_value(view::view(&order, &[], &state.config, now)).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    match state.orders.create(&mut tx, &order).await {
        Ok(()) => {}
        Err(crate::orders::SagaError::Db(sqlx::Error::Database(db)))
            if db.is_unique_violation() =>
        {
            // Another request (another key) ordered the hold first.
            drop(tx);
            let mut conn = state.pool.acquire().await?;
            let o = store::by_hold(&mut conn, hold_id)
                .await?
                .ok_or_else(|| ApiError::internal("order vanished"))?;
            drop(conn);
            return existing(state, user, &o, key).await;
        }
        Err(e) => return Err(ApiError::internal(e)),
    }
    store::finish(&mut tx, user.id(), key, 201, &body).await?;
    tx.commit().await?;
    tracing::info!(order_id = %order.order_id, amount = order.amount_krw, "order created");
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
