//! `POST /api/v1/holds` (chosen seats, best available, or general-admission places),
//! `GET /api/v1/holds/{hold_id}`, `DELETE /api/v1/holds/{hold_id}` and
//! `POST /api/v1/holds/{hold_id}/checkout` (an order takes the hold into checkout).

use std::collections::HashSet;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    auth::{AuthUser, Role},
    problem::{ApiJson, FieldError},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppState, Problem, admitted, map_of, parse_id};
use crate::{
    domain::{
        SeatStatus,
        best_available::{self, Candidate, Wish},
        groups::GroupRefusal,
    },
    map::{Layout, PerfMap},
    presale::PresaleError,
    store::{Hold, HoldStatus, StoreError},
};
use contracts::tickets::PresaleRules;

/// Attempts at best available when other buyers take the chosen seats first. Each failed
/// attempt leaves out the seats the store found taken; with several seat replicas a replica's
/// map lags the others' holds by up to `seat.seat_map_max_stale_ms`, so buyers on two replicas
/// pick the same best seats more often than on one (3 attempts refused holds while thousands of
/// seats were left, with two replicas under 100 buyers at once). Each attempt is one store call.
const BEST_AVAILABLE_ATTEMPTS: usize = 10;

/// The body of `POST /api/v1/holds`: chosen `seat_ids`; or best available by `quantity`
/// (optionally of a `grade`, in a `section`, wheelchair places); or `quantity` places of a
/// general-admission `area_id`. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    performance_id: Uuid,
    /// The seats to hold (1 to the per-hold limit), all or none.
    #[serde(default)]
    seat_ids: Option<Vec<String>>,
    /// Best available of this grade.
    #[serde(default)]
    grade: Option<String>,
    /// Best available or general-admission places: 1 to the per-hold limit.
    #[serde(default)]
    quantity: Option<i64>,
    /// Best available in this section.
    #[serde(default)]
    section: Option<String>,
    /// Best available wheelchair places.
    #[serde(default)]
    wheelchair: Option<bool>,
    /// A general-admission (standing) area.
    #[serde(default)]
    area_id: Option<String>,
    /// An access code of the performance's presale (`XXXX-XXXX-XXXX-XXXX`), needed before the
    /// general sale when the presale is for code holders; bound to the first account using it.
    #[serde(default)]
    presale_code: Option<String>,
}

/// Places held in a general-admission area.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AreaHeld {
    area_id: String,
    quantity: i64,
    /// The area's grade (absent when the inventory is not at hand).
    #[serde(skip_serializing_if = "Option::is_none")]
    grade: Option<String>,
}

/// A seat held, with its grade and that grade's standard price.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeatHeld {
    seat_id: String,
    grade: String,
    price_krw: i64,
}

/// A hold as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldView {
    hold_id: Uuid,
    performance_id: Uuid,
    buyer_id: Uuid,
    seat_ids: Vec<String>,
    areas: Vec<AreaHeld>,
    /// The seats' grade prices, in won.
    amount_krw: i64,
    expires_at: DateTime<Utc>,
    status: HoldStatus,
    /// Each seat's grade and the grade's standard price (the order service prices ticket types
    /// by grade); absent when the inventory is not at hand.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    seats: Vec<SeatHeld>,
}

/// A hold just placed; `adjacent` (best available only) tells whether its seats sit together.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldCreated {
    #[serde(flatten)]
    hold: HoldView,
    #[serde(skip_serializing_if = "Option::is_none")]
    adjacent: Option<bool>,
}

fn view(h: &Hold, layout: Option<&Layout>) -> HoldView {
    let lapsed = h.status.is_live() && h.expires_at_ms <= Utc::now().timestamp_millis();
    let seats = layout
        .map(|l| {
            h.seat_ids
                .iter()
                .filter_map(|id| l.seat(id))
                .map(|s| SeatHeld {
                    seat_id: s.seat_id.clone(),
                    grade: s.grade.clone(),
                    price_krw: l.price(&s.grade),
                })
                .collect()
        })
        .unwrap_or_default();
    HoldView {
        hold_id: h.hold_id,
        performance_id: h.performance_id,
        buyer_id: h.buyer_id,
        seat_ids: h.seat_ids.clone(),
        areas: h
            .areas
            .iter()
            .map(|(a, q)| AreaHeld {
                area_id: a.clone(),
                quantity: *q,
                grade: layout.and_then(|l| l.area(a)).map(|a| a.grade.clone()),
            })
            .collect(),
        amount_krw: h.amount_krw,
        expires_at: DateTime::from_timestamp_millis(h.expires_at_ms).unwrap_or_default(),
        // A lapsed hold the sweeper has not reached yet is already expired to its readers.
        status: if lapsed {
            HoldStatus::Expired
        } else {
            h.status
        },
        seats,
    }
}

/// 403 `presale_only` (and the code refusals) for a buyer outside the presale.
fn presale_refused(e: PresaleError, rules: &PresaleRules) -> ApiError {
    let opens = rules.general_opens_at;
    match e {
        PresaleError::NotInAudience => ApiError::new(
            StatusCode::FORBIDDEN,
            "presale_only",
            match opens {
                Some(at) => format!(
                    "only the presale's audience may hold now; the general sale opens at {at}"
                ),
                None => "only the presale's audience may hold seats of this performance".to_owned(),
            },
        )
        .with("general_sale_opens_at", opens)
        .with(
            "audience",
            if rules.codes {
                "access_codes"
            } else {
                "members"
            },
        ),
        PresaleError::CodeInvalid => ApiError::new(
            StatusCode::FORBIDDEN,
            "presale_code_invalid",
            "the access code is not one of this performance's",
        )
        .with("general_sale_opens_at", opens),
        PresaleError::CodeUsed => ApiError::new(
            StatusCode::FORBIDDEN,
            "presale_code_used",
            "the access code was used by another account",
        )
        .with("general_sale_opens_at", opens),
        PresaleError::TooManyAttempts => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "presale_code_attempts",
            "too many wrong access codes; try again later",
        )
        .with("retry_after_secs", crate::presale::FAILURE_WINDOW_SECS)
        .with("general_sale_opens_at", opens),
        PresaleError::Db(e) => store_down(e),
    }
}

fn store_down(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "hold store failed");
    ApiError::unavailable("the hold store is unavailable; try again shortly")
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn not_on_sale(opens_at_ms: i64, closes_at_ms: i64) -> ApiError {
    ApiError::conflict("not_on_sale", "holds are taken only while the sale is open")
        .with("sale_opens_at", millis(opens_at_ms))
        .with("sale_closes_at", millis(closes_at_ms))
}

/// The answer to a store refusal or failure.
fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable { seat_ids, areas } => ApiError::conflict(
            "seat_unavailable",
            "some of the seats are no longer available; nothing was held",
        )
        .with("seat_ids", seat_ids)
        .with("area_ids", areas),
        StoreError::LimitExceeded { limit, current } => ApiError::conflict(
            "limit_exceeded",
            format!("at most {limit} tickets per buyer; you have {current} already"),
        )
        .with("limit", limit)
        .with("current", current),
        StoreError::NotOnSale {
            opens_at_ms,
            closes_at_ms,
        } => not_on_sale(opens_at_ms, closes_at_ms),
        StoreError::InCheckout => ApiError::conflict(
            "hold_in_checkout",
            "an order is paying for this hold; it ends with the order",
        ),
        StoreError::HoldEnded(status) => ended(status),
        StoreError::UnknownHold => ApiError::not_found("no such hold"),
        StoreError::UnknownPerformance => ApiError::not_found("the performance is not on sale"),
        e @ (StoreError::NotTheHold | StoreError::Transient(_) | StoreError::Corrupt(_)) => {
            store_down(e)
        }
    }
}

/// 409 for a hold that is over.
fn ended(status: HoldStatus) -> ApiError {
    match status {
        HoldStatus::Sold | HoldStatus::Returned => {
            ApiError::conflict("hold_sold", "the hold's seats were bought")
        }
        HoldStatus::Released => ApiError::conflict("hold_released", "the hold was released"),
        _ => ApiError::conflict("hold_expired", "the hold expired"),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, message)])
}

/// 400 for seats that are sold together but were not asked for together.
fn group_refused(r: GroupRefusal) -> ApiError {
    match r {
        GroupRefusal::TableSoldWhole { table, missing } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "table_sold_whole",
            format!("table {table} is sold whole; add its seats {missing:?} or leave it out"),
        )
        .with("table", table)
        .with("missing_seat_ids", missing),
        GroupRefusal::CompanionRequiresWheelchair {
            seat_id,
            wheelchair_seat_id,
        } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "companion_requires_wheelchair",
            format!(
                "{seat_id} is the companion seat of wheelchair seat {wheelchair_seat_id}; it is held only with it"
            ),
        )
        .with("seat_id", seat_id)
        .with("wheelchair_seat_id", wheelchair_seat_id),
    }
}

/// What the buyer asked for, checked against the layout.
enum Ask {
    Seats(Vec<String>),
    Best { quantity: usize },
    Area { area_id: String, quantity: i64 },
}

fn parse_ask(body: &HoldBody, map: &PerfMap, max: i64) -> Result<Ask, ApiError> {
    let layout = map.layout();
    let quantity = |q: Option<i64>| match q {
        Some(q) if (1..=max).contains(&q) => Ok(q),
        Some(_) => Err(invalid("quantity", format!("must be between 1 and {max}"))),
        None => Err(invalid("quantity", "is required")),
    };
    if let Some(seats) = &body.seat_ids {
        if body.quantity.is_some() || body.area_id.is_some() || body.grade.is_some() {
            return Err(invalid(
                "seat_ids",
                "give seat_ids, or grade and quantity, not both",
            ));
        }
        if seats.is_empty() || seats.len() as i64 > max {
            return Err(invalid(
                "seat_ids",
                format!("give between 1 and {max} seats"),
            ));
        }
        let unique: HashSet<&String> = seats.iter().collect();
        if unique.len() != seats.len() {
            return Err(invalid("seat_ids", "a seat is listed twice"));
        }
        let unknown: Vec<&String> = seats.iter().filter(|s| layout.seat(s).is_none()).collect();
        if !unknown.is_empty() {
            return Err(invalid("seat_ids", format!("no such seats: {unknown:?}")));
        }
        layout.groups_ok(seats).map_err(group_refused)?;
        return Ok(Ask::Seats(seats.clone()));
    }
    if let Some(area) = &body.area_id {
        if layout.area(area).is_none() {
            return Err(invalid("area_id", format!("no area `{area}`")));
        }
        return Ok(Ask::Area {
            area_id: area.clone(),
            quantity: quantity(body.quantity)?,
        });
    }
    if let Some(g) = &body.grade
        && !layout.seats.iter().any(|s| &s.grade == g)
    {
        return Err(invalid("grade", format!("no seats of grade `{g}`")));
    }
    let q = quantity(body.quantity)?;
    Ok(Ask::Best {
        quantity: usize::try_from(q).unwrap_or(1),
    })
}

/// `POST /api/v1/holds`.
#[utoipa::path(
    post,
    path = "/api/v1/holds",
    tag = "holds",
    request_body = HoldBody,
    params(("X-Admission-Pass" = Option<String>, Header, description = "The admission pass, required when the performance has a waiting room")),
    responses(
        (status = 201, description = "Held, all or none, until `expires_at`", body = HoldCreated),
        (status = 400, description = "`validation_failed`: seats unknown or listed twice, a quantity out of bounds, an unknown grade or area, seats and a quantity together, an unknown field; `table_sold_whole` (with `table`, `missing_seat_ids`): part of a table; `companion_requires_wheelchair` (with `seat_id`, `wheelchair_seat_id`): a companion seat without its wheelchair seat", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`admission_required`: no valid admission pass for a performance with a waiting room; before the general sale of a restricted presale: `presale_only` (with `general_sale_opens_at`, `audience`), `presale_code_invalid`, `presale_code_used` (another account used the code)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such performance, or it is not on sale", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`seat_unavailable` (with `seat_ids` and `area_ids` taken), `limit_exceeded` (with `limit`, `current`; in presale the presale's limit), `not_on_sale` (with `sale_opens_at`, `sale_closes_at`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`presale_code_attempts`: too many wrong access codes on this performance (with `retry_after_secs`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the hold store or the inventory is unreachable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<impl IntoResponse, ApiError> {
    let map = map_of(&state, body.performance_id).await?;
    admitted(&state, &map, &headers, Some(user.id())).await?;
    let layout = map.layout();
    if !layout.on_sale(Utc::now().timestamp_millis()) {
        // The store decides by its own clock; this only spares it a call that cannot succeed.
        return Err(not_on_sale(
            layout.sale_opens_at_ms,
            layout.sale_closes_at_ms,
        ));
    }
    // Before the general sale, only the presale's audience, each up to the presale's limit.
    let presale_limit = match &layout.presale {
        Some(rules) if rules.restricted_at(Utc::now()) => {
            crate::presale::admit(
                &state.pool,
                rules,
                body.performance_id,
                user.id(),
                body.presale_code.as_deref(),
            )
            .await
            .map_err(|e| presale_refused(e, rules))?;
            Some(i64::from(rules.ticket_limit.max(1)))
        }
        _ => None,
    };
    // The hold runs on its own task: if the request is abandoned (client gone, timeout) after
    // the store granted it, the task releases it, so the buyer has all the seats or none.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task_state = state.clone();
    tokio::spawn(async move {
        let placed = place(&task_state, user.id(), &body, &map, presale_limit).await;
        if let Err(Ok((hold, _))) = tx.send(placed) {
            tracing::warn!(hold_id = %hold.hold_id, "hold request abandoned; releasing the hold");
            if let Err(e) = task_state
                .holds
                .release(hold.performance_id, hold.hold_id)
                .await
            {
                tracing::error!(error = %e, "releasing an abandoned hold");
            }
        }
    });
    let (hold, adjacent) = rx
        .await
        .map_err(|_| ApiError::internal("the hold task ended without an answer"))??;
    let body = HoldCreated {
        hold: view(&hold, Some(&*layout)),
        adjacent,
    };
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// Chooses the seats and places the hold in the store; the map is updated at once.
async fn place(
    state: &AppState,
    buyer: Uuid,
    body: &HoldBody,
    map: &PerfMap,
    presale_limit: Option<i64>,
) -> Result<(Hold, Option<bool>), ApiError> {
    let layout = map.layout();
    let max = if layout.ticket_limit > 0 {
        layout.ticket_limit.min(state.config.max_per_hold)
    } else {
        state.config.max_per_hold
    };
    let max = presale_limit.map_or(max, |cap| max.min(cap));
    let ask = parse_ask(body, map, max)?;
    let now = Utc::now().timestamp_millis();
    let mut hold = Hold {
        hold_id: Uuid::now_v7(),
        performance_id: body.performance_id,
        buyer_id: buyer,
        seat_ids: Vec::new(),
        areas: Vec::new(),
        amount_krw: 0,
        expires_at_ms: now + i64::try_from(state.config.hold_ttl_ms).unwrap_or(600_000),
        status: HoldStatus::Active,
        presale_limit,
    };
    let mut avoid: HashSet<String> = HashSet::new();
    let mut adjacent = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match &ask {
            Ask::Seats(seats) => hold.seat_ids = seats.clone(),
            Ask::Area { area_id, quantity } => hold.areas = vec![(area_id.clone(), *quantity)],
            Ask::Best { quantity } => {
                let wish = Wish {
                    quantity: *quantity,
                    grade: body.grade.as_deref(),
                    section: body.section.as_deref(),
                    wheelchair: body.wheelchair.unwrap_or(false),
                };
                let Some(pick) = best_pick(map, &wish, &avoid) else {
                    return Err(ApiError::conflict(
                        "seat_unavailable",
                        "not enough seats are available for this request",
                    )
                    .with("seat_ids", Vec::<String>::new()));
                };
                adjacent = Some(pick.adjacent);
                hold.seat_ids = pick.seat_ids;
            }
        }
        hold.amount_krw = hold
            .seat_ids
            .iter()
            .filter_map(|s| layout.seat(s))
            .map(|s| layout.price(&s.grade))
            .sum::<i64>()
            + hold
                .areas
                .iter()
                .filter_map(|(a, q)| layout.area(a).map(|a| layout.price(&a.grade) * q))
                .sum::<i64>();
        match state.holds.place(&hold).await {
            Ok(_) => return Ok((hold, adjacent)),
            Err(StoreError::Unavailable { seat_ids, .. })
                if matches!(ask, Ask::Best { .. }) && attempt < BEST_AVAILABLE_ATTEMPTS =>
            {
                avoid.extend(seat_ids);
            }
            Err(e) => return Err(refused(e)),
        }
    }
}

/// Best available on the map as it stands, skipping seats just found taken.
fn best_pick(
    map: &PerfMap,
    wish: &Wish<'_>,
    avoid: &HashSet<String>,
) -> Option<best_available::Pick> {
    let st = map.read();
    let layout = &st.layout;
    let seat = |i: usize| match (layout.seats.get(i), st.statuses.get(i)) {
        (Some(s), Some(status)) => Candidate {
            seat_id: &s.seat_id,
            section: &s.section,
            row: &s.row,
            number: s.number,
            grade: &s.grade,
            rank: s.rank,
            wheelchair: s.wheelchair,
            table: s.table.as_deref(),
            table_size: layout.table_sizes.get(i).copied().unwrap_or(0),
            companion_of: s.companion_of.as_deref(),
            available: *status == SeatStatus::Available
                && (avoid.is_empty() || !avoid.contains(&s.seat_id)),
        },
        // Not a seat of this layout: never offered.
        _ => Candidate {
            seat_id: "",
            section: "",
            row: "",
            number: 0,
            grade: "",
            rank: 0,
            wheelchair: false,
            table: None,
            table_size: 0,
            companion_of: None,
            available: false,
        },
    };
    best_available::pick_indexed(&layout.rows, seat, layout.seats.len(), wish)
}

async fn own_hold(state: &AppState, user: &AuthUser, raw: &str) -> Result<Hold, ApiError> {
    let id = parse_id(raw, "hold")?;
    let hold = state
        .holds
        .find(id)
        .await
        .map_err(store_down)?
        .filter(|h| h.buyer_id == user.id() || user.0.has(Role::Admin))
        .ok_or_else(|| ApiError::not_found(format!("no hold `{id}`")))?;
    Ok(hold)
}

/// `GET /api/v1/holds/{hold_id}`: the buyer's own hold (or any, for an admin).
#[utoipa::path(
    get,
    path = "/api/v1/holds/{hold_id}",
    tag = "holds",
    params(("hold_id" = String, Path, description = "The hold's id")),
    responses(
        (status = 200, description = "The hold (a lapsed one reads `expired`)", body = HoldView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no hold of the caller's with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn find(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hold = own_hold(&state, &user, &raw).await?;
    let layout = map_of(&state, hold.performance_id)
        .await
        .ok()
        .map(|m| m.layout());
    Ok(axum::Json(view(&hold, layout.as_deref())))
}

/// `DELETE /api/v1/holds/{hold_id}`: 204 once the hold is over (released, expired); 409
/// `hold_in_checkout` while an order is paying for it, `hold_sold` once bought.
#[utoipa::path(
    delete,
    path = "/api/v1/holds/{hold_id}",
    tag = "holds",
    params(("hold_id" = String, Path, description = "The hold's id")),
    responses(
        (status = 204, description = "The hold is over; its seats are back on sale"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`hold_in_checkout`, `hold_sold`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn release(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hold = own_hold(&state, &user, &raw).await?;
    match hold.status {
        HoldStatus::Sold | HoldStatus::Returned => return Err(ended(hold.status)),
        HoldStatus::Released | HoldStatus::Expired => return Ok(StatusCode::NO_CONTENT),
        HoldStatus::Checkout => return Err(refused(StoreError::InCheckout)),
        HoldStatus::Active => {}
    }
    state
        .holds
        .release(hold.performance_id, hold.hold_id)
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/holds/{hold_id}/checkout` (the hold's buyer, or an admin standing in for the
/// order service): the hold moves into checkout — it lasts at least `checkout_ttl_ms` from now,
/// the buyer can no longer release it, the sweeper leaves it until then. Repeating it answers
/// the hold as it is.
#[utoipa::path(
    post,
    path = "/api/v1/holds/{hold_id}/checkout",
    tag = "holds",
    params(("hold_id" = String, Path, description = "The hold's id")),
    responses(
        (status = 200, description = "The hold, now `checkout`", body = HoldView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`hold_sold`, `hold_released`, `hold_expired`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn checkout(
    State(state): State<AppState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hold = own_hold(&state, &user, &raw).await?;
    let hold = state
        .holds
        .checkout(hold.performance_id, hold.hold_id)
        .await
        .map_err(refused)?;
    let layout = map_of(&state, hold.performance_id)
        .await
        .ok()
        .map(|m| m.layout());
    Ok(axum::Json(view(&hold, layout.as_deref())))
}
