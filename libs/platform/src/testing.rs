//! Helpers for integration tests against the real infrastructure: PostgreSQL at
//! `BOXOFFICE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`), Redis at
//! `BOXOFFICE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), a 3-master Redis Cluster at
//! `BOXOFFICE_TEST_REDIS_CLUSTER` (seed URLs, default `redis://127.0.0.1:7001,...:7003`) and a
//! Kafka-protocol broker at `BOXOFFICE_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`).
//! `make test` starts them all.

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{DatabaseSettings, connect};

/// The PostgreSQL server tests use.
pub fn database_url() -> String {
    std::env::var("BOXOFFICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The keys matching `pattern` on the server of `conn`, by SCAN, not KEYS: the shared test server
/// holds every earlier run's keys (hundreds of thousands on a long-lived machine), and one KEYS
/// over them blocks it past other tests' timeouts.
#[allow(clippy::unwrap_used)] // a test helper: a broken server fails the test
pub async fn scan_keys<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    pattern: &str,
) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The Redis Cluster tests use: its seed nodes, comma-separated URLs (what `redis.url` holds
/// with `redis.cluster = true`).
pub fn redis_cluster() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_CLUSTER").unwrap_or_else(|_| {
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
    })
}

/// The Redis Cluster slot of `key`: CRC16/XMODEM of its hash tag (what is between the first `{`
/// and the next `}`, when not empty), else of the whole key, modulo 16384 — computed here so
/// tests can check the stores' keys against the cluster's own `CLUSTER KEYSLOT`.
pub fn redis_cluster_slot(key: &str) -> u16 {
    let tagged = key.find('{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.find('}')
            .filter(|&len| len > 0)
            .map(|len| &rest[..len])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(key).as_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The Kafka-protocol broker tests use.
pub fn kafka_brokers() -> String {
    std::env::var("BOXOFFICE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The test run this process belongs to: `BOXOFFICE_TEST_RUN` (set by `scripts/test.sh`, so the
/// run drops exactly the databases it created at its end), reduced to ASCII letters and digits,
/// at most 12 of them; empty when unset.
fn test_run() -> String {
    std::env::var("BOXOFFICE_TEST_RUN")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A unique database name for one test: `test_<run>_<label>_<random>` (`test_<label>_<random>`
/// outside a test run). Label and randomness are kept short so names stay within PostgreSQL's
/// 63-byte identifiers even with a service name appended.
pub fn database_name(label: &str) -> String {
    let run = test_run();
    let label: String = label.chars().take(20).collect();
    let random = &Uuid::new_v4().simple().to_string()[..16];
    if run.is_empty() {
        format!("test_{label}_{random}")
    } else {
        format!("test_{run}_{label}_{random}")
    }
}

/// A unique database-name prefix for one test's services (each appends its own name), shaped
/// like [`database_name`] and ending in `_`.
pub fn database_prefix(label: &str) -> String {
    format!("{}_", database_name(label))
}

/// A fresh database for one test, named by [`database_name`], with the bus tables and the given
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
        let name = database_name(label);
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

/// An [`Infra`](crate::service::Infra) for one test: fresh databases (prefix
/// `test_<label>_<uuid>_`) on the test server, the in-memory bus, Redis unset.
pub fn infra(label: &str) -> crate::service::Infra {
    infra_with_bus(
        label,
        std::sync::Arc::new(crate::bus::memory::MemoryTransport::new(4)),
    )
}

/// Like [`infra`] with a given bus transport.
pub fn infra_with_bus(
    label: &str,
    bus: std::sync::Arc<dyn crate::bus::Transport>,
) -> crate::service::Infra {
    let settings = crate::bus::BusSettings {
        relay_interval_ms: 50,
        ..crate::bus::BusSettings::default()
    };
    crate::service::Infra {
        mode: crate::service::Mode::Standalone,
        database_url: Some(database_url()),
        database: DatabaseSettings {
            name_prefix: database_prefix(label),
            max_connections: 20,
            ..DatabaseSettings::default()
        },
        bus,
        bus_settings: settings,
        redis: crate::service::RedisSettings::default(),
        directory: crate::service::Directory::default(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    }
}

/// A service served on a random loopback port for a test.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Cancel to stop the server and the service's tasks.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// A client for convenience.
    pub client: reqwest::Client,
}

impl TestServer {
    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves `service` (with the shared middleware and operational endpoints, and its tasks watched
/// in `/readyz`) on a free port until the returned server is dropped or `shutdown` is cancelled.
pub async fn serve(
    service: crate::service::Service,
    shutdown: tokio_util::sync::CancellationToken,
) -> TestServer {
    // The tasks keep running as before; only their health shows in `/readyz`.
    let (service, _tasks) = service.supervised();
    let settings = crate::http::HttpSettings::default();
    let listener = crate::http::bind(&settings)
        .await
        .unwrap_or_else(|e| panic!("binding a test port: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("reading the test port: {e}"));
    let token = shutdown.clone();
    tokio::spawn(async move {
        let _ = crate::http::serve_on(
            listener,
            service.name,
            service.router,
            service.readiness,
            &settings,
            token,
        )
        .await;
    });
    TestServer {
        base_url: format!("http://{addr}"),
        shutdown,
        client: reqwest::Client::new(),
    }
}

/// Signs access tokens for tests, as the user service would, and verifies them.
pub struct TestIssuer {
    /// The signing key.
    pub key: crate::auth::SigningKey,
}

impl Default for TestIssuer {
    fn default() -> Self {
        Self {
            key: crate::auth::SigningKey::generate(format!("test-{}", Uuid::new_v4().simple())),
        }
    }
}

impl TestIssuer {
    /// A token for `user` with `roles`, valid for 15 minutes.
    pub fn token(&self, user: Uuid, roles: &[crate::auth::Role]) -> String {
        self.key
            .sign(&crate::auth::Claims::new(user, roles.to_vec(), 900))
            .unwrap_or_else(|e| panic!("signing a test token: {e}"))
    }

    /// A verifier that trusts this issuer.
    pub fn verifier(&self) -> crate::auth::Verifier {
        crate::auth::Verifier::from_jwks(vec![
            self.key
                .public_jwk()
                .unwrap_or_else(|e| panic!("test jwk: {e}")),
        ])
    }
}

/// The event types among `types` that `handler` acts on, to prove a [`Handler::wants`] agrees
/// with its [`Handler::handle`]: each type is handed over as an envelope with an empty payload,
/// on a transaction of the test server's `postgres` database that is rolled back. A handler that
/// acts on a type fails on it (the payload does not decode, or its tables are not there); one
/// that ignores it returns `Ok` without a look at the payload.
///
/// [`Handler::wants`]: crate::bus::consumer::Handler::wants
/// [`Handler::handle`]: crate::bus::consumer::Handler::handle
#[allow(clippy::expect_used)] // a test helper: a broken server fails the test
pub async fn types_handled(
    handler: &dyn crate::bus::consumer::Handler,
    types: &[&'static str],
) -> Vec<&'static str> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", database_url()))
        .await
        .expect("connect to the test server");
    let mut handled = Vec::new();
    for &event_type in types {
        let envelope = crate::bus::envelope::Envelope {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            version: 1,
            occurred_at: chrono::Utc::now(),
            key: "types-handled".to_owned(),
            payload: serde_json::json!({}),
        };
        let mut tx = conn.begin().await.expect("begin");
        if handler.handle(&mut tx, &envelope).await.is_err() {
            handled.push(event_type);
        }
        tx.rollback().await.expect("rollback");
    }
    handled
}
