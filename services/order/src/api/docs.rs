//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions, served at `GET /api/docs/order/openapi.json`.

pub use platform::openapi::{Bearer, Problem};

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice order service",
        description = "Orders from holds, their payment saga, cancellation under the frozen policy, \
                       tickets with rotating offline-verifiable codes."
    ),
    paths(
        super::create::create, super::view::find, super::view::mine, super::cancel::cancel,
        super::tickets::find, super::tickets::qr_svg, super::tickets::verify, super::tickets::gate_key,
    ),
    components(schemas(
        Problem, super::view::OrderView, super::view::TicketSummary, super::view::OrderList,
        super::create::CreateBody, super::tickets::TicketView, super::tickets::VerifyBody,
        super::tickets::Admitted, super::tickets::GateKey, crate::domain::status::OrderStatus,
        crate::domain::ticket_types::OrderLine, crate::domain::ticket_types::TicketChoice,
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
