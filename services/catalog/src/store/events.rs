//! Events, their price tiers, performances and sale windows. Inserts take slices and write each
//! table with one `UNNEST` statement, so the seed's 720 games cost a handful of round trips.

use chrono::{DateTime, Utc};
use contracts::policy::CancellationPolicy;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::{
    domain::{PerformanceState, SaleStatus, status::open_at, teams},
    model::{EventDetail, PerformanceView, PriceTier, SaleWindow, TeamView},
};

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Id.
    pub id: Uuid,
    /// Kind name.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Venue.
    pub venue_id: Uuid,
    /// Home team code.
    pub home_team: Option<String>,
    /// Away team code.
    pub away_team: Option<String>,
    /// Most tickets per buyer.
    pub ticket_limit: i32,
    /// Waiting room at the opening.
    pub waiting_room: bool,
    /// Free: its prices may be 0.
    pub free: bool,
    /// `draft` or `published`.
    pub status: String,
    /// Creator.
    pub organizer_id: Option<Uuid>,
    /// Normalized search text.
    pub search_doc: String,
    /// Prices.
    pub tiers: Vec<PriceTier>,
    /// Its own cancellation schedule (`None`: the platform default).
    pub cancellation_policy: Option<CancellationPolicy>,
}

/// A performance to store.
#[derive(Debug, Clone)]
pub struct NewPerformance {
    /// Id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// Stored state.
    pub state: PerformanceState,
    /// Sale windows (at least one).
    pub windows: Vec<SaleWindow>,
}

fn window_bounds(
    windows: &[SaleWindow],
    fallback: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let opens = windows.iter().map(|w| w.opens_at).min().unwrap_or(fallback);
    let closes = windows
        .iter()
        .map(|w| w.closes_at)
        .max()
        .unwrap_or(fallback);
    (opens, closes)
}

/// Stores events that do not exist yet (by id) with their tiers; returns the ids written.
pub async fn insert_events(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&NewEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
    let new_ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO events (id, kind, title, description, venue_id, home_team, away_team,
                             ticket_limit, waiting_room, status, organizer_id, search_doc,
                             cancellation_policy, free)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[],
                              $6::text[], $7::text[], $8::int4[], $9::bool[], $10::text[],
                              $11::uuid[], $12::text[], $13::jsonb[], $14::bool[])
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind(col(|e| e.kind.clone()))
    .bind(col(|e| e.title.clone()))
    .bind(col(|e| e.description.clone()))
    .bind(events.iter().map(|e| e.venue_id).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.home_team.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|e| e.away_team.clone())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.ticket_limit).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.waiting_room).collect::<Vec<_>>())
    .bind(col(|e| e.status.clone()))
    .bind(events.iter().map(|e| e.organizer_id).collect::<Vec<_>>())
    .bind(col(|e| e.search_doc.clone()))
    .bind(
        events
            .iter()
            .map(|e| e.cancellation_policy.as_ref().map(Json))
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.free).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let fresh: std::collections::HashSet<Uuid> = new_ids.iter().copied().collect();
    let tiers: Vec<(Uuid, &PriceTier)> = events
        .iter()
        .filter(|e| fresh.contains(&e.id))
        .flat_map(|e| e.tiers.iter().map(move |t| (e.id, t)))
        .collect();
    for chunk in tiers.chunks(10_000) {
        insert_tiers(conn, chunk).await?;
    }
    Ok(new_ids)
}

async fn insert_tiers(
    conn: &mut PgConnection,
    tiers: &[(Uuid, &PriceTier)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO price_tiers (event_id, grade, name, price_krw)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[])",
    )
    .bind(tiers.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(
        tiers
            .iter()
            .map(|(_, t)| t.grade.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        tiers
            .iter()
            .map(|(_, t)| t.name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(tiers.iter().map(|(_, t)| t.price_krw).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces an event's price tiers.
pub async fn replace_tiers(
    conn: &mut PgConnection,
    event_id: Uuid,
    tiers: &[PriceTier],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM price_tiers WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(Uuid, &PriceTier)> = tiers.iter().map(|t| (event_id, t)).collect();
    insert_tiers(conn, &rows).await
}

/// Stores performances that do not exist yet (by id) with their windows; returns the ids written.
pub async fn insert_performances(
    conn: &mut PgConnection,
    perfs: &[NewPerformance],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if perfs.is_empty() {
        return Ok(Vec::new());
    }
    let bounds: Vec<_> = perfs
        .iter()
        .map(|p| window_bounds(&p.windows, p.starts_at))
        .collect();
    let new_ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO performances (id, event_id, starts_at, status, sale_opens_at, sale_closes_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[],
                              $5::timestamptz[], $6::timestamptz[])
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(perfs.iter().map(|p| p.id).collect::<Vec<_>>())
    .bind(perfs.iter().map(|p| p.event_id).collect::<Vec<_>>())
    .bind(perfs.iter().map(|p| p.starts_at).collect::<Vec<_>>())
    .bind(
        perfs
            .iter()
            .map(|p| p.state.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(bounds.iter().map(|b| b.0).collect::<Vec<_>>())
    .bind(bounds.iter().map(|b| b.1).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let fresh: std::collections::HashSet<Uuid> = new_ids.iter().copied().collect();
    let rows: Vec<(Uuid, i32, &SaleWindow)> = perfs
        .iter()
        .filter(|p| fresh.contains(&p.id))
        .flat_map(|p| {
            p.windows
                .iter()
                .enumerate()
                .map(move |(i, w)| (p.id, i32::try_from(i).unwrap_or(i32::MAX), w))
        })
        .collect();
    for chunk in rows.chunks(10_000) {
        insert_windows(conn, chunk).await?;
    }
    super::listing::refresh_performances(conn, &new_ids).await?;
    Ok(new_ids)
}

async fn insert_windows(
    conn: &mut PgConnection,
    rows: &[(Uuid, i32, &SaleWindow)],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sale_windows (performance_id, position, kind, name, opens_at, closes_at)
         SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[],
                              $6::timestamptz[])",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.kind.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.name.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.opens_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.closes_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// An event row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// Id.
    pub id: Uuid,
    /// Kind name.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Venue.
    pub venue_id: Uuid,
    /// Home team code.
    pub home_team: Option<String>,
    /// Away team code.
    pub away_team: Option<String>,
    /// Most tickets per buyer.
    pub ticket_limit: i32,
    /// Waiting room at the opening.
    pub waiting_room: bool,
    /// Free: its prices may be 0.
    pub free: bool,
    /// `draft`, `published` or `cancelled`.
    pub status: String,
    /// Creator.
    pub organizer_id: Option<Uuid>,
    /// Its own cancellation schedule (`None`: the platform default).
    pub cancellation_policy: Option<Json<CancellationPolicy>>,
}

/// The columns of an [`EventRow`].
const EVENT: &str = "SELECT id, kind, title, description, venue_id, home_team, away_team,
                            ticket_limit, waiting_room, free, status, organizer_id,
                            cancellation_policy
                     FROM events";

/// One event (any status); `lock` takes a row lock for an update. Lock order, everywhere: a
/// venue, then its events, then their performances (see docs/services/catalog.md, Concurrency).
pub async fn event(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<EventRow>, sqlx::Error> {
    let sql = format!(
        "{EVENT} WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A performance row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PerformanceRow {
    /// Id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// Stored state name.
    pub status: String,
    /// Earliest opening.
    pub sale_opens_at: DateTime<Utc>,
    /// Latest closing.
    pub sale_closes_at: DateTime<Utc>,
    /// Publication revision.
    pub revision: i64,
    /// Why cancelled.
    pub cancel_reason: Option<String>,
}

impl PerformanceRow {
    /// The stored state.
    pub fn state(&self) -> PerformanceState {
        PerformanceState::parse(&self.status)
    }
}

const PERF: &str =
    "SELECT id, event_id, starts_at, status, sale_opens_at, sale_closes_at, revision,
                           cancel_reason FROM performances";

/// One performance; `lock` takes a row lock for an update.
pub async fn performance(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<PerformanceRow>, sqlx::Error> {
    let sql = format!(
        "{PERF} WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The performances of an event by date.
pub async fn performances_of(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<Vec<PerformanceRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PERF} WHERE event_id = $1 ORDER BY starts_at, id"
    )))
    .bind(event_id)
    .fetch_all(conn)
    .await
}

/// How many performances (of any state) `event_id` has.
pub async fn performance_count(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM performances WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(conn)
        .await
}

/// The sale windows of a performance in order.
pub async fn windows(conn: &mut PgConnection, perf: Uuid) -> Result<Vec<SaleWindow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, name, opens_at, closes_at FROM sale_windows WHERE performance_id = $1
         ORDER BY position",
    )
    .bind(perf)
    .fetch_all(conn)
    .await
}

/// A sale window with its performance.
type WindowRow = (Uuid, String, String, DateTime<Utc>, DateTime<Utc>);

/// The sale windows of every performance of an event, each performance's in order.
pub async fn windows_of_event(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<std::collections::HashMap<Uuid, Vec<SaleWindow>>, sqlx::Error> {
    let rows: Vec<WindowRow> = sqlx::query_as(
        "SELECT w.performance_id, w.kind, w.name, w.opens_at, w.closes_at
         FROM sale_windows w JOIN performances p ON p.id = w.performance_id
         WHERE p.event_id = $1 ORDER BY w.performance_id, w.position",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<SaleWindow>> =
        std::collections::HashMap::new();
    for (perf, kind, name, opens_at, closes_at) in rows {
        out.entry(perf).or_default().push(SaleWindow {
            kind,
            name,
            opens_at,
            closes_at,
        });
    }
    Ok(out)
}

/// The price tiers of an event, dearest first.
pub async fn tiers(conn: &mut PgConnection, event_id: Uuid) -> Result<Vec<PriceTier>, sqlx::Error> {
    sqlx::query_as(
        "SELECT grade, name, price_krw FROM price_tiers WHERE event_id = $1
         ORDER BY price_krw DESC, grade",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await
}

/// The team of a code, as shown.
pub fn team_view(code: Option<&str>) -> Option<TeamView> {
    let code = code?;
    Some(match teams::by_code(code) {
        Some(t) => TeamView {
            code: t.code.into(),
            name: t.name.into(),
            name_en: t.name_en.into(),
        },
        None => TeamView {
            code: code.into(),
            name: code.into(),
            name_en: code.into(),
        },
    })
}

/// An event with its performances, venue, tiers and windows; drafts only when `drafts`.
pub async fn detail(
    conn: &mut PgConnection,
    id: Uuid,
    drafts: bool,
    now: DateTime<Utc>,
) -> Result<Option<EventDetail>, sqlx::Error> {
    let Some(e) = event(conn, id, false).await? else {
        return Ok(None);
    };
    if e.status == "draft" && !drafts {
        return Ok(None);
    }
    let Some(venue) = super::venues::summary(conn, e.venue_id).await? else {
        return Ok(None);
    };
    let grades = super::venues::grades(conn, e.venue_id).await?;
    let price_tiers = tiers(conn, id).await?;
    // Every performance's windows in one query: the detail costs the same few queries whether
    // the event has one performance or a thousand.
    let mut windows_by_perf = windows_of_event(conn, id).await?;
    let mut performances = Vec::new();
    for p in performances_of(conn, id).await? {
        if p.state() == PerformanceState::Draft && !drafts {
            continue;
        }
        let sale_windows = windows_by_perf.remove(&p.id).unwrap_or_default();
        performances.push(PerformanceView {
            id: p.id,
            starts_at: p.starts_at,
            status: SaleStatus::at(
                p.state(),
                p.starts_at,
                p.sale_closes_at,
                open_at(sale_windows.iter().map(|w| (w.opens_at, w.closes_at)), now),
                now,
            ),
            sale_opens_at: p.sale_opens_at,
            sale_closes_at: p.sale_closes_at,
            sale_windows,
            revision: p.revision,
            cancel_reason: p.cancel_reason,
            remaining: None,
        });
    }
    Ok(Some(EventDetail {
        id: e.id,
        kind: e.kind,
        title: e.title,
        description: e.description,
        status: e.status,
        home_team: team_view(e.home_team.as_deref()),
        away_team: team_view(e.away_team.as_deref()),
        venue,
        ticket_limit: e.ticket_limit,
        waiting_room: e.waiting_room,
        free: e.free,
        cancellation_policy: e.cancellation_policy.map(|Json(p)| p),
        grades,
        price_tiers,
        ticket_prices: crate::ticket_types::prices(conn, id).await?,
        performances,
        presales: crate::presale::views(conn, id).await?,
    }))
}

/// The fields of an event a change writes: only those that are `Some` (so that a writer never
/// puts back a column it did not mean to change from a stale read).
#[derive(Debug, Default, Clone)]
pub struct EventChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New ticket limit.
    pub ticket_limit: Option<i32>,
    /// New waiting-room flag.
    pub waiting_room: Option<bool>,
    /// New free flag.
    pub free: Option<bool>,
    /// New search document.
    pub search_doc: Option<String>,
}

impl EventChanges {
    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.ticket_limit.is_none()
            && self.waiting_room.is_none()
            && self.free.is_none()
            && self.search_doc.is_none()
    }
}

/// Writes `changes` to an event (only the fields given; nothing when there are none).
pub async fn update_event(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &EventChanges,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE events SET title = COALESCE($2, title), description = COALESCE($3, description),
                ticket_limit = COALESCE($4, ticket_limit), waiting_room = COALESCE($5, waiting_room),
                free = COALESCE($6, free), search_doc = COALESCE($7, search_doc),
                updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&changes.title)
    .bind(&changes.description)
    .bind(changes.ticket_limit)
    .bind(changes.waiting_room)
    .bind(changes.free)
    .bind(&changes.search_doc)
    .execute(&mut *conn)
    .await?;
    // The listing rows carry the search document (the title only through it).
    if changes.search_doc.is_some() {
        super::listing::refresh_events(conn, &[id]).await?;
    }
    Ok(())
}

/// Makes the event's announced performances whose publication failed due at once (their
/// backoff was for what is now changed).
pub async fn retry_publication_now(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE performances SET publish_next_attempt_at = NULL
         WHERE event_id = $1 AND status = 'announced' AND publish_next_attempt_at IS NOT NULL",
    )
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a draft event published (a published or cancelled one stays as it is).
pub async fn mark_published(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE events SET status = 'published', updated_at = now()
         WHERE id = $1 AND status = 'draft'",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    super::listing::refresh_events(conn, &[id]).await
}

/// Sets an event's own cancellation schedule (`None`: back to the platform default).
pub async fn set_policy(
    conn: &mut PgConnection,
    event_id: Uuid,
    policy: Option<&CancellationPolicy>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE events SET cancellation_policy = $2, updated_at = now() WHERE id = $1")
        .bind(event_id)
        .bind(policy.map(Json))
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a performance to another start and/or sale windows.
pub async fn reschedule(
    conn: &mut PgConnection,
    perf: Uuid,
    starts_at: DateTime<Utc>,
    windows: Option<&[SaleWindow]>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE performances SET starts_at = $2, updated_at = now() WHERE id = $1")
        .bind(perf)
        .bind(starts_at)
        .execute(&mut *conn)
        .await?;
    if let Some(w) = windows {
        sqlx::query("DELETE FROM sale_windows WHERE performance_id = $1")
            .bind(perf)
            .execute(&mut *conn)
            .await?;
        let rows: Vec<(Uuid, i32, &SaleWindow)> = w
            .iter()
            .enumerate()
            .map(|(i, w)| (perf, i32::try_from(i).unwrap_or(i32::MAX), w))
            .collect();
        insert_windows(conn, &rows).await?;
        let (opens, closes) = window_bounds(w, starts_at);
        sqlx::query(
            "UPDATE performances SET sale_opens_at = $2, sale_closes_at = $3 WHERE id = $1",
        )
        .bind(perf)
        .bind(opens)
        .bind(closes)
        .execute(&mut *conn)
        .await?;
    }
    super::listing::refresh_performances(conn, &[perf]).await
}

/// Sets a performance's state, revision and cancel reason.
pub async fn set_state(
    conn: &mut PgConnection,
    perf: Uuid,
    state: PerformanceState,
    revision: i64,
    cancel_reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE performances SET status = $2, revision = $3, cancel_reason = $4, updated_at = now(),
                published_at = CASE WHEN $2 = 'published' THEN now() ELSE published_at END
         WHERE id = $1",
    )
    .bind(perf)
    .bind(state.as_str())
    .bind(revision)
    .bind(cancel_reason)
    .execute(&mut *conn)
    .await?;
    super::listing::refresh_performances(conn, &[perf]).await
}

/// Every event at a venue, locked (in id order, after the venue: the lock order), as committed
/// now: a venue change re-reads them under the lock instead of writing back a stale read.
pub async fn lock_at_venue(
    conn: &mut PgConnection,
    venue_id: Uuid,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EVENT} WHERE venue_id = $1 ORDER BY id FOR UPDATE"
    )))
    .bind(venue_id)
    .fetch_all(conn)
    .await
}
