//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions, served at `GET /api/docs/order/openapi.json`.

use axum::Json;
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

/// An RFC 9457 problem, as every error is answered (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `https://boxoffice.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable machine-readable code, e.g. `hold_expired`.
    pub code: String,
    /// What happened, for people.
    pub detail: String,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice order service",
        description = "Orders from holds, their payment saga, cancellation under the frozen policy, \
                       tickets with rotating offline-verifiable codes."
    ),
    paths(
        super::create::create, super::view::find, super::view::mine, super::cancel::cancel,
        super::tickets::find, super::tickets::verify, super::tickets::gate_key,
    ),
    components(schemas(
        Problem, super::view::OrderView, super::view::TicketSummary, super::view::OrderList,
        super::create::CreateBody, super::tickets::TicketView, super::tickets::VerifyBody,
        super::tickets::Admitted, super::tickets::GateKey, crate::domain::status::OrderStatus,
    )),
    modifiers(&Bearer),
    tags((name = "orders", description = "Orders"), (name = "tickets", description = "Tickets and the gate")),
)]
struct ApiDoc;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/docs/order/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
