//! The bus tables every service database carries: `bus_outbox` (events waiting to be published),
//! `bus_inbox` (event ids a consumer has processed) and `bus_dead_letters` (events a handler
//! rejected as permanently unprocessable). Created idempotently at start.

use sqlx::PgPool;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bus_outbox (
    seq          BIGSERIAL PRIMARY KEY,
    id           UUID NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    key          TEXT NOT NULL,
    envelope     JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS bus_outbox_unpublished ON bus_outbox (seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS bus_inbox (
    consumer     TEXT NOT NULL,
    event_id     UUID NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS bus_dead_letters (
    consumer   TEXT NOT NULL,
    event_id   UUID NOT NULL,
    envelope   JSONB NOT NULL,
    error      TEXT NOT NULL,
    failed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"#;

/// Creates the bus tables when missing. Serialized by an advisory lock so concurrent starts of
/// several replicas do not race on `CREATE ... IF NOT EXISTS`.
pub async fn apply(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7305001)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await
}
