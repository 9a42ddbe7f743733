//! The organizer/admin API: create and edit venues, events, performances, tiers and sale windows;
//! publish and cancel performances. Organizers change what they created, admins anything. Every
//! change to a published performance re-publishes it (a higher `revision`) in the same
//! transaction, through the outbox.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    auth::{AuthUser, Role},
    problem::ApiJson,
};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{AppState, authorize, docs::Problem, inputs::*, parse_id};
use crate::{
    domain::{
        PerformanceState, SaleStatus, permissions,
        status::open_at,
        teams,
        validate::{MAX_PERFORMANCES, Problems},
    },
    model::{EventDetail, PerformanceView, VenueDetail},
    publish, search,
    store::{
        audit, clubs,
        events::{self, EventChanges, EventRow, NewEvent, NewPerformance, PerformanceRow},
        venues::{self, NewArea, NewSeat, NewVenue, VenueChanges},
    },
};

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::not_found(format!("no {what} {id}"))
}

/// `POST /api/v1/admin/venues` → 201 the venue with its seat map.
#[utoipa::path(
    post,
    path = "/api/v1/admin/venues",
    tag = "admin",
    request_body = VenueInput,
    responses(
        (status = 201, description = "The venue with its seat map; the caller is its organizer", body = VenueDetail),
        (status = 400, description = "`validation_failed`: every invalid field named in `errors` (also a body of the wrong shape or with an unknown field, or text holding U+0000; a bound passed or a control character in a text field, by field: docs/services/catalog.md, Bounds); `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create_venue(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<VenueInput>,
) -> Result<(StatusCode, Json<VenueDetail>), ApiError> {
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    let (kind, areas) = input.check(&mut p);
    p.finish()?;
    let venue = NewVenue {
        id: Uuid::now_v7(),
        name: input.name.unwrap_or_default().trim().to_owned(),
        name_en: input.name_en.trim().to_owned(),
        kind,
        city: input.city,
        address: input.address,
        plan: input
            .plan
            .unwrap_or_else(|| serde_json::json!({"width": 1000, "height": 1000})),
        organizer_id: Some(user.id()),
        grades: input
            .grades
            .into_iter()
            .map(|g| crate::model::Grade {
                code: g.code.unwrap_or_default(),
                name: g.name.unwrap_or_default(),
                name_en: g.name_en,
                color: g.color.unwrap_or_else(|| "#888888".into()),
                rank: g.rank.unwrap_or(0),
            })
            .collect(),
        areas: areas
            .into_iter()
            .map(|a| NewArea {
                code: a.code,
                name: a.name,
                grade: a.grade,
                standing: a.standing,
                capacity: a.capacity,
                geometry: a.geometry,
                seats: a
                    .seats
                    .into_iter()
                    .map(|s| NewSeat {
                        seat_id: s.seat_id,
                        row: s.row,
                        number: s.number,
                        x: s.x,
                        y: s.y,
                        rank: s.rank,
                        wheelchair: s.wheelchair,
                        table: s.table,
                        companion_of: s.companion_of,
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut tx = state.pool.begin().await?;
    venues::insert(&mut tx, &venue).await?;
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    let detail = venues::detail(&mut conn, venue.id, true)
        .await?
        .ok_or_else(|| not_found("venue", venue.id))?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// `PATCH /api/v1/admin/venues/{venue_id}` → the venue (without seats).
#[utoipa::path(
    patch,
    path = "/api/v1/admin/venues/{venue_id}",
    tag = "admin",
    params(("venue_id" = Uuid, Path, description = "The venue")),
    request_body = VenuePatch,
    responses(
        (status = 200, description = "The venue, without rows and seats; its events' search documents follow a rename", body = VenueDetail),
        (status = 400, description = "`validation_failed`: `venue_id` is not a UUID, or every invalid field named in `errors` (also a body of the wrong shape or with an unknown field, or text holding U+0000; a bound passed or a control character in a text field, by field: docs/services/catalog.md, Bounds); `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such venue", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn update_venue(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<VenuePatch>,
) -> Result<Json<VenueDetail>, ApiError> {
    let id = parse_id("venue_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    input.check(&mut p);
    p.finish()?;
    let mut tx = state.pool.begin().await?;
    // The venue first, then its events: the lock order of every writer.
    let owner = venues::owner(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("venue", id))?;
    authorize(&user, owner)?;
    let changes = VenueChanges {
        name: input.name.map(|n| n.trim().to_owned()),
        name_en: input.name_en,
        city: input.city,
        address: input.address,
        plan: input.plan,
        shared: input.shared,
    };
    venues::update(&mut tx, id, &changes).await?;
    if changes.renames() {
        // The venue's names are part of its events' search documents: each event is locked and
        // re-read, and only its search document written (never its status or fields, which a
        // concurrent edit or publication may have changed since any earlier read).
        let venue = venues::summary(&mut tx, id)
            .await?
            .ok_or_else(|| not_found("venue", id))?;
        for e in events::lock_at_venue(&mut tx, id).await? {
            let doc = EventChanges {
                search_doc: Some(event_doc(&e, &venue)),
                ..EventChanges::default()
            };
            events::update_event(&mut tx, e.id, &doc).await?;
        }
    }
    tx.commit().await?;
    state.cache.clear();
    let mut conn = state.pool.acquire().await?;
    let detail = venues::detail(&mut conn, id, false)
        .await?
        .ok_or_else(|| not_found("venue", id))?;
    Ok(Json(detail))
}

fn event_doc(e: &EventRow, venue: &crate::model::VenueSummary) -> String {
    let kind = crate::domain::EventKind::parse(&e.kind).unwrap_or(crate::domain::EventKind::Other);
    let t: Vec<&teams::Team> = [&e.home_team, &e.away_team]
        .into_iter()
        .filter_map(|c| c.as_deref().and_then(teams::by_code))
        .collect();
    search::event_document(kind, &e.title, &t, venue)
}

async fn venue_grades(
    conn: &mut PgConnection,
    venue_id: Uuid,
) -> Result<Vec<(String, String)>, ApiError> {
    Ok(venues::grades(conn, venue_id)
        .await?
        .into_iter()
        .map(|g| (g.code, g.name))
        .collect())
}

/// `POST /api/v1/admin/events` → 201 the draft event.
#[utoipa::path(
    post,
    path = "/api/v1/admin/events",
    tag = "admin",
    request_body = EventInput,
    responses(
        (status = 201, description = "The draft event with its draft performances; the caller is its organizer", body = EventDetail),
        (status = 400, description = "`validation_failed`: every invalid field named in `errors` (`venue_id`: no venue has this id; `price_tiers[i].grade`: not a grade of the venue; `price_tiers[i].price_krw`: 0 on an event not `free`; `cancellation_policy…`; also a body of the wrong shape or with an unknown field, or text holding U+0000; a bound passed or a control character in a text field, by field: docs/services/catalog.md, Bounds); `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read, or the event is incomplete", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role; `venue_not_permitted`: the venue is neither the caller's, nor shared, nor granted to the caller (admins use any); `team_not_permitted`: a team code the caller is not a club account of (the home team, or the one team named; admins name any)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create_event(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<EventInput>,
) -> Result<(StatusCode, Json<EventDetail>), ApiError> {
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    let checked = input.check(&mut p);
    let mut perfs = Vec::new();
    let listed = i64::try_from(input.performances.len()).unwrap_or(i64::MAX);
    let performances = if listed > MAX_PERFORMANCES {
        &[][..]
    } else {
        &input.performances[..]
    };
    for (i, perf) in performances.iter().enumerate() {
        if let Some(x) = perf.check(&mut p, &format!("performances[{i}].")) {
            perfs.push(x);
        }
    }
    let venue_id = input
        .venue_id
        .as_deref()
        .and_then(|v| Uuid::parse_str(v).ok());
    let mut tx = state.pool.begin().await?;
    // A share lock on the venue (and its grant): a rename, an unsharing or a revocation waits
    // for this event, and this one reads the venue as they left it.
    let consent = match venue_id {
        Some(v) => venues::consents(&mut tx, v, user.id()).await?,
        None => None,
    };
    let venue = match (venue_id, consent) {
        (Some(v), Some(_)) => venues::summary(&mut tx, v).await?,
        _ => None,
    };
    p.check(
        venue_id.is_some() && venue.is_none(),
        "venue_id",
        "no venue has this id",
    );
    let grades = match &venue {
        Some(v) => venue_grades(&mut tx, v.id).await?,
        None => Vec::new(),
    };
    let tiers = check_tiers(&mut p, &input.price_tiers, &grades, input.free);
    p.finish()?;
    let (Some(checked), Some(venue)) = (checked, venue) else {
        return Err(ApiError::bad_request("the event is incomplete"));
    };
    let admin = user.0.has(Role::Admin);
    if !admin && consent != Some(true) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "venue_not_permitted",
            "this venue is not shared with you: its owner or an admin must share or grant it",
        ));
    }
    if !admin && (checked.home.is_some() || checked.away.is_some()) {
        let mine = clubs::teams_of(&mut tx, user.id()).await?;
        if !permissions::may_name_teams(
            &mine,
            checked.home.map(|t| t.code),
            checked.away.map(|t| t.code),
        ) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "team_not_permitted",
                "only admins and a club's organizer accounts put its team on an event \
                 (the home team, or the one team named)",
            ));
        }
    }
    let title = input.title.unwrap_or_default().trim().to_owned();
    let team_list: Vec<&teams::Team> = checked.home.into_iter().chain(checked.away).collect();
    let event = NewEvent {
        id: Uuid::now_v7(),
        kind: checked.kind.as_str().to_owned(),
        search_doc: search::event_document(checked.kind, &title, &team_list, &venue),
        title,
        description: input.description,
        venue_id: venue.id,
        home_team: checked.home.map(|t| t.code.to_owned()),
        away_team: checked.away.map(|t| t.code.to_owned()),
        ticket_limit: input.ticket_limit.unwrap_or(4),
        waiting_room: input.waiting_room,
        free: input.free,
        status: "draft".into(),
        organizer_id: Some(user.id()),
        tiers,
        cancellation_policy: checked.cancellation_policy,
    };
    events::insert_events(&mut tx, std::slice::from_ref(&event)).await?;
    let new_perfs: Vec<NewPerformance> = perfs
        .into_iter()
        .map(|(starts_at, windows)| NewPerformance {
            id: Uuid::now_v7(),
            event_id: event.id,
            starts_at,
            state: PerformanceState::Draft,
            windows,
        })
        .collect();
    events::insert_performances(&mut tx, &new_perfs).await?;
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    let detail = events::detail(&mut conn, event.id, true, state.clock.now())
        .await?
        .ok_or_else(|| not_found("event", event.id))?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// `GET /api/v1/admin/events/{event_id}` → the event including drafts.
#[utoipa::path(
    get,
    path = "/api/v1/admin/events/{event_id}",
    operation_id = "admin_event_detail",
    tag = "admin",
    params(("event_id" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, description = "The event, draft or not, with every performance including drafts", body = EventDetail),
        (status = 400, description = "`validation_failed`: `event_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn event_detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
) -> Result<Json<EventDetail>, ApiError> {
    let id = parse_id("event_id", &raw)?;
    let mut conn = state.pool.acquire().await?;
    let e = events::event(&mut conn, id, false)
        .await?
        .ok_or_else(|| not_found("event", id))?;
    authorize(&user, e.organizer_id)?;
    let detail = events::detail(&mut conn, id, true, state.clock.now())
        .await?
        .ok_or_else(|| not_found("event", id))?;
    Ok(Json(detail))
}

/// Whether a sale of one of the event's performances has opened at `now`.
pub(super) async fn sale_has_opened(
    conn: &mut PgConnection,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    Ok(events::performances_of(conn, event_id)
        .await?
        .iter()
        .any(|p| permissions::sale_opened(p.state(), p.sale_opens_at, now)))
}

/// Refuses an organizer a change that, once a sale opened, only admins make.
pub(super) fn admin_after_sale_opened(user: &AuthUser) -> Result<(), ApiError> {
    if user.0.has(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sale_opened",
            "a sale has opened: only an admin changes prices, the ticket limit or a start time now",
        ))
    }
}

/// Re-publishes every published performance of `e` (after a change to the event).
async fn republish_event(conn: &mut PgConnection, e: &EventRow) -> Result<(), ApiError> {
    let perfs: Vec<PerformanceRow> = events::performances_of(conn, e.id)
        .await?
        .into_iter()
        .filter(|p| {
            p.revision > 0
                && matches!(
                    p.state(),
                    PerformanceState::Published | PerformanceState::SoldOut
                )
        })
        .collect();
    if perfs.is_empty() {
        return Ok(());
    }
    let inventory = venues::inventory(conn, e.venue_id).await?;
    for perf in perfs {
        publish::publish(conn, e, &perf, &inventory).await?;
    }
    Ok(())
}

/// `PATCH /api/v1/admin/events/{event_id}` → the event; published performances are re-published
/// (with the new cancellation policy, if it changed: orders made from then on freeze it).
#[utoipa::path(
    patch,
    path = "/api/v1/admin/events/{event_id}",
    tag = "admin",
    params(("event_id" = Uuid, Path, description = "The event")),
    request_body = EventPatch,
    responses(
        (status = 200, description = "The event; its published performances were re-published (a higher `revision`)", body = EventDetail),
        (status = 400, description = "`validation_failed`: `event_id` is not a UUID, every invalid field named in `errors` (`price_tiers[i].price_krw`: 0 on an event not `free`; `free`: `false` while a price is 0; also a body of the wrong shape or with an unknown field, or text holding U+0000; a bound passed or a control character in a text field, by field: docs/services/catalog.md, Bounds), or `price_tiers`: a grade a published performance sells has no price; `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin; `sale_opened`: a sale of the event has opened, and only admins change its prices or ticket limit now (recorded in the audit log)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn update_event(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<EventPatch>,
) -> Result<Json<EventDetail>, ApiError> {
    let id = parse_id("event_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    let policy = input.check(&mut p);
    let mut tx = state.pool.begin().await?;
    let mut e = events::event(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("event", id))?;
    authorize(&user, e.organizer_id)?;
    let free = input.free.unwrap_or(e.free);
    let tiers = match &input.price_tiers {
        Some(t) => {
            let grades = venue_grades(&mut tx, e.venue_id).await?;
            Some(check_tiers(&mut p, t, &grades, free))
        }
        None => None,
    };
    let current = events::tiers(&mut tx, id).await?;
    p.check(
        tiers.is_none() && !free && current.iter().any(|t| t.price_krw == 0),
        "free",
        "a price of the event is 0: only a free event has one",
    );
    p.finish()?;
    // Once a sale opened, prices and the ticket limit are an admin's to change, and recorded.
    let mut audited = Vec::new();
    if let Some(t) = &tiers {
        let (old, new) = (permissions::prices(&current), permissions::prices(t));
        if old != new {
            audited.push(("price_tiers", json!(old), json!(new)));
        }
    }
    if let Some(l) = input.ticket_limit.filter(|l| *l != e.ticket_limit) {
        audited.push(("ticket_limit", json!(e.ticket_limit), json!(l)));
    }
    if !audited.is_empty() && sale_has_opened(&mut tx, id, state.clock.now()).await? {
        admin_after_sale_opened(&user)?;
        for (field, old_value, new_value) in audited {
            let change = audit::Change {
                actor_id: user.id(),
                event_id: id,
                performance_id: None,
                field,
                old_value,
                new_value,
            };
            audit::append(&mut tx, &change).await?;
        }
    }
    // Only the fields sent are written.
    let mut changes = EventChanges::default();
    if let Some(t) = input.title {
        e.title = t.trim().to_owned();
        changes.title = Some(e.title.clone());
    }
    if let Some(d) = input.description {
        e.description = d.clone();
        changes.description = Some(d);
    }
    if let Some(l) = input.ticket_limit {
        e.ticket_limit = l;
        changes.ticket_limit = Some(l);
    }
    if let Some(w) = input.waiting_room {
        e.waiting_room = w;
        changes.waiting_room = Some(w);
    }
    if let Some(f) = input.free {
        e.free = f;
        changes.free = Some(f);
    }
    if changes.title.is_some() {
        let venue = venues::summary(&mut tx, e.venue_id)
            .await?
            .ok_or_else(|| not_found("venue", e.venue_id))?;
        changes.search_doc = Some(event_doc(&e, &venue));
    }
    events::update_event(&mut tx, id, &changes).await?;
    if let Some(t) = tiers {
        events::replace_tiers(&mut tx, id, &t).await?;
        // New prices may mend a publication that failed: try it again at the next round.
        events::retry_publication_now(&mut tx, id).await?;
    }
    if let Some(policy) = policy {
        // Orders made before the re-publication keep the policy they froze.
        events::set_policy(&mut tx, id, policy.as_ref()).await?;
        e.cancellation_policy = policy.map(sqlx::types::Json);
    }
    republish_event(&mut tx, &e).await?;
    tx.commit().await?;
    state.cache.clear();
    let mut conn = state.pool.acquire().await?;
    let detail = events::detail(&mut conn, id, true, state.clock.now())
        .await?
        .ok_or_else(|| not_found("event", id))?;
    Ok(Json(detail))
}

async fn view(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<PerformanceView, ApiError> {
    let p = events::performance(conn, id, false)
        .await?
        .ok_or_else(|| not_found("performance", id))?;
    let sale_windows = events::windows(conn, id).await?;
    let open = open_at(sale_windows.iter().map(|w| (w.opens_at, w.closes_at)), now);
    Ok(PerformanceView {
        id: p.id,
        starts_at: p.starts_at,
        status: SaleStatus::at(p.state(), p.starts_at, p.sale_closes_at, open, now),
        sale_opens_at: p.sale_opens_at,
        sale_closes_at: p.sale_closes_at,
        sale_windows,
        revision: p.revision,
        cancel_reason: p.cancel_reason,
        remaining: None,
    })
}

/// `POST /api/v1/admin/events/{event_id}/performances` → 201 the draft performance.
#[utoipa::path(
    post,
    path = "/api/v1/admin/events/{event_id}/performances",
    tag = "admin",
    params(("event_id" = Uuid, Path, description = "The event")),
    request_body = PerformanceInput,
    responses(
        (status = 201, description = "The draft performance", body = PerformanceView),
        (status = 400, description = "`validation_failed`: `event_id` is not a UUID, or every invalid field named in `errors` (also a body of the wrong shape or with an unknown field, or text holding U+0000; a bound passed or a control character in a text field, by field: docs/services/catalog.md, Bounds), or `performances`: the event has 1000 performances already; `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read, or the performance is incomplete", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn add_performance(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<PerformanceInput>,
) -> Result<(StatusCode, Json<PerformanceView>), ApiError> {
    let id = parse_id("event_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    let checked = input.check(&mut p, "");
    p.finish()?;
    let Some((starts_at, windows)) = checked else {
        return Err(ApiError::bad_request("the performance is incomplete"));
    };
    let mut tx = state.pool.begin().await?;
    let e = events::event(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("event", id))?;
    authorize(&user, e.organizer_id)?;
    // The event row is locked: no other writer adds one between the count and the insert.
    let mut p = Problems::new();
    p.check(
        events::performance_count(&mut tx, id).await? >= MAX_PERFORMANCES,
        "performances",
        format!("an event has at most {MAX_PERFORMANCES} performances"),
    );
    p.finish()?;
    let perf = NewPerformance {
        id: Uuid::now_v7(),
        event_id: id,
        starts_at,
        state: PerformanceState::Draft,
        windows,
    };
    events::insert_performances(&mut tx, std::slice::from_ref(&perf)).await?;
    let v = view(&mut tx, perf.id, state.clock.now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Locks a performance and its event (event first, the order every writer uses).
pub(super) async fn lock(
    conn: &mut PgConnection,
    user: &AuthUser,
    id: Uuid,
) -> Result<(EventRow, PerformanceRow), ApiError> {
    let event_id = events::performance(conn, id, false)
        .await?
        .ok_or_else(|| not_found("performance", id))?
        .event_id;
    let e = events::event(conn, event_id, true)
        .await?
        .ok_or_else(|| not_found("event", event_id))?;
    authorize(user, e.organizer_id)?;
    let perf = events::performance(conn, id, true)
        .await?
        .ok_or_else(|| not_found("performance", id))?;
    Ok((e, perf))
}

/// `PATCH /api/v1/admin/performances/{performance_id}` → the performance; re-published when it
/// was published.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/performances/{performance_id}",
    tag = "admin",
    params(("performance_id" = Uuid, Path, description = "The performance")),
    request_body = PerformancePatch,
    responses(
        (status = 200, description = "The performance; re-published (a higher `revision`) when it was published", body = PerformanceView),
        (status = 400, description = "`validation_failed`: `performance_id` is not a UUID, every invalid field named in `errors` (`starts_at`: a kept sale window would open after it; `sale_windows`: more than 10, or a control character in a name; also a body of the wrong shape or with an unknown field), or `price_tiers`: a grade it sells has no price (when re-published); `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin; `sale_opened`: its sale has opened, and only admins change its start now (recorded in the audit log)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`performance_cancelled`: a cancelled performance cannot change", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn update_performance(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<PerformancePatch>,
) -> Result<Json<PerformanceView>, ApiError> {
    let id = parse_id("performance_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let (e, perf) = lock(&mut tx, &user, id).await?;
    if perf.state() == PerformanceState::Cancelled {
        return Err(ApiError::conflict(
            "performance_cancelled",
            "a cancelled performance cannot change",
        ));
    }
    let starts_at = input.starts_at.unwrap_or(perf.starts_at);
    let mut p = Problems::new();
    let windows = match &input.sale_windows {
        Some(w) => Some(check_windows(&mut p, "", w, Some(starts_at))),
        None => {
            // The existing windows must still open before the new start.
            let existing = events::windows(&mut tx, id).await?;
            p.check(
                existing.iter().any(|w| w.opens_at >= starts_at),
                "starts_at",
                "a sale window would open after the performance starts",
            );
            None
        }
    };
    p.finish()?;
    let now = state.clock.now();
    if starts_at != perf.starts_at
        && permissions::sale_opened(perf.state(), perf.sale_opens_at, now)
    {
        admin_after_sale_opened(&user)?;
        let change = audit::Change {
            actor_id: user.id(),
            event_id: e.id,
            performance_id: Some(id),
            field: "starts_at",
            old_value: json!(perf.starts_at),
            new_value: json!(starts_at),
        };
        audit::append(&mut tx, &change).await?;
    }
    events::reschedule(&mut tx, id, starts_at, windows.as_deref()).await?;
    if perf.revision > 0
        && matches!(
            perf.state(),
            PerformanceState::Published | PerformanceState::SoldOut
        )
    {
        let fresh = events::performance(&mut tx, id, false)
            .await?
            .ok_or_else(|| not_found("performance", id))?;
        let inventory = venues::inventory(&mut tx, e.venue_id).await?;
        publish::publish(&mut tx, &e, &fresh, &inventory).await?;
    }
    let v = view(&mut tx, id, state.clock.now()).await?;
    tx.commit().await?;
    state.cache.clear();
    Ok(Json(v))
}

/// `POST /api/v1/admin/performances/{performance_id}/publish` → the published performance;
/// emits `performance.published`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/performances/{performance_id}/publish",
    tag = "admin",
    params(("performance_id" = Uuid, Path, description = "The performance")),
    responses(
        (status = 200, description = "The published performance (`revision` 1); its event is published too; `performance.published` goes to the seat service", body = PerformanceView),
        (status = 400, description = "`validation_failed`: `performance_id` is not a UUID, or `price_tiers`: a grade the venue sells has no price", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_published`: it is published (or sold out) already; `performance_cancelled`: a cancelled performance cannot be published", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn publish(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
) -> Result<Json<PerformanceView>, ApiError> {
    let id = parse_id("performance_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let (e, perf) = lock(&mut tx, &user, id).await?;
    perf.state().can_publish().map_err(|why| {
        let code = if perf.state() == PerformanceState::Cancelled {
            "performance_cancelled"
        } else {
            "already_published"
        };
        ApiError::conflict(code, why)
    })?;
    let inventory = venues::inventory(&mut tx, e.venue_id).await?;
    publish::publish(&mut tx, &e, &perf, &inventory).await?;
    events::mark_published(&mut tx, e.id).await?;
    let v = view(&mut tx, id, state.clock.now()).await?;
    tx.commit().await?;
    state.cache.clear();
    Ok(Json(v))
}

/// `POST /api/v1/admin/performances/{performance_id}/cancel` `{reason}` → the cancelled
/// performance; emits `performance.cancelled` when it had been published.
#[utoipa::path(
    post,
    path = "/api/v1/admin/performances/{performance_id}/cancel",
    tag = "admin",
    params(("performance_id" = Uuid, Path, description = "The performance")),
    request_body = CancelInput,
    responses(
        (status = 200, description = "The performance, `cancelled`; `performance.cancelled` is emitted when it had been published", body = PerformanceView),
        (status = 400, description = "`validation_failed`: `performance_id` is not a UUID, or `reason` is missing, blank or longer than 500 characters (also a body of the wrong shape or with an unknown field, or text holding U+0000; a bound passed or a control character in a text field, by field: docs/services/catalog.md, Bounds); `malformed_json`: the body is not JSON; `bad_request`: the body cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role, or is neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`performance_cancelled`: it is cancelled already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<CancelInput>,
) -> Result<Json<PerformanceView>, ApiError> {
    let id = parse_id("performance_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    input.check(&mut p);
    p.finish()?;
    let mut tx = state.pool.begin().await?;
    let (_, perf) = lock(&mut tx, &user, id).await?;
    perf.state()
        .can_cancel()
        .map_err(|why| ApiError::conflict("performance_cancelled", why))?;
    publish::cancel(
        &mut tx,
        &perf,
        input.reason.as_deref().unwrap_or_default().trim(),
    )
    .await?;
    let v = view(&mut tx, id, state.clock.now()).await?;
    tx.commit().await?;
    state.cache.clear();
    Ok(Json(v))
}
