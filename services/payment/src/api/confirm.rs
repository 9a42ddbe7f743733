//! `POST /api/v1/payments/confirm` (the Toss Payments confirm flow: the checkout's success
//! redirect carried `paymentKey`, `orderId` and `amount`; the buyer's client sends them here)
//! and `GET /api/v1/payments/{order_id}`.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{
    ApiError,
    auth::AuthUser,
    problem::{ApiJson, ApiPath, FieldError},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{AppState, PaymentView, docs::Problem};
use crate::{
    domain::{Payment, PaymentStatus},
    payments::{ConfirmError, ConfirmRequest},
};

/// Longest `Idempotency-Key` (Toss's limit).
const MAX_KEY_LEN: usize = 300;
/// Longest payment key we pass on to the PG.
const MAX_PAYMENT_KEY_LEN: usize = 200;

/// The body of `POST /api/v1/payments/confirm`: what the PG's success redirect carried.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The PG's `paymentKey`.
    payment_key: String,
    /// The order (the PG's `orderId`).
    #[schema(format = "uuid")]
    order_id: String,
    /// The PG's `amount`, KRW: refused (`amount_mismatch`) unless it is the order's.
    amount: i64,
}

fn retry_after(e: ApiError, secs: u64) -> ApiError {
    e.with("retry_after_secs", secs)
}

impl From<ConfirmError> for ApiError {
    fn from(e: ConfirmError) -> Self {
        match e {
            ConfirmError::OrderNotReady => retry_after(
                ApiError::conflict(
                    "order_not_ready",
                    "the order is not known to payments yet; try again in a moment",
                ),
                1,
            ),
            ConfirmError::NotFound => ApiError::not_found("no such order"),
            ConfirmError::AmountMismatch => ApiError::new(
                StatusCode::BAD_REQUEST,
                "amount_mismatch",
                "the amount is not the order's; nothing was charged",
            ),
            ConfirmError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request",
            ),
            ConfirmError::OrderCancelled => ApiError::conflict(
                "order_cancelled",
                "the order was cancelled; nothing was charged",
            ),
            ConfirmError::OrderExpired => ApiError::conflict(
                "order_expired",
                "the order expired unpaid; nothing was charged",
            ),
            ConfirmError::OtherPayment => ApiError::conflict(
                "payment_exists",
                "the order is paid, or being paid, with another payment key",
            ),
            ConfirmError::InProgress => retry_after(
                ApiError::conflict(
                    "confirm_in_progress",
                    "a confirm of this order is waiting for the payment gateway; try again shortly",
                ),
                1,
            ),
            ConfirmError::PgUnavailable(why) => {
                tracing::warn!(reason = why, "confirm refused: PG unavailable");
                retry_after(
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "pg_unavailable",
                        "the payment gateway is unavailable; nothing was charged, try again shortly",
                    ),
                    2,
                )
            }
            ConfirmError::PgMisconfigured => misconfigured(),
            ConfirmError::PgOff => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pg_not_configured",
                "payments are not configured on this platform",
            ),
            ConfirmError::Db(e) => e.into(),
        }
    }
}

/// 503 `pg_misconfigured`: the PG refuses our secret key. Not the buyer's fault, and not an
/// outage: an operator must fix `payment.pg.secret_key`. Nothing was charged.
fn misconfigured() -> ApiError {
    tracing::error!("confirm refused: the PG refuses our secret key (payment.pg.secret_key)");
    retry_after(
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pg_misconfigured",
            "payments are misconfigured on this platform; nothing was charged, try again later",
        ),
        30,
    )
}

fn invalid(field: &str, message: &str) -> FieldError {
    FieldError::new(field, message)
}

/// A payment key as the PG issues them: visible ASCII letters, digits, `-`, `_`, `.`.
fn valid_payment_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_PAYMENT_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let refused = |detail: &str| ApiError::bad_request(detail.to_owned());
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
        .map_err(|_| refused("the Idempotency-Key must be visible ASCII"))?
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

/// The answer for a payment: 200 once the PG decided, 202 while it has not (poll
/// `GET /api/v1/payments/{order_id}`), 402 `payment_declined` when it refused.
fn answer(p: &Payment) -> Response {
    let view = PaymentView::from(p);
    match p.status {
        PaymentStatus::Confirming | PaymentStatus::Unknown => {
            let mut r = (StatusCode::ACCEPTED, Json(view)).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            r
        }
        PaymentStatus::Failed if p.misconfigured_failure() => misconfigured().into_response(),
        PaymentStatus::Flagged => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "payment_under_review",
            "the payment gateway's answer did not match this order: the payment is not \
             confirmed and is being reviewed; do not pay again",
        )
        .with("payment", view)
        .into_response(),
        PaymentStatus::Failed => {
            let (code, message) = p.failure.clone().unwrap_or_default();
            ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment_declined",
                format!("the payment was not completed: {message}"),
            )
            .with("pg_code", code)
            .with("payment", view)
            .into_response()
        }
        _ => (StatusCode::OK, Json(view)).into_response(),
    }
}

/// `POST /api/v1/payments/confirm`.
#[utoipa::path(
    post,
    path = "/api/v1/payments/confirm",
    tag = "payments",
    request_body = ConfirmBody,
    params(
        ("Idempotency-Key" = String, Header,
         description = "1 to 300 visible ASCII characters; a retry with the same key and body \
                        gets the first result, with another body 422 `idempotency_key_reused`"),
    ),
    responses(
        (status = 200, description = "Approved (or since refunded)", body = PaymentView),
        (status = 202, description = "The PG's answer is not known yet (`unknown`): poll \
                        `GET /api/v1/payments/{order_id}`; never assumed failed", body = PaymentView),
        (status = 400, description = "`validation_failed`, `amount_mismatch` (nothing charged), \
                        `idempotency_key_required`, `invalid_idempotency_key`",
         body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`payment_declined` (with `pg_code` and `payment`)",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such order of the caller's",
         body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`order_not_ready` (retry), `confirm_in_progress` (retry), \
                        `payment_exists`, `order_cancelled`, `order_expired`",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`payment_under_review` (with `payment`): the PG's answer \
                        named another order, payment or amount; nothing is confirmed, an operator reviews it",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`pg_unavailable` (nothing charged; retry), `pg_misconfigured` \
                        (the PG refuses our secret key; nothing charged), `pg_not_configured`",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all, fields(order_id = %body.order_id))]
pub async fn confirm(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let mut errors = Vec::new();
    let order_id = Uuid::parse_str(&body.order_id).ok();
    if order_id.is_none() {
        errors.push(invalid("order_id", "must be an order id"));
    }
    if !valid_payment_key(&body.payment_key) {
        errors.push(invalid(
            "payment_key",
            "must be 1 to 200 letters, digits, '-', '_' or '.'",
        ));
    }
    if body.amount <= 0 {
        errors.push(invalid("amount", "must be above 0"));
    }
    let Some(order_id) = order_id.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let request = ConfirmRequest {
        buyer_id: user.id(),
        idempotency_key: key,
        payment_key: body.payment_key,
        order_id,
        amount_krw: body.amount,
    };
    let payment = state.payments.confirm(&request).await?;
    Ok(answer(&payment))
}

/// `GET /api/v1/payments/{order_id}`: the buyer's own payment of an order.
#[utoipa::path(
    get,
    path = "/api/v1/payments/{order_id}",
    tag = "payments",
    params(("order_id" = String, Path, description = "The order")),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no payment of the caller's for the order",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn find(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let order_id = Uuid::parse_str(&order_id)
        .map_err(|_| ApiError::not_found(format!("no payment for order `{order_id}`")))?;
    let payment = state
        .payments
        .find(user.id(), order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no payment for order `{order_id}`")))?;
    Ok(Json(PaymentView::from(&payment)))
}
