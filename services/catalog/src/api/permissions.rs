//! The consents and records behind the organizer rules: which organizers a venue is granted to
//! (its owner's or an admin's to give), which organizer accounts are a KBO club's (an admin's),
//! and the audit log of changes made after a sale opened (admins read it).

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use platform::{
    ApiError,
    auth::{AuthUser, Role},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppState, authorize, docs::Problem, parse_id};
use crate::{
    domain::{teams, validate::Problems},
    store::{
        audit::{self, Entry},
        clubs,
        venues::{self, Grant},
    },
};

/// The organizers a venue or a club grants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Grants {
    /// Oldest first.
    pub items: Vec<Grant>,
}

fn require_admin(user: &AuthUser) -> Result<(), ApiError> {
    user.require(Role::Organizer)?;
    if user.0.has(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin may do this"))
    }
}

/// Locks the venue and checks that `user` is its owner or an admin.
async fn venue_owner(
    conn: &mut sqlx::PgConnection,
    user: &AuthUser,
    id: Uuid,
) -> Result<(), ApiError> {
    let owner = venues::owner(conn, id, true)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no venue {id}")))?;
    authorize(user, owner)
}

/// `GET /api/v1/admin/venues/{venue_id}/organizers` → the organizers granted the venue.
#[utoipa::path(
    get,
    path = "/api/v1/admin/venues/{venue_id}/organizers",
    tag = "admin",
    params(("venue_id" = Uuid, Path, description = "The venue")),
    responses(
        (status = 200, description = "The organizers granted the venue (besides its owner; a `shared` venue is open to all)", body = Grants),
        (status = 400, description = "`validation_failed`: `venue_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is neither the venue's organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such venue", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn venue_grants(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
) -> Result<Json<Grants>, ApiError> {
    let id = parse_id("venue_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    venue_owner(&mut tx, &user, id).await?;
    let items = venues::grants(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(Grants { items }))
}

/// `PUT /api/v1/admin/venues/{venue_id}/organizers/{organizer_id}` → the grant.
#[utoipa::path(
    put,
    path = "/api/v1/admin/venues/{venue_id}/organizers/{organizer_id}",
    tag = "admin",
    params(
        ("venue_id" = Uuid, Path, description = "The venue"),
        ("organizer_id" = Uuid, Path, description = "The organizer account let hold events there"),
    ),
    responses(
        (status = 200, description = "The grant (granting again keeps the first)", body = Grant),
        (status = 400, description = "`validation_failed`: `venue_id` or `organizer_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is neither the venue's organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such venue", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn grant_venue(
    State(state): State<AppState>,
    Path((raw_venue, raw_organizer)): Path<(String, String)>,
    user: AuthUser,
) -> Result<Json<Grant>, ApiError> {
    let id = parse_id("venue_id", &raw_venue)?;
    let organizer = parse_id("organizer_id", &raw_organizer)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    venue_owner(&mut tx, &user, id).await?;
    let grant = venues::grant(&mut tx, id, organizer, user.id()).await?;
    tx.commit().await?;
    Ok(Json(grant))
}

/// `DELETE /api/v1/admin/venues/{venue_id}/organizers/{organizer_id}` → 204.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/venues/{venue_id}/organizers/{organizer_id}",
    tag = "admin",
    params(
        ("venue_id" = Uuid, Path, description = "The venue"),
        ("organizer_id" = Uuid, Path, description = "The organizer account"),
    ),
    responses(
        (status = 204, description = "The grant is taken back (events it let create stay); also when there was none"),
        (status = 400, description = "`validation_failed`: `venue_id` or `organizer_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is neither the venue's organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such venue", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn revoke_venue(
    State(state): State<AppState>,
    Path((raw_venue, raw_organizer)): Path<(String, String)>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("venue_id", &raw_venue)?;
    let organizer = parse_id("organizer_id", &raw_organizer)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    venue_owner(&mut tx, &user, id).await?;
    venues::revoke(&mut tx, id, organizer).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn team_code(raw: &str) -> Result<&'static str, ApiError> {
    teams::resolve(raw)
        .map(|t| t.code)
        .ok_or_else(|| ApiError::not_found(format!("no team {raw}")))
}

/// `GET /api/v1/admin/teams/{team}/organizers` → the club's organizer accounts.
#[utoipa::path(
    get,
    path = "/api/v1/admin/teams/{team}/organizers",
    tag = "admin",
    params(("team" = String, Path, description = "The club, by code or any of its names (`lg`, `LG 트윈스`)")),
    responses(
        (status = 200, description = "The organizer accounts that may put the club's code on events", body = Grants),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such team", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn team_accounts(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
) -> Result<Json<Grants>, ApiError> {
    require_admin(&user)?;
    let team = team_code(&raw)?;
    let mut conn = state.pool.acquire().await?;
    let items = clubs::accounts(&mut conn, team).await?;
    Ok(Json(Grants { items }))
}

/// `PUT /api/v1/admin/teams/{team}/organizers/{organizer_id}` → the grant.
#[utoipa::path(
    put,
    path = "/api/v1/admin/teams/{team}/organizers/{organizer_id}",
    tag = "admin",
    params(
        ("team" = String, Path, description = "The club, by code or any of its names"),
        ("organizer_id" = Uuid, Path, description = "The organizer account made the club's"),
    ),
    responses(
        (status = 200, description = "The grant (granting again keeps the first)", body = Grant),
        (status = 400, description = "`validation_failed`: `organizer_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such team", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn grant_team(
    State(state): State<AppState>,
    Path((raw_team, raw_organizer)): Path<(String, String)>,
    user: AuthUser,
) -> Result<Json<Grant>, ApiError> {
    require_admin(&user)?;
    let organizer = parse_id("organizer_id", &raw_organizer)?;
    let team = team_code(&raw_team)?;
    let mut conn = state.pool.acquire().await?;
    let grant = clubs::grant(&mut conn, team, organizer, user.id()).await?;
    Ok(Json(grant))
}

/// `DELETE /api/v1/admin/teams/{team}/organizers/{organizer_id}` → 204.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/teams/{team}/organizers/{organizer_id}",
    tag = "admin",
    params(
        ("team" = String, Path, description = "The club, by code or any of its names"),
        ("organizer_id" = Uuid, Path, description = "The organizer account"),
    ),
    responses(
        (status = 204, description = "The account is no longer the club's (its events keep their teams); also when it was not"),
        (status = 400, description = "`validation_failed`: `organizer_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such team", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn revoke_team(
    State(state): State<AppState>,
    Path((raw_team, raw_organizer)): Path<(String, String)>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    require_admin(&user)?;
    let organizer = parse_id("organizer_id", &raw_organizer)?;
    let team = team_code(&raw_team)?;
    let mut conn = state.pool.acquire().await?;
    clubs::revoke(&mut conn, team, organizer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Most entries of a page of the audit log.
const MAX_AUDIT_PAGE: i64 = 200;

/// The audit log's query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only the changes of this event.
    #[param(value_type = Option<Uuid>)]
    event_id: Option<String>,
    /// The previous page's `next_before`: entries older than it.
    #[param(value_type = Option<i64>)]
    before: Option<String>,
    /// Entries per page, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<Entry>,
    /// `before` of the next (older) page; absent on the last.
    pub next_before: Option<i64>,
}

/// `GET /api/v1/admin/audit?event_id&before&limit` → changes made after a sale opened.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    params(AuditParams),
    responses(
        (status = 200, description = "Changes of prices, ticket limits and start times made after a sale opened: who, when, what, old → new; newest first", body = AuditPage),
        (status = 400, description = "`validation_failed`: `event_id` is not a UUID, `before` not a whole number, `limit` not from 1 to 200; `bad_request`: the query string cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no bearer access token, or an invalid or expired one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable, or tokens cannot be verified right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn audit_log(
    State(state): State<AppState>,
    user: AuthUser,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    require_admin(&user)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut p = Problems::new();
    let present = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let event_id = present(&params.event_id).and_then(|v| {
        let parsed = Uuid::parse_str(&v).ok();
        p.check(parsed.is_none(), "event_id", "must be a UUID");
        parsed
    });
    let before = present(&params.before).and_then(|v| {
        let parsed = v.parse::<i64>().ok();
        p.check(parsed.is_none(), "before", "must be a whole number");
        parsed
    });
    let limit = match present(&params.limit) {
        None => 50,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_AUDIT_PAGE).contains(&n) => n,
            _ => {
                p.add(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_AUDIT_PAGE}"),
                );
                50
            }
        },
    };
    p.finish()?;
    let mut conn = state.pool.acquire().await?;
    let mut items = audit::list(&mut conn, event_id, before, limit + 1).await?;
    let more = i64::try_from(items.len()).unwrap_or(i64::MAX) > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage { items, next_before }))
}
