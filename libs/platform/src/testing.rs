//! Helpers for integration tests against the real infrastructure: PostgreSQL at
//! `BOXOFFICE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`), Redis at
//! `BOXOFFICE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and a Kafka-protocol broker at
//! `BOXOFFICE_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`). `make test` starts all three.

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{DatabaseSettings, connect};

/// The PostgreSQL server tests use.
pub fn database_url() -> String {
    std::env::var("BOXOFFICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The Kafka-protocol broker tests use.
pub fn kafka_brokers() -> String {
    std::env::var("BOXOFFICE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A fresh database for one test, named `test_<label>_<uuid>`, with the bus tables and the given
/// migrations applied. Dropped by [`TestDb::drop_database`] (or left for inspection).
pub struct TestDb {
    /// The pool on the fresh database.
    pub pool: PgPool,
    /// Its name.
    pub name: String,
    /// The server URL.
    pub server_url: String,
}

impl TestDb {
    /// Creates the database and applies `migrator` (if any).
    pub async fn new(label: &str, migrator: Option<&sqlx::migrate::Migrator>) -> Self {
        let server_url = database_url();
        let name = format!("test_{label}_{}", Uuid::new_v4().simple());
        let settings = DatabaseSettings {
            max_connections: 20,
            ..DatabaseSettings::default()
        };
        let pool = connect(&settings, &server_url, &name, migrator)
            .await
            .unwrap_or_else(|e| panic!("test database {name} on {server_url}: {e}"));
        Self {
            pool,
            name,
            server_url,
        }
    }

    /// Closes the pool and drops the database.
    pub async fn drop_database(self) {
        self.pool.close().await;
        if let Ok(opts) = crate::db::server_options(&self.server_url) {
            use sqlx::{ConnectOptions, Connection};
            if let Ok(mut conn) = opts.database("postgres").connect().await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                )))
                .execute(&mut conn)
                .await;
                let _ = conn.close().await;
            }
        }
    }
}

/// Polls `condition` every 20 ms until it is true or `timeout` passes; panics with `what` then.
/// Tests wait on conditions, never on fixed sleeps.
pub async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
