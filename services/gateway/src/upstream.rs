//! An upstream's instances and how one is chosen for a request.
//!
//! `services.<name>` names one base URL or several, comma-separated (`http://seat-1:8103,
//! http://seat-2:8103`). Each instance has its own circuit breaker (passive ejection: after
//! `gateway.breaker_failures` consecutive failures it is left out for `gateway.breaker_open_ms`,
//! then one trial request is let through) and, with more than one instance, an active health
//! check (its `/readyz`, every `gateway.health_interval_ms`; an instance that fails it is left out
//! until it passes, unless every instance fails it). Among the instances left, the request goes
//! to the less busy of two picked at random (power of two choices on requests in flight): no
//! shared state between gateway replicas, and no herd on the one that just looked idlest.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::breaker::Breaker;

/// One instance of an upstream.
#[derive(Debug)]
pub struct Instance {
    /// Its base URL, without a trailing `/`.
    pub base: String,
    /// Its passive health: consecutive failures open it.
    pub breaker: Breaker,
    /// Requests sent to it whose response headers have not come back yet.
    outstanding: AtomicUsize,
    /// Its last active health check passed (true until a check says otherwise).
    healthy: AtomicBool,
}

impl Instance {
    /// Whether its last health check passed.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a health check's result; true when it changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    /// Counts a request as in flight on this instance until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }
}

/// A request in flight on an instance.
pub struct InFlight(Arc<Instance>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every instance of one upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Its instances, in the configured order.
    pub instances: Vec<Arc<Instance>>,
    /// Source of the random picks.
    seed: AtomicU64,
}

impl Upstream {
    /// The instances of `urls` (comma-separated base URLs; empty entries ignored), each with a
    /// breaker of `failures` and `open_for`. `None` when no URL is given.
    pub fn parse(urls: &str, failures: u32, open_for: Duration) -> Option<Self> {
        let instances: Vec<Arc<Instance>> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(|base| {
                Arc::new(Instance {
                    base: base.to_owned(),
                    breaker: Breaker::new(failures, open_for),
                    outstanding: AtomicUsize::new(0),
                    healthy: AtomicBool::new(true),
                })
            })
            .collect();
        if instances.is_empty() {
            return None;
        }
        // Gateway replicas started together should not pick in lockstep.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (std::process::id() as u64).rotate_left(32);
        Some(Self {
            instances,
            seed: AtomicU64::new(seed),
        })
    }

    /// The instance for the next attempt of a request that already tried the instances in
    /// `tried` (indexes), taking its breaker's trial when it is half-open; `None` when every
    /// instance not tried yet is ejected.
    pub fn pick(&self, tried: &[usize], now: Instant) -> Option<usize> {
        let n = self.instances.len();
        if n == 1 {
            return (tried.is_empty() && self.instances[0].breaker.allow(now)).then_some(0);
        }
        let open = |i: &usize| !tried.contains(i) && self.instances[*i].breaker.available(now);
        let mut candidates: Vec<usize> = (0..n)
            .filter(|i| open(i) && self.instances[*i].healthy())
            .collect();
        if candidates.is_empty() {
            // Every instance fails its health check: a check can be wrong, a request may not be.
            candidates = (0..n).filter(open).collect();
        }
        while !candidates.is_empty() {
            let at = self.choose(&candidates);
            let index = candidates[at];
            if self.instances[index].breaker.allow(now) {
                return Some(index);
            }
            // Its half-open trial was taken meanwhile.
            candidates.swap_remove(at);
        }
        None
    }

    /// Of two candidates picked at random, the position of the one with fewer requests in flight.
    fn choose(&self, candidates: &[usize]) -> usize {
        if candidates.len() == 1 {
            return 0;
        }
        let r = splitmix64(
            self.seed
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
        );
        let len = candidates.len() as u64;
        let a = (r % len) as usize;
        // A second pick among the others, so the two differ.
        let b = (a + 1 + ((r >> 32) % (len - 1)) as usize) % candidates.len();
        let load = |pos: usize| self.instances[candidates[pos]].outstanding();
        if load(b) < load(a) { b } else { a }
    }
}

/// A 64-bit mix (splitmix64's finaliser): successive counter values become well-spread picks.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn three() -> Upstream {
        Upstream::parse(
            "http://a:1, http://b:2/ ,,http://c:3",
            2,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn parses_a_list_and_refuses_nothing() {
        let up = three();
        let bases: Vec<&str> = up.instances.iter().map(|i| i.base.as_str()).collect();
        assert_eq!(bases, ["http://a:1", "http://b:2", "http://c:3"]);
        assert!(Upstream::parse(" , ", 1, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn spreads_over_every_instance_and_prefers_the_idle() {
        let up = three();
        let now = Instant::now();
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[up.pick(&[], now).unwrap()] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread: {counts:?}");
        }
        // Keep b busy: the two-choice pick avoids it whenever it draws it against another.
        let _busy: Vec<InFlight> = (0..10).map(|_| up.instances[1].start()).collect();
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[up.pick(&[], now).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0, "{counts:?}");
    }

    #[test]
    fn never_retries_on_an_instance_already_tried() {
        let up = three();
        let now = Instant::now();
        for _ in 0..100 {
            let first = up.pick(&[], now).unwrap();
            let second = up.pick(&[first], now).unwrap();
            assert_ne!(first, second);
            let third = up.pick(&[first, second], now).unwrap();
            assert!(third != first && third != second);
            assert_eq!(up.pick(&[first, second, third], now), None);
        }
    }

    #[test]
    fn an_ejected_instance_gets_nothing_until_its_trial() {
        let up = three();
        let now = Instant::now();
        up.instances[0].breaker.record(false, now);
        up.instances[0].breaker.record(false, now);
        for _ in 0..500 {
            assert_ne!(up.pick(&[], now), Some(0));
        }
        // After the open period exactly one request is the trial.
        let later = now + Duration::from_secs(6);
        let trials = (0..500).filter(|_| up.pick(&[], later) == Some(0)).count();
        assert_eq!(trials, 1);
    }

    #[test]
    fn an_unhealthy_instance_is_skipped_unless_all_are() {
        let up = three();
        let now = Instant::now();
        up.instances[2].set_healthy(false);
        for _ in 0..500 {
            assert_ne!(up.pick(&[], now), Some(2));
        }
        up.instances[0].set_healthy(false);
        up.instances[1].set_healthy(false);
        let mut seen = [false; 3];
        for _ in 0..500 {
            seen[up.pick(&[], now).unwrap()] = true;
        }
        assert_eq!(seen, [true; 3], "all unhealthy: every one is still tried");
    }

    #[test]
    fn one_instance_keeps_the_plain_breaker() {
        let up = Upstream::parse("http://only:1", 1, Duration::from_secs(5)).unwrap();
        let now = Instant::now();
        assert_eq!(up.pick(&[], now), Some(0));
        assert_eq!(up.pick(&[0], now), None, "no second instance to retry on");
        up.instances[0].breaker.record(false, now);
        assert_eq!(up.pick(&[], now), None);
    }
}
