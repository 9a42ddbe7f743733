//! `POST /api/v1/payments/webhooks/toss`: the PG's `PAYMENT_STATUS_CHANGED` notices. Toss does
//! not sign them, so a notice is only a hint: the payment it names is read back from the PG
//! (authenticated with our secret key) and the PG's answer applied, as the reconciler would.
//! Duplicates and out-of-order notices change nothing; a forged one changes nothing either.
//! Being unsigned, a flood of them must not cost a PG lookup each: at most one lookup per
//! payment per `payment.webhook_min_interval_ms` (across replicas; notices meanwhile are
//! answered 200 and dropped: the settler still settles open payments) and at most
//! `payment.webhook_max_in_flight` webhook lookups at once (more: 503 `webhooks_busy`). A notice
//! of a payment already settled (approved, refunded, flagged) costs no lookup at all; one of a
//! payment whose confirm is still waiting for the PG first waits for that confirm's outcome (it
//! usually is the approval, and costs no lookup either). 200 tells
//! the PG to stop; 503 (the PG could not be asked) to retry.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use platform::{ApiError, problem::ApiJson};
use serde_json::{Value, json};
use std::time::Duration;

use uuid::Uuid;

use super::{AppState, docs::Problem};
use crate::{
    domain::PaymentStatus,
    payments::{Lookup, Settled},
};

/// Longest a notice waits for the confirm in flight: under the 10 s the PG gives our answer.
const WEBHOOK_WAIT: Duration = Duration::from_secs(8);

/// The payment of `order_id`, read now.
async fn read(
    state: &AppState,
    order_id: Uuid,
) -> Result<Option<crate::domain::Payment>, ApiError> {
    let mut conn = state.payments.pool().acquire().await?;
    Ok(crate::store::payment(&mut conn, order_id).await?)
}

/// `POST /api/v1/payments/webhooks/toss`.
#[utoipa::path(
    post,
    path = "/api/v1/payments/webhooks/toss",
    tag = "payments",
    request_body(content = Object, description = "Toss's `{eventType, createdAt, data}`; \
                 unsigned, so only a hint: the payment is read back from the PG"),
    responses(
        (status = 200, description = "`{result: applied | ignored | undecided}`: delivered", body = Object),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`pg_unavailable`: the PG could not be asked; `webhooks_busy`: \
                        too many webhook lookups at once. Deliver again",
         body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn toss(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let ignored = |why: &str| -> Result<(StatusCode, Json<Value>), ApiError> {
        Ok((
            StatusCode::OK,
            Json(json!({"result": "ignored", "reason": why})),
        ))
    };
    let event_type = body
        .get("eventType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if event_type != "PAYMENT_STATUS_CHANGED" {
        return ignored("not a payment status change");
    }
    let data = body.get("data").unwrap_or(&Value::Null);
    let Some(order_id) = data
        .get("orderId")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return ignored("not one of our orders");
    };
    let payment_key = data.get("paymentKey").and_then(Value::as_str);
    // A confirm waiting for the PG's answer applies that answer itself, and the PG notices the
    // change as it answers: nearly every approval brings one of these along while its confirm
    // is still on the way back. Read back now, it would cost a PG lookup for nothing. So the
    // notice waits for that confirm to write its outcome (up to the PG timeout, within the
    // PG's 10 s for our answer): an approval then costs nothing more; a confirm that timed out
    // (`unknown`) is read back as before. Subscribed before the first look: an outcome written
    // between the look and the wait is not missed.
    let mut change = state
        .payments
        .wakeups()
        .map(|w| w.subscribe(&crate::payments::change_key(order_id)));
    let mut payment = match read(&state, order_id).await? {
        Some(p) if payment_key.is_none_or(|k| k == p.payment_key) => p,
        _ => return ignored("no such payment here"),
    };
    if payment.status == PaymentStatus::Confirming
        && let Some(change) = change.as_mut()
    {
        let wait = (state.payments.pg_timeout() + Duration::from_secs(1)).min(WEBHOOK_WAIT);
        change.wait(wait).await;
        if let Some(p) = read(&state, order_id).await? {
            payment = p;
        }
    }
    drop(change);
    // Only an open or failed payment has anything to learn from the PG (a failed one may be
    // charged late); the others are answered as they are, at no PG call.
    let lookup = payment.status.is_open() || payment.status == PaymentStatus::Failed;
    // The debounce first (a flood of one payment's notices is dropped with 200), then the bound
    // on lookups at once (what is left of a flood across payments: 503, delivered again later).
    let _slot = if lookup {
        if !crate::store::claim_webhook_lookup(
            state.payments.pool(),
            order_id,
            &payment.payment_key,
            state.webhook_min_interval_ms,
        )
        .await?
        {
            metrics::counter!("boxoffice_payment_webhooks_total", "result" => "debounced")
                .increment(1);
            return Ok((
                StatusCode::OK,
                Json(json!({
                    "result": "ignored",
                    "reason": "the payment was read back from the PG moments ago",
                    "status": payment.status,
                })),
            ));
        }
        let Ok(slot) = state.webhook_slots.clone().try_acquire_owned() else {
            metrics::counter!("boxoffice_payment_webhooks_total", "result" => "busy").increment(1);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhooks_busy",
                "too many webhooks are being read back from the PG; deliver again later",
            )
            .with("retry_after_secs", 5));
        };
        Some(slot)
    } else {
        None
    };
    metrics::counter!("boxoffice_payment_webhooks_total", "result" => "read_back").increment(1);
    match state.payments.settle(order_id, Lookup::ByKey).await? {
        Settled::Payment(p) => Ok((
            StatusCode::OK,
            Json(json!({"result": "applied", "status": p.status})),
        )),
        Settled::NoPayment => ignored("no such payment here"),
        Settled::Undecided(why) => Ok((
            StatusCode::OK,
            Json(json!({"result": "undecided", "reason": why})),
        )),
        Settled::Unreachable(why) => {
            tracing::warn!(%order_id, reason = %why, "webhook not applied: the PG could not be asked");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pg_unavailable",
                "the payment could not be read back from the PG; deliver again later",
            ))
        }
    }
}
