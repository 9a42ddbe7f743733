//! The shapes the catalog answers with (snake_case JSON, UTC times, integer KRW).

use chrono::{DateTime, Utc};
use contracts::policy::CancellationPolicy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{EventKind, SaleStatus, VenueKind};

/// A venue in a list.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VenueSummary {
    /// Venue id.
    pub id: Uuid,
    /// Name (Korean or local).
    pub name: String,
    /// English name.
    pub name_en: String,
    /// `stadium`, `arena`, `concert_hall`, `theatre`, `museum`, `other`.
    #[schema(value_type = VenueKind)]
    pub kind: String,
    /// City.
    pub city: String,
    /// Seats plus general-admission places.
    pub capacity: i32,
}

/// A seat grade (zone) of a venue.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Grade {
    /// Code, e.g. `blue`.
    pub code: String,
    /// Name, e.g. `블루석`.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Colour the UI paints the grade with.
    pub color: String,
    /// Lower is closer to the field or stage.
    pub rank: i32,
}

/// One seat of the layout.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatView {
    /// Seat id, stable within the venue.
    pub id: String,
    /// Number within the row.
    pub number: i32,
    /// Plan x coordinate.
    pub x: f32,
    /// Plan y coordinate.
    pub y: f32,
    /// Wheelchair-accessible.
    pub wheelchair: bool,
    /// For a table seat (테이블석), the table's id (its first seat's): its seats are sold
    /// together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// For a companion seat (동반석), the id of the wheelchair seat it is sold with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companion_of: Option<String>,
}

/// One row of an area.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowView {
    /// Row label.
    pub label: String,
    /// Its seats in number order.
    pub seats: Vec<SeatView>,
}

/// An area (section) with its geometry, and its rows when seated.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AreaView {
    /// Area code, e.g. `207`.
    pub code: String,
    /// Name shown to buyers.
    pub name: String,
    /// Grade code.
    pub grade: String,
    /// `seated` or `standing` (general admission).
    pub kind: String,
    /// Seats, or places when standing.
    pub capacity: i32,
    /// `{"polygon": [[x, y], ...]}` or `{"position": {"x", "y"}}` in plan coordinates.
    #[schema(value_type = Object)]
    pub geometry: serde_json::Value,
    /// Rows (empty for standing areas or when seats were not asked for).
    pub rows: Vec<RowView>,
}

/// A venue with its seat map layout.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VenueDetail {
    /// The venue.
    #[serde(flatten)]
    pub venue: VenueSummary,
    /// Street address.
    pub address: String,
    /// The drawing frame: `{"width", "height", "shape", ...}`.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// Seat grades, best first.
    pub grades: Vec<Grade>,
    /// Areas with their rows and seats.
    pub areas: Vec<AreaView>,
    /// Whether every organizer may hold events here (set by its owner or an admin); others
    /// need its owner's or an admin's grant.
    #[serde(default)]
    pub shared: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A price tier: the price of one grade for an event.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PriceTier {
    /// Grade code.
    pub grade: String,
    /// Name shown to buyers.
    pub name: String,
    /// Price per ticket, KRW.
    pub price_krw: i64,
}

/// A sale window of a performance.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SaleWindow {
    /// `presale` or `general`.
    pub kind: String,
    /// Name shown to buyers, e.g. `회원 선예매`.
    pub name: String,
    /// Opening (UTC).
    pub opens_at: DateTime<Utc>,
    /// Closing (UTC).
    pub closes_at: DateTime<Utc>,
}

/// One performance (date) of an event.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PerformanceView {
    /// Performance id.
    pub id: Uuid,
    /// Start (UTC).
    pub starts_at: DateTime<Utc>,
    /// Status now.
    pub status: SaleStatus,
    /// Earliest sale opening.
    pub sale_opens_at: DateTime<Utc>,
    /// Latest sale closing.
    pub sale_closes_at: DateTime<Utc>,
    /// Sale windows in opening order.
    pub sale_windows: Vec<SaleWindow>,
    /// Publication revision (0 = never published).
    pub revision: i64,
    /// Why it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// What is left on sale, as the seat service last told (a few seconds behind at most while
    /// it changes); absent until it told anything (not published, or nobody looked at its seats
    /// yet). `status` is `sold_out` while `remaining.total` is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<crate::availability::Remaining>,
}

/// A team of a game.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamView {
    /// Code, e.g. `doosan`.
    pub code: String,
    /// Korean name.
    pub name: String,
    /// English name.
    pub name_en: String,
}

/// An event in a listing: its first performance in the asked range.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventItem {
    /// Event id.
    pub id: Uuid,
    /// Kind.
    #[schema(value_type = EventKind)]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Home team (games).
    pub home_team: Option<TeamView>,
    /// Away team (games).
    pub away_team: Option<TeamView>,
    /// Venue.
    pub venue: VenueSummary,
    /// Start of the first matching performance.
    pub starts_at: DateTime<Utc>,
    /// Its id.
    pub performance_id: Uuid,
    /// Its status now.
    pub status: SaleStatus,
    /// Its sale opening.
    pub sale_opens_at: DateTime<Utc>,
    /// How many performances match the range.
    pub performance_count: i64,
    /// Whether a waiting room guards the opening.
    pub waiting_room: bool,
    /// Cheapest and dearest tier, KRW: `[min, max]`.
    #[schema(value_type = Option<Vec<i64>>, min_items = 2, max_items = 2)]
    pub price_range: Option<[i64; 2]>,
}

/// A page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// An event with everything a buyer needs to choose.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventDetail {
    /// Event id.
    pub id: Uuid,
    /// Kind.
    #[schema(value_type = EventKind)]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `draft`, `published` or `cancelled`.
    pub status: String,
    /// Home team (games).
    pub home_team: Option<TeamView>,
    /// Away team (games).
    pub away_team: Option<TeamView>,
    /// Venue.
    pub venue: VenueSummary,
    /// Most tickets per buyer.
    pub ticket_limit: i32,
    /// Whether a waiting room guards the opening.
    pub waiting_room: bool,
    /// A free event: only its prices may be 0.
    #[serde(default)]
    pub free: bool,
    /// The event's own cancellation schedule, frozen onto each order made while it is
    /// published; `null`: the platform's default (the standard schedule unless configured).
    pub cancellation_policy: Option<CancellationPolicy>,
    /// Seat grades of the venue.
    pub grades: Vec<Grade>,
    /// Prices by grade.
    pub price_tiers: Vec<PriceTier>,
    /// Prices by grade and ticket type (권종): each grade's standard type (`adult`, its tier's
    /// price) and the others the organizer priced, with whether the gate checks proof.
    #[serde(default)]
    pub ticket_prices: Vec<crate::ticket_types::TicketPrice>,
    /// Performances by date.
    pub performances: Vec<PerformanceView>,
    /// Performances whose presale windows only an audience may use (members of a group, or
    /// holders of access codes), with the presale's limit and when the general sale opens.
    #[serde(default)]
    pub presales: Vec<crate::presale::PresaleView>,
}
