//! The admitter: every `admission.tick_ms`, for each open waiting room whose lease this replica
//! holds (one replica per room at a time, `admission.lease_ms`), it runs the draw once the
//! opening has come, then admits from the front of the queue: the set rate times the time since
//! its last step (fractions carried over, so the rate holds over time however the ticks fall),
//! never above the active-buyer cap, nobody while paused. It measures the admission rate it
//! achieves (for the ETAs fans are told) and reports the queue's metrics.
//!
//! Metrics (per performance): `boxoffice_admission_queue_length`,
//! `boxoffice_admission_prequeue_length`, `boxoffice_admission_active_buyers`,
//! `boxoffice_admission_rate` (measured fans/s) and the counter
//! `boxoffice_admission_admitted_total`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    Config,
    auto::{self, SeatLoad, Signal, Tuning},
    draw,
    rooms::{Room, Rooms},
    store::{QueueStore, StoreError},
};

/// Why a draw could not run.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    /// The queue store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// AdmissionDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Runs the draw of `room` (idempotent: nothing once committed; after a crash part-way it
/// closes nothing new and commits the same order). Answers how many fans it ordered.
pub async fn run_draw(
    store: &dyn QueueStore,
    rooms: &Rooms,
    room: &Room,
) -> Result<Option<usize>, DrawError> {
    let perf = room.performance_id;
    let Some(entries) = store.close_prequeue(perf).await? else {
        return Ok(None);
    };
    let mut refs: Vec<(draw::Digest32, Uuid)> = entries
        .iter()
        .map(|e| (draw::reference(&e.token), e.account))
        .collect();
    refs.sort_unstable();
    let sorted: Vec<draw::Digest32> = refs.iter().map(|(r, _)| *r).collect();
    let recorded = rooms.record_draw(perf, &sorted).await?;
    if recorded != sorted {
        tracing::error!(
            performance_id = %perf,
            recorded = recorded.len(),
            now = sorted.len(),
            "the pre-queue differs from the draw already recorded; ordering what the store holds"
        );
    }
    let order: Vec<Uuid> = draw::order(&room.seed, &sorted)
        .into_iter()
        .map(|i| refs[i].1)
        .collect();
    store.commit_draw(perf, &order).await?;
    tracing::info!(performance_id = %perf, fans = order.len(), "pre-queue drawn");
    Ok(Some(order.len()))
}

/// One room's pacing on this replica.
#[derive(Debug)]
struct Pace {
    last: Instant,
    /// Admissions owed (the fraction carried over).
    budget: f64,
    /// The current measuring window: its start and the fans admitted in it.
    window_start: Instant,
    window_admitted: u64,
    /// The smoothed measured rate.
    measured: Option<f64>,
    /// Automatic mode: when the rate was last moved, and to what.
    auto: Option<(Instant, f64)>,
}

impl Pace {
    fn new(now: Instant) -> Self {
        Self {
            last: now,
            budget: 0.0,
            window_start: now,
            window_admitted: 0,
            measured: None,
            auto: None,
        }
    }
}

/// The admission loop of one replica.
pub struct Admitter {
    store: Arc<dyn QueueStore>,
    rooms: Rooms,
    config: Arc<Config>,
    /// This replica's name in the leases.
    who: String,
    paces: Mutex<HashMap<Uuid, Pace>>,
    /// The seat service's load reports (automatic mode; `None`: not available).
    seat_load: Option<SeatLoad>,
    /// The last report read, shared by every room in automatic mode for half an interval.
    signal: tokio::sync::Mutex<Option<(Instant, Signal)>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Admitter {
    /// An admitter over `store` and `rooms`; rooms in automatic mode follow `seat_load`.
    pub fn new(
        store: Arc<dyn QueueStore>,
        rooms: Rooms,
        config: Arc<Config>,
        seat_load: Option<SeatLoad>,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| crate::NAME.to_owned());
        Self {
            store,
            rooms,
            config,
            who: format!("{host}-{}", Uuid::new_v4().simple()),
            paces: Mutex::default(),
            seat_load,
            signal: tokio::sync::Mutex::new(None),
        }
    }

    fn tuning(&self) -> Tuning {
        Tuning {
            target_p99_ms: self.config.auto_target_p99_ms,
            max_error_rate: self.config.auto_max_error_rate,
            min_rate: self.config.auto_min_rate,
            max_rate: self.config.auto_max_rate,
        }
    }

    /// The seat service's load: the report read within the last half interval, else a new one.
    async fn seat_signal(&self, load: &SeatLoad) -> Signal {
        let fresh = Duration::from_millis(self.config.auto_interval_ms.max(20) / 2);
        let mut last = self.signal.lock().await;
        if let Some((at, signal)) = *last
            && at.elapsed() < fresh
        {
            return signal;
        }
        let signal = load.read().await;
        *last = Some((Instant::now(), signal));
        signal
    }

    /// The rate `room` admits at now: the set one, or in automatic mode the one it chose last,
    /// moved again when an interval has passed since.
    async fn rate_of(&self, room: &Room) -> f64 {
        let perf = room.performance_id;
        let (Some(load), true, false) = (&self.seat_load, room.auto_rate, room.paused) else {
            if !room.auto_rate {
                // Out of automatic mode: back in, it starts from the rate then set.
                if let Some(pace) = self
                    .paces
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&perf)
                {
                    pace.auto = None;
                }
            }
            return self.chosen(perf).unwrap_or(room.rate_per_sec);
        };
        let interval = Duration::from_millis(self.config.auto_interval_ms.max(20));
        let due = {
            let paces = self.paces.lock().unwrap_or_else(|p| p.into_inner());
            match paces.get(&perf).and_then(|p| p.auto) {
                Some((at, rate)) if at.elapsed() < interval => return rate,
                Some((_, rate)) => rate,
                None => room.rate_per_sec,
            }
        };
        let signal = self.seat_signal(load).await;
        let (next, moved) = auto::next_rate(due, signal, &self.tuning());
        let label = perf.to_string();
        metrics::counter!("boxoffice_admission_auto_steps_total", "performance_id" => label.clone(), "move" => moved.label())
            .increment(1);
        metrics::gauge!("boxoffice_admission_set_rate", "performance_id" => label).set(next);
        if (next - due).abs() > f64::EPSILON {
            tracing::info!(performance_id = %perf, from = due, to = next, ?signal, "automatic admission rate moved");
        }
        // Kept in AdmissionDB, so operators see it and a replica taking over starts from it;
        // an operator who just took the room out of automatic mode wins.
        let rate = match self.rooms.set_auto_rate(perf, next).await {
            Ok(Some(r)) if r.auto_rate => next,
            Ok(Some(r)) => r.rate_per_sec,
            Ok(None) => next,
            Err(e) => {
                tracing::warn!(performance_id = %perf, error = %e, "recording the automatic rate failed");
                next
            }
        };
        if let Some(pace) = self
            .paces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&perf)
        {
            pace.auto = Some((Instant::now(), rate));
        }
        rate
    }

    /// The rate automatic mode chose last for `perf` on this replica, if it is in that mode.
    fn chosen(&self, perf: Uuid) -> Option<f64> {
        self.paces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&perf)
            .and_then(|p| p.auto.map(|(_, r)| r))
    }

    /// Runs until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let tick = Duration::from_millis(self.config.tick_ms.max(10));
        let reload_every = Duration::from_millis(self.config.reload_ms.max(10));
        let linger = chrono::Duration::seconds(self.config.forget_after_secs as i64);
        let mut rooms: Vec<Arc<Room>> = Vec::new();
        let mut reloaded: Option<Instant> = None;
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if reloaded.is_none_or(|t| t.elapsed() >= reload_every) {
                match self.rooms.reload(linger).await {
                    Ok(list) => {
                        rooms = list;
                        reloaded = Some(Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "rereading the waiting rooms failed"),
                }
                self.forget_finished(linger).await;
            }
            let now = chrono::Utc::now();
            for room in &rooms {
                if now > room.closes_at {
                    continue;
                }
                if let Err(e) = self.step(room).await {
                    tracing::warn!(performance_id = %room.performance_id, error = %e, "admission step failed");
                }
            }
        }
    }

    async fn forget_finished(&self, linger: chrono::Duration) {
        match self.rooms.finished(linger).await {
            Ok(done) => {
                for perf in done {
                    if let Err(e) = self.store.forget(perf).await {
                        tracing::warn!(performance_id = %perf, error = %e, "forgetting a queue failed");
                    }
                    self.paces
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&perf);
                }
            }
            Err(e) => tracing::warn!(error = %e, "finding finished rooms failed"),
        }
    }

    /// One step of one room: lease, draw, admit, measure.
    async fn step(&self, room: &Room) -> Result<(), DrawError> {
        let perf = room.performance_id;
        let lease = self.config.lease_ms.max(self.config.tick_ms * 3);
        if !self.store.lead(perf, &self.who, lease).await? {
            // Another replica admits here: start afresh if this one takes over later.
            self.paces
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&perf);
            return Ok(());
        }
        if !room.open_at(chrono::Utc::now()) {
            self.report(perf, 0.0).await?;
            return Ok(());
        }
        if !self.store.drawn(perf).await? {
            run_draw(&*self.store, &self.rooms, room).await?;
        }
        self.paces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(perf)
            .or_insert_with(|| Pace::new(Instant::now()));
        let rate = self.rate_of(room).await;
        let now = Instant::now();
        let owed = {
            let mut paces = self.paces.lock().unwrap_or_else(|p| p.into_inner());
            let pace = paces.entry(perf).or_insert_with(|| Pace::new(now));
            let dt = now.duration_since(pace.last).as_secs_f64();
            pace.last = now;
            if room.paused {
                pace.budget = 0.0;
            } else {
                pace.budget += rate * dt;
            }
            pace.budget.floor().max(0.0) as u64
        };
        let max_active = room.max_active.map(|m| m.max(0) as u64);
        let pass_ttl_ms = (self.config.pass_ttl_secs as i64).saturating_mul(1000);
        let step = self
            .store
            .admit(perf, owed, max_active, now_ms(), pass_ttl_ms)
            .await?;
        let label = perf.to_string();
        metrics::counter!("boxoffice_admission_admitted_total", "performance_id" => label.clone())
            .increment(step.admitted);
        let measured = {
            let mut paces = self.paces.lock().unwrap_or_else(|p| p.into_inner());
            let pace = paces.entry(perf).or_insert_with(|| Pace::new(now));
            if step.admitted < owed {
                // The queue ran dry or the cap is reached: owe nothing for the idle time.
                pace.budget = pace.budget.fract();
            } else {
                pace.budget -= step.admitted as f64;
            }
            pace.window_admitted += step.admitted;
            let span = now.duration_since(pace.window_start).as_secs_f64();
            if span >= 1.0 {
                let rate = pace.window_admitted as f64 / span;
                pace.measured = Some(match pace.measured {
                    Some(m) => 0.5 * m + 0.5 * rate,
                    None => rate,
                });
                pace.window_start = now;
                pace.window_admitted = 0;
            }
            pace.measured
        };
        if let Some(rate) = measured {
            self.report(perf, rate).await?;
        }
        Ok(())
    }

    async fn report(&self, perf: Uuid, rate: f64) -> Result<(), StoreError> {
        self.store.set_rate(perf, rate).await?;
        let counts = self.store.counts(perf, now_ms()).await?;
        let label = perf.to_string();
        metrics::gauge!("boxoffice_admission_queue_length", "performance_id" => label.clone())
            .set(counts.waiting as f64);
        metrics::gauge!("boxoffice_admission_prequeue_length", "performance_id" => label.clone())
            .set(counts.prequeue as f64);
        metrics::gauge!("boxoffice_admission_active_buyers", "performance_id" => label.clone())
            .set(counts.active as f64);
        metrics::gauge!("boxoffice_admission_rate", "performance_id" => label).set(rate);
        Ok(())
    }
}
