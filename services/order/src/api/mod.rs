//! The order service's HTTP API: orders (create, read, cancel, the buyer's list) and tickets
//! (read with the current entry code, the gate's check, the gate's offline key).

use std::sync::Arc;

use axum::{
    Router,
    extract::FromRef,
    routing::{get, post},
};
use platform::{ApiError, auth::Verifier};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Config, orders::Orders, seat_client::SeatClient};

mod cancel;
mod create;
pub mod docs;
mod tickets;
pub mod view;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// OrderDB.
    pub pool: PgPool,
    /// Every order write.
    pub orders: Orders,
    /// Verifies buyers' access tokens.
    pub verifier: Verifier,
    /// The seat service.
    pub seat: SeatClient,
    /// Settings.
    pub config: Arc<Config>,
    /// Orders whose status changed ([`crate::store::STATUS_CHANNEL`]), for the buyers waiting.
    pub status_changes: platform::wakeups::Wakeups,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/orders", post(create::create))
        .route("/api/v1/orders/{order_id}", get(view::find))
        .route("/api/v1/orders/{order_id}/cancel", post(cancel::cancel))
        .route("/api/v1/me/orders", get(view::mine))
        .route("/api/v1/tickets/verify", post(tickets::verify))
        .route(
            "/api/v1/tickets/gate-keys/{performance_id}",
            get(tickets::gate_key),
        )
        .route("/api/v1/tickets/{ticket_id}", get(tickets::find))
        .route("/api/v1/tickets/{ticket_id}/qr.svg", get(tickets::qr_svg))
        .route("/api/docs/order/openapi.json", get(docs::openapi_json))
        .with_state(state)
}

/// A path id, 404 for anything that is not a UUID.
fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no {what} `{raw}`")))
}
