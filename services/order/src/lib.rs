//! The order service: turns a hold into a paid order with tickets (OrderDB), and keeps the
//! promise that no money is taken without a ticket and no seat is sold twice.
//!
//! - [`domain`]: the order state machine, pricing, the cancellation schedule, ticket codes (no
//!   I/O).
//! - [`orders`]: [`orders::Orders`], the one owner of every order write (status, record,
//!   tickets, events through the outbox).
//! - [`events`]: the saga's consumer (payments, seats, catalog); [`sweeper`]: lapsed and stuck
//!   orders; [`seat_client`]: the seat checkout; [`api`]: the routes; [`store`]: OrderDB;
//!   [`invariants`]: the cross-database checker.

use std::{sync::Arc, time::Duration};

use platform::{
    auth::Verifier,
    http::Readiness,
    service::{Infra, Mode, Service, StartError},
};

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod invariants;
pub mod orders;
pub mod seat_client;
pub mod store;
pub mod sweeper;

pub use config::Config;

/// The service's name: its database is `<prefix>order`, its config section `order`.
pub const NAME: &str = "order";

/// OrderDB's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What [`start_with`] can be given instead of what it would build from [`Infra`].
#[derive(Default, Clone)]
pub struct Overrides {
    /// Access-token verifier (default: the user service's JWKS).
    pub verifier: Option<Verifier>,
}

/// Opens OrderDB, follows payments, seats and the catalog, and builds the routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    start_with(config, infra, Overrides::default()).await
}

/// [`start`] with some parts given (tests, benchmarks).
pub async fn start_with(
    config: &Config,
    infra: &Infra,
    overrides: Overrides,
) -> Result<Service, StartError> {
    if config.ticket_key == config::DEV_TICKET_KEY && infra.mode == Mode::Distributed {
        tracing::warn!("order.ticket_key is the development key: set BOXOFFICE_ORDER__TICKET_KEY");
    }
    let seat = seat_client::SeatClient::new(
        infra.directory.url("seat")?,
        Duration::from_millis(config.seat_timeout_ms.max(1)),
        config.seat_attempts,
    )
    .map_err(StartError::Other)?;
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let verifier = match overrides.verifier {
        Some(v) => v,
        None => infra.verifier()?,
    };
    let orders = orders::Orders;
    let shutdown = infra.shutdown.clone();
    let relay = infra.spawn_relay(NAME, pool.clone());
    let consumer = infra
        .consumer(
            NAME,
            pool.clone(),
            &[
                contracts::topics::PAYMENTS,
                contracts::topics::SEATS,
                contracts::topics::CATALOG,
            ],
        )
        .spawn(
            events::OrderHandler {
                orders: orders.clone(),
            },
            shutdown.clone(),
        );
    let (status_changes, status_task) =
        platform::wakeups::Wakeups::spawn(pool.clone(), store::STATUS_CHANNEL, shutdown.clone());
    let sweeper = sweeper::spawn(
        pool.clone(),
        orders.clone(),
        config.sweep_interval_ms,
        config.stuck_after_ms,
        shutdown,
    );
    let state = api::AppState {
        pool: pool.clone(),
        orders,
        verifier,
        seat,
        config: Arc::new(config.clone()),
        status_changes,
    };
    Ok(Service {
        name: NAME,
        router: api::router(state),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![relay, consumer, sweeper, status_task],
    })
}
