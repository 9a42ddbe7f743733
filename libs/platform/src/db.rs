//! PostgreSQL: one database per service on a shared server, created when missing, with the
//! service's own forward-only migrations and the bus tables (outbox, inbox).
//!
//! Every pooled session is bounded so that a dead or stuck node cannot stall the others: a
//! transaction left idle is ended by the server (`idle_in_transaction_session_timeout`), waiting
//! for a lock fails after `lock_timeout` instead of queueing behind it forever, a runaway statement
//! is cancelled (`statement_timeout`), and the server probes idle client sockets (TCP keepalives),
//! so the sessions of a node that vanished without closing them end, and their locks go with them.
//! Migrations run without the lock and statement limits: they may wait for another replica's.

use std::time::Duration;

use serde::Deserialize;
use sqlx::{
    ConnectOptions, Connection, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Database settings (`database.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Server URL without a database name, e.g. `postgres://postgres@127.0.0.1:5432` (env
    /// `BOXOFFICE_DATABASE__URL`). Each service uses its own database on it, named
    /// `<prefix><service>`. In standalone mode it defaults to the private PostgreSQL.
    pub url: Option<String>,
    /// Database name prefix (env `BOXOFFICE_DATABASE__NAME_PREFIX`).
    pub name_prefix: String,
    /// Most pooled connections per service (env `BOXOFFICE_DATABASE__MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// How long to wait for a pooled connection, in ms (env
    /// `BOXOFFICE_DATABASE__ACQUIRE_TIMEOUT_MS`).
    pub acquire_timeout_ms: u64,
    /// The server ends a session whose transaction stays idle this long, in ms; 0 = never (env
    /// `BOXOFFICE_DATABASE__IDLE_IN_TRANSACTION_TIMEOUT_MS`).
    pub idle_in_transaction_timeout_ms: u64,
    /// A statement waiting this long for a lock fails (SQLSTATE 55P03), in ms; 0 = waits forever
    /// (env `BOXOFFICE_DATABASE__LOCK_TIMEOUT_MS`).
    pub lock_timeout_ms: u64,
    /// A statement running this long is cancelled (SQLSTATE 57014), in ms; 0 = never (env
    /// `BOXOFFICE_DATABASE__STATEMENT_TIMEOUT_MS`).
    pub statement_timeout_ms: u64,
    /// Idle seconds before the server probes a client's TCP socket; 0 = the OS default (env
    /// `BOXOFFICE_DATABASE__TCP_KEEPALIVES_IDLE_SECS`).
    pub tcp_keepalives_idle_secs: u32,
    /// Seconds between unanswered probes; 0 = the OS default (env
    /// `BOXOFFICE_DATABASE__TCP_KEEPALIVES_INTERVAL_SECS`).
    pub tcp_keepalives_interval_secs: u32,
    /// Unanswered probes after which the server drops the connection; 0 = the OS default (env
    /// `BOXOFFICE_DATABASE__TCP_KEEPALIVES_COUNT`).
    pub tcp_keepalives_count: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            name_prefix: "boxoffice_".into(),
            max_connections: 10,
            acquire_timeout_ms: 5_000,
            idle_in_transaction_timeout_ms: 60_000,
            lock_timeout_ms: 10_000,
            statement_timeout_ms: 30_000,
            tcp_keepalives_idle_secs: 30,
            tcp_keepalives_interval_secs: 10,
            tcp_keepalives_count: 3,
        }
    }
}

impl DatabaseSettings {
    /// The session settings every pooled connection starts with (PostgreSQL's startup options).
    pub fn session_options(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout_ms.to_string(),
            ),
            ("lock_timeout", self.lock_timeout_ms.to_string()),
            ("statement_timeout", self.statement_timeout_ms.to_string()),
            (
                "tcp_keepalives_idle",
                self.tcp_keepalives_idle_secs.to_string(),
            ),
            (
                "tcp_keepalives_interval",
                self.tcp_keepalives_interval_secs.to_string(),
            ),
            (
                "tcp_keepalives_count",
                self.tcp_keepalives_count.to_string(),
            ),
        ]
    }
}

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse.
    #[error("database url is invalid: {0}")]
    BadUrl(String),
    /// The server refused or could not be reached.
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        /// Host and port tried.
        target: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Options for the server at `url` (no database selected).
pub fn server_options(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse::<PgConnectOptions>()
        .map_err(|e| DbError::BadUrl(e.to_string()))
}

fn target(opts: &PgConnectOptions) -> String {
    format!("{}:{}", opts.get_host(), opts.get_port())
}

/// Creates database `name` on the server when it does not exist (safe under races).
pub async fn ensure_database(server: &PgConnectOptions, name: &str) -> Result<(), DbError> {
    let admin = server.clone().database("postgres");
    let mut conn = admin.connect().await.map_err(|source| DbError::Connect {
        target: target(server),
        source,
    })?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        // The name is quoted with embedded quotes doubled: no injection.
        match sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = name, "created database"),
            // 42P04 duplicate_database, 23505 unique_violation: someone else created it first.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Opens a pool on database `name`, creating it when missing, then applies the bus tables and
/// `migrator`.
pub async fn connect(
    settings: &DatabaseSettings,
    server_url: &str,
    name: &str,
    migrator: Option<&Migrator>,
) -> Result<PgPool, DbError> {
    let server = server_options(server_url)?;
    ensure_database(&server, name).await?;
    let options = server
        .clone()
        .database(name)
        .options(settings.session_options());
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            target: target(&server),
            source,
        })?;
    crate::bus::schema::apply(&pool).await?;
    if let Some(migrator) = migrator {
        // A migration may wait for another replica's, and may run long: no limits but the idle
        // one, on this connection only.
        let mut conn = pool.acquire().await?;
        sqlx::raw_sql("SET lock_timeout = 0; SET statement_timeout = 0")
            .execute(&mut *conn)
            .await?;
        if let Err(e) = migrator.run(&mut *conn).await {
            // Not back into the pool without its limits.
            drop(conn.detach());
            return Err(e.into());
        }
        sqlx::raw_sql("RESET lock_timeout; RESET statement_timeout")
            .execute(&mut *conn)
            .await?;
    }
    Ok(pool)
}

/// Checks that a server answers, for readiness and start-up messages.
pub async fn ping(server_url: &str) -> Result<(), DbError> {
    let server = server_options(server_url)?;
    let mut conn = PgConnection::connect_with(&server.clone().database("postgres"))
        .await
        .map_err(|source| DbError::Connect {
            target: target(&server),
            source,
        })?;
    conn.ping().await?;
    conn.close().await.ok();
    Ok(())
}
