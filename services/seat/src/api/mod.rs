//! The seat service's HTTP API: the seat map and its live stream, holds, and the seats an
//! organizer withholds from sale.

use std::sync::Arc;

use axum::{
    Router,
    extract::FromRef,
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use docs::Problem;
use platform::{ApiError, auth::Verifier};
use uuid::Uuid;

use crate::{
    admission_pass::PassVerifier,
    holds::HoldService,
    load::Load,
    map::{PerfMap, registry::SeatMaps},
};

pub mod docs;
mod holds;
mod seats;
mod withheld;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// SeatDB (presale code bindings).
    pub pool: sqlx::PgPool,
    /// This replica's seat maps (the read path).
    pub maps: SeatMaps,
    /// Every hold-store write.
    pub holds: HoldService,
    /// Verifies buyers' access tokens.
    pub verifier: Verifier,
    /// Verifies admission passes.
    pub passes: PassVerifier,
    /// Settings.
    pub config: Arc<crate::Config>,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The routes. The seat map and hold creation — what admitted buyers do — are timed into
/// `load`, which `GET /internal/v1/load` reports (the admission service's automatic mode reads
/// it; the gateway routes nothing under `/internal/`).
pub fn router(state: AppState, load: Load) -> Router {
    let buying = Router::new()
        .route(
            "/api/v1/performances/{performance_id}/seats",
            get(seats::seat_map),
        )
        .route("/api/v1/holds", post(holds::create))
        .route_layer(axum::middleware::from_fn_with_state(
            load.clone(),
            crate::load::track,
        ));
    let internal = Router::new()
        .route("/internal/v1/load", get(crate::load::report))
        .with_state(load);
    Router::new()
        .merge(buying)
        .route(
            "/api/v1/performances/{performance_id}/seats/stream",
            get(seats::stream),
        )
        .route(
            "/api/v1/holds/{hold_id}",
            get(holds::find).delete(holds::release),
        )
        .route("/api/v1/holds/{hold_id}/checkout", post(holds::checkout))
        .route(
            "/api/v1/performances/{performance_id}/seats/withheld",
            get(withheld::list).post(withheld::withhold),
        )
        .route(
            "/api/v1/performances/{performance_id}/seats/withheld/release",
            post(withheld::release),
        )
        .route("/api/docs/seat/openapi.json", get(docs::openapi_json))
        .with_state(state)
        .merge(internal)
}

/// Parses a path id, answering 404 for anything that is not a UUID.
fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no {what} `{raw}`")))
}

/// The map of a published performance, or 404.
async fn map_of(state: &AppState, perf: Uuid) -> Result<Arc<PerfMap>, ApiError> {
    state
        .maps
        .load(perf)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "loading a seat map");
            ApiError::unavailable("seat inventory is unavailable; try again shortly")
        })?
        .ok_or_else(|| ApiError::not_found(format!("no performance `{perf}`")))
}

/// 403 `admission_required` unless the performance has no waiting room or the request carries a
/// valid pass for it (and for `user`, when known).
async fn admitted(
    state: &AppState,
    map: &PerfMap,
    headers: &HeaderMap,
    user: Option<Uuid>,
) -> Result<(), ApiError> {
    if !map.layout().waiting_room {
        return Ok(());
    }
    let perf = map.layout().performance_id;
    let refused = |detail: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "admission_required",
            detail.to_owned(),
        )
    };
    let pass = headers
        .get(contracts::admission::HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            refused("this performance has a waiting room: an admission pass is required")
        })?;
    state
        .passes
        .verify(pass.trim(), perf, user)
        .await
        .map(|_| ())
        .map_err(|e| refused(&e.to_string()))
}
