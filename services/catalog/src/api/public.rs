//! Public reads: the event listing and search, event details, venues and their seat maps.

use axum::{
    extract::{Path, Query, RawQuery, State, rejection::QueryRejection},
    http::HeaderMap,
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use platform::ApiError;
use serde::Deserialize;
use uuid::Uuid;

use super::{AppState, cache::Cached, docs::Problem, parse_id};
use crate::{
    domain::{EventKind, teams, validate::Problems},
    model::{EventDetail, EventItem, Page, VenueDetail, VenueSummary},
    search,
    store::{events, listing, venues},
};

/// Items per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 20;
/// Most items per page.
pub const MAX_LIMIT: i64 = 100;
/// Longest query text.
const MAX_QUERY_CHARS: usize = 100;

/// The listing's query parameters, as sent (each checked by [`list_query`]; an empty value is
/// as if absent, an invalid one is named in one 400 `validation_failed`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Performances starting at or after this RFC 3339 time (`2026-04-01T09:00:00Z`) or date
    /// (`2026-04-01`, midnight UTC); default now.
    #[param(value_type = Option<String>, example = "2026-04-01")]
    from: Option<String>,
    /// Performances starting before this time or date, after `from`; default `from` + 366 days.
    #[param(value_type = Option<String>, example = "2026-04-30T15:00:00Z")]
    to: Option<String>,
    /// Only events of this kind.
    #[param(value_type = Option<EventKind>)]
    kind: Option<String>,
    /// Only events at this venue.
    #[param(value_type = Option<Uuid>)]
    venue_id: Option<String>,
    /// Only games of this team, by any of its names (`doosan`, `LG 트윈스`, `롯데`).
    team: Option<String>,
    /// Search text (at most 100 characters): every word must match. Names may be typed without
    /// spaces (`두산베어스`), Latin and Hangul mixed (`LG트윈스`), as initials (`ㄹㄷ`, at least two)
    /// or as the nicknames fans use (`라팍`, `엔팍`, `고척돔`, `챔필`); misspellings are corrected
    /// against the catalog's words. Punctuation is ignored; a query of punctuation only finds
    /// nothing.
    #[param(max_length = 100)]
    q: Option<String>,
    /// The previous page's `next_cursor`: the next page is computed with the first page's
    /// `from` and clock (a `from` given with it must be the same).
    #[param(max_length = 200)]
    cursor: Option<String>,
    /// Items per page, a whole number from 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// `true`/`1`: only performances on sale now (`false`/`0`: no filter).
    #[param(value_type = Option<bool>)]
    on_sale: Option<String>,
    /// `true`/`1`: only performances not on sale now with a sale window opening within 24 hours
    /// (`false`/`0`: no filter).
    #[param(value_type = Option<bool>)]
    opening_soon: Option<String>,
}

fn parse_time(p: &mut Problems, field: &str, raw: Option<&str>) -> Option<DateTime<Utc>> {
    let raw = raw?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    if let Some(t) = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Some(t.and_utc());
    }
    p.add(
        field,
        "must be an RFC 3339 time (2026-04-01T09:00:00Z) or a date (2026-04-01)",
    );
    None
}

fn parse_flag(p: &mut Problems, field: &str, raw: Option<&str>) -> bool {
    match raw.map(str::trim) {
        None | Some("false" | "0" | "") => false,
        Some("true" | "1") => true,
        Some(_) => {
            p.add(field, "must be true or false");
            false
        }
    }
}

/// Longest cursor accepted (a real one is about 110 characters).
const MAX_CURSOR_CHARS: usize = 200;
/// How far ahead of this clock a cursor's `now` may be (another replica's clock may run ahead).
const CURSOR_CLOCK_SLACK: Duration = Duration::minutes(1);

/// A listing position and the window it was computed in: page 2 is computed with the `from`
/// and `now` of page 1, whatever the clock says by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The listing's `from` (given or defaulted to `now`).
    pub from: DateTime<Utc>,
    /// The clock of the first page (statuses and the `on_sale` / `opening_soon` filters).
    pub now: DateTime<Utc>,
    /// The last item's performance start.
    pub starts_at: DateTime<Utc>,
    /// The last item's event.
    pub id: Uuid,
}

/// Times a cursor may carry: the years an RFC 3339 `from` can name.
fn plausible(t: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&t.year())
}

impl Cursor {
    /// The opaque form: URL-safe base64 (no padding) of
    /// `1:<from>:<now>:<starts_at>:<event id>`, times in microseconds since the epoch.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "1:{}:{}:{}:{}",
            self.from.timestamp_micros(),
            self.now.timestamp_micros(),
            self.starts_at.timestamp_micros(),
            self.id
        ))
    }

    /// The cursor `raw` encodes, if it is one (of this version, with plausible times).
    pub fn decode(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.len() > MAX_CURSOR_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != "1" {
            return None;
        }
        let mut time = || {
            parts
                .next()
                .and_then(|p| p.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_micros)
                .filter(|t| plausible(*t))
        };
        let (from, now, starts_at) = (time()?, time()?, time()?);
        let id = Uuid::parse_str(parts.next()?).ok()?;
        parts.next().is_none().then_some(Self {
            from,
            now,
            starts_at,
            id,
        })
    }
}

/// Checks the parameters and builds the store query.
fn list_query(params: &ListParams, clock: DateTime<Utc>) -> Result<listing::ListQuery, ApiError> {
    let mut p = Problems::new();
    let cursor = params
        .cursor
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .and_then(|c| {
            let parsed = Cursor::decode(c);
            p.check(
                parsed.is_none(),
                "cursor",
                "is not a cursor this listing returned",
            );
            parsed
        });
    let given_from = parse_time(&mut p, "from", params.from.as_deref());
    // A next page keeps the window of the first: its `from` (also when it defaulted to the
    // clock) and its clock.
    let now = cursor.map_or(clock, |c| c.now);
    let from = cursor.map(|c| c.from).or(given_from).unwrap_or(now);
    let to = parse_time(&mut p, "to", params.to.as_deref()).unwrap_or(from + Duration::days(366));
    p.check(to <= from && p.is_empty(), "to", "must be after `from`");
    if let Some(c) = cursor {
        let bad = given_from.is_some_and(|f| f != c.from)
            || c.now > clock + CURSOR_CLOCK_SLACK
            || c.starts_at < c.from
            || (p.is_empty() && c.starts_at >= to);
        p.check(
            bad,
            "cursor",
            "does not belong to this listing (another `from`, a position outside the window, \
             or a time not yet come)",
        );
    }
    let kind = params
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .and_then(|k| {
            let parsed = EventKind::parse(k);
            p.check(
                parsed.is_none(),
                "kind",
                format!("must be one of {}", EventKind::names()),
            );
            parsed.map(|k| k.as_str().to_owned())
        });
    let venue_id = params
        .venue_id
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| {
            let parsed = Uuid::parse_str(v.trim()).ok();
            p.check(parsed.is_none(), "venue_id", "must be a UUID");
            parsed
        });
    let team = params
        .team
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| {
            let found = teams::resolve(t);
            p.check(
                found.is_none(),
                "team",
                "is not a known team (e.g. doosan, LG 트윈스, 롯데)",
            );
            found.map(|t| t.code.to_owned())
        });
    let q = params.q.as_deref().unwrap_or("");
    p.check(
        q.chars().count() > MAX_QUERY_CHARS,
        "q",
        format!("must be at most {MAX_QUERY_CHARS} characters"),
    );
    let limit = match params.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                p.add(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                );
                DEFAULT_LIMIT
            }
        },
    };
    let after = cursor.map(|c| (c.starts_at, c.id));
    let on_sale = parse_flag(&mut p, "on_sale", params.on_sale.as_deref());
    let opening_soon = parse_flag(&mut p, "opening_soon", params.opening_soon.as_deref());
    p.finish()?;
    Ok(listing::ListQuery {
        from,
        to,
        kind,
        venue_id,
        team,
        terms: query_terms(q),
        on_sale,
        opening_soon,
        after,
        limit,
        now,
    })
}

/// The search terms of `q`, each its own alternative for now (corrected and expanded later, see
/// [`compute_list`]): none for a blank `q` (no search); for one with no letter or digit (`%`,
/// `--`), one term without alternatives, so that it finds nothing rather than everything.
fn query_terms(q: &str) -> Vec<Vec<String>> {
    if q.trim().is_empty() {
        return Vec::new();
    }
    let terms: Vec<Vec<String>> = search::terms(q).into_iter().map(|t| vec![t]).collect();
    if terms.is_empty() {
        vec![Vec::new()]
    } else {
        terms
    }
}

/// `GET /api/v1/events`: events with a performance in `[from, to)`, by date, filtered, searched.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(ListParams, ("If-None-Match" = Option<String>, Header, description = "An `ETag` this answered before: 304 when the body is unchanged")),
    responses(
        (status = 200, description = "A page of published events, each with its first performance in the range, \
                        by start time; a burst of identical listings is answered from a one-second cache",
            body = Page<EventItem>, headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=5`"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current", headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=5`"),
        )),
        (status = 400, description = "`validation_failed`: `from`, `to`, `kind`, `venue_id`, `team`, `q`, `cursor`, `limit`, \
                        `on_sale` or `opening_soon` is invalid (each named in `errors`; `cursor`: not one this listing \
                        returned, garbage or tampered, or given with another `from` than its own), or the query holds `%00`; \
                        `bad_request`: the query string cannot be read (e.g. a parameter given twice)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = raw.unwrap_or_default();
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = list_query(&params, state.clock.now())?;
    let cached = state
        .cache
        .get_or_compute(&key, || compute_list(&state, q))
        .await?;
    Ok(cached.respond(&headers, 5))
}

/// Runs the listing query (correcting and expanding search terms first: typos, names without
/// spaces, nicknames, initials; see `search.rs`) and serializes the page.
async fn compute_list(state: &AppState, mut q: listing::ListQuery) -> Result<Cached, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !q.terms.is_empty() {
        let vocabulary = match state.cache.vocabulary() {
            Some(v) => v,
            None => {
                let v = std::sync::Arc::new(listing::vocabulary(&mut conn).await?);
                state.cache.put_vocabulary(v.clone());
                v
            }
        };
        // Bounded (search.rs), but CPU work: on the blocking pool, not an async worker.
        let terms = std::mem::take(&mut q.terms);
        q.terms = tokio::task::spawn_blocking(move || search::expand(terms, &vocabulary))
            .await
            .map_err(ApiError::internal)?;
    }
    let mut items = listing::list(&mut conn, &q).await?;
    drop(conn);
    let next_cursor = if items.len() as i64 > q.limit {
        items.truncate(usize::try_from(q.limit).unwrap_or(0));
        items.last().map(|i| {
            Cursor {
                from: q.from,
                now: q.now,
                starts_at: i.starts_at,
                id: i.id,
            }
            .encode()
        })
    } else {
        None
    };
    let body = serde_json::to_vec(&Page { items, next_cursor }).map_err(ApiError::internal)?;
    Ok(Cached::new(body))
}

/// `GET /api/v1/events/{event_id}`: a published event with its performances, venue, tiers and
/// sale windows.
#[utoipa::path(
    get,
    path = "/api/v1/events/{event_id}",
    tag = "events",
    params(
        ("event_id" = Uuid, Path, description = "The event"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` this answered before: 304 when the body is unchanged"),
    ),
    responses(
        (status = 200, description = "The event with its performances (not drafts), venue, grades, price tiers and sale windows",
            body = EventDetail, headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=5`"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current", headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=5`"),
        )),
        (status = 400, description = "`validation_failed`: `event_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such event, or it is a draft", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn event_detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id("event_id", &raw)?;
    let mut conn = state.pool.acquire().await?;
    let mut detail = events::detail(&mut conn, id, false, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    drop(conn);
    let ids: Vec<Uuid> = detail.performances.iter().map(|p| p.id).collect();
    let mut remaining = crate::availability::remaining(&state.pool, &ids).await?;
    for p in &mut detail.performances {
        p.remaining = remaining.remove(&p.id);
    }
    let body = serde_json::to_vec(&detail).map_err(ApiError::internal)?;
    Ok(Cached::new(body).respond(&headers, 5))
}

/// `GET /api/v1/venues`: every venue.
#[utoipa::path(
    get,
    path = "/api/v1/venues",
    tag = "venues",
    params(("If-None-Match" = Option<String>, Header, description = "An `ETag` this answered before: 304 when the body is unchanged")),
    responses(
        (status = 200, description = "Every venue, in one page (`next_cursor` is `null`)",
            body = Page<VenueSummary>, headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=60`"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current", headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=60`"),
        )),
        (status = 400, description = "`validation_failed`: the query string holds `%00` (refused before the handler, as on every service)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_venues(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let items = venues::list(&mut conn).await?;
    let body = serde_json::to_vec(&Page {
        items,
        next_cursor: None,
    })
    .map_err(ApiError::internal)?;
    Ok(Cached::new(body).respond(&headers, 60))
}

/// Options of the venue detail.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VenueParams {
    /// `false`/`0` (or empty) leaves out the areas' rows and seats; `true`/`1` or absent
    /// includes them.
    #[param(value_type = Option<bool>, default = true)]
    seats: Option<String>,
}

/// `GET /api/v1/venues/{venue_id}`: a venue with its seat map (`?seats=false` leaves out rows).
#[utoipa::path(
    get,
    path = "/api/v1/venues/{venue_id}",
    tag = "venues",
    params(
        ("venue_id" = Uuid, Path, description = "The venue"),
        VenueParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` this answered before: 304 when the body is unchanged"),
    ),
    responses(
        (status = 200, description = "The venue with its plan, grades and areas (with rows and seats unless `seats=false`)",
            body = VenueDetail, headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=60`"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` tag is current", headers(
            ("ETag" = String, description = "A strong tag of the body (for `If-None-Match`)"),
            ("Cache-Control" = String, description = "`public, max-age=60`"),
        )),
        (status = 400, description = "`validation_failed`: `venue_id` is not a UUID, `seats` is not true or false, or the query \
                        holds `%00`; `bad_request`: the query string cannot be read (e.g. `seats` given twice)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such venue", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the database is unavailable; try again shortly", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn venue_detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    params: Result<Query<VenueParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id("venue_id", &raw)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut p = Problems::new();
    let seats = params.seats.is_none() || parse_flag(&mut p, "seats", params.seats.as_deref());
    p.finish()?;
    let mut conn = state.pool.acquire().await?;
    let no_venue = || ApiError::not_found(format!("no venue {id}"));
    let revision = venues::revision(&mut conn, id)
        .await?
        .ok_or_else(no_venue)?;
    if let Some(cached) = state.cache.venue(id, seats, revision) {
        return Ok(cached.respond(&headers, 60));
    }
    // The revision and the detail from one snapshot, so the body is kept under its own revision.
    let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let revision = venues::revision(&mut tx, id).await?.ok_or_else(no_venue)?;
    let detail = venues::detail(&mut tx, id, seats)
        .await?
        .ok_or_else(no_venue)?;
    tx.commit().await?;
    let body = serde_json::to_vec(&detail).map_err(ApiError::internal)?;
    let cached = Cached::new(body);
    state.cache.put_venue(id, seats, revision, cached.clone());
    Ok(cached.respond(&headers, 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let t = DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap();
        let c = Cursor {
            from: t - Duration::days(1),
            now: t - Duration::hours(1),
            starts_at: t,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let old = URL_SAFE_NO_PAD.encode(format!("{}:{}", t.timestamp_micros(), c.id));
        let huge = URL_SAFE_NO_PAD.encode(format!("1:{}:0:0:{}", i64::MAX, c.id));
        let far = URL_SAFE_NO_PAD.encode(format!("1:253402300800000000:0:0:{}", c.id));
        let extra = URL_SAFE_NO_PAD.encode(format!("1:0:0:0:{}:x", c.id));
        for bad in [
            "garbage",
            "",
            "%%%",
            &old,
            &huge,
            &far,
            &extra,
            &"A".repeat(10_000),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_cursor_keeps_the_window_of_its_first_page() {
        let first = DateTime::from_timestamp_micros(1_780_000_000_000_000).unwrap();
        let c = Cursor {
            from: first,
            now: first,
            starts_at: first + Duration::days(3),
            id: Uuid::now_v7(),
        };
        let params = ListParams {
            cursor: Some(c.encode()),
            ..ListParams::default()
        };
        let later = first + Duration::hours(5);
        let q = list_query(&params, later).unwrap();
        assert_eq!((q.from, q.now), (first, first));
        assert_eq!(q.to, first + Duration::days(366));
        assert_eq!(q.after, Some((c.starts_at, c.id)));
        // Refused: another `from`, a position outside the window, a clock not yet come.
        let other_from = ListParams {
            from: Some("2020-01-01".into()),
            ..params
        };
        let before_from = Cursor {
            starts_at: first - Duration::days(1),
            ..c
        };
        let future = Cursor {
            now: later + Duration::hours(1),
            ..c
        };
        for (params, at) in [
            (other_from, later),
            (
                ListParams {
                    cursor: Some(before_from.encode()),
                    ..ListParams::default()
                },
                later,
            ),
            (
                ListParams {
                    cursor: Some(future.encode()),
                    ..ListParams::default()
                },
                later,
            ),
        ] {
            let e = list_query(&params, at).unwrap_err();
            assert_eq!(e.body()["errors"][0]["field"], "cursor", "{params:?}");
        }
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let params = ListParams {
            from: Some("yesterday".into()),
            kind: Some("opera house".into()),
            team: Some("yankees".into()),
            limit: Some("1000".into()),
            on_sale: Some("maybe".into()),
            cursor: Some("x".into()),
            venue_id: Some("1".into()),
            ..ListParams::default()
        };
        let e = list_query(&params, DateTime::<Utc>::UNIX_EPOCH).unwrap_err();
        let fields: Vec<String> = e.body()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect();
        for f in [
            "from", "kind", "venue_id", "team", "limit", "cursor", "on_sale",
        ] {
            assert!(fields.contains(&f.to_owned()), "{f} in {fields:?}");
        }
    }
}
