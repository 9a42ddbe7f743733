//! Supervised background tasks. A task spawned and forgotten dies silently; here every task of a
//! service is watched: `/readyz` shows each by name (`task:<name>`) and is 503 while one is dead,
//! a task started with [`supervise`] is restarted with a capped backoff when it panics or ends
//! before shutdown, and at shutdown all of a service's tasks are joined together within one
//! budget, the stragglers aborted.
//!
//! [`Service::tasks`](super::Service::tasks) are plain `JoinHandle`s; a handle made by
//! [`supervise`] carries its name and health (kept in a registry by task id), any other handle is
//! watched under its position (`task:#2`) and reported dead, not restarted, when it ends.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::http::Readiness;

/// First pause before a dead task is restarted; it doubles per death up to [`RESTART_MAX`].
const RESTART_FIRST: Duration = Duration::from_millis(500);
/// Longest pause before a restart.
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A task that ran this long before dying starts its backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How a watched task is doing.
#[derive(Debug, Clone)]
enum State {
    /// Running.
    Running,
    /// Died with `error`; restarted after the backoff.
    Restarting { error: String, restarts: u32 },
    /// Ended for good: at shutdown, or killed, or (not supervised) on its own.
    Stopped(String),
}

/// One task's name and state, shared by the task's supervisor and whoever watches it.
#[derive(Debug)]
struct Health {
    name: String,
    state: Mutex<State>,
}

impl Health {
    fn new(name: String) -> Arc<Self> {
        Arc::new(Self {
            name,
            state: Mutex::new(State::Running),
        })
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    fn get(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Marks the task stopped with `why`, unless it already says why it stopped.
    fn stopped(&self, why: impl FnOnce() -> String) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, State::Stopped(_)) {
            *state = State::Stopped(why());
        }
    }

    /// The readiness verdict: up while running.
    fn verdict(&self) -> Result<(), String> {
        match self.get() {
            State::Running => Ok(()),
            State::Restarting { error, restarts } => Err(format!(
                "{error}; restarting (restart {restarts}) after a backoff"
            )),
            State::Stopped(why) => Err(why),
        }
    }
}

/// Supervised tasks by the id of their supervisor's task, until a [`Tasks`] takes them.
static SUPERVISED: LazyLock<Mutex<HashMap<tokio::task::Id, Arc<Health>>>> =
    LazyLock::new(Default::default);

fn registry() -> std::sync::MutexGuard<'static, HashMap<tokio::task::Id, Arc<Health>>> {
    SUPERVISED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Aborts the task when dropped (so killing a supervisor kills what it supervises).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs on the supervisor's task: leaves the registry, and says the task was killed if the
/// supervisor did not end normally (aborted, or panicked itself).
struct SupervisorGuard {
    health: Arc<Health>,
}

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        registry().remove(&tokio::task::id());
        self.health
            .stopped(|| "killed: its supervisor was aborted".to_owned());
    }
}

/// What a task's end says, as an error text.
fn death(outcome: Result<(), JoinError>) -> String {
    match outcome {
        Ok(()) => "ended before shutdown".to_owned(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text payload".to_owned());
            format!("panicked: {message}")
        }
        Err(_) => "killed (aborted)".to_owned(),
    }
}

/// Runs the task that `spawn` starts, named `name`, until `shutdown`: when it panics or ends
/// before shutdown it is logged, counted (`boxoffice_task_restarts_total{task}`), shown dead in
/// `/readyz`, and started again after a backoff (0.5 s doubling to 30 s; back to 0.5 s after a
/// minute of running). The returned handle is the supervisor's: put it in
/// [`Service::tasks`](super::Service::tasks); aborting it aborts the task too.
pub fn supervise<F>(
    name: impl Into<String>,
    shutdown: CancellationToken,
    mut spawn: F,
) -> JoinHandle<()>
where
    F: FnMut() -> JoinHandle<()> + Send + 'static,
{
    let health = Health::new(name.into());
    let (registered, wait_registered) = tokio::sync::oneshot::channel::<()>();
    let supervised = health.clone();
    let handle = tokio::spawn(async move {
        // The registry holds this task's id before the guard can remove it.
        let _ = wait_registered.await;
        let _guard = SupervisorGuard {
            health: supervised.clone(),
        };
        let name = supervised.name.clone();
        let mut backoff = RESTART_FIRST;
        let mut restarts = 0u32;
        loop {
            let started = Instant::now();
            let mut run = AbortOnDrop(spawn());
            let outcome = (&mut run.0).await;
            if shutdown.is_cancelled() {
                break;
            }
            let error = death(outcome);
            restarts += 1;
            if started.elapsed() >= STABLE_AFTER {
                backoff = RESTART_FIRST;
            }
            tracing::error!(
                task = %name, %error, restarts, retry_in_ms = backoff.as_millis() as u64,
                "background task died; restarting it"
            );
            metrics::counter!("boxoffice_task_restarts_total", "task" => name.clone()).increment(1);
            supervised.set(State::Restarting {
                error: format!("died: {error}"),
                restarts,
            });
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RESTART_MAX);
            supervised.set(State::Running);
        }
        supervised.set(State::Stopped("stopped at shutdown".to_owned()));
    });
    registry().insert(handle.id(), health);
    let _ = registered.send(());
    handle
}

/// One watched task: its check's name, its health and the watcher that awaits it.
struct Watched {
    name: String,
    health: Arc<Health>,
    watcher: JoinHandle<()>,
}

/// A service's background tasks, watched: one readiness check each, and one join at shutdown.
/// Dropping it leaves the tasks running (as dropping their handles would).
pub struct Tasks {
    watched: Vec<Watched>,
}

impl Tasks {
    /// Watches `handles` (a service's [`tasks`](super::Service::tasks)).
    pub fn watch(handles: Vec<JoinHandle<()>>) -> Self {
        let mut taken = registry();
        let mut seen: HashMap<String, u32> = HashMap::new();
        let watched = handles
            .into_iter()
            .enumerate()
            .map(|(i, handle)| {
                let health = taken
                    .remove(&handle.id())
                    .unwrap_or_else(|| Health::new(format!("#{}", i + 1)));
                let n = seen.entry(health.name.clone()).or_default();
                *n += 1;
                // Two tasks of one name: keep their checks apart.
                let name = match *n {
                    1 => health.name.clone(),
                    n => format!("{}#{n}", health.name),
                };
                let watched = health.clone();
                let watcher = tokio::spawn(async move {
                    let mut task = AbortOnDrop(handle);
                    let outcome = (&mut task.0).await;
                    if outcome.is_err() || !matches!(watched.get(), State::Stopped(_)) {
                        tracing::warn!(task = %watched.name, "background task ended");
                    }
                    watched.stopped(|| death(outcome));
                });
                Watched {
                    name,
                    health,
                    watcher,
                }
            })
            .collect();
        Self { watched }
    }

    /// The names of the watched tasks.
    pub fn names(&self) -> Vec<String> {
        self.watched.iter().map(|w| w.name.clone()).collect()
    }

    /// `readiness` with one check per task, `task:<name>`: down while the task is dead.
    pub fn readiness(&self, readiness: Readiness) -> Readiness {
        self.watched.iter().fold(readiness, |r, w| {
            let health = w.health.clone();
            r.check(format!("task:{}", w.name), move || {
                let verdict = health.verdict();
                async move { verdict }
            })
        })
    }

    /// Waits for every task to stop, all together, for at most `budget`; aborts the ones still
    /// running then. Returns their names.
    pub async fn join(self, budget: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut late = Vec::new();
        let waits = self.watched.into_iter().map(|w| async move {
            let mut watcher = AbortOnDrop(w.watcher);
            match tokio::time::timeout_at(deadline, &mut watcher.0).await {
                Ok(_) => None,
                // Dropping the watcher aborts it, and with it the task it owns.
                Err(_) => Some(w.name),
            }
        });
        for name in futures::future::join_all(waits).await.into_iter().flatten() {
            tracing::warn!(task = %name, ?budget, "background task did not stop in time; aborted");
            late.push(name);
        }
        late
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::Value;

    use super::*;

    async fn checks(tasks: &Tasks) -> (bool, serde_json::Map<String, Value>) {
        tasks.readiness(Readiness::default()).run().await
    }

    /// Polls `condition` every 10 ms for up to 10 s.
    async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition().await {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_supervised_task_that_dies_is_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let (counted, stop) = (runs.clone(), shutdown.clone());
        let handle = supervise("flaky", shutdown.clone(), move || {
            let (runs, stop) = (counted.clone(), stop.clone());
            tokio::spawn(async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("boom");
                }
                stop.cancelled().await;
            })
        });
        let tasks = Tasks::watch(vec![handle]);
        assert_eq!(tasks.names(), ["flaky"]);
        until("the restart", async || runs.load(Ordering::SeqCst) >= 2).await;
        let (ok, map) = checks(&tasks).await;
        assert!(ok, "{map:?}");
        assert_eq!(map["task:flaky"]["status"], "up");
        shutdown.cancel();
        assert!(tasks.join(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn a_task_that_keeps_dying_shows_down_with_its_error() {
        let shutdown = CancellationToken::new();
        let handle = supervise("doomed", shutdown.clone(), || {
            tokio::spawn(async { panic!("always") })
        });
        let tasks = Tasks::watch(vec![handle]);
        until("the task shows down", async || !checks(&tasks).await.0).await;
        let (_, map) = checks(&tasks).await;
        let error = map["task:doomed"]["error"].as_str().unwrap();
        assert!(error.contains("panicked: always"), "{error}");
        shutdown.cancel();
        assert!(tasks.join(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn unnamed_and_killed_tasks_show_down_and_stragglers_are_aborted() {
        let shutdown = CancellationToken::new();
        let ends = tokio::spawn(async {});
        let killed = supervise("relay", shutdown.clone(), || {
            tokio::spawn(std::future::pending())
        });
        let deaf = tokio::spawn(std::future::pending::<()>());
        let stop = shutdown.clone();
        let also_relay = supervise("relay", shutdown.clone(), move || {
            let stop = stop.clone();
            tokio::spawn(async move { stop.cancelled().await })
        });
        killed.abort();
        let tasks = Tasks::watch(vec![ends, killed, deaf, also_relay]);
        assert_eq!(tasks.names(), ["#1", "relay", "#3", "relay#2"]);
        until("both dead tasks show down", async || {
            let (_, map) = checks(&tasks).await;
            map["task:#1"]["status"] == "down" && map["task:relay"]["status"] == "down"
        })
        .await;
        let (ok, map) = checks(&tasks).await;
        assert!(!ok);
        assert_eq!(map["task:#1"]["error"], "ended before shutdown");
        assert!(
            map["task:relay"]["error"]
                .as_str()
                .unwrap()
                .starts_with("killed"),
            "{map:?}"
        );
        assert_eq!(map["task:#3"]["status"], "up");
        assert_eq!(map["task:relay#2"]["status"], "up");
        shutdown.cancel();
        // The unnamed pending task ignores shutdown: it is aborted when the budget runs out.
        let late = tasks.join(Duration::from_millis(200)).await;
        assert_eq!(late, ["#3"]);
    }
}
