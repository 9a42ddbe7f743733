//! Webhooks: every status change of a payment is POSTed to the configured URL as Toss does,
//! `{"eventType": "PAYMENT_STATUS_CHANGED", "createdAt", "data": <Payment>}`. A delivery counts
//! only when answered 200; otherwise it is retried with a doubling backoff, up to `attempts`
//! times in all. Deliveries run concurrently, so two events of one payment may arrive in any
//! order even without a fault; the faults make duplicates and reordering certain. At most
//! `max_pending` deliveries are under way at once; beyond that an event is dropped (and logged),
//! as a PG that gives up would.
//!
//! Toss does not sign `PAYMENT_STATUS_CHANGED` — neither does this sandbox: a receiver must not
//! trust the body, only take it as a hint and fetch `GET /v1/payments/{paymentKey}` with its
//! secret key.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Where events go; none: no webhooks.
    pub url: Option<String>,
    /// Attempts per event, the first included (Toss: 1 + 7 retries).
    pub attempts: u32,
    /// The wait before the first retry; it doubles each time, up to 64 times this.
    pub backoff: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Most deliveries under way at once.
    pub max_pending: usize,
    /// How long an event held back (reordering) waits for the payment's next one.
    pub reorder_flush: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            url: None,
            attempts: 8,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_pending: 10_000,
            reorder_flush: Duration::from_secs(5),
        }
    }
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Event {
    id: u64,
    payment_key: String,
    body: Value,
}

/// The webhook sender.
pub struct Webhooks {
    options: WebhookOptions,
    client: reqwest::Client,
    pending: Arc<AtomicUsize>,
    next: AtomicU64,
    /// Events held back for reordering, per paymentKey.
    held: Mutex<HashMap<String, Event>>,
    delivered: AtomicU64,
}

struct PendingGuard(Arc<AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Webhooks {
    pub fn new(options: WebhookOptions) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            options,
            client,
            pending: Arc::new(AtomicUsize::new(0)),
            next: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            delivered: AtomicU64::new(0),
        })
    }

    /// Events answered 200 so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }

    /// Sends the status change of `payment` (its Payment object) at `created_at`; `duplicate`
    /// delivers it twice, `reorder` holds it back until the payment's next event.
    pub fn status_changed(
        self: &Arc<Self>,
        payment_key: &str,
        payment: Value,
        created_at: String,
        duplicate: bool,
        reorder: bool,
    ) {
        if self.options.url.is_none() {
            return;
        }
        let event = Event {
            id: self.next.fetch_add(1, Ordering::SeqCst),
            payment_key: payment_key.to_owned(),
            body: json!({
                "eventType": "PAYMENT_STATUS_CHANGED",
                "createdAt": created_at,
                "data": payment,
            }),
        };
        let mut batch = vec![event.clone()];
        if duplicate {
            batch.push(event.clone());
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let earlier = held.remove(payment_key);
        // Holding back is bounded like the deliveries: past the cap, events go in order.
        if reorder && held.len() < self.options.max_pending {
            held.insert(payment_key.to_owned(), event.clone());
            drop(held);
            if let Some(e) = earlier {
                self.deliver(vec![e]);
            }
            self.flush_later(event.payment_key.clone(), event.id);
            if duplicate {
                self.deliver(vec![event]);
            }
            return;
        }
        drop(held);
        // The event held back goes after this one.
        batch.extend(earlier);
        self.deliver(batch);
    }

    /// Delivers a held event if nothing came after it in time.
    fn flush_later(self: &Arc<Self>, payment_key: String, id: u64) {
        let this = Arc::clone(self);
        let wait = self.options.reorder_flush;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let event = {
                let mut held = this.held.lock().unwrap_or_else(|e| e.into_inner());
                match held.get(&payment_key) {
                    Some(e) if e.id == id => held.remove(&payment_key),
                    _ => None,
                }
            };
            if let Some(e) = event {
                this.deliver(vec![e]);
            }
        });
    }

    /// Delivers `events` one after the other, each with its retries, in one task.
    fn deliver(self: &Arc<Self>, events: Vec<Event>) {
        let Some(url) = self.options.url.clone() else {
            return;
        };
        if self.pending.fetch_add(1, Ordering::SeqCst) >= self.options.max_pending {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                count = events.len(),
                "sandbox PG: too many webhook deliveries under way; events dropped"
            );
            return;
        }
        let guard = PendingGuard(Arc::clone(&self.pending));
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = guard;
            for event in events {
                this.deliver_one(&url, &event).await;
            }
        });
    }

    async fn deliver_one(&self, url: &str, event: &Event) {
        let mut wait = self.options.backoff;
        let cap = self.options.backoff.saturating_mul(64);
        for attempt in 1..=self.options.attempts.max(1) {
            let sent = self.client.post(url).json(&event.body).send().await;
            match sent {
                Ok(r) if r.status() == reqwest::StatusCode::OK => {
                    self.delivered.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(r) => {
                    tracing::debug!(status = %r.status(), attempt, "sandbox PG: webhook refused")
                }
                Err(e) => tracing::debug!(error = %e, attempt, "sandbox PG: webhook not delivered"),
            }
            if attempt < self.options.attempts {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2).min(cap);
            }
        }
        tracing::warn!(
            payment_key = %event.payment_key,
            attempts = self.options.attempts,
            "sandbox PG: webhook given up"
        );
    }
}
