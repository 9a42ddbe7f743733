//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions: [`openapi`] for the gateway to aggregate, and served at
//! `GET /api/docs/payment/openapi.json`.

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
    /// The stable machine-readable code, e.g. `amount_mismatch`.
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
        title = "Boxoffice payment service",
        description = "Confirms payments at the PG (Toss Payments style), reports them, and \
                       takes the PG's status notices."
    ),
    paths(super::confirm::confirm, super::confirm::find, super::webhook::toss),
    components(schemas(Problem, super::PaymentView, super::view::Failure, crate::domain::PaymentStatus)),
    modifiers(&Bearer),
    tags((name = "payments", description = "Payments and the PG's webhooks")),
)]
struct ApiDoc;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/docs/payment/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
