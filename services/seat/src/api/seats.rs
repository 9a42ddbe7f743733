//! `GET .../seats` (plain or compact, with `ETag`) and `GET .../seats/stream` (server-sent
//! events: a snapshot, then one `delta` per version; resumable with `Last-Event-ID`). Versions
//! count within the store's epoch of the performance, so ETags and event ids (`<epoch>-<version>`)
//! name both: a client that comes back after the store installed the performance afresh gets a
//! full body or a snapshot, never a delta against a state that no longer exists.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::Stream;
use platform::ApiError;
use serde::Deserialize;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::{AppState, Problem, admitted, map_of, parse_id};
use crate::map::{Backlog, Live, PerfMap};

/// Query of the seat map.
#[derive(Debug, Deserialize)]
pub struct MapQuery {
    /// `json` (default) or `compact`.
    #[serde(default)]
    format: Option<String>,
}

fn etag(epoch: &str, revision: i64, version: u64, compact: bool) -> String {
    format!(
        "\"{epoch}.{revision}.{version}{}\"",
        if compact { ".c" } else { "" }
    )
}

/// `GET /api/v1/performances/{performance_id}/seats`.
#[utoipa::path(
    get,
    path = "/api/v1/performances/{performance_id}/seats",
    tag = "seats",
    params(
        ("performance_id" = String, Path, description = "The performance's id"),
        ("format" = Option<String>, Query, description = "`json` (default: every seat) or `compact` (one status letter per seat)"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer"),
        ("X-Admission-Pass" = Option<String>, Header, description = "The admission pass, required when the performance has a waiting room"),
    ),
    responses(
        (status = 200, description = "The seat map (`ETag`, `Cache-Control: no-cache`)", body = super::docs::SeatMap,
            headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "`validation_failed`: an unknown `format`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`admission_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such published performance", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn seat_map(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<MapQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let perf = parse_id(&raw, "performance")?;
    let map = map_of(&state, perf).await?;
    admitted(&state, &map, &headers, None).await?;
    let compact = match q.format.as_deref() {
        None | Some("json") => false,
        Some("compact") => true,
        Some(other) => {
            return Err(ApiError::validation(vec![
                platform::problem::FieldError::new(
                    "format",
                    format!("`{other}` is not a format: use `json` or `compact`"),
                ),
            ]));
        }
    };
    let revision = map.layout().revision;
    // Cheap 304 before rendering anything.
    let (epoch, version) = map.position();
    let current = etag(&epoch, revision, version, compact);
    if matches_etag(&headers, &current) {
        return Ok(not_modified(&current));
    }
    let max_stale = Duration::from_millis(state.config.seat_map_max_stale_ms);
    let body = if compact {
        map.compact(max_stale).await
    } else {
        map.json(max_stale).await
    };
    let tag = etag(&body.epoch, revision, body.version, compact);
    if matches_etag(&headers, &tag) {
        return Ok(not_modified(&tag));
    }
    let mut response = (StatusCode::OK, body.bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

fn matches_etag(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag)
        })
}

fn not_modified(tag: &str) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(tag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `GET /api/v1/performances/{performance_id}/seats/stream`.
#[utoipa::path(
    get,
    path = "/api/v1/performances/{performance_id}/seats/stream",
    tag = "seats",
    params(
        ("performance_id" = String, Path, description = "The performance's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (`<epoch>-<version>`): the missed deltas, or a snapshot"),
        ("X-Admission-Pass" = Option<String>, Header, description = "The admission pass, required when the performance has a waiting room"),
    ),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` (a compact seat map) then one `delta` per change, each with id `<epoch>-<version>`",
            content_type = "text/event-stream", body = super::docs::SeatDelta),
        (status = 403, description = "`admission_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn stream(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let perf = parse_id(&raw, "performance")?;
    let map = map_of(&state, perf).await?;
    admitted(&state, &map, &headers, None).await?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_event_id);
    let (rx, backlog, at) = map.subscribe(last.as_ref().map(|(e, v)| (e.as_str(), *v)));
    let mut pending = VecDeque::new();
    let sent = match backlog {
        Backlog::None => at,
        Backlog::Delta(Live::Delta {
            epoch, to, body, ..
        }) => {
            pending.push_back(delta_event(&epoch, to, &body));
            to
        }
        Backlog::Delta(Live::Reset(_)) | Backlog::Snapshot => {
            let (v, event) = snapshot_event(&map).await;
            pending.push_back(event);
            v
        }
    };
    let follow = Follow {
        map,
        rx,
        pending,
        sent,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        Some((Ok(event), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// An event id: `<epoch>-<version>`.
fn event_id(epoch: &str, version: u64) -> String {
    format!("{epoch}-{version}")
}

/// A `Last-Event-ID` as the stream wrote it; anything else reads as no position (a snapshot).
fn parse_event_id(raw: &str) -> Option<(String, u64)> {
    let (epoch, version) = raw.trim().rsplit_once('-')?;
    Some((epoch.to_owned(), version.parse().ok()?))
}

fn delta_event(epoch: &str, version: u64, body: &str) -> Event {
    Event::default()
        .event("delta")
        .id(event_id(epoch, version))
        .data(body)
}

async fn snapshot_event(map: &PerfMap) -> (u64, Event) {
    // Exact: a stream's snapshot is the base its deltas apply to.
    let body = map.compact(Duration::ZERO).await;
    let data = String::from_utf8_lossy(&body.bytes).into_owned();
    let event = Event::default()
        .event("snapshot")
        .id(event_id(&body.epoch, body.version))
        .data(data);
    (body.version, event)
}

/// One subscriber's position in the stream.
struct Follow {
    map: Arc<PerfMap>,
    rx: Receiver<Live>,
    pending: VecDeque<Event>,
    sent: u64,
}

impl Follow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.rx.recv().await {
                // A batch may overlap what the subscriber got on subscribing: its seats carry
                // their latest state, so resending them is harmless.
                Ok(Live::Delta {
                    epoch, to, body, ..
                }) if to > self.sent => {
                    self.sent = to;
                    return Some(delta_event(&epoch, to, &body));
                }
                Ok(Live::Delta { .. }) => {}
                Ok(Live::Reset(_)) | Err(RecvError::Lagged(_)) => {
                    let (v, event) = snapshot_event(&self.map).await;
                    self.sent = v;
                    return Some(event);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
