//! The admission service: waiting rooms for sale openings (see docs/services/admission.md).
//!
//! - [`store`]: the queue store trait and its two implementations (Redis, memory).
//! - [`draw`]: the verifiable draw that orders the pre-queue at the opening.
//! - [`rooms`]: the rooms in AdmissionDB (from `performance.published`), with their admission
//!   settings; [`events`]: what the service consumes.
//! - [`admitter`]: the loop that draws at the opening and admits at the set rate under the
//!   active-buyer cap, one replica per room at a time.
//! - [`keys`]: the key that signs admission passes; [`api`]: the HTTP routes.

use std::{net::IpAddr, sync::Arc, time::Duration};

use platform::{
    auth::Verifier,
    http::Readiness,
    service::{Infra, Service, StartError},
};
use serde::Deserialize;

pub mod admitter;
pub mod api;
pub mod auto;
pub mod draw;
pub mod events;
pub mod keys;
pub mod rooms;
pub mod store;

use store::{QueueStore, memory::MemoryQueueStore, redis::RedisQueueStore};

/// The service's name: its database is `<prefix>admission`, its config section `admission`.
pub const NAME: &str = "admission";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings (`admission.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long an admission pass lasts, in seconds: the shopping window (env
    /// `BOXOFFICE_ADMISSION__PASS_TTL_SECS`; default 600).
    pub pass_ttl_secs: u64,
    /// Fans admitted per second in a new room (env `BOXOFFICE_ADMISSION__RATE_PER_SEC`; default
    /// 50); operators change it per room.
    pub rate_per_sec: f64,
    /// Most active buyers at once in a new room (env `BOXOFFICE_ADMISSION__MAX_ACTIVE`; unset:
    /// no cap); operators change it per room.
    pub max_active: Option<i64>,
    /// How often the admitter admits, in ms (env `BOXOFFICE_ADMISSION__TICK_MS`; default 100).
    pub tick_ms: u64,
    /// How often every replica rereads the rooms, in ms (env `BOXOFFICE_ADMISSION__RELOAD_MS`;
    /// default 1000): operators' changes on another replica apply within it.
    pub reload_ms: u64,
    /// The admitter's lease on a room, in ms (env `BOXOFFICE_ADMISSION__LEASE_MS`; default 3000):
    /// how long a dead replica's rooms go without admission before another takes over.
    pub lease_ms: u64,
    /// The shortest poll interval told, in ms (env `BOXOFFICE_ADMISSION__POLL_MIN_MS`; default
    /// 1000), for fans at the front.
    pub poll_min_ms: u64,
    /// The longest poll interval told, in ms (env `BOXOFFICE_ADMISSION__POLL_MAX_MS`; default
    /// 30000).
    pub poll_max_ms: u64,
    /// How much longer the poll interval is per fan ahead, in ms (env
    /// `BOXOFFICE_ADMISSION__POLL_MS_PER_AHEAD`; default 2).
    pub poll_ms_per_ahead: f64,
    /// How much a poll interval told is spread, as a fraction either side (env
    /// `BOXOFFICE_ADMISSION__POLL_JITTER`; default 0.2: 30 s is told as 24–36 s), so a burst of
    /// joins does not come back as a burst of polls.
    pub poll_jitter: f64,
    /// Joins one account may make per window (env `BOXOFFICE_ADMISSION__JOIN_LIMIT_PER_ACCOUNT`;
    /// default 10).
    pub join_limit_per_account: u64,
    /// Joins one client address may make per window (env
    /// `BOXOFFICE_ADMISSION__JOIN_LIMIT_PER_ADDRESS`; default 300: many fans share a carrier's
    /// NAT address).
    pub join_limit_per_address: u64,
    /// Status reads one account may make per window (env
    /// `BOXOFFICE_ADMISSION__STATUS_LIMIT_PER_ACCOUNT`; default 120; 0 = no limit).
    pub status_limit_per_account: u64,
    /// The rate-limit window, in seconds (env `BOXOFFICE_ADMISSION__LIMIT_WINDOW_SECS`; default
    /// 60).
    pub limit_window_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed, IP addresses or CIDR blocks separated by
    /// commas (env `BOXOFFICE_ADMISSION__TRUSTED_PROXIES`; default `127.0.0.0/8,::1`).
    pub trusted_proxies: String,
    /// How long after its sale closes a room's queue is kept, in seconds (env
    /// `BOXOFFICE_ADMISSION__FORGET_AFTER_SECS`; default 3600).
    pub forget_after_secs: u64,
    /// Automatic mode: how often a room's rate is moved after the seat service's load, in ms
    /// (env `BOXOFFICE_ADMISSION__AUTO_INTERVAL_MS`; default 2000).
    pub auto_interval_ms: u64,
    /// Automatic mode: the seat service's p99 (seat maps and holds) to stay under, in ms (env
    /// `BOXOFFICE_ADMISSION__AUTO_TARGET_P99_MS`; default 250).
    pub auto_target_p99_ms: f64,
    /// Automatic mode: the share of seat-service server errors tolerated, 0–1 (env
    /// `BOXOFFICE_ADMISSION__AUTO_MAX_ERROR_RATE`; default 0.01).
    pub auto_max_error_rate: f64,
    /// Automatic mode: the lowest rate it sets, fans/s (env `BOXOFFICE_ADMISSION__AUTO_MIN_RATE`;
    /// default 5).
    pub auto_min_rate: f64,
    /// Automatic mode: the highest rate it sets, fans/s (env `BOXOFFICE_ADMISSION__AUTO_MAX_RATE`;
    /// default 2000).
    pub auto_max_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pass_ttl_secs: 600,
            rate_per_sec: 50.0,
            max_active: None,
            tick_ms: 100,
            reload_ms: 1000,
            lease_ms: 3000,
            poll_min_ms: 1000,
            poll_max_ms: 30_000,
            poll_ms_per_ahead: 2.0,
            poll_jitter: 0.2,
            join_limit_per_account: 10,
            join_limit_per_address: 300,
            status_limit_per_account: 120,
            limit_window_secs: 60,
            trusted_proxies: "127.0.0.0/8,::1".into(),
            forget_after_secs: 3600,
            auto_interval_ms: 2000,
            auto_target_p99_ms: 250.0,
            auto_max_error_rate: 0.01,
            auto_min_rate: 5.0,
            auto_max_rate: 2000.0,
        }
    }
}

/// IP addresses and CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<(IpAddr, u8)>);

impl Proxies {
    /// Parses `a, b/len, ...`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (ip, len) = match part.split_once('/') {
                Some((ip, len)) => (ip, Some(len)),
                None => (part, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("`{part}` is not an address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("`{part}` has a bad prefix length"))?,
                None => max,
            };
            out.push((ip, len));
        }
        Ok(Self(out))
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

/// What [`start_with`] can be given instead of what it would build from [`Infra`].
#[derive(Default, Clone)]
pub struct Overrides {
    /// Access-token verifier (default: the user service's JWKS).
    pub verifier: Option<Verifier>,
    /// Queue store (default: Redis when `redis.url` is set, else memory).
    pub store: Option<Arc<dyn QueueStore>>,
}

/// Opens AdmissionDB and the queue store, follows the catalog and orders, runs the admitter and
/// builds the routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    start_with(config, infra, Overrides::default()).await
}

/// [`start`] with some parts given (tests, benchmarks).
pub async fn start_with(
    config: &Config,
    infra: &Infra,
    overrides: Overrides,
) -> Result<Service, StartError> {
    let proxies = Proxies::parse(&config.trusted_proxies).map_err(|e| {
        StartError::Config(format!(
            "{}: {e}",
            platform::config::env_name("admission.trusted_proxies")
        ))
    })?;
    if !(config.rate_per_sec.is_finite() && config.rate_per_sec >= 0.0) {
        return Err(StartError::Config(format!(
            "{}: must be a number ≥ 0",
            platform::config::env_name("admission.rate_per_sec")
        )));
    }
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let store: Arc<dyn QueueStore> = match (overrides.store, infra.redis_target()?) {
        (Some(store), _) => store,
        (None, Some(target)) => Arc::new(
            RedisQueueStore::connect_to(&target)
                .await
                .map_err(|e| StartError::Other(e.to_string()))?,
        ),
        (None, None) => {
            if infra.mode == platform::service::Mode::Distributed {
                tracing::warn!(
                    "no redis.url: the waiting-room queues are in this process's memory, so run \
                     a single admission replica (set BOXOFFICE_REDIS__URL to share them)"
                );
            }
            Arc::new(MemoryQueueStore::new())
        }
    };
    let verifier = match overrides.verifier {
        Some(v) => v,
        None => infra.verifier()?,
    };
    let keys = keys::PassKeys::load_or_create(&pool)
        .await
        .map_err(|e| StartError::Other(format!("loading the pass signing key: {e}")))?;
    let rooms = rooms::Rooms::new(pool.clone());
    let config = Arc::new(config.clone());
    let shutdown = infra.shutdown.clone();
    let consumer = infra
        .consumer(
            NAME,
            pool.clone(),
            &[contracts::topics::CATALOG, contracts::topics::ORDERS],
        )
        .spawn(
            events::AdmissionHandler {
                store: store.clone(),
                defaults: rooms::Defaults {
                    rate_per_sec: config.rate_per_sec,
                    max_active: config.max_active,
                },
            },
            shutdown.clone(),
        );
    // Automatic mode reads the seat service's load (no seat service in the directory: rooms
    // cannot be put in automatic mode).
    let seat_load = match infra.directory.0.get("seat") {
        Some(services) => Some(
            auto::SeatLoad::new(
                services,
                Duration::from_millis(config.auto_interval_ms.clamp(100, 1000)),
                (config.auto_interval_ms / 1000).clamp(2, 16),
            )
            .map_err(|e| {
                StartError::Config(format!(
                    "{}: {e}",
                    platform::config::env_name("services.seat")
                ))
            })?,
        ),
        None => None,
    };
    let admitter = {
        let admitter = Arc::new(admitter::Admitter::new(
            store.clone(),
            rooms.clone(),
            config.clone(),
            seat_load.clone(),
        ));
        let token = shutdown.clone();
        platform::service::supervise("admitter", shutdown.clone(), move || {
            let admitter = admitter.clone();
            let token = token.clone();
            tokio::spawn(async move { admitter.run(token).await })
        })
    };
    let state = api::AppState {
        store,
        rooms,
        keys,
        verifier,
        config,
        proxies: Arc::new(proxies),
        auto_available: seat_load.is_some(),
    };
    Ok(Service {
        name: NAME,
        router: api::router(state),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![consumer, admitter],
    })
}
