//! The public listing: events with a performance in a date range, filtered and searched, sorted
//! by that performance's start and paginated by a `(starts_at, event_id)` keyset cursor, so pages
//! stay stable while rows are added elsewhere in the order.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
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

const LIST: &str = "
WITH p AS (
  SELECT DISTINCT ON (p.event_id) p.event_id, p.id, p.starts_at, p.status, p.sale_opens_at,
         p.sale_closes_at, p.open_now, count(*) OVER (PARTITION BY p.event_id) AS n
  FROM (
    SELECT p.*, EXISTS (SELECT 1 FROM sale_windows w WHERE w.performance_id = p.id
                          AND w.opens_at <= $10 AND $10 < w.closes_at) AS open_now
    FROM performances p
    WHERE p.status <> 'draft' AND p.starts_at >= $1 AND p.starts_at < $2
  ) p
  WHERE (NOT $3 OR (p.status = 'published' AND p.open_now AND $10 < p.starts_at))
    AND (NOT $4 OR (p.status IN ('published', 'announced')
                    AND (p.status = 'announced' OR NOT p.open_now) AND $10 < p.starts_at
                    AND EXISTS (SELECT 1 FROM sale_windows w WHERE w.performance_id = p.id
                                  AND w.opens_at > $10 AND w.opens_at <= $11)))
  ORDER BY p.event_id, p.starts_at, p.id
)
SELECT e.id, e.kind, e.title, e.home_team, e.away_team, e.waiting_room,
       v.id AS venue_id, v.name AS venue_name, v.name_en AS venue_name_en, v.kind AS venue_kind,
       v.city AS venue_city, v.capacity AS venue_capacity,
       p.id AS performance_id, p.starts_at, p.status, p.sale_opens_at, p.sale_closes_at, p.open_now,
       p.n,
       (SELECT min(price_krw) FROM price_tiers t WHERE t.event_id = e.id) AS min_price,
       (SELECT max(price_krw) FROM price_tiers t WHERE t.event_id = e.id) AS max_price
FROM p JOIN events e ON e.id = p.event_id JOIN venues v ON v.id = e.venue_id
WHERE e.status <> 'draft'
  AND ($5::text IS NULL OR e.kind = $5)
  AND ($6::uuid IS NULL OR e.venue_id = $6)
  AND ($7::text IS NULL OR e.home_team = $7 OR e.away_team = $7)
  AND NOT EXISTS (
        SELECT 1 FROM generate_series(0, $13 - 1) AS g(grp)
        WHERE NOT EXISTS (SELECT 1 FROM unnest($8::text[], $14::int4[]) AS a(term, grp)
                          WHERE a.grp = g.grp AND e.search_doc LIKE '%' || a.term || '%'))
  AND ($9::timestamptz IS NULL OR (p.starts_at, p.event_id) > ($9, $12))
ORDER BY p.starts_at, p.event_id
LIMIT $15";

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
    let mut alternatives: Vec<String> = Vec::new();
    let mut groups: Vec<i32> = Vec::new();
    for (i, alts) in q.terms.iter().enumerate() {
        for a in alts {
            alternatives.push(escape_like(a));
            groups.push(i32::try_from(i).unwrap_or(0));
        }
    }
    let rows: Vec<Row> = sqlx::query_as(LIST)
        .bind(q.from)
        .bind(q.to)
        .bind(q.on_sale)
        .bind(q.opening_soon)
        .bind(&q.kind)
        .bind(q.venue_id)
        .bind(&q.team)
        .bind(alternatives)
        .bind(q.after.map(|a| a.0))
        .bind(q.now)
        .bind(q.now + OPENING_SOON)
        .bind(q.after.map(|a| a.1).unwrap_or_default())
        .bind(i32::try_from(q.terms.len()).unwrap_or(0))
        .bind(groups)
        .bind(q.limit + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| EventItem {
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
                q.now,
            ),
            sale_opens_at: r.sale_opens_at,
            performance_count: r.n,
            waiting_room: r.waiting_room,
            price_range: r.min_price.zip(r.max_price).map(|(a, b)| [a, b]),
        })
        .collect())
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
