//! `POST /api/v1/orders/{order_id}/cancel`: the buyer cancels under the order's frozen policy.

use axum::{Json, extract::State};
use chrono::Utc;
use platform::{ApiError, auth::AuthUser, problem::ApiPath};

use super::{AppState, docs::Problem, parse_id, view};
use crate::orders::CancelError;

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound => ApiError::not_found("no such order"),
            CancelError::Closed(at) => {
                ApiError::conflict("cancellation_closed", format!("cancelling closed at {at}"))
                    .with("closed_at", at)
            }
            CancelError::NotCancellable(s) => ApiError::conflict(
                "not_cancellable",
                format!("an order that is {s} cannot be cancelled"),
            ),
            CancelError::Saga(e) => ApiError::internal(e),
        }
    }
}

/// `POST /api/v1/orders/{order_id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{order_id}/cancel",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order")),
    responses(
        (status = 200, description = "Cancelled: unpaid → `cancelled`; paid → `refunding` (the refund per the \
                        frozen policy is asked for, the seats go back on sale) then `refunded`. Repeating it \
                        answers the order as it is.", body = view::OrderView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cancellation_closed` (past the cut-off), `not_cancellable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<view::OrderView>, ApiError> {
    let id = parse_id(&raw, "order")?;
    let mut tx = state.pool.begin().await?;
    let o = state
        .orders
        .cancel(&mut tx, id, user.id(), Utc::now())
        .await?;
    tx.commit().await?;
    Ok(Json(view::load(&state, &o).await?))
}
