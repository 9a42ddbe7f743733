//! Automatic mode: a room's admission rate follows the seat service's health instead of a
//! hand-set number. Every `admission.auto_interval_ms` the admitter leading a room in automatic
//! mode reads the seat service's load report (`GET <seat>/internal/v1/load` of every instance in
//! `services.seat`: the worst p99, the errors and requests summed) and moves the rate:
//!
//! - **back off** — rate × [`DECREASE`] — when the p99 of seat maps and holds is above
//!   `auto_target_p99_ms`, when more than `auto_max_error_rate` of them failed with a server
//!   error, or when no instance answered its report (one that cannot say how it is doing is
//!   taken as one in trouble);
//! - **admit more** — rate × (1 + [`INCREASE`]) + 1 fan/s — when the p99 is under
//!   [`HEADROOM`] of the target and errors are within bounds, or when too few requests were
//!   made to judge (the fans admitted so far are not loading it);
//! - **hold** in between;
//!
//! always within `[auto_min_rate, auto_max_rate]` (and still under the room's active-buyer cap,
//! which the admitter applies as before). Multiplicative decrease with a gentler increase (as in
//! TCP congestion control) settles just under the rate the seat service can take and drops fast
//! when it degrades.

use std::time::Duration;

use serde::Deserialize;

/// The factor a rate is multiplied by when the seat service is in trouble.
pub const DECREASE: f64 = 0.7;
/// The fraction a rate grows by when the seat service has room (plus 1 fan/s, so a rate of
/// 0 starts moving).
pub const INCREASE: f64 = 0.1;
/// Below this fraction of the target p99 there is room to admit more.
pub const HEADROOM: f64 = 0.8;
/// Fewer requests than this in the window say nothing about the latency.
pub const MIN_SAMPLES: u64 = 20;

/// The settings automatic mode works with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// The p99 of seat maps and holds to stay under, in ms.
    pub target_p99_ms: f64,
    /// The share of server errors tolerated (0–1).
    pub max_error_rate: f64,
    /// The lowest rate automatic mode sets, fans/s.
    pub min_rate: f64,
    /// The highest, fans/s.
    pub max_rate: f64,
}

/// What the seat service said about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// No instance answered.
    Unreachable,
    /// Its figures over the window.
    Measured {
        /// Requests (seat maps and holds) answered.
        requests: u64,
        /// Of which server errors.
        errors: u64,
        /// Their p99 in ms (`None`: no request).
        p99_ms: Option<f64>,
    },
}

/// Which way a step moved the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Backed off.
    Down,
    /// Kept.
    Hold,
    /// Admitting more.
    Up,
}

impl Move {
    /// Its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Move::Down => "down",
            Move::Hold => "hold",
            Move::Up => "up",
        }
    }
}

/// The next rate after `current` given `signal`.
pub fn next_rate(current: f64, signal: Signal, t: &Tuning) -> (f64, Move) {
    let current = if current.is_finite() {
        current.max(0.0)
    } else {
        t.min_rate
    };
    let direction = match signal {
        Signal::Unreachable => Move::Down,
        Signal::Measured {
            requests,
            errors,
            p99_ms,
        } => {
            let error_rate = if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            };
            if requests >= MIN_SAMPLES && error_rate > t.max_error_rate {
                Move::Down
            } else if requests < MIN_SAMPLES {
                Move::Up
            } else {
                match p99_ms {
                    Some(p) if p > t.target_p99_ms => Move::Down,
                    Some(p) if p > t.target_p99_ms * HEADROOM => Move::Hold,
                    _ => Move::Up,
                }
            }
        }
    };
    let next = match direction {
        Move::Down => current * DECREASE,
        Move::Hold => current,
        Move::Up => current * (1.0 + INCREASE) + 1.0,
    };
    let (lo, hi) = (t.min_rate.min(t.max_rate), t.max_rate.max(t.min_rate));
    (next.clamp(lo, hi), direction)
}

#[derive(Deserialize)]
struct Report {
    requests: u64,
    errors: u64,
    p99_ms: Option<f64>,
}

/// Reads the seat service's load reports.
#[derive(Clone)]
pub struct SeatLoad {
    bases: Vec<String>,
    http: reqwest::Client,
    window_secs: u64,
}

impl SeatLoad {
    /// A reader of the instances in `services` (one base URL or several, comma-separated), each
    /// call bounded by `timeout`, over the last `window_secs` seconds.
    pub fn new(services: &str, timeout: Duration, window_secs: u64) -> Result<Self, String> {
        let bases: Vec<String> = services
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        if bases.is_empty() {
            return Err("services.seat names no address".to_owned());
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            bases,
            http,
            window_secs: window_secs.clamp(1, 16),
        })
    }

    /// Every instance's report, put together: the worst p99, requests and errors summed (an
    /// instance that does not answer is left out; none answering is [`Signal::Unreachable`]).
    pub async fn read(&self) -> Signal {
        let calls = self.bases.iter().map(|base| async move {
            let url = format!("{base}/internal/v1/load?secs={}", self.window_secs);
            match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => r.json::<Report>().await.ok(),
                Ok(r) => {
                    tracing::debug!(%url, status = %r.status(), "seat load report refused");
                    None
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "seat load report unreachable");
                    None
                }
            }
        });
        let reports: Vec<Report> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        if reports.is_empty() {
            return Signal::Unreachable;
        }
        Signal::Measured {
            requests: reports.iter().map(|r| r.requests).sum(),
            errors: reports.iter().map(|r| r.errors).sum(),
            p99_ms: reports
                .iter()
                .filter_map(|r| r.p99_ms)
                .fold(None, |worst: Option<f64>, p| {
                    Some(worst.map_or(p, |w| w.max(p)))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T: Tuning = Tuning {
        target_p99_ms: 200.0,
        max_error_rate: 0.01,
        min_rate: 5.0,
        max_rate: 1_000.0,
    };

    fn measured(requests: u64, errors: u64, p99: f64) -> Signal {
        Signal::Measured {
            requests,
            errors,
            p99_ms: Some(p99),
        }
    }

    /// `next_rate`, rounded to a thousandth of a fan per second.
    fn step(current: f64, signal: Signal) -> (f64, Move) {
        let (rate, moved) = next_rate(current, signal, &T);
        ((rate * 1000.0).round() / 1000.0, moved)
    }

    #[test]
    fn it_backs_off_on_latency_errors_and_silence_and_grows_when_healthy() {
        assert_eq!(step(100.0, measured(500, 0, 20.0)), (111.0, Move::Up));
        assert_eq!(step(100.0, measured(500, 0, 250.0)), (70.0, Move::Down));
        assert_eq!(step(100.0, measured(500, 0, 180.0)), (100.0, Move::Hold));
        assert_eq!(step(100.0, measured(500, 50, 20.0)), (70.0, Move::Down));
        assert_eq!(step(100.0, Signal::Unreachable), (70.0, Move::Down));
        // Too few requests to judge: grow.
        assert_eq!(step(100.0, measured(3, 3, 9_000.0)).1, Move::Up);
        // Clamped both ways.
        assert_eq!(step(6.0, Signal::Unreachable).0, 5.0);
        assert_eq!(step(990.0, measured(500, 0, 1.0)).0, 1_000.0);
        assert_eq!(step(f64::NAN, measured(500, 0, 1.0)).0, 6.5);
    }

    #[test]
    fn a_degrading_seat_service_is_followed_down_and_a_recovered_one_up() {
        // The service takes 300 fans/s: above that its p99 is 2 s, below it 50 ms.
        let p99 = |rate: f64| if rate > 300.0 { 2_000.0 } else { 50.0 };
        let mut rate = 10.0;
        let mut seen = Vec::new();
        for _ in 0..200 {
            rate = next_rate(rate, measured(1_000, 0, p99(rate)), &T).0;
            seen.push(rate);
        }
        // It reached the capacity, and from then on never stayed above it two steps running.
        let settled = &seen[100..];
        assert!(settled.iter().any(|r| *r > 200.0), "{settled:?}");
        assert!(
            settled.windows(2).all(|w| w[0] <= 300.0 || w[1] <= 300.0),
            "{settled:?}"
        );
    }

    proptest! {
        #[test]
        fn the_rate_stays_within_bounds_and_moves_the_way_the_signal_says(
            current in 0.0f64..5_000.0,
            requests in 0u64..10_000,
            errors_per_mille in 0u64..=1_000,
            p99 in proptest::option::of(0.0f64..10_000.0),
            unreachable in any::<bool>(),
        ) {
            let signal = if unreachable {
                Signal::Unreachable
            } else {
                Signal::Measured { requests, errors: requests * errors_per_mille / 1_000, p99_ms: p99 }
            };
            let (next, direction) = next_rate(current, signal, &T);
            prop_assert!((T.min_rate..=T.max_rate).contains(&next));
            let inside = current.clamp(T.min_rate, T.max_rate);
            match direction {
                Move::Down => prop_assert!(next <= inside),
                Move::Hold => prop_assert!((next - inside).abs() < 1e-9),
                Move::Up => prop_assert!(next >= inside),
            }
            if unreachable {
                prop_assert_eq!(direction, Move::Down);
            }
        }
    }
}
