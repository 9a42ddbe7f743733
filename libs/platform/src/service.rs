//! The shape every service has at run time, so one launcher can start any of them in standalone
//! (all in one process) or distributed mode (one per process): a service gets the shared
//! [`Infra`] and hands back a [`Service`] (its routes, readiness checks and background tasks).
//! Background tasks are supervised ([`tasks`]): each shows in `/readyz` by name, the relay is
//! restarted when it dies, and all are joined together at shutdown.

mod checks;
pub mod redis;
pub mod tasks;

pub use redis::{RedisConn, RedisTarget, RedisTimeouts};
pub use tasks::{Tasks, supervise};

use std::{collections::BTreeMap, sync::Arc};

use axum::Router;
use serde::Deserialize;
use sqlx::{PgPool, migrate::Migrator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{BusError, BusSettings, Transport, consumer::Consumer, relay::Relay},
    db::{DatabaseSettings, DbError},
    http::Readiness,
};

/// How the platform runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every service in one process, in-memory adapters.
    Standalone,
    /// One service per process, Redis and Kafka.
    Distributed,
}

/// Where each service can be reached (`services.*`): name → base URL, e.g.
/// `BOXOFFICE_SERVICES__USER=http://user:8080`. Standalone fills it in itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Directory(pub BTreeMap<String, String>);

impl Directory {
    /// The base URL of `service`.
    pub fn url(&self, service: &str) -> Result<&str, StartError> {
        self.0.get(service).map(String::as_str).ok_or_else(|| {
            StartError::Config(format!(
                "no address for service `{service}`: set {}",
                crate::config::env_name(&format!("services.{service}"))
            ))
        })
    }
}

/// Redis settings (`redis.*`): where the hold and queue stores live. See
/// [`RedisSettings::target`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port` (env `BOXOFFICE_REDIS__URL`); with `cluster`, the seed nodes of a Redis
    /// Cluster, comma-separated (`redis://a:7001,redis://b:7002`); unset = in-memory stores
    /// (standalone).
    pub url: Option<String>,
    /// `url` names a Redis Cluster's seed nodes (env `BOXOFFICE_REDIS__CLUSTER`): the stores
    /// use the cluster client, each performance's keys on the slot of its hash tag.
    pub cluster: bool,
}

/// What the launcher gives every service.
#[derive(Clone)]
pub struct Infra {
    /// Standalone or distributed.
    pub mode: Mode,
    /// PostgreSQL server URL (no database name).
    pub database_url: Option<String>,
    /// Pool settings.
    pub database: DatabaseSettings,
    /// The bus transport.
    pub bus: Arc<dyn Transport>,
    /// Bus settings (relay timing).
    pub bus_settings: BusSettings,
    /// Redis settings.
    pub redis: RedisSettings,
    /// Other services' addresses.
    pub directory: Directory,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
}

impl Infra {
    /// Opens (creating when missing) this service's own database and applies its migrations.
    pub async fn database(&self, service: &str, migrator: &Migrator) -> Result<PgPool, StartError> {
        let url = self.database_url.as_deref().ok_or_else(|| {
            StartError::Config(format!(
                "service `{service}` needs PostgreSQL: set BOXOFFICE_DATABASE__URL"
            ))
        })?;
        let name = format!("{}{service}", self.database.name_prefix);
        Ok(crate::db::connect(&self.database, url, &name, Some(migrator)).await?)
    }

    /// A token verifier that trusts the user service's published keys
    /// (`<services.user>/.well-known/jwks.json`).
    pub fn verifier(&self) -> Result<crate::auth::Verifier, StartError> {
        let user = self.directory.url("user")?;
        Ok(crate::auth::Verifier::remote(format!(
            "{}/.well-known/jwks.json",
            user.trim_end_matches('/')
        )))
    }

    /// Starts the outbox relay for `pool` until shutdown, supervised as task `relay`: restarted
    /// with a backoff when it dies.
    pub fn spawn_relay(&self, service: &str, pool: PgPool) -> JoinHandle<()> {
        let (service, bus, settings) = (
            service.to_owned(),
            self.bus.clone(),
            self.bus_settings.clone(),
        );
        let shutdown = self.shutdown.clone();
        supervise("relay", self.shutdown.clone(), move || {
            Relay::new(&service, pool.clone(), bus.clone(), &settings).spawn(shutdown.clone())
        })
    }

    /// A consumer named `name` reading `topics` on this bus into `pool`, with the configured
    /// retry caps (`bus.consumer_*`).
    pub fn consumer(&self, name: &str, pool: PgPool, topics: &[&str]) -> Consumer {
        Consumer::new(name, pool, self.bus.clone(), topics).with_settings(&self.bus_settings)
    }
}

/// A started service.
pub struct Service {
    /// Its name (`user`, `seat`, ...).
    pub name: &'static str,
    /// Its routes (without the operational endpoints, which the bootstrap adds).
    pub router: Router,
    /// Its dependency checks.
    pub readiness: Readiness,
    /// Its background tasks (relay, consumers, sweepers); watched (see [`Service::supervised`])
    /// and joined at shutdown.
    pub tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Takes the service's tasks to watch: the service comes back with one readiness check per
    /// task (`task:<name>`, down while the task is dead) and no tasks of its own; the [`Tasks`]
    /// are to be joined at shutdown (or dropped, which leaves them running).
    pub fn supervised(mut self) -> (Self, Tasks) {
        let tasks = Tasks::watch(std::mem::take(&mut self.tasks));
        self.readiness = tasks.readiness(self.readiness);
        (self, tasks)
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// Its database could not be prepared.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The bus could not be set up.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
