//! Waiting, inside a request, for another transaction to commit something: a PostgreSQL
//! `LISTEN` on one channel whose `NOTIFY` payload names a key (an order id, say), and the
//! requests waiting on each key.
//!
//! A writer calls [`notify`] (or puts `pg_notify(channel, key)` in a statement of its own) in
//! the transaction that makes the change, so the notification is delivered when, and only if,
//! it commits, to every replica listening. A reader
//! [`Wakeups::subscribe`]s *before* it checks the database for the change (a commit between its
//! check and its subscription would otherwise go unseen), checks, and when the change is not
//! there yet waits on the [`Subscription`] with a timeout of its own. Nothing depends on the
//! notification arriving: a lost connection, a notification sent while the listener reconnects,
//! or a listener that cannot start at all only make a reader wait out its timeout and look
//! again, as it would without this.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{PgConnection, PgPool, postgres::PgListener};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::bus::Backoff;

type Waiting = HashMap<String, Vec<(u64, oneshot::Sender<()>)>>;

/// The requests of this process waiting on keys of one channel.
#[derive(Clone)]
pub struct Wakeups {
    channel: &'static str,
    waiting: Arc<Mutex<Waiting>>,
    next: Arc<AtomicU64>,
}

/// One request's wait for a key, registered until it is dropped.
pub struct Subscription {
    key: String,
    id: u64,
    waiting: Arc<Mutex<Waiting>>,
    woken: oneshot::Receiver<()>,
}

impl Subscription {
    /// Waits until the key is notified or `timeout` passes; true when it was notified.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, &mut self.woken).await,
            Ok(Ok(()))
        )
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        if let Some(list) = waiting.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                waiting.remove(&self.key);
            }
        }
    }
}

/// Sends `key` on `channel` when the transaction `tx` commits.
pub async fn notify(tx: &mut PgConnection, channel: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(key)
        .execute(tx)
        .await
        .map(|_| ())
}

impl Wakeups {
    /// Listens on `channel` of `pool`'s database until `shutdown` (the task), reconnecting
    /// after a failure.
    pub fn spawn(
        pool: PgPool,
        channel: &'static str,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let wakeups = Self {
            channel,
            waiting: Arc::default(),
            next: Arc::default(),
        };
        let this = wakeups.clone();
        let task = tokio::spawn(async move { this.run(pool, shutdown).await });
        (wakeups, task)
    }

    /// Registers a wait for `key`.
    pub fn subscribe(&self, key: &str) -> Subscription {
        let (tx, woken) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.entry(key.to_owned()).or_default().push((id, tx));
        }
        Subscription {
            key: key.to_owned(),
            id,
            waiting: self.waiting.clone(),
            woken,
        }
    }

    /// Requests waiting now (for metrics and tests).
    pub fn waiting(&self) -> usize {
        self.waiting
            .lock()
            .map(|w| w.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    fn wake(&self, key: &str) {
        let list = self.waiting.lock().ok().and_then(|mut w| w.remove(key));
        for (_, tx) in list.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    async fn run(self, pool: PgPool, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            let attempt = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(self.channel).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                () = shutdown.cancelled() => return,
                l = attempt => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(channel = self.channel, error = %e, "cannot LISTEN; waits run to their timeouts");
                        if !backoff.wait(&shutdown).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            backoff.reset();
            loop {
                let received = tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = listener.try_recv() => r,
                };
                match received {
                    Ok(Some(n)) => self.wake(n.payload()),
                    // The connection was lost and is back: what was sent meanwhile is gone, so
                    // every waiter looks again now rather than at its timeout.
                    Ok(None) => self.wake_all(),
                    Err(e) => {
                        tracing::warn!(channel = self.channel, error = %e, "LISTEN failed; reconnecting");
                        self.wake_all();
                        break;
                    }
                }
            }
        }
    }

    fn wake_all(&self) {
        let all = self
            .waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for (_, tx) in all.into_values().flatten() {
            let _ = tx.send(());
        }
    }
}
