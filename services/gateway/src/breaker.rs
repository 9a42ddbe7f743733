//! A per-upstream circuit breaker: after `threshold` consecutive failures the circuit opens and
//! calls fail fast for `open_for`; then one trial call is let through (half-open), and its
//! outcome closes or re-opens the circuit.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
        }
    }

    /// Whether a call may go through now.
    pub fn allow(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    /// Whether [`Breaker::allow`] would let a call through now, without taking the half-open
    /// trial: for choosing among instances.
    pub fn available(&self, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen => false,
        }
    }

    /// Records a call's outcome.
    pub fn record(&self, ok: bool, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = match (&*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, false) => State::Open {
                until: now + self.open_for,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens() {
        let b = Breaker::new(3, Duration::from_secs(5));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.record(false, t0);
            assert!(b.allow(t0));
        }
        b.record(false, t0);
        assert!(!b.allow(t0), "open after 3 failures");
        let later = t0 + Duration::from_secs(6);
        assert!(b.allow(later), "half-open lets one trial through");
        assert!(!b.allow(later), "only one trial at a time");
        b.record(true, later);
        assert!(b.allow(later), "a good trial closes it");
    }

    #[test]
    fn available_peeks_without_taking_the_trial() {
        let b = Breaker::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(b.available(t0));
        b.record(false, t0);
        assert!(!b.available(t0));
        let later = t0 + Duration::from_secs(6);
        assert!(b.available(later));
        assert!(b.available(later), "peeking twice takes nothing");
        assert!(b.allow(later));
        assert!(!b.available(later), "the trial is out");
    }

    #[test]
    fn failed_trial_reopens() {
        let b = Breaker::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        b.record(false, t0);
        let later = t0 + Duration::from_secs(6);
        assert!(b.allow(later));
        b.record(false, later);
        assert!(!b.allow(later + Duration::from_secs(1)));
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(5));
        let t0 = Instant::now();
        b.record(false, t0);
        b.record(true, t0);
        b.record(false, t0);
        assert!(b.allow(t0));
    }
}
