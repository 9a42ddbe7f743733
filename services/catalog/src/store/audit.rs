//! The audit log of changes made after a sale opened (prices, ticket limit, start time): who,
//! when, what, old → new. Appended in the transaction of the change, never updated.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change {
    /// Who made it.
    pub actor_id: Uuid,
    /// The event changed.
    pub event_id: Uuid,
    /// The performance changed (a start time).
    pub performance_id: Option<Uuid>,
    /// `price_tiers`, `ticket_prices`, `ticket_limit` or `starts_at`.
    pub field: &'static str,
    /// Before.
    pub old_value: serde_json::Value,
    /// After.
    pub new_value: serde_json::Value,
}

/// An entry of the log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entry {
    /// Increasing id (the cursor of the next page).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (an admin).
    pub actor_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The performance (start-time changes).
    pub performance_id: Option<Uuid>,
    /// `price_tiers` (`{grade: price_krw}`), `ticket_prices` (the per-type prices), `ticket_limit`
    /// or `starts_at`.
    pub field: String,
    /// Before.
    #[schema(value_type = Object)]
    pub old_value: serde_json::Value,
    /// After.
    #[schema(value_type = Object)]
    pub new_value: serde_json::Value,
}

/// Appends `change` on `conn` (the transaction of the change).
pub async fn append(conn: &mut PgConnection, change: &Change) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO catalog_audit (actor_id, event_id, performance_id, field, old_value, new_value)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(change.actor_id)
    .bind(change.event_id)
    .bind(change.performance_id)
    .bind(change.field)
    .bind(&change.old_value)
    .bind(&change.new_value)
    .execute(conn)
    .await?;
    Ok(())
}

/// Entries newest first, of one event when `event_id` is given, older than `before` when given;
/// at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    event_id: Option<Uuid>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, at, actor_id, event_id, performance_id, field, old_value, new_value
         FROM catalog_audit
         WHERE ($1::uuid IS NULL OR event_id = $1) AND ($2::int8 IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(event_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
