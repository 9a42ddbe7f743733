//! The order service: turns a hold into a paid order with tickets (OrderDB), and keeps the
//! promise that no money is taken without a ticket and no seat is sold twice.
//!
//! - [`domain`]: the order state machine, pricing, the cancellation schedule, ticket codes (no
//!   I/O).

pub mod domain;

use axum::Router;
use platform::{
    http::Readiness,
    service::{Infra, Service, StartError},
};
use serde::Deserialize;

/// The service's name: its database is `<prefix>order`, its config section `order`.
pub const NAME: &str = "order";

/// OrderDB's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings (`order.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

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
