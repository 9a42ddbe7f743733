//! The user service. Its routes and rules arrive with its issue; today it starts, opens its own
//! database (created when missing, migrations applied) and answers the operational endpoints.

use axum::Router;
use platform::{
    http::Readiness,
    service::{Infra, Service, StartError},
};
use serde::Deserialize;

/// The service's name: its database is `<prefix>user`, its config section `user`.
pub const NAME: &str = "user";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings (`user.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Administrator account created (or reset) at start (env `BOXOFFICE_USER__ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// Its password (env `BOXOFFICE_USER__ADMIN_PASSWORD`).
    pub admin_password: Option<String>,
}

/// Opens the service's database and builds its routes.
pub async fn start(_config: &Config, infra: &Infra) -> Result<Service, StartError> {
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let relay = infra.spawn_relay(NAME, pool.clone());
    Ok(Service {
        name: NAME,
        router: Router::new(),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![relay],
    })
}
