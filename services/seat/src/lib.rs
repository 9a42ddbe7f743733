//! The seat service: per-performance inventory (SeatDB), holds (the hold store: Redis in
//! distributed mode, memory in standalone), the live seat map served from memory with versioned
//! deltas over server-sent events, and sold seats.
//!
//! - [`store`]: the hold store trait, its two implementations and their shared rules.
//! - [`map`]: the in-memory seat maps every replica keeps current from the store's change log.
//! - [`domain`]: seat states, changes and best-available selection (no I/O).
//! - [`holds`]: [`holds::HoldService`], the one owner of every hold-store write (store, map,
//!   events, metrics; sales with their SeatDB guards).
//! - [`events`]: consumed catalog and order events.
//! - [`store_relay`]: moves the events the hold store records with its changes (`hold.placed`,
//!   `hold.ended`) to the PostgreSQL outbox.
//! - [`expiry`]: the sweeper that releases lapsed holds one at a time.
//! - [`api`]: the HTTP routes; [`admission_pass`]: waiting-room passes.

use std::sync::Arc;

use platform::{
    auth::Verifier,
    bus::consumer::Consumer,
    http::Readiness,
    service::{Infra, Service, StartError},
};
use serde::Deserialize;

pub mod admission_pass;
pub mod api;
pub mod availability;
pub mod db;
pub mod domain;
pub mod events;
pub mod expiry;
pub mod holds;
pub mod load;
pub mod map;
pub mod presale;
pub mod store;
pub mod store_relay;

use admission_pass::PassVerifier;
use holds::HoldService;
use map::registry::SeatMaps;
use store::{HoldStore, memory::MemoryStore, redis::RedisStore};

/// The service's name: its database is `<prefix>seat`, its config section `seat`.
pub const NAME: &str = "seat";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings (`seat.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a hold lasts, in ms (env `BOXOFFICE_SEAT__HOLD_TTL_MS`; default 10 minutes).
    pub hold_ttl_ms: u64,
    /// How long a hold in checkout (an order paying for it) lasts at least, in ms (env
    /// `BOXOFFICE_SEAT__CHECKOUT_TTL_MS`; default 30 minutes). Orders must settle within it.
    pub checkout_ttl_ms: u64,
    /// Mean pause between expiry sweeps, in ms, jittered ±50 % (env
    /// `BOXOFFICE_SEAT__SWEEP_INTERVAL_MS`).
    pub sweep_interval_ms: u64,
    /// Most seats or places in one hold (env `BOXOFFICE_SEAT__MAX_PER_HOLD`); the performance's
    /// ticket limit applies too.
    pub max_per_hold: i64,
    /// How often open seat streams get one delta of everything that changed, in ms (env
    /// `BOXOFFICE_SEAT__STREAM_FLUSH_MS`; at least 10).
    pub stream_flush_ms: u64,
    /// How old a rendered seat map may be when the map changes faster than it is read, in ms
    /// (env `BOXOFFICE_SEAT__SEAT_MAP_MAX_STALE_MS`; 0 = always the latest version).
    pub seat_map_max_stale_ms: u64,
    /// How often the store relay looks at every performance's event log, in ms (env
    /// `BOXOFFICE_SEAT__EVENT_RELAY_INTERVAL_MS`; default 1 s). This replica's own changes are
    /// relayed at once; the pass picks up what other replicas left (they died, or lost a lease).
    pub event_relay_interval_ms: u64,
    /// How long a replica's store relay keeps a performance's event log to itself while it
    /// relays, in ms (env `BOXOFFICE_SEAT__EVENT_RELAY_LEASE_MS`; default 10 s): the longest a
    /// dead replica's unrelayed events wait before another replica takes them over.
    pub event_relay_lease_ms: u64,
    /// How often the maps are compared with SeatDB and idle ones dropped, in ms (env
    /// `BOXOFFICE_SEAT__MAINTAIN_INTERVAL_MS`; default 30 s).
    pub maintain_interval_ms: u64,
    /// How long a map nobody reads (no stream open, no live hold) is kept, in ms (env
    /// `BOXOFFICE_SEAT__MAP_IDLE_MS`; default 15 minutes).
    pub map_idle_ms: u64,
    /// How often this replica tells the catalog what is left of the performances it follows
    /// (`performance.availability`, only for those whose counts changed), in ms (env
    /// `BOXOFFICE_SEAT__AVAILABILITY_INTERVAL_MS`; default 2 s, at least 100 ms).
    pub availability_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hold_ttl_ms: 600_000,
            checkout_ttl_ms: 1_800_000,
            sweep_interval_ms: 250,
            max_per_hold: 10,
            stream_flush_ms: 250,
            seat_map_max_stale_ms: 100,
            event_relay_interval_ms: 1_000,
            event_relay_lease_ms: 10_000,
            maintain_interval_ms: 30_000,
            map_idle_ms: 900_000,
            availability_interval_ms: 2_000,
        }
    }
}

/// What [`start_with`] can be given instead of what it would build from [`Infra`].
#[derive(Default, Clone)]
pub struct Overrides {
    /// Access-token verifier (default: the user service's JWKS).
    pub verifier: Option<Verifier>,
    /// Admission-pass verifier (default: the admission service's JWKS, or none when no address
    /// is configured, which refuses every pass).
    pub passes: Option<PassVerifier>,
    /// Hold store (default: Redis when `redis.url` is set, else memory).
    pub store: Option<Arc<dyn HoldStore>>,
}

/// Opens the service's database and hold store, follows its performances and builds its routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    start_with(config, infra, Overrides::default()).await
}

/// [`start`] with some parts given (tests, benchmarks).
pub async fn start_with(
    config: &Config,
    infra: &Infra,
    overrides: Overrides,
) -> Result<Service, StartError> {
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let store: Arc<dyn HoldStore> = match (overrides.store, infra.redis_target()?) {
        (Some(store), _) => store,
        (None, Some(target)) => Arc::new(
            RedisStore::connect_to(&target)
                .await
                .map_err(|e| StartError::Other(e.to_string()))?,
        ),
        (None, None) => Arc::new(MemoryStore::new()),
    };
    let verifier = match overrides.verifier {
        Some(v) => v,
        None => infra.verifier()?,
    };
    let passes = match overrides.passes {
        Some(p) => p,
        None => match infra.directory.url("admission") {
            Ok(url) => PassVerifier::remote(format!(
                "{}/.well-known/jwks.json",
                url.trim_end_matches('/')
            )),
            Err(_) => PassVerifier::from_jwks(&[]),
        },
    };
    let shutdown = infra.shutdown.clone();
    let maps = SeatMaps::new(
        store.clone(),
        pool.clone(),
        shutdown.clone(),
        std::time::Duration::from_millis(config.stream_flush_ms),
    );
    // Maps load when first read; the first maintenance pass (at once) loads those with live
    // holds, so their holds expire, and recovers any the store lost.
    let maintenance = maps.spawn_maintenance(
        std::time::Duration::from_millis(config.maintain_interval_ms),
        std::time::Duration::from_millis(config.map_idle_ms),
    );
    // The store's events reach the outbox through the store relay, whatever crashes: the store
    // records them with its changes; this replica's holds nudge the relay to move them at once.
    let nudges = store_relay::Nudges::default();
    let store_relay = Arc::new(store_relay::StoreRelay::new(
        store.clone(),
        pool.clone(),
        store::EventReader {
            name: relay_reader_name(),
            lease_ms: config.event_relay_lease_ms,
        },
        std::time::Duration::from_millis(config.event_relay_interval_ms),
        nudges.clone(),
    ));
    let store_relay = {
        let token = shutdown.clone();
        platform::service::supervise("store-relay", shutdown.clone(), move || {
            store_relay.clone().spawn(token.clone())
        })
    };
    let holds = HoldService::new(store, maps.clone(), nudges, config.checkout_ttl_ms);
    let relay = infra.spawn_relay(NAME, pool.clone());
    let consumer = Consumer::new(
        NAME,
        pool.clone(),
        infra.bus.clone(),
        &[contracts::topics::CATALOG, contracts::topics::ORDERS],
    )
    .with_settings(&infra.bus_settings)
    .spawn(
        events::SeatHandler {
            holds: holds.clone(),
        },
        shutdown.clone(),
    );
    let teller = availability::spawn(
        maps.clone(),
        pool.clone(),
        std::time::Duration::from_millis(config.availability_interval_ms),
        shutdown.clone(),
    );
    let sweeper = expiry::spawn(holds.clone(), config.sweep_interval_ms, shutdown);
    let state = api::AppState {
        pool: pool.clone(),
        maps,
        holds,
        verifier,
        passes,
        config: Arc::new(config.clone()),
    };
    Ok(Service {
        name: NAME,
        router: api::router(state, load::Load::new()),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![relay, consumer, sweeper, store_relay, maintenance, teller],
    })
}

/// This process's name among the store relays reading the event logs (see
/// [`store::EventReader`]): the host (the pod, in Kubernetes) and a fresh id, kept across
/// restarts of the relay task, so a restarted relay carries on with its own lease.
fn relay_reader_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| NAME.to_owned());
    format!("{host}-{}", uuid::Uuid::now_v7().simple())
}
