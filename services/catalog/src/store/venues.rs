//! Venues, their grades, areas and seats. Seats are stored once per venue, written in batches
//! with `UNNEST` (a stadium's 25,000 seats are two statements).

use std::collections::HashMap;

use contracts::events::{AreaSpec, SeatSpec};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::VenueKind,
    model::{AreaView, Grade, RowView, SeatView, VenueDetail, VenueSummary},
};

/// Seats written per statement.
const SEAT_BATCH: usize = 20_000;

/// A seat to store.
#[derive(Debug, Clone)]
pub struct NewSeat {
    /// Stable id within the venue.
    pub seat_id: String,
    /// Row label.
    pub row: String,
    /// Number within the row.
    pub number: i32,
    /// Plan x.
    pub x: f32,
    /// Plan y.
    pub y: f32,
    /// Lower is better.
    pub rank: i32,
    /// Wheelchair-accessible.
    pub wheelchair: bool,
    /// The table's id (its first seat's) for a table seat.
    pub table: Option<String>,
    /// For a companion seat, its wheelchair seat's id.
    pub companion_of: Option<String>,
}

/// An area to store.
#[derive(Debug, Clone)]
pub struct NewArea {
    /// Code, unique in the venue.
    pub code: String,
    /// Name.
    pub name: String,
    /// Grade code.
    pub grade: String,
    /// Standing (general admission) rather than seated.
    pub standing: bool,
    /// Places of a standing area (seated areas count their seats).
    pub capacity: i32,
    /// Drawing geometry.
    pub geometry: serde_json::Value,
    /// Seats of a seated area.
    pub seats: Vec<NewSeat>,
}

impl NewArea {
    /// Seats, or places when standing.
    pub fn places(&self) -> i32 {
        if self.standing {
            self.capacity
        } else {
            i32::try_from(self.seats.len()).unwrap_or(i32::MAX)
        }
    }
}

/// A venue to store, with its seat map.
#[derive(Debug, Clone)]
pub struct NewVenue {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Kind.
    pub kind: VenueKind,
    /// City.
    pub city: String,
    /// Address.
    pub address: String,
    /// Drawing frame.
    pub plan: serde_json::Value,
    /// Creator (None for seeded venues).
    pub organizer_id: Option<Uuid>,
    /// Grades.
    pub grades: Vec<Grade>,
    /// Areas.
    pub areas: Vec<NewArea>,
}

/// Stores `venue` unless a venue with its id exists; returns whether it was written.
pub async fn insert(conn: &mut PgConnection, venue: &NewVenue) -> Result<bool, sqlx::Error> {
    let capacity: i32 = venue.areas.iter().map(NewArea::places).sum();
    let inserted = sqlx::query(
        "INSERT INTO venues (id, name, name_en, kind, city, address, capacity, plan, organizer_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind(venue.id)
    .bind(&venue.name)
    .bind(&venue.name_en)
    .bind(venue.kind.as_str())
    .bind(&venue.city)
    .bind(&venue.address)
    .bind(capacity)
    .bind(&venue.plan)
    .bind(venue.organizer_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    for g in &venue.grades {
        sqlx::query(
            "INSERT INTO venue_grades (venue_id, code, name, name_en, color, rank)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(venue.id)
        .bind(&g.code)
        .bind(&g.name)
        .bind(&g.name_en)
        .bind(&g.color)
        .bind(g.rank)
        .execute(&mut *conn)
        .await?;
    }
    for (position, a) in venue.areas.iter().enumerate() {
        sqlx::query(
            "INSERT INTO venue_areas (venue_id, code, name, grade, kind, capacity, geometry, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(venue.id)
        .bind(&a.code)
        .bind(&a.name)
        .bind(&a.grade)
        .bind(if a.standing { "standing" } else { "seated" })
        .bind(a.places())
        .bind(&a.geometry)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .execute(&mut *conn)
        .await?;
    }
    let seats: Vec<(&str, &NewSeat)> = venue
        .areas
        .iter()
        .flat_map(|a| a.seats.iter().map(move |s| (a.code.as_str(), s)))
        .collect();
    for chunk in seats.chunks(SEAT_BATCH) {
        insert_seats(conn, venue.id, chunk).await?;
    }
    Ok(true)
}

async fn insert_seats(
    conn: &mut PgConnection,
    venue_id: Uuid,
    seats: &[(&str, &NewSeat)],
) -> Result<(), sqlx::Error> {
    let mut ids = Vec::with_capacity(seats.len());
    let mut areas = Vec::with_capacity(seats.len());
    let mut rows = Vec::with_capacity(seats.len());
    let mut numbers = Vec::with_capacity(seats.len());
    let mut xs = Vec::with_capacity(seats.len());
    let mut ys = Vec::with_capacity(seats.len());
    let mut ranks = Vec::with_capacity(seats.len());
    let mut wheel = Vec::with_capacity(seats.len());
    let mut tables = Vec::with_capacity(seats.len());
    let mut companions = Vec::with_capacity(seats.len());
    for (area, s) in seats {
        ids.push(s.seat_id.clone());
        areas.push((*area).to_owned());
        rows.push(s.row.clone());
        numbers.push(s.number);
        xs.push(s.x);
        ys.push(s.y);
        ranks.push(s.rank);
        wheel.push(s.wheelchair);
        tables.push(s.table.clone());
        companions.push(s.companion_of.clone());
    }
    sqlx::query(
        "INSERT INTO venue_seats (venue_id, seat_id, area, row_label, number, x, y, rank, wheelchair,
                                  table_id, companion_of)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int4[], $6::float4[],
                                  $7::float4[], $8::int4[], $9::bool[], $10::text[], $11::text[])",
    )
    .bind(venue_id)
    .bind(ids)
    .bind(areas)
    .bind(rows)
    .bind(numbers)
    .bind(xs)
    .bind(ys)
    .bind(ranks)
    .bind(wheel)
    .bind(tables)
    .bind(companions)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const SUMMARY: &str = "SELECT id, name, name_en, kind, city, capacity FROM venues";

/// Every venue by name.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<VenueSummary>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SUMMARY} ORDER BY name, id")))
        .fetch_all(conn)
        .await
}

/// One venue's summary.
pub async fn summary(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<VenueSummary>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SUMMARY} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The venue's revision, bumped by every write of it (what its cached detail is keyed by); None
/// when it does not exist.
pub async fn revision(conn: &mut PgConnection, id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT revision FROM venues WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Who created the venue (None for seeded venues); outer None when it does not exist. `lock`
/// takes the venue's row lock (first: the lock order is venue, event, performance).
pub async fn owner(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Option<Uuid>>, sqlx::Error> {
    let sql = format!(
        "SELECT organizer_id FROM venues WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Whether `organizer` may hold events at the venue: its owner, a shared venue, or a grant.
/// Takes a share lock on the venue and the grant, so that a concurrent unsharing or revocation
/// waits for the event being created (and a rename sees it). None when no such venue.
pub async fn consents(
    conn: &mut PgConnection,
    venue_id: Uuid,
    organizer: Uuid,
) -> Result<Option<bool>, sqlx::Error> {
    let venue: Option<(Option<Uuid>, bool)> =
        sqlx::query_as("SELECT organizer_id, shared FROM venues WHERE id = $1 FOR SHARE")
            .bind(venue_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((owner, shared)) = venue else {
        return Ok(None);
    };
    if shared || owner == Some(organizer) {
        return Ok(Some(true));
    }
    let granted: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM venue_organizers WHERE venue_id = $1 AND organizer_id = $2 FOR SHARE",
    )
    .bind(venue_id)
    .bind(organizer)
    .fetch_optional(conn)
    .await?;
    Ok(Some(granted.is_some()))
}

/// A consent given to one organizer (a venue's) or one club account (a team's).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Grant {
    /// The organizer account.
    pub organizer_id: Uuid,
    /// Who granted it (the venue's owner or an admin).
    pub granted_by: Uuid,
    /// When.
    pub granted_at: chrono::DateTime<chrono::Utc>,
}

/// Lets `organizer` hold events at the venue (again: a second grant keeps the first).
pub async fn grant(
    conn: &mut PgConnection,
    venue_id: Uuid,
    organizer: Uuid,
    by: Uuid,
) -> Result<Grant, sqlx::Error> {
    sqlx::query(
        "INSERT INTO venue_organizers (venue_id, organizer_id, granted_by) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(venue_id)
    .bind(organizer)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(
        "SELECT organizer_id, granted_by, granted_at FROM venue_organizers
         WHERE venue_id = $1 AND organizer_id = $2",
    )
    .bind(venue_id)
    .bind(organizer)
    .fetch_one(conn)
    .await
}

/// Takes the grant back (events created with it stay); whether there was one.
pub async fn revoke(
    conn: &mut PgConnection,
    venue_id: Uuid,
    organizer: Uuid,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM venue_organizers WHERE venue_id = $1 AND organizer_id = $2")
            .bind(venue_id)
            .bind(organizer)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The organizers granted the venue, oldest grant first.
pub async fn grants(conn: &mut PgConnection, venue_id: Uuid) -> Result<Vec<Grant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT organizer_id, granted_by, granted_at FROM venue_organizers WHERE venue_id = $1
         ORDER BY granted_at, organizer_id",
    )
    .bind(venue_id)
    .fetch_all(conn)
    .await
}

/// The grades of a venue, best first.
pub async fn grades(conn: &mut PgConnection, venue_id: Uuid) -> Result<Vec<Grade>, sqlx::Error> {
    sqlx::query_as(
        "SELECT code, name, name_en, color, rank FROM venue_grades WHERE venue_id = $1
         ORDER BY rank, code",
    )
    .bind(venue_id)
    .fetch_all(conn)
    .await
}

type SeatRow = (
    String,
    String,
    String,
    i32,
    f32,
    f32,
    bool,
    Option<String>,
    Option<String>,
);
type AreaRow = (String, String, String, String, i32, serde_json::Value);

/// A venue with its layout; with `seats` false the areas come without rows.
pub async fn detail(
    conn: &mut PgConnection,
    id: Uuid,
    seats: bool,
) -> Result<Option<VenueDetail>, sqlx::Error> {
    let Some(venue) = summary(conn, id).await? else {
        return Ok(None);
    };
    type Extra = (
        String,
        serde_json::Value,
        bool,
        chrono::DateTime<chrono::Utc>,
    );
    let (address, plan, shared, updated_at): Extra =
        sqlx::query_as("SELECT address, plan, shared, updated_at FROM venues WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let grades = grades(conn, id).await?;
    let area_rows: Vec<AreaRow> = sqlx::query_as(
        "SELECT code, name, grade, kind, capacity, geometry FROM venue_areas WHERE venue_id = $1
         ORDER BY position, code",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut rows_by_area: HashMap<String, Vec<RowView>> = HashMap::new();
    if seats {
        let seat_rows: Vec<SeatRow> = sqlx::query_as(
            "SELECT area, row_label, seat_id, number, x, y, wheelchair, table_id, companion_of
             FROM venue_seats
             WHERE venue_id = $1 ORDER BY area, rank, row_label, number",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for (area, row, seat_id, number, x, y, wheelchair, table, companion_of) in seat_rows {
            let rows = rows_by_area.entry(area).or_default();
            let seat = SeatView {
                id: seat_id,
                number,
                x,
                y,
                wheelchair,
                table,
                companion_of,
            };
            match rows.last_mut() {
                Some(r) if r.label == row => r.seats.push(seat),
                _ => rows.push(RowView {
                    label: row,
                    seats: vec![seat],
                }),
            }
        }
    }
    let areas = area_rows
        .into_iter()
        .map(|(code, name, grade, kind, capacity, geometry)| AreaView {
            rows: rows_by_area.remove(&code).unwrap_or_default(),
            code,
            name,
            grade,
            kind,
            capacity,
            geometry,
        })
        .collect();
    Ok(Some(VenueDetail {
        venue,
        address,
        plan,
        grades,
        areas,
        shared,
        updated_at,
    }))
}

/// What the seat service needs to build a performance's inventory from this venue.
pub async fn inventory(
    conn: &mut PgConnection,
    venue_id: Uuid,
) -> Result<(Vec<SeatSpec>, Vec<AreaSpec>), sqlx::Error> {
    type Row = (
        String,
        String,
        String,
        i32,
        String,
        i32,
        bool,
        Option<String>,
        Option<String>,
    );
    let seats: Vec<Row> = sqlx::query_as(
        "SELECT s.seat_id, s.area, s.row_label, s.number, a.grade, s.rank, s.wheelchair,
                s.table_id, s.companion_of
         FROM venue_seats s JOIN venue_areas a ON a.venue_id = s.venue_id AND a.code = s.area
         WHERE s.venue_id = $1 ORDER BY s.area, s.rank, s.row_label, s.number",
    )
    .bind(venue_id)
    .fetch_all(&mut *conn)
    .await?;
    let areas: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT code, grade, capacity FROM venue_areas WHERE venue_id = $1 AND kind = 'standing'
         ORDER BY position, code",
    )
    .bind(venue_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok((
        seats
            .into_iter()
            .map(
                |(seat_id, section, row, number, grade, rank, wheelchair, table, companion_of)| {
                    SeatSpec {
                        seat_id,
                        section,
                        row,
                        number,
                        grade,
                        rank,
                        wheelchair,
                        table,
                        companion_of,
                    }
                },
            )
            .collect(),
        areas
            .into_iter()
            .map(|(area_id, grade, capacity)| AreaSpec {
                area_id,
                grade,
                capacity,
            })
            .collect(),
    ))
}

/// Fields of a venue an organizer may change.
#[derive(Debug, Default, Clone)]
pub struct VenueChanges {
    /// New name.
    pub name: Option<String>,
    /// New English name.
    pub name_en: Option<String>,
    /// New city.
    pub city: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// New drawing frame.
    pub plan: Option<serde_json::Value>,
    /// Open to every organizer, or not.
    pub shared: Option<bool>,
}

impl VenueChanges {
    /// Whether a name changes (the venue's events' search documents hold its names).
    pub fn renames(&self) -> bool {
        self.name.is_some() || self.name_en.is_some()
    }
}

/// Applies `changes`; false when the venue does not exist.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &VenueChanges,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE venues SET name = COALESCE($2, name), name_en = COALESCE($3, name_en),
                city = COALESCE($4, city), address = COALESCE($5, address),
                plan = COALESCE($6, plan), shared = COALESCE($7, shared), updated_at = now(),
                revision = revision + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(&changes.name)
    .bind(&changes.name_en)
    .bind(&changes.city)
    .bind(&changes.address)
    .bind(&changes.plan)
    .bind(changes.shared)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
