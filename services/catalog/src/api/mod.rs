//! The catalog's HTTP API: public browsing (`/api/v1/events`, `/api/v1/venues`) and the
//! role-checked organizer/admin API under `/api/v1/admin`.

mod admin;
mod cache;
pub mod docs;
mod inputs;
mod permissions;
mod public;
mod sales;

use axum::{
    Router,
    extract::FromRef,
    routing::{delete, get, patch, post, put},
};
use platform::{
    ApiError,
    auth::{AuthUser, Role, Verifier},
    problem::{FieldError, not_found_fallback},
};
use sqlx::PgPool;
use uuid::Uuid;

pub use cache::ResponseCache;
pub use docs::openapi;

use crate::{clock::Clock, publish::PublishError};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// ProductDB.
    pub pool: PgPool,
    /// Verifies access tokens.
    pub verifier: Verifier,
    /// Recently answered listings.
    pub cache: ResponseCache,
    /// The clock sale statuses and the listing's filters are computed at (real unless a test
    /// pins it).
    pub clock: Clock,
}

impl AppState {
    /// State over `pool` trusting `verifier`, with an empty listing cache.
    pub fn new(pool: PgPool, verifier: Verifier) -> Self {
        Self {
            pool,
            verifier,
            cache: ResponseCache::default(),
            clock: Clock::real(),
        }
    }

    /// The same state reading `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// Every route of the catalog.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/events", get(public::list_events))
        .route("/api/v1/events/{event_id}", get(public::event_detail))
        .route("/api/v1/venues", get(public::list_venues))
        .route("/api/v1/venues/{venue_id}", get(public::venue_detail))
        .route("/api/v1/admin/venues", post(admin::create_venue))
        .route(
            "/api/v1/admin/venues/{venue_id}",
            patch(admin::update_venue),
        )
        .route(
            "/api/v1/admin/venues/{venue_id}/organizers",
            get(permissions::venue_grants),
        )
        .route(
            "/api/v1/admin/venues/{venue_id}/organizers/{organizer_id}",
            put(permissions::grant_venue).delete(permissions::revoke_venue),
        )
        .route(
            "/api/v1/admin/teams/{team}/organizers",
            get(permissions::team_accounts),
        )
        .route(
            "/api/v1/admin/teams/{team}/organizers/{organizer_id}",
            put(permissions::grant_team).delete(permissions::revoke_team),
        )
        .route("/api/v1/admin/audit", get(permissions::audit_log))
        .route("/api/v1/admin/events", post(admin::create_event))
        .route(
            "/api/v1/admin/events/{event_id}",
            get(admin::event_detail).patch(admin::update_event),
        )
        .route(
            "/api/v1/admin/events/{event_id}/performances",
            post(admin::add_performance),
        )
        .route(
            "/api/v1/admin/performances/{performance_id}",
            patch(admin::update_performance),
        )
        .route(
            "/api/v1/admin/performances/{performance_id}/publish",
            post(admin::publish),
        )
        .route(
            "/api/v1/admin/performances/{performance_id}/cancel",
            post(admin::cancel),
        )
        .route(
            "/api/v1/admin/events/{event_id}/ticket-prices",
            put(sales::set_ticket_prices),
        )
        .route("/api/v1/admin/member-groups", post(sales::create_group))
        .route(
            "/api/v1/admin/member-groups/{group_id}/members",
            post(sales::add_members),
        )
        .route(
            "/api/v1/admin/member-groups/{group_id}/members/{account_id}",
            delete(sales::remove_member),
        )
        .route(
            "/api/v1/admin/performances/{performance_id}/presale",
            put(sales::set_presale).delete(sales::delete_presale),
        )
        .route(
            "/api/v1/admin/performances/{performance_id}/presale/codes",
            post(sales::generate_codes),
        )
        .route("/api/docs/catalog/openapi.json", get(docs::openapi_json))
        .fallback(not_found_fallback)
        .with_state(state)
}

/// Parses a path id, answering 400 `validation_failed` naming the parameter when it is not a UUID.
fn parse_id(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::validation(vec![FieldError::new(field, "must be a UUID")]))
}

/// Checks that `user` may change something created by `owner`: admins may change anything,
/// organizers what they created.
fn authorize(user: &AuthUser, owner: Option<Uuid>) -> Result<(), ApiError> {
    user.require(Role::Organizer)?;
    if user.0.has(Role::Admin) || owner == Some(user.id()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only its organizer or an admin may change this",
        ))
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::MissingPrices(grades) => ApiError::validation(
                grades
                    .iter()
                    .map(|g| FieldError::new("price_tiers", format!("grade `{g}` has no price")))
                    .collect(),
            ),
            PublishError::Db(e) => e.into(),
            PublishError::Bus(e) => ApiError::internal(e),
        }
    }
}
