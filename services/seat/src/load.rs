//! How loaded this replica is, as buyers feel it: the latency and the server errors of the
//! requests admitted buyers make (seat maps and holds), over the last few seconds. The admission
//! service's automatic mode reads it (`GET /internal/v1/load`, on the service's own port; the
//! gateway does not route `/internal/`) to admit more fans while the seat service is healthy and
//! fewer when its p99 climbs.
//!
//! One slot per second over the last [`SLOTS`] seconds, each a count, an error count and a
//! histogram of log-scale buckets (four per doubling: a percentile is within 19 % of the true
//! one), so recording is a few additions under a lock held for nanoseconds, and the memory is
//! fixed whatever the traffic.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};

/// Seconds kept.
pub const SLOTS: usize = 16;
/// Buckets per slot: four per doubling from 1 µs, the last one open (about 16 s and more).
const BUCKETS: usize = 96;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The second (since the window's start) this slot holds, or `u64::MAX` when never used.
    second: u64,
    requests: u64,
    errors: u64,
    buckets: [u32; BUCKETS],
}

impl Slot {
    const EMPTY: Slot = Slot {
        second: u64::MAX,
        requests: 0,
        errors: 0,
        buckets: [0; BUCKETS],
    };
}

/// The bucket of a latency of `us` microseconds: ⌊4·log₂(us)⌋, clamped.
fn bucket(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    let log2 = (us as f64).log2();
    ((log2 * 4.0) as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, in ms.
fn upper_ms(i: usize) -> f64 {
    2f64.powf((i + 1) as f64 / 4.0) / 1000.0
}

/// The requests of the last seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// The seconds counted (the current one, and the whole ones before it).
    pub window_secs: u64,
    /// Requests answered in them.
    pub requests: u64,
    /// Of which answered 5xx (503 `unavailable` and `timeout` included); a refusal such as 409
    /// `seat_unavailable` is an answer, not an error.
    pub errors: u64,
    /// The 99th percentile of their latency, in ms (an upper bound within 19 %); `null` when
    /// there were none.
    pub p99_ms: Option<f64>,
}

/// A replica's rolling load window; cheap to clone (one shared window).
#[derive(Clone)]
pub struct Load {
    start: Instant,
    slots: Arc<Mutex<[Slot; SLOTS]>>,
}

impl Default for Load {
    fn default() -> Self {
        Self::new()
    }
}

impl Load {
    /// An empty window.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            slots: Arc::new(Mutex::new([Slot::EMPTY; SLOTS])),
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs()
    }

    /// Counts one request answered at `at` after `latency`, an error or not.
    pub fn record_at(&self, at: Instant, latency: Duration, error: bool) {
        let second = self.second(at);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(second % SLOTS as u64) as usize];
        if slot.second != second {
            *slot = Slot::EMPTY;
            slot.second = second;
        }
        slot.requests += 1;
        slot.errors += u64::from(error);
        slot.buckets[bucket(us)] += 1;
    }

    /// The last `secs` seconds up to `at` (the current one included; at most [`SLOTS`]).
    pub fn report_at(&self, at: Instant, secs: u64) -> LoadReport {
        let secs = secs.clamp(1, SLOTS as u64);
        let now = self.second(at);
        let oldest = now.saturating_sub(secs - 1);
        let slots = *self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut requests = 0;
        let mut errors = 0;
        let mut buckets = [0u64; BUCKETS];
        for slot in slots
            .iter()
            .filter(|s| s.second != u64::MAX && (oldest..=now).contains(&s.second))
        {
            requests += slot.requests;
            errors += slot.errors;
            for (sum, n) in buckets.iter_mut().zip(slot.buckets) {
                *sum += u64::from(n);
            }
        }
        let p99_ms = (requests > 0).then(|| {
            // The smallest bucket with at least 99 % of the requests at or below it.
            let want = requests - requests / 100;
            let mut seen = 0;
            let i = buckets
                .iter()
                .position(|n| {
                    seen += n;
                    seen >= want
                })
                .unwrap_or(BUCKETS - 1);
            upper_ms(i)
        });
        LoadReport {
            window_secs: secs,
            requests,
            errors,
            p99_ms,
        }
    }
}

/// Middleware: times each request of the routes it wraps into `load`.
pub async fn track(State(load): State<Load>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let now = Instant::now();
    load.record_at(
        now,
        now.duration_since(started),
        response.status().is_server_error(),
    );
    response
}

/// The query of `GET /internal/v1/load`.
#[derive(Debug, Deserialize)]
pub struct Window {
    /// Seconds to report (default 5, at most 16).
    #[serde(default = "five")]
    secs: u64,
}

fn five() -> u64 {
    5
}

/// `GET /internal/v1/load?secs=5`: this replica's [`LoadReport`].
pub async fn report(
    State(load): State<Load>,
    axum::extract::Query(w): axum::extract::Query<Window>,
) -> Json<LoadReport> {
    Json(load.report_at(Instant::now(), w.secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_p99_is_the_tail_not_the_middle_and_errors_are_counted() {
        let load = Load::new();
        let t = load.start + Duration::from_millis(500);
        for _ in 0..990 {
            load.record_at(t, ms(2), false);
        }
        for _ in 0..10 {
            load.record_at(t, ms(400), true);
        }
        let r = load.report_at(t, 5);
        assert_eq!((r.requests, r.errors), (1000, 10));
        let p99 = r.p99_ms.unwrap();
        assert!((2.0..=2.0 * 1.19).contains(&p99), "{p99}");
        // Twenty slow ones in a thousand: the p99 is among them.
        for _ in 0..10 {
            load.record_at(t, ms(400), false);
        }
        let p99 = load.report_at(t, 5).p99_ms.unwrap();
        assert!((400.0..=400.0 * 1.19).contains(&p99), "{p99}");
    }

    #[test]
    fn old_seconds_leave_the_window_and_reused_slots_start_afresh() {
        let load = Load::new();
        let t0 = load.start;
        load.record_at(t0, ms(900), true);
        let later = t0 + Duration::from_secs(3);
        load.record_at(later, ms(1), false);
        // Both in a 5-second window, only the later in a 2-second one.
        assert_eq!(load.report_at(later, 5).requests, 2);
        assert_eq!(load.report_at(later, 2).requests, 1);
        // SLOTS seconds on, the first one's slot is reused: nothing of it is left.
        let wrapped = t0 + Duration::from_secs(SLOTS as u64);
        load.record_at(wrapped, ms(1), false);
        let r = load.report_at(wrapped, SLOTS as u64);
        assert_eq!((r.requests, r.errors), (2, 0), "{r:?}");
        // Nothing recently: no figures.
        let idle = t0 + Duration::from_secs(100);
        let r = load.report_at(idle, 5);
        assert_eq!((r.requests, r.p99_ms), (0, None));
    }

    #[test]
    fn buckets_bound_every_latency_from_above_within_a_fifth() {
        for us in [2u64, 3, 10, 999, 1_000, 12_345, 250_000, 3_000_000] {
            let up = upper_ms(bucket(us)) * 1000.0;
            assert!(
                up >= us as f64 && up <= us as f64 * 1.19 + 1.0,
                "{us} → {up}"
            );
        }
    }
}
