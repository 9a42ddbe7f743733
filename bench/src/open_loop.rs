//! The load engine every scenario shares: open loop on a fixed schedule (the default for figures
//! that speak of latency) or closed loop (back to back, for capacity).
//!
//! Open loop: each of `users` users has attempt `k` due at `start + phase + k × interval`
//! (`interval = users ÷ rate`, `phase` random in `0..interval`), and it is sent when it is due,
//! whether or not the user's earlier attempts have been answered. Latency is measured from the
//! **intended** send time, so a server (or a load generator) that falls behind shows the wait in
//! its percentiles instead of hiding it by lowering the offered load (coordinated omission).
//!
//! Both modes count an attempt in the achieved rate only if it completed by the deadline, and
//! divide by the nominal seconds; attempts still in flight at the deadline are awaited (up to
//! `drain`) so their latency is recorded, then the rest are abandoned and counted as
//! `unfinished` (recorded at their age then, a lower bound).

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use rand::Rng;
use tokio::task::JoinSet;
/// The engine's clock: tokio's, so that tests can run it on paused time.
pub use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served as asked (a hold granted, a map read).
    Ok,
    /// Answered, but refused on its merits (seats taken): not an error.
    Refused,
    /// An error: a transport failure, a timeout, an unexpected status.
    Failed,
}

/// What an attempt reports back.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// How it ended.
    pub outcome: Outcome,
    /// When its measured part ended (a hold's reply, before any release that follows).
    pub end: Instant,
    /// A second measured call that followed it (the release), with its own latency.
    pub second: Option<Duration>,
}

impl Sample {
    /// A sample ending now.
    pub fn now(outcome: Outcome) -> Self {
        Self {
            outcome,
            end: Instant::now(),
            second: None,
        }
    }
}

/// One attempt to make: whose, and when it was due.
#[derive(Debug, Clone, Copy)]
pub struct Shot {
    /// The user's index, `0..users`.
    pub user: usize,
    /// The intended send time (closed loop: the actual one).
    pub due: Instant,
}

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Offered attempts per second over all users; 0 = closed loop (no think time).
    pub rate: f64,
    /// Users (buyers, readers).
    pub users: usize,
    /// Measured time.
    pub duration: Duration,
    /// How long to wait after the deadline for attempts still in flight.
    pub drain: Duration,
    /// Most attempts in flight at once (open loop); an attempt due beyond it is not sent and
    /// counts as `dropped` (and against the achieved rate).
    pub max_in_flight: u64,
}

impl Plan {
    /// Open loop at `rate` attempts/s over `users` users.
    pub fn open(rate: f64, users: usize, seconds: f64) -> Self {
        Self {
            rate,
            users: users.max(1),
            duration: Duration::from_secs_f64(seconds),
            drain: Duration::from_secs(5),
            max_in_flight: 6_000,
        }
    }

    /// Closed loop: `users` users back to back.
    pub fn closed(users: usize, seconds: f64) -> Self {
        Self {
            rate: 0.0,
            ..Self::open(0.0, users, seconds)
        }
    }

    /// Whether this is an open-loop plan.
    pub fn is_open(&self) -> bool {
        self.rate > 0.0
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant figures; the fallback cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 600_000_000)
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    unfinished: AtomicU64,
    dropped: AtomicU64,
    scheduled: AtomicU64,
    by_deadline: AtomicU64,
    in_flight: AtomicU64,
}

struct Hists {
    /// From the intended send time to the end.
    latency: Histogram<u64>,
    /// From the actual send time to the end.
    service: Histogram<u64>,
    /// The second call's latency.
    second: Histogram<u64>,
}

/// The figures of one run.
pub struct Figures {
    /// The plan it ran.
    pub plan: Plan,
    /// Attempts due during the run ÷ seconds (closed loop: attempts sent ÷ seconds).
    pub offered: f64,
    /// Attempts completed by the deadline ÷ seconds.
    pub achieved: f64,
    /// Served as asked.
    pub ok: u64,
    /// Refused on their merits.
    pub refused: u64,
    /// Errors.
    pub failed: u64,
    /// Still unanswered after the drain.
    pub unfinished: u64,
    /// Due but not sent: `max_in_flight` was reached.
    pub dropped: u64,
    /// In flight half-way through the run.
    pub backlog_mid: u64,
    /// In flight at the deadline.
    pub backlog_end: u64,
    /// From the intended send time, µs.
    pub latency: Histogram<u64>,
    /// From the actual send time, µs.
    pub service: Histogram<u64>,
    /// The second call, µs.
    pub second: Histogram<u64>,
}

impl Figures {
    /// Whether the arm served the offered load: achieved at least 95 % of offered, and the
    /// backlog did not grow over the second half by more than 50 ms of arrivals. Closed loop
    /// always "keeps up" (it offers only what it is served).
    pub fn kept_up(&self) -> bool {
        if !self.plan.is_open() {
            return true;
        }
        let grew = self.backlog_end as f64 > self.backlog_mid as f64 + self.plan.rate * 0.05;
        self.achieved >= 0.95 * self.offered && !grew && self.dropped == 0
    }

    /// A latency quantile in ms (from the intended send time).
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// A quantile of the time from the actual send, in ms.
    pub fn service_ms(&self, q: f64) -> f64 {
        self.service.value_at_quantile(q) as f64 / 1000.0
    }

    /// A quantile of the second call, in ms.
    pub fn second_ms(&self, q: f64) -> f64 {
        self.second.value_at_quantile(q) as f64 / 1000.0
    }

    /// The "kept up" cell.
    pub fn kept_up_cell(&self) -> &'static str {
        match (self.plan.is_open(), self.kept_up()) {
            (false, _) => "—",
            (true, true) => "yes",
            (true, false) => "**no**",
        }
    }

    /// The "ok / refused / failed / unfinished / dropped" cell.
    pub fn counts_cell(&self) -> String {
        format!(
            "{} / {} / {} / {} / {}",
            self.ok, self.refused, self.failed, self.unfinished, self.dropped
        )
    }
}

/// Runs `attempt` under `plan` and returns the figures.
pub async fn run<F, Fut>(plan: Plan, attempt: F) -> Figures
where
    F: Fn(Shot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Sample> + Send + 'static,
{
    let attempt = Arc::new(attempt);
    let counts = Arc::new(Counts::default());
    let hists = Arc::new(Mutex::new(Hists {
        latency: histogram(),
        service: histogram(),
        second: histogram(),
    }));
    let cancel = CancellationToken::new();
    // Users start a little later than now so that spawning them is not part of the schedule.
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + plan.duration;
    let interval = if plan.is_open() {
        Duration::from_secs_f64(plan.users as f64 / plan.rate)
    } else {
        Duration::ZERO
    };
    let mut users = JoinSet::new();
    for user in 0..plan.users {
        let (attempt, counts, hists, cancel) = (
            attempt.clone(),
            counts.clone(),
            hists.clone(),
            cancel.clone(),
        );
        let phase = if plan.is_open() {
            Duration::from_nanos(
                rand::rng().random_range(0..u64::try_from(interval.as_nanos()).unwrap_or(1).max(1)),
            )
        } else {
            Duration::ZERO
        };
        users.spawn(async move {
            if interval.is_zero() {
                tokio::time::sleep_until(start).await;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    counts.scheduled.fetch_add(1, Ordering::Relaxed);
                    counts.in_flight.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        s = attempt(Shot { user, due: sent }) => record(&counts, &hists, deadline, sent, sent, s),
                        () = cancel.cancelled() => {
                            unfinished(&counts, &hists, sent);
                            counts.in_flight.fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    counts.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                return;
            }
            let mut in_flight = JoinSet::new();
            let mut due = start + phase;
            while due < deadline {
                tokio::time::sleep_until(due).await;
                while in_flight.try_join_next().is_some() {}
                counts.scheduled.fetch_add(1, Ordering::Relaxed);
                if counts.in_flight.load(Ordering::Relaxed) >= plan.max_in_flight {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.in_flight.fetch_add(1, Ordering::Relaxed);
                    let fut = attempt(Shot { user, due });
                    let (counts, hists, cancel) = (counts.clone(), hists.clone(), cancel.clone());
                    in_flight.spawn(async move {
                        let sent = Instant::now();
                        tokio::select! {
                            s = fut => record(&counts, &hists, deadline, due, sent, s),
                            () = cancel.cancelled() => unfinished(&counts, &hists, due),
                        }
                        counts.in_flight.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                due += interval;
            }
            while in_flight.join_next().await.is_some() {}
        });
    }
    tokio::time::sleep_until(start + plan.duration / 2).await;
    let backlog_mid = counts.in_flight.load(Ordering::Relaxed);
    tokio::time::sleep_until(deadline).await;
    let backlog_end = counts.in_flight.load(Ordering::Relaxed);
    let drained = tokio::time::timeout(plan.drain, async {
        while users.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        cancel.cancel();
        while users.join_next().await.is_some() {}
    }
    let seconds = plan.duration.as_secs_f64();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let h = match Arc::try_unwrap(hists) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(shared) => {
            let g = shared.lock().unwrap_or_else(|p| p.into_inner());
            Hists {
                latency: g.latency.clone(),
                service: g.service.clone(),
                second: g.second.clone(),
            }
        }
    };
    Figures {
        plan,
        offered: load(&counts.scheduled) as f64 / seconds,
        achieved: load(&counts.by_deadline) as f64 / seconds,
        ok: load(&counts.ok),
        refused: load(&counts.refused),
        failed: load(&counts.failed),
        unfinished: load(&counts.unfinished),
        dropped: load(&counts.dropped),
        backlog_mid,
        backlog_end,
        latency: h.latency,
        service: h.service,
        second: h.second,
    }
}

fn record(
    counts: &Counts,
    hists: &Mutex<Hists>,
    deadline: Instant,
    due: Instant,
    sent: Instant,
    s: Sample,
) {
    let c = match s.outcome {
        Outcome::Ok => &counts.ok,
        Outcome::Refused => &counts.refused,
        Outcome::Failed => &counts.failed,
    };
    c.fetch_add(1, Ordering::Relaxed);
    if s.end <= deadline {
        counts.by_deadline.fetch_add(1, Ordering::Relaxed);
    }
    let mut h = hists.lock().unwrap_or_else(|p| p.into_inner());
    let _ = h
        .latency
        .record(micros(s.end.saturating_duration_since(due)));
    let _ = h
        .service
        .record(micros(s.end.saturating_duration_since(sent)));
    if let Some(d) = s.second {
        let _ = h.second.record(micros(d));
    }
}

fn unfinished(counts: &Counts, hists: &Mutex<Hists>, due: Instant) {
    counts.unfinished.fetch_add(1, Ordering::Relaxed);
    let age = micros(due.elapsed());
    let mut h = hists.lock().unwrap_or_else(|p| p.into_inner());
    let _ = h.latency.record(age);
    let _ = h.service.record(age);
}

/// The header of a table of [`row`]s.
pub fn header(first: &str) -> String {
    format!(
        "| {first} | offered/s | achieved/s | kept up | p50 ms | p99 ms | max ms | p99 from send ms \
         | backlog mid→end | ok / refused / failed / unfinished / dropped |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    )
}

/// One table row for `f`.
pub fn row(name: &str, f: &Figures) -> String {
    let offered = if f.plan.is_open() {
        format!("{:.0}", f.offered)
    } else {
        format!("closed loop, {} users", f.plan.users)
    };
    let backlog = if f.plan.is_open() {
        format!("{}→{}", f.backlog_mid, f.backlog_end)
    } else {
        "—".to_owned()
    };
    format!(
        "| {name} | {offered} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {:.2} | {backlog} | {} |",
        f.achieved,
        f.kept_up_cell(),
        f.ms(0.5),
        f.ms(0.99),
        f.latency.max() as f64 / 1000.0,
        f.service_ms(0.99),
        f.counts_cell(),
    )
}

/// The load averages (1, 5, 15 min) from `/proc/loadavg`, or "?" where there is none.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    //! On paused time: the clock only moves when every task waits, so these are exact.

    use std::sync::Arc;

    use super::*;

    /// A server that serves one request at a time in `each`.
    fn serial(
        each: Duration,
    ) -> impl Fn(Shot) -> futures::future::BoxFuture<'static, Sample> + Clone {
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        move |_| {
            let lock = lock.clone();
            Box::pin(async move {
                let _one = lock.lock().await;
                tokio::time::sleep(each).await;
                Sample::now(Outcome::Ok)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_keeps_up_shows_its_service_time() {
        // 100/s offered, 5 ms each: capacity 200/s.
        let f = run(Plan::open(100.0, 10, 2.0), serial(Duration::from_millis(5))).await;
        assert!(f.kept_up(), "achieved {} of {}", f.achieved, f.offered);
        assert!((99.0..=101.0).contains(&f.offered), "offered {}", f.offered);
        assert!(f.achieved >= 98.0, "achieved {}", f.achieved);
        // Random phases can line all 10 users up: at worst one waits for 9 others, 50 ms.
        assert!(f.ms(0.99) <= 50.5, "p99 {}", f.ms(0.99));
        assert_eq!((f.failed, f.unfinished, f.dropped), (0, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_server_does_not_lower_the_offered_load_and_its_wait_shows() {
        // 100/s offered, 20 ms each: capacity 50/s, so the queue grows by 50 a second.
        let f = run(
            Plan::open(100.0, 10, 2.0),
            serial(Duration::from_millis(20)),
        )
        .await;
        assert!(!f.kept_up());
        assert_eq!(f.kept_up_cell(), "**no**");
        // Offered stays at the schedule's rate; achieved is the server's capacity.
        assert!((99.0..=101.0).contains(&f.offered), "offered {}", f.offered);
        assert!(
            (45.0..=55.0).contains(&f.achieved),
            "achieved {}",
            f.achieved
        );
        assert!(
            f.backlog_end > f.backlog_mid + 20,
            "{}→{}",
            f.backlog_mid,
            f.backlog_end
        );
        // Latency from the intended send time includes the queue (the last of the 200 waits
        // about 2 s); a closed-loop view of the same server would have said 20 ms × 10 users.
        assert!(f.ms(0.99) > 1_500.0, "p99 {}", f.ms(0.99));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_counts_only_what_completed_by_the_deadline() {
        // 10 users, 100 ms each, 1 s: 100 completions by the deadline; the 10 sent at 1 s - ε
        // that end after it are not counted in the rate.
        let attempt = |_: Shot| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Sample::now(Outcome::Ok)
        };
        let f = run(Plan::closed(10, 1.05), attempt).await;
        assert!(
            (f.achieved * 1.05 - 100.0).abs() < 0.5,
            "achieved {}",
            f.achieved
        );
        assert_eq!(f.ok, 110, "the ones in flight at the deadline were awaited");
    }
}
