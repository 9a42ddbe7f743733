//! The payment service: moves money through a payment gateway (Toss Payments first, behind
//! [`gateway::PaymentGateway`]) and keeps PayDB — the orders it learned from the order service,
//! one payment per order, the append-only payment ledger, refunds.
//!
//! - [`domain`]: payment states and ledger entries (no I/O); [`domain::replay`] rebuilds every
//!   payment from the ledger.
//! - [`payments`]: [`payments::Payments`], the one owner of every payment write (confirm,
//!   settlement of unknown outcomes, refunds), each with its event through the outbox.
//! - [`gateway`]: the PG trait, the Toss adapter, and the breaker and in-flight bound around it.
//! - [`settle`]: the supervised task that reconciles unknown outcomes and makes refunds.
//! - [`events`]: consumed order events; [`api`]: the HTTP routes; [`store`]: PayDB's queries.

use std::{sync::Arc, time::Duration};

use platform::{
    auth::Verifier,
    http::Readiness,
    service::{Infra, Service, StartError},
};

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod gateway;
pub mod payments;
pub mod settle;
pub mod store;

pub use config::Config;
use config::PgTarget;
use gateway::{
    PaymentGateway,
    guard::Guard,
    toss::{Timeouts, Toss},
};
use payments::Payments;

/// The service's name: its database is `<prefix>payment`, its config section `payment`.
pub const NAME: &str = "payment";

/// PayDB's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What [`start_with`] can be given instead of what it would build from [`Infra`].
#[derive(Default, Clone)]
pub struct Overrides {
    /// Access-token verifier (default: the user service's JWKS).
    pub verifier: Option<Verifier>,
    /// The PG (default: from `payment.pg.*` and sandbox mode, see [`config`]).
    pub gateway: Option<Arc<dyn PaymentGateway>>,
}

/// Readiness: PayDB, and the PG's key — a key the PG refuses is a misconfiguration that makes
/// the replica unready (`pg_key`), while the breaker's state is only reported (`pg_circuit`: up
/// when closed, else `open` or `half_open`): an outage of the PG must not pull every replica
/// out of rotation, where they answer 503 `pg_unavailable` fast.
fn readiness(pool: sqlx::PgPool, guard: Arc<Guard>) -> Readiness {
    let key_guard = guard.clone();
    Readiness::default()
        .postgres(pool)
        .check("pg_key", move || {
            let refused = key_guard.misconfigured();
            async move {
                match refused {
                    None => Ok(()),
                    Some((since, why)) => Err(format!(
                        "pg_misconfigured: the PG refuses payment.pg.secret_key since {since}: {why}"
                    )),
                }
            }
        })
        .report("pg_circuit", move || {
            let state = guard.breaker();
            async move {
                match state {
                    "closed" => Ok(()),
                    other => Err(format!("breaker {other}")),
                }
            }
        })
}

/// Opens PayDB, follows the order service's events and builds the routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    start_with(config, infra, Overrides::default()).await
}

/// [`start`] with some parts given (tests, benchmarks).
pub async fn start_with(
    config: &Config,
    infra: &Infra,
    overrides: Overrides,
) -> Result<Service, StartError> {
    let pg_settings = &config.pg;
    let timeouts = Timeouts {
        connect: Duration::from_millis(pg_settings.connect_timeout_ms.max(1)),
        request: Duration::from_millis(pg_settings.timeout_ms.max(1)),
    };
    let gateway: Option<Arc<dyn PaymentGateway>> = match overrides.gateway {
        Some(g) => Some(g),
        None => {
            let fake = infra.directory.0.get("fake-pg").map(String::as_str);
            let target = PgTarget::resolve(config, fake).map_err(StartError::Config)?;
            match &target {
                PgTarget::Configured { base_url, .. } => {
                    tracing::info!(%base_url, "payment gateway configured");
                }
                PgTarget::Sandbox { base_url } => {
                    tracing::warn!(%base_url, "payment gateway: the SANDBOX (fake PG); no real money moves");
                }
                PgTarget::Off => tracing::warn!(
                    "no payment gateway configured (payment.pg.secret_key): confirms answer 503 \
                     pg_not_configured"
                ),
            }
            match target.endpoint() {
                Some((url, key)) => Some(Arc::new(
                    Toss::new(url, key, timeouts).map_err(StartError::Other)?,
                )),
                None => None,
            }
        }
    };
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let verifier = match overrides.verifier {
        Some(v) => v,
        None => infra.verifier()?,
    };
    let guard = Guard::new(
        pg_settings.breaker_failures,
        Duration::from_millis(pg_settings.breaker_open_ms),
        pg_settings.max_in_flight,
    );
    let shutdown = infra.shutdown.clone();
    let (wakeups, wakeups_task) =
        platform::wakeups::Wakeups::spawn(pool.clone(), payments::WAKEUPS, shutdown.clone());
    let payments = Payments::new(
        pool.clone(),
        gateway,
        guard,
        config.settle.clone(),
        timeouts.request,
    )
    .with_wakeups(wakeups);
    let relay = infra.spawn_relay(NAME, pool.clone());
    let consumer = infra
        .consumer(NAME, pool.clone(), &[contracts::topics::ORDERS])
        .spawn(events::PaymentHandler, shutdown.clone());
    // A lease outlasts a PG call (connect and answer), so two replicas never ask at once.
    let lease = timeouts.connect + timeouts.request + Duration::from_secs(1);
    let settler = settle::spawn(payments.clone(), config.settle.clone(), lease, shutdown);
    let guard = payments.guard().clone();
    let state = api::AppState {
        payments,
        verifier,
        webhook_slots: Arc::new(tokio::sync::Semaphore::new(
            config.webhook_max_in_flight.max(1),
        )),
        webhook_min_interval_ms: config.webhook_min_interval_ms,
    };
    Ok(Service {
        name: NAME,
        router: api::router(state),
        readiness: readiness(pool, guard),
        tasks: vec![relay, consumer, settler, wakeups_task],
    })
}
