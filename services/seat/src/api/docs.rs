//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions, served at `GET /api/docs/seat/openapi.json`. The seat map is rendered by hand
//! (`crate::map::render`, pre-serialised bytes shared by every reader), so its shapes are
//! described here and a test renders a real map and checks it against them.

pub use platform::openapi::{Bearer, Problem};

use std::collections::BTreeMap;

use axum::Json;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

/// A seat's status as buyers see it. A seat the organizer withheld from sale shows as `sold`
/// (see [`crate::domain::SeatStatus::shown`]), so the map keeps its three states.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    /// On sale.
    Available,
    /// In someone's hold.
    Held,
    /// Bought, or withheld from sale.
    Sold,
}

/// Seats and places by status.
#[derive(Serialize, ToSchema)]
pub struct StatusCounts {
    available: i64,
    held: i64,
    sold: i64,
}

/// A general-admission (standing) area's places.
#[derive(Serialize, ToSchema)]
pub struct AreaCounts {
    area_id: String,
    /// Absent in stream deltas.
    grade: Option<String>,
    capacity: i64,
    held: i64,
    sold: i64,
    available: i64,
}

/// One seat of the plain seat map.
#[derive(Serialize, ToSchema)]
pub struct MapSeat {
    id: String,
    status: SeatStatus,
    grade: String,
    section: String,
    row: String,
    number: i64,
    wheelchair: bool,
    /// A table seat's table (the id of its first seat): a hold takes the table whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    /// A companion seat's wheelchair seat: a hold takes the companion only with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    companion_of: Option<String>,
}

/// The seat map of a performance. Plain (`format=json`, the default): `seats` lists every seat
/// by id. Compact (`format=compact`): `format` is `compact` and `status` holds one letter per
/// seat (`a`vailable, `h`eld, `s`old) in the plain map's seat order for this `revision`.
#[derive(Serialize, ToSchema)]
pub struct SeatMap {
    performance_id: Uuid,
    /// The venue layout's revision: seat order and places are fixed within it.
    revision: i64,
    /// The store's epoch of the performance; versions count within it.
    epoch: String,
    version: u64,
    /// Available seats and places by grade.
    remaining: BTreeMap<String, i64>,
    counts: StatusCounts,
    counts_by_grade: BTreeMap<String, StatusCounts>,
    areas: Vec<AreaCounts>,
    /// Plain only.
    seats: Option<Vec<MapSeat>>,
    /// Compact only: `compact`.
    format: Option<String>,
    /// Compact only: one letter per seat.
    status: Option<String>,
}

/// A seat's new status in a stream delta.
#[derive(Serialize, ToSchema)]
pub struct SeatChange {
    id: String,
    status: SeatStatus,
}

/// The data of a stream `delta` event: every seat and area changed in versions `from..=version`,
/// each with its latest state. (A `snapshot` event's data is a compact [`SeatMap`].)
#[derive(Serialize, ToSchema)]
pub struct SeatDelta {
    from: u64,
    version: u64,
    seats: Vec<SeatChange>,
    areas: Vec<AreaCounts>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice seat service",
        description = "Seat maps with live updates, and holds: chosen seats, best available or \
                       general-admission places, all or none, until they expire or an order \
                       takes them into checkout."
    ),
    paths(
        super::seats::seat_map, super::seats::stream, super::holds::create, super::holds::find,
        super::holds::release, super::holds::checkout, super::withheld::list,
        super::withheld::withhold, super::withheld::release,
    ),
    components(schemas(
        Problem, SeatMap, MapSeat, StatusCounts, AreaCounts, SeatDelta, SeatChange, SeatStatus,
        super::holds::HoldBody, super::holds::HoldView, super::holds::HoldCreated,
        super::holds::AreaHeld, super::holds::SeatHeld, crate::store::HoldStatus,
        super::withheld::WithholdBody, super::withheld::ReleaseBody,
        super::withheld::WithheldView, super::withheld::WithheldSeatView,
        crate::holds::withheld::WithholdReason,
    )),
    modifiers(&Bearer),
    tags(
        (name = "seats", description = "Seat maps and their live stream"),
        (name = "holds", description = "Holding seats until checkout"),
    ),
)]
struct ApiDoc;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/docs/seat/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
