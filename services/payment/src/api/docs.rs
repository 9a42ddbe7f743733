//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions: [`openapi`] for the gateway to aggregate, and served at
//! `GET /api/docs/payment/openapi.json`.

pub use platform::openapi::{Bearer, Problem};

use axum::Json;
use utoipa::OpenApi;

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
