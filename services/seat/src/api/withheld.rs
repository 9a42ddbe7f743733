//! `GET|POST /api/v1/performances/{performance_id}/seats/withheld` and
//! `POST .../seats/withheld/release`: the seats the organizer holds back from sale (season tickets,
//! club, media, obstructed view) and puts back on sale later. Only the performance's organizer
//! (from its publication) and administrators; under `seats/` so the gateway routes it here.

use std::collections::HashSet;

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    auth::{AuthUser, Role},
    problem::{ApiJson, FieldError},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppState, Problem, map_of, parse_id};
use crate::{
    db,
    holds::withheld::{WithholdError, WithholdReason},
    store::StoreError,
};

/// Most seats one request withholds or releases (a stadium's season-ticket block takes a few
/// requests; each is one store step over every seat it names).
pub const MAX_SEATS_PER_REQUEST: usize = 1000;

/// The body of `POST .../seats/withheld`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithholdBody {
    /// The seats to withhold (1 to 1,000, each once), all or none.
    seat_ids: Vec<String>,
    /// `season_ticket`, `club`, `media`, `obstructed` or `other`.
    reason: String,
}

/// The body of `POST .../seats/withheld/release`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The seats to put back on sale (1 to 1,000, each once); seats not withheld are left as
    /// they are.
    seat_ids: Vec<String>,
}

/// One withheld seat.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WithheldSeatView {
    seat_id: String,
    reason: WithholdReason,
    withheld_by: Uuid,
    withheld_at: DateTime<Utc>,
}

/// Every seat of a performance withheld from sale.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WithheldView {
    performance_id: Uuid,
    /// By seat id.
    seats: Vec<WithheldSeatView>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, message)])
}

fn db_down(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "seat database failed");
    ApiError::unavailable("the seat database is unavailable; try again shortly")
}

/// The performance `raw` names, when `user` may manage it: an organizer the performances of
/// the events they own, an administrator any (403 `forbidden` otherwise, as for waiting rooms;
/// 404 when never published).
async fn manageable(state: &AppState, user: &AuthUser, raw: &str) -> Result<Uuid, ApiError> {
    user.require(Role::Organizer)?;
    let perf = parse_id(raw, "performance")?;
    let organizer = db::organizer_of(&state.pool, perf)
        .await
        .map_err(db_down)?
        .ok_or_else(|| ApiError::not_found(format!("no performance `{perf}`")))?;
    if user.0.has(Role::Admin) || organizer == Some(user.id()) {
        Ok(perf)
    } else {
        Err(ApiError::forbidden(
            "only the performance's organizer or an administrator may withhold its seats",
        ))
    }
}

/// Checks `seats` against the performance's layout: 1 to [`MAX_SEATS_PER_REQUEST`], each
/// once, each a seat of the venue.
async fn checked_seats(state: &AppState, perf: Uuid, seats: &[String]) -> Result<(), ApiError> {
    if seats.is_empty() || seats.len() > MAX_SEATS_PER_REQUEST {
        return Err(invalid(
            "seat_ids",
            format!("give between 1 and {MAX_SEATS_PER_REQUEST} seats"),
        ));
    }
    let mut seen = HashSet::new();
    let twice: Vec<&String> = seats.iter().filter(|s| !seen.insert(*s)).collect();
    if !twice.is_empty() {
        return Err(invalid("seat_ids", format!("listed twice: {twice:?}")));
    }
    let layout = map_of(state, perf).await?.layout();
    let unknown: Vec<&String> = seats.iter().filter(|s| layout.seat(s).is_none()).collect();
    if !unknown.is_empty() {
        return Err(invalid("seat_ids", format!("no such seats: {unknown:?}")));
    }
    Ok(())
}

fn refused(e: WithholdError) -> ApiError {
    match e {
        WithholdError::Store(StoreError::Unavailable { seat_ids, .. }) => ApiError::conflict(
            "seat_unavailable",
            "some of the seats are held or sold; nothing was withheld",
        )
        .with("seat_ids", seat_ids),
        WithholdError::Store(StoreError::UnknownPerformance) => {
            ApiError::not_found("the performance is not in the hold store")
        }
        WithholdError::Store(e) => {
            tracing::error!(error = %e, "hold store failed");
            ApiError::unavailable("the hold store is unavailable; try again shortly")
        }
        WithholdError::Db(e) => db_down(e),
    }
}

async fn view(state: &AppState, perf: Uuid) -> Result<WithheldView, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(db_down)?;
    let rows = db::withheld_of(&mut conn, perf).await.map_err(db_down)?;
    Ok(WithheldView {
        performance_id: perf,
        seats: rows
            .into_iter()
            .map(|w| WithheldSeatView {
                reason: WithholdReason::parse(&w.reason).unwrap_or(WithholdReason::Other),
                seat_id: w.seat_id,
                withheld_by: w.withheld_by,
                withheld_at: w.withheld_at,
            })
            .collect(),
    })
}

/// `GET /api/v1/performances/{performance_id}/seats/withheld`.
#[utoipa::path(
    get,
    operation_id = "list_withheld",
    path = "/api/v1/performances/{performance_id}/seats/withheld",
    tag = "seats",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "Every seat withheld from sale, with its reason", body = WithheldView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<axum::Json<WithheldView>, ApiError> {
    let perf = manageable(&state, &user, &raw).await?;
    Ok(axum::Json(view(&state, perf).await?))
}

/// `POST /api/v1/performances/{performance_id}/seats/withheld`: withholds the seats from sale,
/// all or none, in one hold-store step (buyers see them as sold; no hold can take them).
#[utoipa::path(
    post,
    operation_id = "withhold_seats",
    path = "/api/v1/performances/{performance_id}/seats/withheld",
    tag = "seats",
    params(("performance_id" = String, Path, description = "The performance")),
    request_body = WithholdBody,
    responses(
        (status = 200, description = "Withheld (seats withheld already take the new reason): every seat withheld now", body = WithheldView),
        (status = 400, description = "`validation_failed`: no seats, more than 1,000, a seat listed twice or not of the venue, an unknown reason, an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`seat_unavailable` (with `seat_ids`: the seats held or sold; nothing was withheld)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn withhold(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<WithholdBody>,
) -> Result<axum::Json<WithheldView>, ApiError> {
    let perf = manageable(&state, &user, &raw).await?;
    let reason = WithholdReason::parse(&body.reason).ok_or_else(|| {
        let codes: Vec<&str> = WithholdReason::ALL.iter().map(|r| r.as_str()).collect();
        invalid("reason", format!("one of {codes:?}"))
    })?;
    checked_seats(&state, perf, &body.seat_ids).await?;
    state
        .holds
        .withhold(&state.pool, perf, &body.seat_ids, reason, user.id())
        .await
        .map_err(refused)?;
    Ok(axum::Json(view(&state, perf).await?))
}

/// `POST /api/v1/performances/{performance_id}/seats/withheld/release`: puts the seats back on
/// sale, in one hold-store step.
#[utoipa::path(
    post,
    operation_id = "release_withheld",
    path = "/api/v1/performances/{performance_id}/seats/withheld/release",
    tag = "seats",
    params(("performance_id" = String, Path, description = "The performance")),
    request_body = ReleaseBody,
    responses(
        (status = 200, description = "Back on sale (seats not withheld are left as they are): every seat still withheld", body = WithheldView),
        (status = 400, description = "`validation_failed`: no seats, more than 1,000, a seat listed twice or not of the venue, an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn release(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<axum::Json<WithheldView>, ApiError> {
    let perf = manageable(&state, &user, &raw).await?;
    checked_seats(&state, perf, &body.seat_ids).await?;
    state
        .holds
        .release_withheld(&state.pool, perf, &body.seat_ids)
        .await
        .map_err(refused)?;
    Ok(axum::Json(view(&state, perf).await?))
}
