//! The HTTP API: the delivery log and its dead letters for admins (list, one, re-drive), and
//! each user's own preferences (language, marketing opt-in). Errors are problem+json with a
//! stable `code`.

use axum::{
    Json, Router,
    extract::{FromRef, State},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    auth::{AuthUser, Role, Verifier},
    problem::{ApiJson, ApiPath, ApiQuery},
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    domain::{Kind, Locale, Status},
    store::{self, Delivery, Filter, RedriveError},
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// NotificationDB.
    pub pool: PgPool,
    /// Verifies access tokens.
    pub verifier: Verifier,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/notifications/deliveries", get(list))
        .route("/api/v1/notifications/dead-letters", get(dead_letters))
        .route("/api/v1/notifications/deliveries/{id}", get(one))
        .route(
            "/api/v1/notifications/deliveries/{id}/redrive",
            post(redrive),
        )
        .route("/api/v1/notifications/announcements", post(announce))
        .route(
            "/api/v1/me/notifications/preferences",
            get(preferences).put(set_preferences),
        )
        .route(
            "/api/docs/notification/openapi.json",
            get(docs::openapi_json),
        )
        .with_state(state)
}

/// A page of the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// The `before` of the next page, when there may be one.
    pub next: Option<DateTime<Utc>>,
}

/// Filters of `GET /api/v1/notifications/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending`, `sending`, `sent`, `skipped` or `dead`.
    pub status: Option<String>,
    /// Only to this user.
    pub recipient_id: Option<Uuid>,
    /// Only for this event id.
    pub event_id: Option<String>,
    /// Only this kind (`welcome`, `order_confirmed`, ...).
    pub kind: Option<String>,
    /// Only older than this (`next` of the previous page).
    pub before: Option<DateTime<Utc>>,
    /// 1–200 (default 50).
    pub limit: Option<i64>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![platform::problem::FieldError::new(field, message)])
}

async fn page(
    pool: &PgPool,
    q: ListQuery,
    status: Option<Status>,
) -> Result<DeliveryList, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(invalid("limit", "1 to 200"));
    }
    let status = match (status, q.status.as_deref()) {
        (Some(s), _) => Some(s),
        (None, None) => None,
        (None, Some(s)) => Some(
            Status::parse(s)
                .ok_or_else(|| invalid("status", "one of pending, sending, sent, skipped, dead"))?,
        ),
    };
    let kind = q
        .kind
        .as_deref()
        .map(|k| Kind::parse(k).ok_or_else(|| invalid("kind", "not a kind of message")))
        .transpose()?;
    let filter = Filter {
        status,
        recipient_id: q.recipient_id,
        event_id: q.event_id,
        kind,
        before: q.before,
    };
    let deliveries = store::deliveries(pool, &filter, limit).await?;
    let next = (deliveries.len() == usize::try_from(limit).unwrap_or(0))
        .then(|| deliveries.last().map(|d| d.created_at))
        .flatten();
    Ok(DeliveryList { deliveries, next })
}

/// `GET /api/v1/notifications/deliveries`.
#[utoipa::path(
    get, path = "/api/v1/notifications/deliveries", tag = "deliveries", params(ListQuery),
    responses(
        (status = 200, description = "The delivery log, newest first", body = DeliveryList),
        (status = 400, description = "`validation_failed`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    user.require(Role::Admin)?;
    Ok(Json(page(&state.pool, q, None).await?))
}

/// `GET /api/v1/notifications/dead-letters`: the log's `dead` deliveries.
#[utoipa::path(
    get, path = "/api/v1/notifications/dead-letters", tag = "deliveries", params(ListQuery),
    responses(
        (status = 200, description = "Dead-lettered deliveries, newest first", body = DeliveryList),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn dead_letters(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    user.require(Role::Admin)?;
    Ok(Json(page(&state.pool, q, Some(Status::Dead)).await?))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no delivery `{raw}`")))
}

/// `GET /api/v1/notifications/deliveries/{id}`.
#[utoipa::path(
    get, path = "/api/v1/notifications/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery")),
    responses(
        (status = 200, description = "The delivery", body = Delivery),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = docs::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn one(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Delivery>, ApiError> {
    user.require(Role::Admin)?;
    let id = parse_id(&raw)?;
    store::delivery(&state.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no delivery `{id}`")))
}

/// `POST /api/v1/notifications/deliveries/{id}/redrive`: a dead delivery is queued again, due
/// now, its tries counted afresh.
#[utoipa::path(
    post, path = "/api/v1/notifications/deliveries/{id}/redrive", tag = "deliveries",
    params(("id" = String, Path, description = "The dead delivery")),
    responses(
        (status = 200, description = "Queued again (`pending`)", body = Delivery),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = docs::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such delivery", body = docs::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_dead_lettered`: the delivery is not dead (with its `status`)", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn redrive(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Delivery>, ApiError> {
    user.require(Role::Admin)?;
    let id = parse_id(&raw)?;
    match store::redrive(&state.pool, id).await {
        Ok(d) => {
            tracing::info!(delivery_id = %id, admin = %user.id(), "delivery re-driven");
            Ok(Json(d))
        }
        Err(RedriveError::Unknown) => Err(ApiError::not_found(format!("no delivery `{id}`"))),
        Err(RedriveError::NotDead(s)) => Err(ApiError::conflict(
            "not_dead_lettered",
            format!(
                "the delivery is {}, only a dead one can be re-driven",
                s.as_str()
            ),
        )
        .with("status", s)),
        Err(RedriveError::Db(e)) => Err(e.into()),
    }
}

/// Text in both languages.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    /// Korean.
    pub ko: String,
    /// English.
    pub en: String,
}

/// An announcement: marketing, sent by email to every recipient who opted in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementBody {
    /// The subject (1–150 characters each; Korean subjects get the `(광고)` prefix the law asks
    /// of advertising).
    pub title: Localized,
    /// The text (1–5,000 characters each).
    pub body: Localized,
}

/// What an announcement queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Announced {
    /// Its id (deliveries' `event_id` is `announcement:<id>`).
    pub announcement_id: Uuid,
    /// Deliveries queued: one per recipient who opted in.
    pub queued: u64,
}

/// `POST /api/v1/notifications/announcements`.
#[utoipa::path(
    post, path = "/api/v1/notifications/announcements", tag = "deliveries",
    request_body = AnnouncementBody,
    responses(
        (status = 202, description = "Queued to everyone who opted in to marketing", body = Announced),
        (status = 400, description = "`validation_failed`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn announce(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<AnnouncementBody>,
) -> Result<(axum::http::StatusCode, Json<Announced>), ApiError> {
    user.require(Role::Admin)?;
    let mut errors = Vec::new();
    for (field, text, max) in [
        ("title.ko", &body.title.ko, 150),
        ("title.en", &body.title.en, 150),
        ("body.ko", &body.body.ko, 5_000),
        ("body.en", &body.body.en, 5_000),
    ] {
        let n = text.trim().chars().count();
        if n == 0 || n > max {
            errors.push(platform::problem::FieldError::new(
                field,
                format!("1 to {max} characters"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = Uuid::now_v7();
    let data = serde_json::json!({"title": body.title, "body": body.body});
    let queued = store::enqueue_announcement(&state.pool, id, &data).await?;
    tracing::info!(announcement_id = %id, queued, admin = %user.id(), "announcement queued");
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(Announced {
            announcement_id: id,
            queued,
        }),
    ))
}

/// A user's notification preferences.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preferences {
    /// The language messages come in (`null`: the platform's default).
    pub locale: Option<Locale>,
    /// Whether marketing messages may be sent (transactional ones always are).
    pub marketing: bool,
}

/// A change of preferences; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    /// `ko` or `en`.
    pub locale: Option<Locale>,
    /// Opt in (`true`) or out (`false`) of marketing.
    pub marketing: Option<bool>,
}

fn unknown_user() -> ApiError {
    ApiError::not_found("no notification recipient for this account yet")
}

/// `GET /api/v1/me/notifications/preferences`.
#[utoipa::path(
    get, path = "/api/v1/me/notifications/preferences", tag = "preferences",
    responses(
        (status = 200, description = "The caller's preferences", body = Preferences),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the account's registration has not reached this service", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn preferences(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Preferences>, ApiError> {
    let r = store::recipient(&state.pool, user.id())
        .await?
        .ok_or_else(unknown_user)?;
    Ok(Json(Preferences {
        locale: r.locale,
        marketing: r.marketing_opt_in,
    }))
}

/// `PUT /api/v1/me/notifications/preferences`.
#[utoipa::path(
    put, path = "/api/v1/me/notifications/preferences", tag = "preferences",
    request_body = PreferencesBody,
    responses(
        (status = 200, description = "The caller's preferences, changed", body = Preferences),
        (status = 400, description = "`validation_failed`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = docs::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = docs::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn set_preferences(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<PreferencesBody>,
) -> Result<Json<Preferences>, ApiError> {
    let r = store::set_preferences(&state.pool, user.id(), body.locale, body.marketing)
        .await?
        .ok_or_else(unknown_user)?;
    Ok(Json(Preferences {
        locale: r.locale,
        marketing: r.marketing_opt_in,
    }))
}

/// The OpenAPI document, from the handlers' descriptions.
pub mod docs {
    use axum::Json;
    pub use platform::openapi::{Bearer, Problem};
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "Boxoffice notification service",
            description = "The delivery log of email and SMS, its dead letters and their re-drive \
                           (admins), and each user's notification preferences."
        ),
        paths(
            super::list, super::dead_letters, super::one, super::redrive, super::announce,
            super::preferences, super::set_preferences,
        ),
        components(schemas(
            Problem, super::DeliveryList, crate::store::Delivery, super::Preferences,
            super::PreferencesBody, crate::domain::Status, crate::domain::Locale,
            super::AnnouncementBody, super::Localized, super::Announced,
        )),
        modifiers(&Bearer),
        tags((name = "deliveries", description = "The delivery log (admin)"),
             (name = "preferences", description = "The caller's preferences")),
    )]
    struct ApiDoc;

    /// The service's OpenAPI document.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        ApiDoc::openapi()
    }

    /// `GET /api/docs/notification/openapi.json`.
    pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
        Json(openapi())
    }
}
