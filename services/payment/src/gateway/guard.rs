//! What stands between the service and a slow or down PG: at most `max_in_flight` calls at once
//! (a full house answers at once instead of queueing) and a circuit breaker (after `threshold`
//! consecutive failures — timeouts, 5xx, lost connections — calls fail fast for `open_for`, then
//! one trial call decides). A caller takes a [`Permit`] *before* it writes anything, so a refused
//! call leaves nothing behind, and reports the call's outcome through it.
//!
//! A PG that refuses our secret key (401) is a misconfiguration, not an outage: it does not
//! count towards the breaker, but the guard remembers it ([`Guard::misconfigured`], which makes
//! the service unready) and lets at most one call try the key per `open_for` until one is
//! accepted, failing the others fast with [`PgError::Misconfigured`].

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::PgError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is out.
    HalfOpen,
}

/// The key the PG refused: since when, what it said, and when the next call may try it.
#[derive(Debug, Clone)]
struct Refused {
    since: chrono::DateTime<chrono::Utc>,
    why: String,
    next_try: Instant,
}

/// The breaker and the bound on calls in flight.
#[derive(Debug)]
pub struct Guard {
    state: Mutex<State>,
    refused: Mutex<Option<Refused>>,
    threshold: u32,
    open_for: Duration,
    in_flight: Arc<Semaphore>,
}

/// Leave to call the PG once; report the outcome with [`Permit::record`]. Dropped unrecorded
/// (the call was not made after all), it leaves the breaker as it was.
#[derive(Debug)]
pub struct Permit {
    guard: Arc<Guard>,
    trial: bool,
    recorded: bool,
    _slot: OwnedSemaphorePermit,
}

impl Guard {
    /// A closed breaker opening after `threshold` consecutive failures for `open_for`, and at most
    /// `max_in_flight` calls at once.
    pub fn new(threshold: u32, open_for: Duration, max_in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            refused: Mutex::new(None),
            threshold: threshold.max(1),
            open_for,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_refused(&self) -> std::sync::MutexGuard<'_, Option<Refused>> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leave to call now, or [`PgError::NotCalled`] when the circuit is open (or its trial call is
    /// out) or too many calls are in flight.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, PgError> {
        let slot = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| PgError::NotCalled("too many PG calls in flight"))?;
        let now = Instant::now();
        {
            let mut refused = self.lock_refused();
            if let Some(r) = refused.as_mut() {
                if now < r.next_try {
                    return Err(PgError::Misconfigured(r.why.clone()));
                }
                // This call tries the key again; the others wait for its answer.
                r.next_try = now + self.open_for.max(Duration::from_millis(100));
            }
        }
        let mut state = self.lock();
        let trial = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => {
                return Err(PgError::NotCalled("the PG circuit is open"));
            }
        };
        Ok(Permit {
            guard: self.clone(),
            trial,
            recorded: false,
            _slot: slot,
        })
    }

    /// Whether the circuit is open now (for readiness and tests).
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }

    /// The breaker's state: `closed`, `open` (failing calls fast) or `half_open` (the open time
    /// is over: the next call, or the one out now, is the trial).
    pub fn breaker(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { until } if Instant::now() < until => "open",
            State::Open { .. } | State::HalfOpen => "half_open",
        }
    }

    /// Why the PG refuses our secret key and since when, when its last answer about the key
    /// was a refusal (`None` once a call is accepted again).
    pub fn misconfigured(&self) -> Option<(chrono::DateTime<chrono::Utc>, String)> {
        self.lock_refused()
            .as_ref()
            .map(|r| (r.since, r.why.clone()))
    }
}

impl Permit {
    /// Reports the outcome of the call made under this permit: a definite answer (a payment or a
    /// refusal) closes the circuit; a failure counts towards opening it.
    pub fn record<T>(mut self, outcome: &Result<T, PgError>) {
        self.recorded = true;
        let guard = &self.guard;
        match outcome {
            Err(PgError::Misconfigured(why)) => {
                let mut refused = guard.lock_refused();
                if refused.is_none() {
                    tracing::error!(error = %why, "the PG refuses our secret key (payment.pg.secret_key): payments are off until it is fixed");
                    metrics::counter!("boxoffice_payment_pg_misconfigured_total").increment(1);
                }
                let since = refused.as_ref().map_or_else(chrono::Utc::now, |r| r.since);
                *refused = Some(Refused {
                    since,
                    why: why.clone(),
                    next_try: Instant::now() + guard.open_for.max(Duration::from_millis(100)),
                });
                // Not the PG's health: the breaker is left as it is.
                return;
            }
            Err(PgError::Unavailable(_) | PgError::NotCalled(_)) => {}
            // The PG authenticated us.
            Ok(_) | Err(PgError::Refused { .. }) => {
                if guard.lock_refused().take().is_some() {
                    tracing::warn!("the PG accepts our secret key again");
                }
            }
        }
        let failed = matches!(outcome, Err(e) if e.is_failure());
        let mut state = guard.lock();
        *state = match (*state, failed) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 < guard.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, true) => {
                tracing::warn!(open_for = ?guard.open_for, "PG circuit opened");
                metrics::counter!("boxoffice_payment_pg_circuit_opened_total").increment(1);
                State::Open {
                    until: Instant::now() + guard.open_for,
                }
            }
        };
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // A trial permit given back unused: the next caller may try instead.
        if self.trial && !self.recorded {
            let mut state = self.guard.lock();
            if *state == State::HalfOpen {
                *state = State::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fail() -> Result<(), PgError> {
        Err(PgError::Unavailable("timed out".into()))
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_trial_closes_it() {
        let g = Guard::new(2, Duration::from_millis(0), 10);
        g.admit().unwrap().record(&fail());
        assert!(!g.is_open());
        g.admit().unwrap().record(&Err::<(), _>(PgError::Refused {
            status: 400,
            code: "REJECT_CARD_COMPANY".into(),
            message: String::new(),
        }));
        g.admit().unwrap().record(&fail());
        g.admit().unwrap().record(&fail());
        // open_for is 0: the next call is the trial; while it is out nobody else goes.
        let trial = g.admit().unwrap();
        assert!(matches!(g.admit(), Err(PgError::NotCalled(_))));
        trial.record(&Ok::<(), PgError>(()));
        assert!(g.admit().is_ok());
    }

    #[test]
    fn an_open_circuit_refuses_until_its_time_is_up() {
        let g = Guard::new(1, Duration::from_secs(60), 10);
        g.admit().unwrap().record(&fail());
        assert!(g.is_open());
        assert_eq!(
            g.admit().unwrap_err(),
            PgError::NotCalled("the PG circuit is open")
        );
    }

    #[test]
    fn an_unused_trial_lets_the_next_caller_try() {
        let g = Guard::new(1, Duration::from_millis(0), 10);
        g.admit().unwrap().record(&fail());
        drop(g.admit().unwrap());
        assert!(g.admit().is_ok());
    }

    #[test]
    fn a_refused_key_is_remembered_apart_from_the_breaker_and_tried_again_sparingly() {
        let g = Guard::new(1, Duration::from_millis(200), 10);
        let refused = || Err::<(), _>(PgError::Misconfigured("401 UNAUTHORIZED_KEY".into()));
        g.admit().unwrap().record(&refused());
        assert_eq!(g.breaker(), "closed", "a wrong key is not an outage");
        assert!(g.misconfigured().is_some());
        assert!(matches!(g.admit(), Err(PgError::Misconfigured(_))));
        // After `open_for`, one call may try the key again; the others are refused meanwhile.
        let deadline = Instant::now() + Duration::from_secs(5);
        let trial = loop {
            match g.admit() {
                Ok(permit) => break permit,
                Err(PgError::Misconfigured(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(
            g.misconfigured().is_some(),
            "still refused until a call is accepted"
        );
        assert!(matches!(g.admit(), Err(PgError::Misconfigured(_))));
        trial.record(&Ok::<(), PgError>(()));
        assert!(g.misconfigured().is_none());
        assert!(g.admit().is_ok());
    }

    #[test]
    fn the_breaker_state_is_named() {
        let g = Guard::new(1, Duration::from_secs(60), 10);
        assert_eq!(g.breaker(), "closed");
        g.admit().unwrap().record(&fail());
        assert_eq!(g.breaker(), "open");
        let g = Guard::new(1, Duration::from_millis(0), 10);
        g.admit().unwrap().record(&fail());
        assert_eq!(g.breaker(), "half_open");
    }

    #[test]
    fn a_full_house_refuses_at_once() {
        let g = Guard::new(5, Duration::from_secs(1), 1);
        let held = g.admit().unwrap();
        assert_eq!(
            g.admit().unwrap_err(),
            PgError::NotCalled("too many PG calls in flight")
        );
        drop(held);
        assert!(g.admit().is_ok());
    }
}
