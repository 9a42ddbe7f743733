//! The HTTP routes: joining and reading a place (`/api/v1/performances/{id}/queue…`), the draw's
//! public record, the pass keys (`/.well-known/jwks.json`), the operators' room controls
//! (`/api/v1/admin/rooms/{id}…`), and the OpenAPI document (`/api/docs/admission/openapi.json`).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRef, FromRequestParts, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use contracts::admission::AdmissionClaims;
use platform::openapi::Bearer;
pub use platform::openapi::Problem;
use platform::{
    ApiError,
    auth::{AuthUser, Role, Verifier},
    problem::{ApiJson, ApiPath, FieldError},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    Config, Proxies, draw,
    keys::PassKeys,
    rooms::{Change, Room, Rooms},
    store::{Place, QueueStore, StoreError},
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The queue store.
    pub store: Arc<dyn QueueStore>,
    /// The rooms.
    pub rooms: Rooms,
    /// The pass-signing key.
    pub keys: PassKeys,
    /// Access-token verifier.
    pub verifier: Verifier,
    /// Settings.
    pub config: Arc<Config>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub proxies: Arc<Proxies>,
    /// Whether automatic mode can run (the seat service is in the directory).
    pub auto_available: bool,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/performances/{performance_id}/queue", post(join))
        .route(
            "/api/v1/performances/{performance_id}/queue/draw",
            get(draw_record),
        )
        .route(
            "/api/v1/performances/{performance_id}/queue/{queue_token}",
            get(status).delete(leave),
        )
        .route(
            "/api/v1/performances/{performance_id}/queue/{queue_token}/events",
            get(events),
        )
        .route(
            "/api/v1/admin/rooms/{performance_id}",
            get(room).patch(configure),
        )
        .route("/api/v1/admin/rooms/{performance_id}/pause", post(pause))
        .route("/api/v1/admin/rooms/{performance_id}/resume", post(resume))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/docs/admission/openapi.json", get(openapi_json))
        .with_state(state)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "queue store");
        ApiError::unavailable("the waiting room is unavailable; try again shortly")
    }
}

/// The caller's address: the peer, or from a trusted proxy the first untrusted hop of
/// `X-Forwarded-For`, walked from the right.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(mut client) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical())
        else {
            return Ok(Self("unknown".into()));
        };
        if state.proxies.contains(client) {
            let forwarded: Vec<&str> = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            for entry in forwarded.iter().flat_map(|v| v.split(',')).rev() {
                match entry.trim().parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        client = ip.to_canonical();
                        if !state.proxies.contains(client) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        Ok(Self(client.to_string()))
    }
}

fn parse_perf(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no performance `{raw}`")))
}

/// The waiting room of `perf`, or 404 (`not_found`: no such performance; `no_waiting_room`: it
/// has none).
async fn waiting_room(state: &AppState, perf: Uuid) -> Result<Arc<Room>, ApiError> {
    let room = state
        .rooms
        .get(perf)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no performance `{perf}`")))?;
    if !room.waiting_room {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_waiting_room",
            "this performance has no waiting room: go straight to the seats",
        ));
    }
    Ok(room)
}

fn rate_limited(state: &AppState, what: &str) -> ApiError {
    let secs = state.config.limit_window_secs.max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{what}; try again in {secs} s"),
    )
    .with("retry_after_secs", secs)
}

async fn limit(state: &AppState, key: String, limit: u64, what: &str) -> Result<(), ApiError> {
    if limit == 0 {
        return Ok(());
    }
    let window_ms = state.config.limit_window_secs.max(1) * 1000;
    if state.store.hit(&key, window_ms, limit).await? {
        Ok(())
    } else {
        metrics::counter!("boxoffice_admission_rate_limited_total", "what" => what.to_owned())
            .increment(1);
        Err(rate_limited(state, &format!("too many {what}")))
    }
}

/// A place in a waiting room, as the fan sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// The place's token: keep it to poll (it works for this account only).
    pub queue_token: String,
    /// `waiting` (in the queue, or in the pre-queue before the opening), `admitted` (the pass is
    /// in `admission_pass`) or `expired` (the place is gone: the pass expired, the fan left or
    /// bought, or a newer join replaced this token).
    #[schema(example = "waiting")]
    pub status: &'static str,
    /// 1 at the front; `null` in the pre-queue (the draw at the opening decides) and once
    /// admitted or expired.
    pub position: Option<u64>,
    /// Fans in front; `null` when `position` is.
    pub ahead: Option<u64>,
    /// Seconds until admission at the admission rate measured (the set rate before any is
    /// measured); `null` while the room is paused or in the pre-queue.
    pub eta_seconds: Option<u64>,
    /// When to ask again, in ms: longer the farther back the fan is.
    pub poll_after_ms: u64,
    /// Whether the place is in the pre-queue (joined before the opening; ordered by the draw).
    pub prequeue: bool,
    /// How many fans the pre-queue holds (in the pre-queue only).
    pub prequeue_size: Option<u64>,
    /// When sale opens (the draw).
    pub opens_at: DateTime<Utc>,
    /// The place's public reference in the draw: hex SHA-256 of `queue_token`.
    pub draw_reference: String,
    /// The signed admission pass (send it as `X-Admission-Pass` to the seat service), when
    /// admitted.
    pub admission_pass: Option<String>,
    /// When the pass expires, when admitted.
    pub pass_expires_at: Option<DateTime<Utc>>,
}

fn view(
    state: &AppState,
    room: &Room,
    user: Uuid,
    token: String,
    place: Place,
    measured_rate: f64,
) -> Result<QueueView, ApiError> {
    let cfg = &state.config;
    let now = Utc::now();
    let poll = |ahead: u64| {
        let ms = cfg.poll_min_ms as f64 + ahead as f64 * cfg.poll_ms_per_ahead;
        (ms as u64).clamp(cfg.poll_min_ms, cfg.poll_max_ms.max(cfg.poll_min_ms))
    };
    let mut v = QueueView {
        draw_reference: hex::encode(draw::reference(&token)),
        queue_token: token,
        status: "waiting",
        position: None,
        ahead: None,
        eta_seconds: None,
        poll_after_ms: cfg.poll_min_ms,
        prequeue: false,
        prequeue_size: None,
        opens_at: room.opens_at,
        admission_pass: None,
        pass_expires_at: None,
    };
    match place {
        Place::PreQueue { size } => {
            v.prequeue = true;
            v.prequeue_size = Some(size);
            // Until the opening, then spread over a window that grows with the pre-queue, so
            // the whole pre-queue does not ask at the same instant.
            let until_open = (room.opens_at - now).num_milliseconds().max(0) as u64;
            let spread = poll(size).saturating_sub(cfg.poll_min_ms);
            let jitter = if spread == 0 {
                0
            } else {
                rand::random::<u64>() % spread
            };
            v.poll_after_ms = until_open.min(cfg.poll_max_ms) + cfg.poll_min_ms + jitter;
        }
        Place::Waiting { ahead } => {
            v.position = Some(ahead + 1);
            v.ahead = Some(ahead);
            let rate = if measured_rate > 0.01 {
                measured_rate
            } else {
                room.rate_per_sec
            };
            if !room.paused && rate > 0.0 {
                v.eta_seconds = Some(((ahead + 1) as f64 / rate).ceil() as u64);
            }
            v.poll_after_ms = jittered(poll(ahead), cfg.poll_jitter, cfg.poll_min_ms);
        }
        Place::Admitted { expires_ms } => {
            let exp = expires_ms.div_euclid(1000);
            let ttl = state.config.pass_ttl_secs as i64;
            let claims = AdmissionClaims::new(user, room.performance_id, exp - ttl, ttl);
            let pass = state
                .keys
                .key()
                .sign(&claims)
                .map_err(|e| ApiError::internal(format!("signing a pass: {e}")))?;
            v.status = "admitted";
            v.eta_seconds = Some(0);
            v.admission_pass = Some(pass);
            v.pass_expires_at = DateTime::from_timestamp(exp, 0);
            v.poll_after_ms = cfg.poll_max_ms;
        }
        Place::Expired => {
            v.status = "expired";
            v.poll_after_ms = cfg.poll_max_ms;
        }
    }
    Ok(v)
}

/// `ms` spread uniformly over `ms × [1 − jitter, 1 + jitter]` (same mean), never under
/// `floor`: fans who joined in the same burst are told different pauses, so they do not all
/// come back at the same instant (100,000 fans told "30 s" at once would be a flood 30 s later).
fn jittered(ms: u64, jitter: f64, floor: u64) -> u64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if jitter == 0.0 {
        return ms;
    }
    let factor = 1.0 - jitter + 2.0 * jitter * rand::random::<f64>();
    ((ms as f64 * factor).round() as u64).max(floor)
}

/// `POST /api/v1/performances/{performance_id}/queue`.
#[utoipa::path(
    post,
    path = "/api/v1/performances/{performance_id}/queue",
    tag = "queue",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 201, description = "A new place (in the pre-queue before the opening)", body = QueueView),
        (status = 200, description = "The account holds a place already: that place, with its earlier token", body = QueueView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, `no_waiting_room`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sale_closed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (per account and per client address), with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn join(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientAddr,
    ApiPath(perf): ApiPath<String>,
) -> Result<Response, ApiError> {
    let perf = parse_perf(&perf)?;
    let account = user.id();
    limit(
        &state,
        format!("join:addr:{}", client.0),
        state.config.join_limit_per_address,
        "joins from this address",
    )
    .await?;
    limit(
        &state,
        format!("join:acct:{account}"),
        state.config.join_limit_per_account,
        "joins from this account",
    )
    .await?;
    let room = waiting_room(&state, perf).await?;
    if Utc::now() >= room.closes_at {
        return Err(ApiError::conflict(
            "sale_closed",
            "the sale of this performance has closed",
        ));
    }
    let token = Uuid::new_v4().simple().to_string();
    let joined = state
        .store
        .join(perf, account, &token, Utc::now().timestamp_millis())
        .await?;
    metrics::counter!(
        "boxoffice_admission_joins_total",
        "outcome" => if joined.rejoined { "rejoin" } else { "new" }
    )
    .increment(1);
    let code = if joined.rejoined {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let v = view(
        &state,
        &room,
        account,
        joined.token,
        joined.place,
        joined.rate,
    )?;
    Ok((code, no_store(Json(v))).into_response())
}

fn no_store<T: IntoResponse>(body: T) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The place of `token`, when it is the caller's (404 otherwise: another account's token is
/// as unknown as a made-up one).
/// [`own_place`], counting the read against the account's status limit in the same store
/// call (one Redis round trip per poll).
async fn counted_place(
    state: &AppState,
    perf: Uuid,
    token: &str,
    account: Uuid,
) -> Result<crate::store::Found, ApiError> {
    let allowed = state.config.status_limit_per_account;
    if allowed == 0 {
        return own_place(state, perf, token, account).await;
    }
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "queue_token_not_found",
            "no such place in this waiting room",
        )
    };
    let key = format!("status:acct:{account}");
    let limit = crate::store::Limit {
        key: &key,
        window_ms: state.config.limit_window_secs.max(1) * 1000,
        limit: allowed,
    };
    // A malformed token still counts: guessing tokens costs the same as polling.
    let token = if well_formed(token) { token } else { "" };
    match state
        .store
        .status_counted(perf, token, Utc::now().timestamp_millis(), limit)
        .await?
    {
        crate::store::Counted::Limited => {
            metrics::counter!("boxoffice_admission_rate_limited_total", "what" => "status reads from this account")
                .increment(1);
            Err(rate_limited(
                state,
                "too many status reads from this account",
            ))
        }
        crate::store::Counted::Read(found) => found
            .filter(|f| f.account == account && !token.is_empty())
            .ok_or_else(unknown),
    }
}

fn well_formed(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn own_place(
    state: &AppState,
    perf: Uuid,
    token: &str,
    account: Uuid,
) -> Result<crate::store::Found, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "queue_token_not_found",
            "no such place in this waiting room",
        )
    };
    if !well_formed(token) {
        return Err(unknown());
    }
    let found = state
        .store
        .status(perf, token, Utc::now().timestamp_millis())
        .await?
        .ok_or_else(unknown)?;
    if found.account != account {
        return Err(unknown());
    }
    Ok(found)
}

/// `GET /api/v1/performances/{performance_id}/queue/{queue_token}`.
#[utoipa::path(
    get,
    path = "/api/v1/performances/{performance_id}/queue/{queue_token}",
    tag = "queue",
    params(
        ("performance_id" = String, Path, description = "The performance"),
        ("queue_token" = String, Path, description = "The place's token, from the join"),
    ),
    responses(
        (status = 200, description = "The place: `waiting`, `admitted` (with the pass) or `expired`", body = QueueView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, `no_waiting_room`, `queue_token_not_found` (unknown, or another account's)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: polling far faster than told", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((perf, token)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let perf = parse_perf(&perf)?;
    let account = user.id();
    let room = waiting_room(&state, perf).await?;
    let found = counted_place(&state, perf, &token, account).await?;
    let v = view(&state, &room, account, token, found.place, found.rate)?;
    Ok(no_store(Json(v)))
}

/// What an event stream of one place carries between two events.
struct Follow {
    state: AppState,
    perf: Uuid,
    account: Uuid,
    token: String,
    /// The first event, read when the stream was opened.
    next: Option<QueueView>,
    /// The pause the last event asked for, slept before reading the place again.
    wait_ms: Option<u64>,
    done: bool,
}

impl Follow {
    /// The next event: the first at once, then each after the pause the previous one set.
    async fn step(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if let Some(ms) = self.wait_ms.take() {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let v = match self.next.take() {
            Some(v) => v,
            None => self.read().await,
        };
        if v.status == "waiting" {
            self.wait_ms = Some(v.poll_after_ms);
        } else {
            self.done = true;
        }
        let data = serde_json::to_string(&v).unwrap_or_else(|_| "{}".into());
        Some(Event::default().event("status").data(data))
    }

    /// The place now, or (the store or the room unreadable) the last one told again later.
    async fn read(&mut self) -> QueueView {
        let s = &self.state;
        let room = s.rooms.get(self.perf).await.ok().flatten();
        let found = s
            .store
            .status(self.perf, &self.token, Utc::now().timestamp_millis())
            .await;
        let place = match found {
            Ok(Some(f)) if f.account == self.account => Some((f.place, f.rate)),
            Ok(_) => Some((Place::Expired, 0.0)),
            Err(e) => {
                tracing::warn!(error = %e, "queue stream: reading a place failed");
                None
            }
        };
        match (room, place) {
            (Some(room), Some((place, rate))) => {
                match view(s, &room, self.account, self.token.clone(), place, rate) {
                    Ok(v) => v,
                    Err(_) => self.retry_view(&room),
                }
            }
            (Some(room), None) => self.retry_view(&room),
            (None, _) => {
                self.done = true;
                QueueView {
                    draw_reference: hex::encode(draw::reference(&self.token)),
                    queue_token: self.token.clone(),
                    status: "expired",
                    position: None,
                    ahead: None,
                    eta_seconds: None,
                    poll_after_ms: s.config.poll_max_ms,
                    prequeue: false,
                    prequeue_size: None,
                    opens_at: Utc::now(),
                    admission_pass: None,
                    pass_expires_at: None,
                }
            }
        }
    }

    /// A `waiting` event with no figures, to come back after the shortest pause.
    fn retry_view(&self, room: &Room) -> QueueView {
        QueueView {
            draw_reference: hex::encode(draw::reference(&self.token)),
            queue_token: self.token.clone(),
            status: "waiting",
            position: None,
            ahead: None,
            eta_seconds: None,
            poll_after_ms: self.state.config.poll_min_ms.max(1000),
            prequeue: false,
            prequeue_size: None,
            opens_at: room.opens_at,
            admission_pass: None,
            pass_expires_at: None,
        }
    }
}

/// `GET /api/v1/performances/{performance_id}/queue/{queue_token}/events`.
#[utoipa::path(
    get,
    path = "/api/v1/performances/{performance_id}/queue/{queue_token}/events",
    tag = "queue",
    params(
        ("performance_id" = String, Path, description = "The performance"),
        ("queue_token" = String, Path, description = "The place's token"),
    ),
    responses(
        (status = 200, description = "`text/event-stream` instead of polling: an `event: status` with the same body as \
                        `GET .../queue/{queue_token}` at once and then at the pace the body's `poll_after_ms` sets; the \
                        stream ends after the `admitted` (with the pass) or `expired` event"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, `no_waiting_room`, `queue_token_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((perf, token)): ApiPath<(String, String)>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let perf = parse_perf(&perf)?;
    let room = waiting_room(&state, perf).await?;
    let account = user.id();
    let found = own_place(&state, perf, &token, account).await?;
    let first = view(
        &state,
        &room,
        account,
        token.clone(),
        found.place,
        found.rate,
    )?;
    let follow = Follow {
        state,
        perf,
        account,
        token,
        next: Some(first),
        wait_ms: None,
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let event = f.step().await?;
        Some((Ok(event), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))))
}

/// `DELETE /api/v1/performances/{performance_id}/queue/{queue_token}`.
#[utoipa::path(
    delete,
    path = "/api/v1/performances/{performance_id}/queue/{queue_token}",
    tag = "queue",
    params(
        ("performance_id" = String, Path, description = "The performance"),
        ("queue_token" = String, Path, description = "The place's token"),
    ),
    responses(
        (status = 204, description = "The place is given up (an admitted fan stops counting as an active buyer)"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`, `no_waiting_room`, `queue_token_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`draw_in_progress`: the pre-queue is being drawn; try again in a moment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn leave(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((perf, token)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let perf = parse_perf(&perf)?;
    waiting_room(&state, perf).await?;
    let found = own_place(&state, perf, &token, user.id()).await?;
    if matches!(found.place, Place::Expired) {
        return Ok(StatusCode::NO_CONTENT);
    }
    if state.store.leave(perf, user.id()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conflict(
            "draw_in_progress",
            "the pre-queue is being drawn; try again in a moment",
        ))
    }
}

/// The draw's public record.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrawView {
    /// The performance.
    pub performance_id: Uuid,
    /// When sale opens: fans who join before are ordered by the draw.
    pub opens_at: DateTime<Utc>,
    /// Hex SHA-256 of the seed, published from the room's creation.
    pub seed_sha256: String,
    /// Whether the draw ran.
    pub drawn: bool,
    /// When it was recorded.
    pub drawn_at: Option<DateTime<Utc>>,
    /// The seed (hex), once the draw ran.
    pub seed: Option<String>,
    /// The references (hex SHA-256 of each pre-queue token) the draw ordered, ascending, once
    /// it ran.
    pub references: Option<Vec<String>>,
    /// The references in draw order (front first), once it ran: what anyone recomputes.
    pub order: Option<Vec<String>>,
    /// How the order is computed.
    pub algorithm: &'static str,
}

const ALGORITHM: &str = "order = references sorted ascending by SHA-256(seed || reference) \
    (32 seed bytes then 32 reference bytes, compared as bytes; ties by reference); reference = \
    SHA-256(queue_token as UTF-8); check SHA-256(seed) = seed_sha256";

/// `GET /api/v1/performances/{performance_id}/queue/draw`.
#[utoipa::path(
    get,
    path = "/api/v1/performances/{performance_id}/queue/draw",
    tag = "queue",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "The seed's hash (always), and the seed, references and order once drawn", body = DrawView),
        (status = 404, description = "`not_found`, `no_waiting_room`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn draw_record(
    State(state): State<AppState>,
    ApiPath(perf): ApiPath<String>,
) -> Result<Json<DrawView>, ApiError> {
    let perf = parse_perf(&perf)?;
    let mut room = waiting_room(&state, perf).await?;
    if room.drawn_at.is_none() {
        // Another replica may have drawn since the cache was filled.
        room = state.rooms.fetch(perf).await?.unwrap_or(room);
    }
    let mut v = DrawView {
        performance_id: perf,
        opens_at: room.opens_at,
        seed_sha256: room.commitment(),
        drawn: room.drawn_at.is_some(),
        drawn_at: room.drawn_at,
        seed: None,
        references: None,
        order: None,
        algorithm: ALGORITHM,
    };
    if room.drawn_at.is_some() {
        let refs = state.rooms.draw_refs(perf).await?.unwrap_or_default();
        v.seed = Some(hex::encode(&room.seed));
        v.order = Some(
            draw::order(&room.seed, &refs)
                .into_iter()
                .map(|i| hex::encode(refs[i]))
                .collect(),
        );
        v.references = Some(refs.iter().map(hex::encode).collect());
    }
    Ok(Json(v))
}

/// `GET /.well-known/jwks.json`: the keys admission passes are signed with.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut r = Json(state.keys.jwks().clone()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// A room as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    /// The performance.
    pub performance_id: Uuid,
    /// Whether a waiting room guards it.
    pub waiting_room: bool,
    /// When sale opens (the draw).
    pub opens_at: DateTime<Utc>,
    /// When sale closes.
    pub closes_at: DateTime<Utc>,
    /// No one is admitted while paused.
    pub paused: bool,
    /// The set admission rate (fans per second).
    pub rate_per_sec: f64,
    /// The active-buyer cap (`null`: none).
    pub max_active: Option<i64>,
    /// Fans waiting.
    pub waiting: u64,
    /// Fans in the pre-queue.
    pub prequeue: u64,
    /// Active buyers (unexpired passes).
    pub active: u64,
    /// The admission rate measured last (fans per second).
    pub measured_rate: f64,
    /// Hex SHA-256 of the draw's seed.
    pub seed_sha256: String,
    /// When the draw was recorded.
    pub drawn_at: Option<DateTime<Utc>>,
    /// Automatic mode: the rate follows the seat service's health (`rate_per_sec` is what it
    /// chose last).
    pub auto_rate: bool,
    /// The organizer who may operate this room besides administrators (`null`: administrators
    /// only).
    pub organizer_id: Option<Uuid>,
}

async fn room_view(state: &AppState, room: &Room) -> Result<RoomView, ApiError> {
    let perf = room.performance_id;
    let now = Utc::now().timestamp_millis();
    let counts = state.store.counts(perf, now).await?;
    Ok(RoomView {
        performance_id: perf,
        waiting_room: room.waiting_room,
        opens_at: room.opens_at,
        closes_at: room.closes_at,
        paused: room.paused,
        rate_per_sec: room.rate_per_sec,
        max_active: room.max_active,
        waiting: counts.waiting,
        prequeue: counts.prequeue,
        active: counts.active,
        measured_rate: counts.rate,
        seed_sha256: room.commitment(),
        drawn_at: room.drawn_at,
        auto_rate: room.auto_rate,
        organizer_id: room.organizer_id,
    })
}

/// The room of `perf` as `user` may operate it: administrators any room, an organizer the
/// rooms of the events they own (403 `forbidden` for another's; 404 when there is none).
async fn operable_room(
    state: &AppState,
    user: &AuthUser,
    perf: &str,
) -> Result<Arc<Room>, ApiError> {
    user.require(Role::Organizer)?;
    let perf = parse_perf(perf)?;
    let room = state
        .rooms
        .fetch(perf)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no performance `{perf}`")))?;
    if user.0.has(Role::Admin) || room.organizer_id == Some(user.id()) {
        Ok(room)
    } else {
        Err(ApiError::forbidden(
            "only the performance's organizer or an administrator may operate its waiting room",
        ))
    }
}

/// `GET /api/v1/admin/rooms/{performance_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/rooms/{performance_id}",
    tag = "admin",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "The room: settings, queue length, active buyers, measured rate", body = RoomView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn room(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(perf): ApiPath<String>,
) -> Result<Json<RoomView>, ApiError> {
    let room = operable_room(&state, &user, &perf).await?;
    Ok(Json(room_view(&state, &room).await?))
}

fn some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// The body of `PATCH /api/v1/admin/rooms/{performance_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureBody {
    /// Fans admitted per second (0 to 100,000).
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Most active buyers at once; `null` removes the cap.
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<i64>)]
    pub max_active: Option<Option<i64>>,
    /// `true`: automatic mode, the rate follows the seat service's measured latency and errors,
    /// starting from the room's rate when the mode is switched on (a `rate_per_sec` sent with
    /// it); `false`: the rate stays as set. A `rate_per_sec` sent alone ends automatic mode.
    #[serde(default)]
    pub auto_rate: Option<bool>,
}

/// `PATCH /api/v1/admin/rooms/{performance_id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/rooms/{performance_id}",
    tag = "admin",
    request_body = ConfigureBody,
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "The room with its new settings (other replicas apply them within `admission.reload_ms`)", body = RoomView),
        (status = 400, description = "`validation_failed`, `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`auto_rate_unavailable`: automatic mode asked for, and the service has no seat service to follow", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn configure(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(perf): ApiPath<String>,
    ApiJson(body): ApiJson<ConfigureBody>,
) -> Result<Json<RoomView>, ApiError> {
    let mut errors = Vec::new();
    if let Some(r) = body.rate_per_sec
        && !(r.is_finite() && (0.0..=100_000.0).contains(&r))
    {
        errors.push(FieldError::new(
            "rate_per_sec",
            "must be between 0 and 100000",
        ));
    }
    if let Some(Some(m)) = body.max_active
        && m < 0
    {
        errors.push(FieldError::new("max_active", "must be 0 or more, or null"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let perf = operable_room(&state, &user, &perf).await?.performance_id;
    if body.auto_rate == Some(true) && !state.auto_available {
        return Err(ApiError::conflict(
            "auto_rate_unavailable",
            "automatic mode follows the seat service, and this admission service has no address \
             for it (services.seat)",
        ));
    }
    // A hand-set rate alone ends automatic mode: the operator's number is meant to hold.
    let auto_rate = body
        .auto_rate
        .or(body.rate_per_sec.is_some().then_some(false));
    let change = Change {
        paused: None,
        rate_per_sec: body.rate_per_sec,
        max_active: body.max_active,
        auto_rate,
    };
    let room = state
        .rooms
        .configure(perf, change)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no performance `{perf}`")))?;
    tracing::info!(performance_id = %perf, by = %user.id(), rate = room.rate_per_sec, max_active = ?room.max_active, auto_rate = room.auto_rate, "waiting room reconfigured");
    Ok(Json(room_view(&state, &room).await?))
}

async fn set_paused(
    state: &AppState,
    user: &AuthUser,
    perf: &str,
    paused: bool,
) -> Result<Json<RoomView>, ApiError> {
    let perf = operable_room(state, user, perf).await?.performance_id;
    let change = Change {
        paused: Some(paused),
        ..Change::default()
    };
    // The store refuses admissions from the pause on, so a tick that read the room before it
    // admits nobody after it; resuming lets the store admit only once the room says so. A
    // failure between the two leaves the room paused in one of them (safe: nobody admitted);
    // the request fails and repeating it finishes the change.
    if paused {
        state.store.set_paused(perf, true).await?;
    }
    let room = state
        .rooms
        .configure(perf, change)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no performance `{perf}`")))?;
    if !paused {
        state.store.set_paused(perf, false).await?;
    }
    tracing::info!(performance_id = %perf, by = %user.id(), paused, "waiting room paused or resumed");
    Ok(Json(room_view(state, &room).await?))
}

/// `POST /api/v1/admin/rooms/{performance_id}/pause`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/rooms/{performance_id}/pause",
    tag = "admin",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "Paused: no one is admitted until resumed (joins go on)", body = RoomView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn pause(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(perf): ApiPath<String>,
) -> Result<Json<RoomView>, ApiError> {
    set_paused(&state, &user, &perf, true).await
}

/// `POST /api/v1/admin/rooms/{performance_id}/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/rooms/{performance_id}/resume",
    tag = "admin",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "Resumed at the set rate", body = RoomView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: only the performance's organizer and administrators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn resume(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(perf): ApiPath<String>,
) -> Result<Json<RoomView>, ApiError> {
    set_paused(&state, &user, &perf, false).await
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice admission service",
        description = "Waiting rooms for sale openings: a fair queue with a verifiable pre-queue \
                       draw, signed admission passes, and operators' controls."
    ),
    paths(join, status, events, leave, draw_record, room, configure, pause, resume),
    components(schemas(Problem, QueueView, DrawView, RoomView, ConfigureBody)),
    modifiers(&Bearer),
    tags((name = "queue", description = "Waiting in line"), (name = "admin", description = "Operating a waiting room")),
)]
struct ApiDoc;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/docs/admission/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    use super::jittered;

    #[test]
    fn pauses_are_spread_around_the_same_mean_and_kept_above_the_floor() {
        assert_eq!(jittered(30_000, 0.0, 1_000), 30_000);
        let told: Vec<u64> = (0..20_000).map(|_| jittered(30_000, 0.2, 1_000)).collect();
        assert!(told.iter().all(|ms| (24_000..=36_000).contains(ms)));
        let mean = told.iter().sum::<u64>() as f64 / told.len() as f64;
        assert!((mean - 30_000.0).abs() < 300.0, "{mean}");
        // Spread: every 1.2 s band of the 12 s range is used.
        for band in 0..10 {
            let lo = 24_000 + band * 1_200;
            assert!(
                told.iter().any(|ms| (lo..lo + 1_200).contains(ms)),
                "band {band}"
            );
        }
        // Never under the floor.
        assert!((0..1_000).all(|_| jittered(1_000, 0.5, 1_000) >= 1_000));
        assert_eq!(jittered(5_000, f64::NAN, 1_000), 5_000);
    }
}
