//! The public listing: events with a performance in a date range, filtered and searched, sorted
//! by that performance's start and paginated by a `(starts_at, event_id)` keyset cursor, so pages
//! stay stable while rows are added elsewhere in the order.
//!
//! It reads `event_listing`, one precomputed row per listed performance, which this module
//! owns: every store function that writes what a row is made of (a performance, its sale
//! windows, its event's status or search document) calls [`refresh_performances`] or
//! [`refresh_events`] in its transaction. What a row only shows (titles, venue names, prices) is
//! not copied: it is read for the page's rows, so a venue rename or a price change has nothing
//! to refresh beyond the search documents it rewrites.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::{
    domain::{PerformanceState, SaleStatus, status::OPENING_SOON},
    model::{EventItem, VenueSummary},
};

/// A validated listing query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Performances starting at or after.
    pub from: DateTime<Utc>,
    /// Performances starting before.
    pub to: DateTime<Utc>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only at this venue.
    pub venue_id: Option<Uuid>,
    /// Only games of this team (code).
    pub team: Option<String>,
    /// Normalized search terms, each with its alternatives (every term must match one: a term
    /// without any matches nothing), matched as literal substrings.
    pub terms: Vec<Vec<String>>,
    /// Only performances on sale now (published, a window open: see [`SaleStatus::at`]).
    pub on_sale: bool,
    /// Only performances not on sale now with a sale window opening within [`OPENING_SOON`]
    /// (an announced one whose window is open already is not on sale).
    pub opening_soon: bool,
    /// Resume after this `(starts_at, event_id)`.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// Most items (one more is fetched to know whether a next page exists).
    pub limit: i64,
    /// The clock.
    pub now: DateTime<Utc>,
}

/// The page: each listed event's first matching performance in `[from, to)` (by start, then
/// id) with the count of its matching performances, from the precomputed rows of
/// `event_listing` (one per listed performance, migration 0006), filtered by plain predicates
/// on the row — `sale_windows @> now` for "a window is open", `sale_openings && (now, now + 24
/// h]` for "one opens soon", an OR of `LIKE`s per search term that the trigram index can serve — then
/// joined, for the page's rows only, to what the listing shows (title, venue, prices). Only the
/// predicates a query uses are written out, so each is planned on what it filters.
const PAGE_HEAD: &str = "
WITH first AS (
  SELECT DISTINCT ON (l.event_id) l.event_id, l.performance_id, l.starts_at, l.status,
         l.sale_opens_at, l.sale_closes_at, l.sale_windows @> ";
const COLUMNS: &str = "
SELECT e.id, e.kind, e.title, e.home_team, e.away_team, e.waiting_room,
       v.id AS venue_id, v.name AS venue_name, v.name_en AS venue_name_en, v.kind AS venue_kind,
       v.city AS venue_city, v.capacity AS venue_capacity,
       p.performance_id, p.starts_at, p.status, p.sale_opens_at, p.sale_closes_at, p.open_now,
       p.n,
       (SELECT min(price_krw) FROM price_tiers t WHERE t.event_id = e.id) AS min_price,
       (SELECT max(price_krw) FROM price_tiers t WHERE t.event_id = e.id) AS max_price
FROM page p JOIN events e ON e.id = p.event_id JOIN venues v ON v.id = e.venue_id
ORDER BY p.starts_at, p.event_id";

/// The listing statement of `q`, after `prefix` (empty, or an `EXPLAIN (...)` to measure it).
pub fn statement(q: &ListQuery, prefix: &str) -> QueryBuilder<Postgres> {
    let mut b = QueryBuilder::new(prefix);
    b.push(PAGE_HEAD)
        .push_bind(q.now)
        .push(" AS open_now, count(*) OVER (PARTITION BY l.event_id) AS n")
        .push("\n  FROM event_listing l WHERE l.starts_at >= ")
        .push_bind(q.from)
        .push(" AND l.starts_at < ")
        .push_bind(q.to);
    if let Some(kind) = &q.kind {
        b.push(" AND l.kind = ").push_bind(kind.clone());
    }
    if let Some(venue) = q.venue_id {
        b.push(" AND l.venue_id = ").push_bind(venue);
    }
    if let Some(team) = &q.team {
        b.push(" AND (l.home_team = ")
            .push_bind(team.clone())
            .push(" OR l.away_team = ")
            .push_bind(team.clone())
            .push(")");
    }
    if q.on_sale {
        b.push(" AND l.status = 'published' AND l.sale_windows @> ")
            .push_bind(q.now)
            .push(" AND l.starts_at > ")
            .push_bind(q.now);
    }
    if q.opening_soon {
        b.push(" AND l.status IN ('published', 'announced') AND (l.status = 'announced' OR NOT l.sale_windows @> ")
            .push_bind(q.now)
            .push(") AND l.starts_at > ")
            .push_bind(q.now)
            .push(" AND l.sale_openings && tstzrange(")
            .push_bind(q.now)
            .push(", ")
            .push_bind(q.now + OPENING_SOON)
            .push(", '(]')");
    }
    // Every term must match: one of its alternatives a substring (none: nothing matches). An
    // OR of LIKEs rather than LIKE ANY: the planner can serve each from the trigram index.
    for alternatives in &q.terms {
        if alternatives.is_empty() {
            b.push(" AND false");
            continue;
        }
        b.push(" AND (");
        for (i, a) in alternatives.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            b.push("l.search_doc LIKE ")
                .push_bind(format!("%{}%", escape_like(a)));
        }
        b.push(")");
    }
    b.push("\n  ORDER BY l.event_id, l.starts_at, l.performance_id\n), page AS (\n  SELECT * FROM first");
    if let Some((starts_at, id)) = q.after {
        b.push(" WHERE (starts_at, event_id) > (")
            .push_bind(starts_at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    b.push(" ORDER BY starts_at, event_id LIMIT ")
        .push_bind(q.limit + 1)
        .push("\n)")
        .push(COLUMNS);
    b
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    kind: String,
    title: String,
    home_team: Option<String>,
    away_team: Option<String>,
    waiting_room: bool,
    venue_id: Uuid,
    venue_name: String,
    venue_name_en: String,
    venue_kind: String,
    venue_city: String,
    venue_capacity: i32,
    performance_id: Uuid,
    starts_at: DateTime<Utc>,
    status: String,
    sale_opens_at: DateTime<Utc>,
    sale_closes_at: DateTime<Utc>,
    open_now: bool,
    n: i64,
    min_price: Option<i64>,
    max_price: Option<i64>,
}

/// `text` as a LIKE pattern matching itself: `\`, `%` and `_` escaped (the default escape is
/// `\`). Normalized terms hold none of them; a caller's raw text may.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Runs the listing; returns up to `limit + 1` items (the extra one only signals a next page).
pub async fn list(conn: &mut PgConnection, q: &ListQuery) -> Result<Vec<EventItem>, sqlx::Error> {
    let mut b = statement(q, "");
    let rows: Vec<Row> = b.build_query_as().fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| r.item(q.now)).collect())
}

impl Row {
    /// The listing item, its sale status as of `now`.
    fn item(self, now: DateTime<Utc>) -> EventItem {
        let r = self;
        EventItem {
            id: r.id,
            kind: r.kind,
            title: r.title,
            home_team: super::events::team_view(r.home_team.as_deref()),
            away_team: super::events::team_view(r.away_team.as_deref()),
            venue: VenueSummary {
                id: r.venue_id,
                name: r.venue_name,
                name_en: r.venue_name_en,
                kind: r.venue_kind,
                city: r.venue_city,
                capacity: r.venue_capacity,
            },
            starts_at: r.starts_at,
            performance_id: r.performance_id,
            status: SaleStatus::at(
                PerformanceState::parse(&r.status),
                r.starts_at,
                r.sale_closes_at,
                r.open_now,
                now,
            ),
            sale_opens_at: r.sale_opens_at,
            performance_count: r.n,
            waiting_room: r.waiting_room,
            price_range: r.min_price.zip(r.max_price).map(|(a, b)| [a, b]),
        }
    }
}

/// Rewrites the listing rows of `performances` from what is stored: a row for each that is
/// listed (neither it nor its event a draft), none for the others. The caller holds these
/// performances' row locks (it has just written them), so no other writer of them commits in
/// between, and any writer of their event refreshes them again after it (see
/// [`refresh_events`]).
pub async fn refresh_performances(
    conn: &mut PgConnection,
    performances: &[Uuid],
) -> Result<(), sqlx::Error> {
    if performances.is_empty() {
        return Ok(());
    }
    sqlx::query(REFRESH)
        .bind(performances)
        .execute(conn)
        .await?;
    Ok(())
}

/// Rewrites the listing rows of every performance of `events` (after a change to an event: its
/// status or search document). Locks those performances first (after the events, which the
/// caller holds: the lock order), so a writer of one of them either committed before this reads
/// it or waits for this transaction and refreshes its row after it.
pub async fn refresh_events(conn: &mut PgConnection, events: &[Uuid]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let performances: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM performances WHERE event_id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(events)
    .fetch_all(&mut *conn)
    .await?;
    refresh_performances(conn, &performances).await
}

/// The listing rows of the performances `$1`, computed from the stored performances, their sale
/// windows and events: written when listed, deleted when not (any more).
const REFRESH: &str = "
WITH src AS (
  SELECT p.id, p.event_id, p.starts_at, p.status, p.sale_opens_at, p.sale_closes_at,
         COALESCE((SELECT range_agg(tstzrange(w.opens_at, w.closes_at)) FROM sale_windows w
                    WHERE w.performance_id = p.id), '{}') AS sale_windows,
         COALESCE((SELECT range_agg(tstzrange(w.opens_at, w.opens_at, '[]')) FROM sale_windows w
                    WHERE w.performance_id = p.id), '{}') AS sale_openings,
         e.kind, e.venue_id, e.home_team, e.away_team, e.search_doc,
         p.status <> 'draft' AND e.status <> 'draft' AS listed
  FROM performances p JOIN events e ON e.id = p.event_id
  WHERE p.id = ANY($1)
), unlisted AS (
  DELETE FROM event_listing l WHERE l.performance_id = ANY($1)
    AND NOT EXISTS (SELECT 1 FROM src WHERE src.id = l.performance_id AND src.listed)
)
INSERT INTO event_listing (performance_id, event_id, starts_at, status, sale_opens_at,
                           sale_closes_at, sale_windows, sale_openings, kind, venue_id,
                           home_team, away_team, search_doc)
SELECT id, event_id, starts_at, status, sale_opens_at, sale_closes_at, sale_windows,
       sale_openings, kind, venue_id, home_team, away_team, search_doc
FROM src WHERE listed
ON CONFLICT (performance_id) DO UPDATE SET
  starts_at = EXCLUDED.starts_at, status = EXCLUDED.status,
  sale_opens_at = EXCLUDED.sale_opens_at, sale_closes_at = EXCLUDED.sale_closes_at,
  sale_windows = EXCLUDED.sale_windows, sale_openings = EXCLUDED.sale_openings,
  kind = EXCLUDED.kind, venue_id = EXCLUDED.venue_id, home_team = EXCLUDED.home_team,
  away_team = EXCLUDED.away_team, search_doc = EXCLUDED.search_doc";

/// Listing rows that differ from what [`refresh_performances`] would write now (each
/// performance id once: missing, extra or stale). Empty while every writer keeps the table.
pub async fn drift(conn: &mut PgConnection) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH want AS (
           SELECT p.id AS performance_id, p.event_id, p.starts_at, p.status, p.sale_opens_at,
                  p.sale_closes_at,
                  COALESCE((SELECT range_agg(tstzrange(w.opens_at, w.closes_at)) FROM sale_windows w
                             WHERE w.performance_id = p.id), '{}') AS sale_windows,
                  COALESCE((SELECT range_agg(tstzrange(w.opens_at, w.opens_at, '[]'))
                             FROM sale_windows w WHERE w.performance_id = p.id), '{}')
                    AS sale_openings,
                  e.kind, e.venue_id, e.home_team, e.away_team, e.search_doc
           FROM performances p JOIN events e ON e.id = p.event_id
           WHERE p.status <> 'draft' AND e.status <> 'draft'
         ), have AS (
           SELECT performance_id, event_id, starts_at, status, sale_opens_at, sale_closes_at,
                  sale_windows, sale_openings, kind, venue_id, home_team, away_team, search_doc
           FROM event_listing
         )
         SELECT DISTINCT performance_id FROM (
           (SELECT * FROM want EXCEPT SELECT * FROM have)
           UNION ALL (SELECT * FROM have EXCEPT SELECT * FROM want)
         ) d ORDER BY performance_id",
    )
    .fetch_all(conn)
    .await
}

/// The distinct words of every listed event's search document (the typo-correction vocabulary),
/// the [`crate::search::MAX_VOCABULARY`] most frequent ones.
pub async fn vocabulary(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT w FROM events, unnest(string_to_array(search_doc, ' ')) AS w
         WHERE status <> 'draft' AND w <> '' GROUP BY w ORDER BY count(*) DESC, w LIMIT $1",
    )
    .bind(crate::search::MAX_VOCABULARY)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_patterns_are_literal() {
        assert_eq!(escape_like("ㄷㅜㅅㅏㄴ lg"), "ㄷㅜㅅㅏㄴ lg");
        assert_eq!(escape_like("100%_a\\b"), "100\\%\\_a\\\\b");
    }
}
