//! The bus tables every service database carries: `bus_outbox` (events waiting to be published;
//! where the transport put each, and when every consumer of a non-durable transport had it),
//! `bus_outbox_dead_letters` (outbox rows the transport refused for good, moved out of the outbox
//! by the relay, with why), `bus_inbox` (event ids a consumer has processed or dead-lettered) and
//! `bus_dead_letters` (events a consumer will never apply, with why). Created and extended
//! idempotently at start.

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
CREATE TABLE IF NOT EXISTS bus_outbox_dead_letters (
    event_id   UUID PRIMARY KEY,
    seq        BIGINT NOT NULL,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    envelope   JSONB NOT NULL,
    reason     TEXT NOT NULL,
    error      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    failed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
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

/// Columns added after the first release. Run only when one is missing: `ALTER TABLE` takes an
/// exclusive lock even when there is nothing to add.
const UPGRADE: &str = r#"
ALTER TABLE bus_outbox ADD COLUMN IF NOT EXISTS bus_partition INT;
ALTER TABLE bus_outbox ADD COLUMN IF NOT EXISTS bus_offset BIGINT;
ALTER TABLE bus_outbox ADD COLUMN IF NOT EXISTS settled_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS bus_outbox_unsettled ON bus_outbox (topic, bus_partition, bus_offset)
    WHERE published_at IS NOT NULL AND settled_at IS NULL;
ALTER TABLE bus_dead_letters ADD COLUMN IF NOT EXISTS topic TEXT NOT NULL DEFAULT '';
ALTER TABLE bus_dead_letters ADD COLUMN IF NOT EXISTS reason TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE bus_dead_letters ADD COLUMN IF NOT EXISTS attempts INT NOT NULL DEFAULT 1;
"#;

/// How many of the columns [`UPGRADE`] adds exist.
const UPGRADED_COLUMNS: &str = "SELECT count(*) FROM information_schema.columns \
     WHERE table_schema = current_schema() AND ( \
       (table_name = 'bus_outbox' AND column_name IN ('bus_partition', 'bus_offset', 'settled_at')) \
       OR (table_name = 'bus_dead_letters' AND column_name IN ('topic', 'reason', 'attempts')))";

/// Creates the bus tables when missing. Serialized by an advisory lock so concurrent starts of
/// several replicas do not race on `CREATE ... IF NOT EXISTS`.
pub async fn apply(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7305001)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    let present: i64 = sqlx::query_scalar(UPGRADED_COLUMNS)
        .fetch_one(&mut *tx)
        .await?;
    if present < 6 {
        sqlx::raw_sql(UPGRADE).execute(&mut *tx).await?;
    }
    tx.commit().await
}
