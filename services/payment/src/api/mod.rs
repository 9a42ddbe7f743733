//! The payment service's HTTP API: the buyer's confirm and payment lookup, and the PG's
//! webhook.

mod confirm;
pub mod docs;
pub mod view;
mod webhook;

use std::sync::Arc;

use axum::{
    Router,
    extract::FromRef,
    routing::{get, post},
};
use platform::auth::Verifier;

pub use view::PaymentView;

use crate::payments::Payments;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Every payment write.
    pub payments: Payments,
    /// Verifies buyers' access tokens.
    pub verifier: Verifier,
    /// Webhook lookups at the PG that may run at once (`payment.webhook_max_in_flight`).
    pub webhook_slots: Arc<tokio::sync::Semaphore>,
    /// At most one webhook lookup per payment this often, ms (`payment.webhook_min_interval_ms`).
    pub webhook_min_interval_ms: u64,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/payments/confirm", post(confirm::confirm))
        .route("/api/v1/payments/webhooks/toss", post(webhook::toss))
        .route("/api/v1/payments/{order_id}", get(confirm::find))
        .route("/api/docs/payment/openapi.json", get(docs::openapi_json))
        .with_state(state)
}
