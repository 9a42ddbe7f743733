//! PostgreSQL: one database per service on a shared server, created when missing, with the
//! service's own forward-only migrations and the bus tables (outbox, inbox).

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
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            name_prefix: "boxoffice_".into(),
            max_connections: 10,
            acquire_timeout_ms: 5_000,
        }
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
    let options = server.clone().database(name);
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
        migrator.run(&pool).await?;
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
