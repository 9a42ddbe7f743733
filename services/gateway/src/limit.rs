//! Rate limits: one token bucket per client address and one per account, kept as GCRA (the
//! "theoretical arrival time" of the next request, one number per bucket). In process in
//! standalone; in Redis when `redis.url` is set, so every gateway replica counts against the same
//! buckets (one key per bucket, with a TTL of the time it takes to refill). When Redis cannot be
//! reached the gateway fails open to its in-process buckets: each replica then limits on its own
//! (a looser limit, never an error), with a warning and
//! `boxoffice_gateway_rate_limit_fallback_total`.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use platform::service::{RedisConn, RedisTarget, RedisTimeouts};
use redis::Script;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A client address: an IPv4 address, or the /64 network of an IPv6 one (a single host
    /// usually holds a whole /64, and would otherwise rotate through it).
    Address(IpAddr),
    /// A verified account.
    Account(Uuid),
}

impl Subject {
    /// The bucket of client address `ip`.
    pub fn address(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                Self::Address(IpAddr::V6(network.into()))
            }
            v4 => Self::Address(v4),
        }
    }

    /// `address` or `account`: the metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Address(_) => "address",
            Self::Account(_) => "account",
        }
    }

    /// The bucket's Redis key: one key, so one slot on a cluster (the whole key is the hash
    /// tag, which spreads buckets over the slots).
    fn redis_key(&self) -> String {
        match self {
            Self::Address(ip) => format!("gw:rl:{{a:{ip}}}"),
            Self::Account(id) => format!("gw:rl:{{u:{id}}}"),
        }
    }
}

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds to refill one request.
    interval_us: u64,
    /// Requests a full bucket lets through at once.
    burst: u64,
}

impl Rate {
    /// `per_sec` requests per second sustained, `burst` at once (at least 1); `None` (no limit)
    /// when `per_sec` is 0 or not a positive number.
    pub fn new(per_sec: f64, burst: u32) -> Option<Self> {
        if !(per_sec.is_finite() && per_sec > 0.0) {
            return None;
        }
        let interval_us = (1_000_000.0 / per_sec).ceil().clamp(1.0, 1e15) as u64;
        Some(Self {
            interval_us,
            burst: u64::from(burst.max(1)),
        })
    }

    /// GCRA: given the bucket's theoretical arrival time `tat` (µs, `None` for a fresh bucket),
    /// at `now`: the new one if the request passes, else how long until it would.
    fn decide(&self, tat: Option<u64>, now: u64) -> Result<u64, Duration> {
        let tat = tat.unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval_us);
        let allowed_from = next.saturating_sub(self.burst.saturating_mul(self.interval_us));
        if now < allowed_from {
            Err(Duration::from_micros(allowed_from - now))
        } else {
            Ok(next)
        }
    }
}

/// A limit's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Pass,
    /// Over it: try again after this long.
    Wait(Duration),
}

const SHARDS: usize = 64;
/// A shard sweeps its refilled buckets once it holds this many (and then once it has doubled).
const SWEEP_AT: usize = 4096;

struct Shard {
    tats: HashMap<Subject, u64>,
    sweep_at: usize,
}

/// In-process buckets, sharded so that concurrent requests rarely wait on one lock. A bucket that
/// has refilled is the same as none, so those are swept when a shard grows.
pub struct LocalBuckets {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    epoch: Instant,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }
}

impl LocalBuckets {
    /// Takes one request from `subject`'s bucket.
    pub fn check(&self, subject: Subject, rate: Rate) -> Verdict {
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let index = (self.hasher.hash_one(subject) % SHARDS as u64) as usize;
        let Some(shard) = self.shards.get(index) else {
            return Verdict::Pass;
        };
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        match rate.decide(shard.tats.get(&subject).copied(), now) {
            Ok(tat) => {
                shard.tats.insert(subject, tat);
                if shard.tats.len() >= shard.sweep_at {
                    shard.tats.retain(|_, tat| *tat > now);
                    shard.sweep_at = (shard.tats.len() * 2).max(SWEEP_AT);
                }
                Verdict::Pass
            }
            Err(wait) => Verdict::Wait(wait),
        }
    }
}

/// GCRA on Redis, on the server's clock (so replicas' clocks do not matter): returns
/// `{1, 0}` when the request passes, `{0, µs to wait}` when not. KEYS[1]: the bucket;
/// ARGV: µs per request, burst.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
local allowed_from = nxt - burst * interval
if now < allowed_from then
  return {0, allowed_from - now}
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1)
return {1, 0}
";

/// After a failed Redis call, the in-process buckets answer alone for this long before Redis is
/// tried again (so a dead Redis costs one timeout a second, not one per request).
const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// Buckets in Redis, with the state of the connection.
struct RedisBuckets {
    conn: RwLock<Option<RedisConn>>,
    script: Script,
    /// µs since `epoch` before which Redis is not tried.
    skip_until: AtomicU64,
    /// Whether the last call failed (to warn once per outage).
    failing: AtomicBool,
    epoch: Instant,
}

impl RedisBuckets {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The connection, unless there is none yet or Redis is being skipped after a failure.
    fn usable(&self) -> Option<RedisConn> {
        if self.now_us() < self.skip_until.load(Ordering::Relaxed) {
            return None;
        }
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn check(&self, mut conn: RedisConn, subject: Subject, rate: Rate) -> Option<Verdict> {
        let answer: redis::RedisResult<(i64, i64)> = self
            .script
            .key(subject.redis_key())
            .arg(rate.interval_us)
            .arg(rate.burst)
            .invoke_async(&mut conn)
            .await;
        match answer {
            Ok((passed, wait_us)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits are shared through Redis again");
                }
                Some(if passed == 1 {
                    Verdict::Pass
                } else {
                    Verdict::Wait(Duration::from_micros(wait_us.max(0).unsigned_abs()))
                })
            }
            Err(e) => {
                let backoff = u64::try_from(REDIS_BACKOFF.as_micros()).unwrap_or(u64::MAX);
                self.skip_until
                    .store(self.now_us().saturating_add(backoff), Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e,
                        "Redis unreachable: rate limits fall back to this replica's own buckets \
                         (failing open) until it answers again");
                }
                None
            }
        }
    }
}

/// The gateway's rate limiter: in-process buckets, and Redis when configured.
pub struct Limiter {
    local: LocalBuckets,
    redis: Option<Arc<RedisBuckets>>,
}

impl Limiter {
    /// Buckets in this process only.
    pub fn local() -> Self {
        Self {
            local: LocalBuckets::default(),
            redis: None,
        }
    }

    /// Buckets in Redis at `target`, connected in the background (retrying every second until
    /// it answers, or `stop`); until then, and whenever Redis fails, the in-process ones. The
    /// returned task runs until `stop`.
    pub fn shared(
        target: RedisTarget,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let redis = Arc::new(RedisBuckets {
            conn: RwLock::new(None),
            script: Script::new(GCRA),
            skip_until: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            epoch: Instant::now(),
        });
        let task = {
            let redis = redis.clone();
            let stop = stop.clone();
            platform::service::supervise("rate-limit-redis", stop.clone(), move || {
                tokio::spawn(connect(redis.clone(), target.clone(), stop.clone()))
            })
        };
        (
            Self {
                local: LocalBuckets::default(),
                redis: Some(redis),
            },
            task,
        )
    }

    /// Whether the buckets are shared through Redis right now: `None` when they are not meant
    /// to be (standalone), else `Err` with why not.
    pub fn shared_state(&self) -> Option<Result<(), String>> {
        let redis = self.redis.as_ref()?;
        Some(
            if redis
                .conn
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
            {
                Err("not connected to Redis yet: limiting per replica".into())
            } else if redis.failing.load(Ordering::Relaxed) {
                Err("Redis unreachable: limiting per replica".into())
            } else {
                Ok(())
            },
        )
    }

    /// Takes one request from `subject`'s bucket.
    pub async fn check(&self, subject: Subject, rate: Rate) -> Verdict {
        if let Some(redis) = &self.redis {
            if let Some(conn) = redis.usable()
                && let Some(verdict) = redis.check(conn, subject, rate).await
            {
                return verdict;
            }
            metrics::counter!("boxoffice_gateway_rate_limit_fallback_total").increment(1);
        }
        self.local.check(subject, rate)
    }
}

/// Connects to Redis, every second until it answers; then waits for `stop` (the connection
/// reconnects by itself from then on).
async fn connect(redis: Arc<RedisBuckets>, target: RedisTarget, stop: CancellationToken) {
    let timeouts = RedisTimeouts {
        connect: Duration::from_secs(1),
        // Short: a slow Redis makes the limit local rather than the requests slow.
        response: Duration::from_millis(500),
    };
    let mut warned = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            result = target.connect(timeouts) => match result {
                Ok(conn) => {
                    *redis.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(conn);
                    tracing::info!(redis = ?target.urls(), "rate limits shared through Redis");
                    break;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, redis = ?target.urls(),
                            "cannot reach Redis: rate limits are per replica until it answers \
                             (failing open)");
                        warned = true;
                    }
                }
            },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    stop.cancelled().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bucket_passes_its_burst_then_refills_at_its_rate() {
        let rate = Rate::new(10.0, 3).unwrap(); // one per 100 ms
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(rate.decide(tat, 0).unwrap());
        }
        assert_eq!(rate.decide(tat, 0), Err(Duration::from_millis(100)));
        assert_eq!(rate.decide(tat, 40_000), Err(Duration::from_millis(60)));
        let tat = rate.decide(tat, 100_000).unwrap();
        assert!(rate.decide(Some(tat), 100_000).is_err());
        // Long idle: a full bucket again, not more.
        let mut tat = Some(tat);
        for _ in 0..3 {
            tat = Some(rate.decide(tat, 10_000_000).unwrap());
        }
        assert!(rate.decide(tat, 10_000_000).is_err());
    }

    #[test]
    fn zero_is_no_limit() {
        assert_eq!(Rate::new(0.0, 10), None);
        assert_eq!(Rate::new(-1.0, 10), None);
        assert_eq!(Rate::new(f64::NAN, 10), None);
        assert_eq!(Rate::new(1.0, 0).unwrap().burst, 1);
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a = Subject::address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Subject::address("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = Subject::address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Subject::address("::ffff:192.0.2.1".parse().unwrap()),
            Subject::Address("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn local_buckets_are_per_subject_and_sweep_refilled_ones() {
        let buckets = LocalBuckets::default();
        let rate = Rate::new(0.001, 2).unwrap();
        let a = Subject::address("192.0.2.1".parse().unwrap());
        let b = Subject::address("192.0.2.2".parse().unwrap());
        assert_eq!(buckets.check(a, rate), Verdict::Pass);
        assert_eq!(buckets.check(a, rate), Verdict::Pass);
        assert!(matches!(buckets.check(a, rate), Verdict::Wait(_)));
        assert_eq!(buckets.check(b, rate), Verdict::Pass);
        // Buckets that refill at once are swept as they grow: the shards stay bounded.
        let quick = Rate::new(1e9, 1).unwrap();
        for i in 0..(SHARDS * SWEEP_AT * 2) as u32 {
            buckets.check(Subject::address(IpAddr::from(i.to_be_bytes())), quick);
        }
        let held: usize = buckets
            .shards
            .iter()
            .map(|s| s.lock().unwrap().tats.len())
            .sum();
        assert!(held < SHARDS * SWEEP_AT * 2, "{held}");
        // The slow ones survive the sweeps.
        assert!(matches!(buckets.check(a, rate), Verdict::Wait(_)));
    }
}
