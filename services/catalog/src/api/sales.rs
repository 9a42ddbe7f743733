//! Ticket types and presales, organizer side: `PUT /api/v1/admin/events/{event_id}/ticket-prices`
//! (a price per grade and ticket type), member groups (`POST /api/v1/admin/member-groups`,
//! `POST /api/v1/admin/member-groups/{group_id}/members`), a performance's presale audience
//! (`PUT /api/v1/admin/performances/{performance_id}/presale`) and its access codes
//! (`POST /api/v1/admin/performances/{performance_id}/presale/codes`). A change that the seat
//! service must know re-publishes the performances it touches.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use platform::{
    ApiError,
    auth::{AuthUser, Role},
    problem::ApiJson,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{AppState, authorize, docs::Problem, parse_id};
use crate::{
    domain::{
        PerformanceState,
        validate::{MAX_NAME, MAX_TICKET_LIMIT, Problems},
    },
    presale::{self, GroupView, MAX_CODES, MAX_MEMBERS, PresaleView},
    publish,
    store::{audit, events, venues},
    ticket_types::{self, TicketPrice, TicketPriceInput},
};

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::not_found(format!("no {what} {id}"))
}

/// Re-publishes `perf` when it is on the market (published or sold out).
async fn republish(conn: &mut PgConnection, perf: Uuid) -> Result<(), ApiError> {
    let Some(p) = events::performance(conn, perf, true).await? else {
        return Ok(());
    };
    if p.revision == 0
        || !matches!(
            p.state(),
            PerformanceState::Published | PerformanceState::SoldOut
        )
    {
        return Ok(());
    }
    let e = events::event(conn, p.event_id, false)
        .await?
        .ok_or_else(|| not_found("event", p.event_id))?;
    let inventory = venues::inventory(conn, e.venue_id).await?;
    publish::publish(conn, &e, &p, &inventory).await?;
    Ok(())
}

/// The body of `PUT /api/v1/admin/events/{event_id}/ticket-prices`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TicketPricesInput {
    /// Every non-standard (grade, type) price of the event, replacing those set before; each
    /// grade's `adult` price is its price tier.
    #[serde(default)]
    #[schema(max_items = 250)]
    ticket_prices: Vec<TicketPriceInput>,
}

/// The event's ticket prices.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TicketPricesView {
    /// The event.
    event_id: Uuid,
    /// Every grade's standard (`adult`) price and the other types priced.
    ticket_prices: Vec<TicketPrice>,
}

/// `PUT /api/v1/admin/events/{event_id}/ticket-prices` → the event's prices by grade and ticket
/// type; its published performances are re-published.
#[utoipa::path(
    put,
    path = "/api/v1/admin/events/{event_id}/ticket-prices",
    tag = "admin",
    params(("event_id" = Uuid, Path, description = "The event")),
    request_body = TicketPricesInput,
    responses(
        (status = 200, description = "Every grade's standard (`adult`) price and the other ticket types priced; published performances are re-published with them", body = TicketPricesView),
        (status = 400, description = "`validation_failed`: `ticket_prices[i].grade` not a grade with a price tier, `ticket_type` unknown or `adult` (its price is the tier's) or listed twice for a grade, `price_krw` not 0–10000000, more than 250 prices; also an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither the event's organizer nor an admin; `sale_opened`: a sale of the event has opened, and only admins change its prices now (recorded in the audit log)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn set_ticket_prices(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<TicketPricesInput>,
) -> Result<Json<TicketPricesView>, ApiError> {
    let id = parse_id("event_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let e = events::event(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("event", id))?;
    authorize(&user, e.organizer_id)?;
    let tiers = events::tiers(&mut tx, id).await?;
    let mut p = Problems::new();
    let prices = ticket_types::check(&mut p, &input.ticket_prices, &tiers);
    p.finish()?;
    let before = ticket_types::prices(&mut tx, id).await?;
    ticket_types::replace(&mut tx, id, &prices).await?;
    let ticket_prices = ticket_types::prices(&mut tx, id).await?;
    // Prices are a price change like the tiers': once a sale opened, an admin's, and audited.
    if before != ticket_prices
        && super::admin::sale_has_opened(&mut tx, id, state.clock.now()).await?
    {
        super::admin::admin_after_sale_opened(&user)?;
        let change = audit::Change {
            actor_id: user.id(),
            event_id: id,
            performance_id: None,
            field: "ticket_prices",
            old_value: serde_json::json!(before),
            new_value: serde_json::json!(ticket_prices),
        };
        audit::append(&mut tx, &change).await?;
    }
    for perf in events::performances_of(&mut tx, id).await? {
        republish(&mut tx, perf.id).await?;
    }
    tx.commit().await?;
    state.cache.clear();
    Ok(Json(TicketPricesView {
        event_id: id,
        ticket_prices,
    }))
}

/// The body of `POST /api/v1/admin/member-groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupInput {
    /// Name, 1–200 characters (e.g. `뮤지컬 팬클럽`).
    #[schema(value_type = String, required = true)]
    name: Option<String>,
}

/// `POST /api/v1/admin/member-groups` → 201 a new member group, managed by the caller.
#[utoipa::path(
    post,
    path = "/api/v1/admin/member-groups",
    tag = "admin",
    request_body = GroupInput,
    responses(
        (status = 201, description = "The group, without members", body = GroupView),
        (status = 400, description = "`validation_failed`: `name` missing, blank or too long", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the `organizer` role", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create_group(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<GroupInput>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    user.require(Role::Organizer)?;
    let mut p = Problems::new();
    let name = input.name.unwrap_or_default();
    p.name("name", &name, MAX_NAME);
    p.finish()?;
    let organizer = (!user.0.has(Role::Admin)).then(|| user.id());
    let mut conn = state.pool.acquire().await?;
    let g = presale::create_group(&mut conn, organizer, name.trim()).await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// The body of `POST /api/v1/admin/member-groups/{group_id}/members`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MembersInput {
    /// Accounts (user ids) to add, 1–1000.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 1000)]
    account_ids: Vec<Uuid>,
}

/// `POST /api/v1/admin/member-groups/{group_id}/members` → the group; the performances whose
/// presale lets it in are re-published.
#[utoipa::path(
    post,
    path = "/api/v1/admin/member-groups/{group_id}/members",
    tag = "admin",
    params(("group_id" = Uuid, Path, description = "The group")),
    request_body = MembersInput,
    responses(
        (status = 200, description = "The group with its member count", body = GroupView),
        (status = 400, description = "`validation_failed`: `account_ids` empty, more than 1000, or the group would pass 4000 members", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither the group's organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn add_members(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<MembersInput>,
) -> Result<Json<GroupView>, ApiError> {
    let id = parse_id("group_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let g = presale::group(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("member group", id))?;
    authorize(&user, g.organizer_id)?;
    let mut p = Problems::new();
    p.check(
        input.account_ids.is_empty() || input.account_ids.len() > 1000,
        "account_ids",
        "must list 1 to 1000 accounts",
    );
    p.check(
        g.member_count + i64::try_from(input.account_ids.len()).unwrap_or(i64::MAX) > MAX_MEMBERS,
        "account_ids",
        format!("a group has at most {MAX_MEMBERS} members"),
    );
    p.finish()?;
    presale::add_members(&mut tx, id, &input.account_ids).await?;
    for perf in presale::performances_of_group(&mut tx, id).await? {
        republish(&mut tx, perf).await?;
    }
    let g = presale::group(&mut tx, id, false)
        .await?
        .ok_or_else(|| not_found("member group", id))?;
    tx.commit().await?;
    Ok(Json(g))
}

/// `DELETE /api/v1/admin/member-groups/{group_id}/members/{account_id}` → the group, without
/// that account; the performances whose presale lets the group in are re-published, so from
/// then on the account is refused their presale like anyone outside it (holds it made already
/// stand).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/member-groups/{group_id}/members/{account_id}",
    tag = "admin",
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("account_id" = Uuid, Path, description = "The account to take out"),
    ),
    responses(
        (status = 200, description = "The group with its member count", body = GroupView),
        (status = 400, description = "`validation_failed`: `group_id` or `account_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither the group's organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such group, or the account is not in it", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn remove_member(
    State(state): State<AppState>,
    Path((raw_group, raw_account)): Path<(String, String)>,
    user: AuthUser,
) -> Result<Json<GroupView>, ApiError> {
    let id = parse_id("group_id", &raw_group)?;
    let account = parse_id("account_id", &raw_account)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let g = presale::group(&mut tx, id, true)
        .await?
        .ok_or_else(|| not_found("member group", id))?;
    authorize(&user, g.organizer_id)?;
    if !presale::remove_member(&mut tx, id, account).await? {
        return Err(ApiError::not_found(format!(
            "account {account} is not a member of group {id}"
        )));
    }
    for perf in presale::performances_of_group(&mut tx, id).await? {
        republish(&mut tx, perf).await?;
    }
    let g = presale::group(&mut tx, id, false)
        .await?
        .ok_or_else(|| not_found("member group", id))?;
    tx.commit().await?;
    Ok(Json(g))
}

/// `DELETE /api/v1/admin/performances/{performance_id}/presale` → 204: its presale windows are
/// open to everyone again (the audience and every access code are gone); re-published when
/// published.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/performances/{performance_id}/presale",
    tag = "admin",
    params(("performance_id" = Uuid, Path, description = "The performance")),
    responses(
        (status = 204, description = "No presale audience any more: anyone may hold in every sale window"),
        (status = 400, description = "`validation_failed`: `performance_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance, or it has no presale audience", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`performance_cancelled`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_presale(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("performance_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let (_, perf) = super::admin::lock(&mut tx, &user, id).await?;
    if perf.state() == PerformanceState::Cancelled {
        return Err(ApiError::conflict(
            "performance_cancelled",
            "a cancelled performance cannot change",
        ));
    }
    if !presale::clear_audience(&mut tx, id).await? {
        return Err(ApiError::not_found(format!(
            "performance {id} has no presale audience"
        )));
    }
    republish(&mut tx, id).await?;
    tx.commit().await?;
    state.cache.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `PUT /api/v1/admin/performances/{performance_id}/presale`: the members of
/// `group_id`, or (`access_codes: true`) holders of codes, each buying at most `ticket_limit`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PresaleInput {
    /// A member group of the caller's: a members' presale.
    group_id: Option<Uuid>,
    /// A presale for holders of access codes (`POST .../presale/codes` makes them).
    #[serde(default)]
    access_codes: bool,
    /// Most tickets one buyer may hold and buy in presale, 1–20 (at most the event's limit).
    #[schema(value_type = i32, required = true, minimum = 1, maximum = 20)]
    ticket_limit: Option<i32>,
}

/// `PUT /api/v1/admin/performances/{performance_id}/presale` → who may use its presale windows;
/// re-published when published.
#[utoipa::path(
    put,
    path = "/api/v1/admin/performances/{performance_id}/presale",
    tag = "admin",
    params(("performance_id" = Uuid, Path, description = "The performance")),
    request_body = PresaleInput,
    responses(
        (status = 200, description = "The presale audience; before the general sale only it may hold seats", body = PresaleView),
        (status = 400, description = "`validation_failed`: neither or both of `group_id` and `access_codes`, `group_id` not a group of the caller's, `ticket_limit` not 1–20 or over the event's limit, `sale_windows`: the performance has no presale window", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`performance_cancelled`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn set_presale(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<PresaleInput>,
) -> Result<Json<PresaleView>, ApiError> {
    let id = parse_id("performance_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    let (e, perf) = super::admin::lock(&mut tx, &user, id).await?;
    if perf.state() == PerformanceState::Cancelled {
        return Err(ApiError::conflict(
            "performance_cancelled",
            "a cancelled performance cannot change",
        ));
    }
    let mut p = Problems::new();
    p.check(
        input.group_id.is_some() == input.access_codes,
        "group_id",
        "give a `group_id` (a members' presale) or `access_codes: true`, not both",
    );
    let mut group_name = None;
    if let Some(g) = input.group_id {
        // Someone else's group is as good as none: its existence is not told.
        match presale::group(&mut tx, g, false).await? {
            Some(group)
                if user.0.has(Role::Admin)
                    || (group.organizer_id.is_some() && group.organizer_id == e.organizer_id) =>
            {
                group_name = Some(group.name);
            }
            _ => p.add("group_id", "is not a member group of yours"),
        }
    }
    let limit = input.ticket_limit;
    p.check(limit.is_none(), "ticket_limit", "is required");
    p.check(
        limit.is_some_and(|l| !(1..=MAX_TICKET_LIMIT).contains(&l) || l > e.ticket_limit),
        "ticket_limit",
        format!(
            "must be 1 to {} (the event's limit)",
            e.ticket_limit.min(MAX_TICKET_LIMIT)
        ),
    );
    let windows = events::windows(&mut tx, id).await?;
    p.check(
        !windows.iter().any(|w| w.kind == "presale"),
        "sale_windows",
        "the performance has no sale window of kind `presale`",
    );
    p.finish()?;
    let limit = limit.unwrap_or(1);
    presale::set_audience(&mut tx, id, input.group_id, limit).await?;
    republish(&mut tx, id).await?;
    tx.commit().await?;
    state.cache.clear();
    Ok(Json(PresaleView {
        performance_id: id,
        audience: if input.access_codes {
            "access_codes"
        } else {
            "members"
        }
        .to_owned(),
        group_name,
        ticket_limit: limit,
        general_sale_opens_at: windows
            .iter()
            .filter(|w| w.kind == "general")
            .map(|w| w.opens_at)
            .min(),
    }))
}

/// The body of `POST /api/v1/admin/performances/{performance_id}/presale/codes`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CodesInput {
    /// How many codes, 1–500.
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 500)]
    count: Option<i64>,
}

/// New access codes: shown this once, only their hashes are kept.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CodesView {
    /// The performance.
    performance_id: Uuid,
    /// The codes (`XXXX-XXXX-XXXX-XXXX`), each good for one account.
    codes: Vec<String>,
}

/// `POST /api/v1/admin/performances/{performance_id}/presale/codes` → 201 new access codes;
/// re-published when published.
#[utoipa::path(
    post,
    path = "/api/v1/admin/performances/{performance_id}/presale/codes",
    tag = "admin",
    params(("performance_id" = Uuid, Path, description = "The performance")),
    request_body = CodesInput,
    responses(
        (status = 201, description = "The codes, shown once (only their SHA-256 is stored); each lets one account into the presale", body = CodesView),
        (status = 400, description = "`validation_failed`: `count` not 1–500, or the performance would pass 3000 codes", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: neither its organizer nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`presale_not_by_code`: its presale is not an access-code one (`PUT .../presale` first)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn generate_codes(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    user: AuthUser,
    ApiJson(input): ApiJson<CodesInput>,
) -> Result<(StatusCode, Json<CodesView>), ApiError> {
    let id = parse_id("performance_id", &raw)?;
    user.require(Role::Organizer)?;
    let mut tx = state.pool.begin().await?;
    super::admin::lock(&mut tx, &user, id).await?;
    if !presale::rules(&mut tx, id).await?.is_some_and(|r| r.codes) {
        return Err(ApiError::conflict(
            "presale_not_by_code",
            "the performance's presale is not one for access codes",
        ));
    }
    let mut p = Problems::new();
    let count = input.count.unwrap_or(0);
    p.check(!(1..=500).contains(&count), "count", "must be 1 to 500");
    p.check(
        presale::code_count(&mut tx, id).await? + count > MAX_CODES,
        "count",
        format!("a performance has at most {MAX_CODES} codes"),
    );
    p.finish()?;
    let codes = presale::generate_codes(&mut tx, id, usize::try_from(count).unwrap_or(0)).await?;
    republish(&mut tx, id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CodesView {
            performance_id: id,
            codes,
        }),
    ))
}
