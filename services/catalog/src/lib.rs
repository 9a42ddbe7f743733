//! The catalog service: what is sold. It owns venues and their seat maps (grades, areas, rows,
//! seats, general-admission areas), events and their performances, price tiers and sale windows
//! (ProductDB); it answers the public listing and search, and the organizer/admin API whose
//! publications tell the seat service, through the outbox, what to sell.
//!
//! `router(state)` builds the routes (tests inject their own token verifier); [`openapi`] is
//! their OpenAPI document (also served at `GET /api/docs/catalog/openapi.json`);
//! [`start`] opens the database, seeds it when empty (standalone), starts the outbox relay, the
//! autopublisher and the consumer of the seat service's availability ([`availability`]).

pub mod api;
pub mod autopublish;
pub mod availability;
pub mod clock;
pub mod domain;
pub mod ids;
pub mod model;
pub mod presale;
pub mod publish;
pub mod search;
pub mod seed;
pub mod store;
pub mod ticket_types;

use chrono::NaiveDate;

use platform::{
    bus::consumer::Consumer,
    http::Readiness,
    service::{Infra, Service, StartError},
};
use serde::Deserialize;

pub use api::{AppState, openapi, router};
pub use clock::Clock;

/// The service's name: its database is `<prefix>catalog`, its config section `catalog`.
pub const NAME: &str = "catalog";

/// The catalog's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings (`catalog.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed the demo catalog at start when the database has no venue (env
    /// `BOXOFFICE_CATALOG__SEED_ON_EMPTY`; default true).
    pub seed_on_empty: bool,
    /// The seed's anchor date `YYYY-MM-DD` (env `BOXOFFICE_CATALOG__SEED_START_DATE`; default
    /// today in Seoul): the schedule is laid out around it.
    pub seed_start_date: Option<NaiveDate>,
    /// The clock the seed, the listing and the publication of announced performances read (not
    /// configurable: the real clock; tests pin it).
    #[serde(skip)]
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed_on_empty: true,
            seed_start_date: None,
            clock: Clock::real(),
        }
    }
}

/// Opens the service's database, seeds it when empty and configured to, and builds its routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    let pool = infra.database(NAME, &MIGRATOR).await?;
    if config.seed_on_empty && seed::is_empty(&pool).await.map_err(db_error)? {
        let now = config.clock.now();
        let start = config
            .seed_start_date
            .unwrap_or_else(|| seed::today_in_seoul(now));
        let report = seed::run(&pool, start, now)
            .await
            .map_err(|e| StartError::Other(format!("seeding the catalog: {e}")))?;
        tracing::info!(?report, "seeded the catalog");
    }
    let verifier = infra.verifier()?;
    let relay = infra.spawn_relay(NAME, pool.clone());
    let publisher = autopublish::spawn(pool.clone(), config.clock, infra.shutdown.clone());
    // Sold out is live: what the seat service tells of each performance it follows.
    let consumer = Consumer::new(
        NAME,
        pool.clone(),
        infra.bus.clone(),
        &[contracts::topics::SEATS],
    )
    .with_settings(&infra.bus_settings)
    .spawn(availability::CatalogHandler, infra.shutdown.clone());
    Ok(Service {
        name: NAME,
        router: router(AppState::new(pool.clone(), verifier).with_clock(config.clock)),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![relay, publisher, consumer],
    })
}

fn db_error(e: sqlx::Error) -> StartError {
    StartError::Db(e.into())
}
