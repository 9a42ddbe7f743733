//! A payment gateway sandbox that speaks the subset of the Toss Payments API (v1) Boxoffice uses,
//! as Toss documents it publicly, so the payment service can be pointed at it or at the real
//! `https://api.tosspayments.com` by configuration alone.
//!
//! The buyer's side:
//! - `GET /checkout?orderId&amount&orderName&successUrl&failUrl` — the hosted checkout page (card
//!   or easy pay; approve, decline or cancel). It sends the browser to `successUrl` with
//!   `paymentKey`, `orderId`, `amount` (the payment is then `READY`, waiting for the confirm) or
//!   to `failUrl` with `code`, `message`, `orderId`. Add `auto=approved|declined` to skip the
//!   page. Browsers are sent only to origins in [`Options::redirect_origins`] (scheme, host and
//!   port compared exactly); anything else is a 400 page, never a redirect.
//! - `POST /v1/sandbox/checkouts {"orderId", "amount", "outcome": "approved"|"declined",
//!   "method"?: "card"|"easypay", "orderName"?}` — the same for automated buyers, no key needed:
//!   approved → 200 `{"paymentKey", "orderId", "amount"}`; declined → 403
//!   `{"code": "REJECT_CARD_COMPANY", "message", "orderId"}` (what the fail redirect carries).
//!
//! The merchant's side, with `Authorization: Basic base64(<secret key> + ":")` (see
//! [`basic_auth`]; a missing or unknown key is 401 `UNAUTHORIZED_KEY`):
//! - `POST /v1/payments/confirm {paymentKey, orderId, amount}` → the `DONE` Payment object. The
//!   amount and order must be the checkout's (else 400 `INVALID_REQUEST`, nothing charged and the
//!   payment stays `READY`); after [`Options::confirm_window`] (10 minutes) the payment is
//!   `EXPIRED` and the confirm 404 `NOT_FOUND_PAYMENT_SESSION`; a second confirm is 400
//!   `ALREADY_PROCESSED_PAYMENT`; an unknown paymentKey 404 `NOT_FOUND_PAYMENT_SESSION`.
//! - `GET /v1/payments/{paymentKey}`, `GET /v1/payments/orders/{orderId}` (the order's latest
//!   payment) → the Payment object, or 404 `NOT_FOUND_PAYMENT`.
//! - `POST /v1/payments/{paymentKey}/cancel {cancelReason, cancelAmount?}` — full (no amount) or
//!   partial: `balanceAmount` drops, `cancels[]` grows, the status is `PARTIAL_CANCELED` until
//!   the balance is 0 (`CANCELED`). More than the balance is 400 `NOT_CANCELABLE_AMOUNT`; a
//!   cancelled payment 400 `ALREADY_CANCELED_PAYMENT`; one never approved 403
//!   `NOT_CANCELABLE_PAYMENT`.
//!
//! Confirm and cancel take an `Idempotency-Key` (at most 300 characters; keys are per secret key
//! and kept for [`Options::idempotency_ttl`]): the same key with the same body answers the stored
//! response (same status and body); while the first call is in flight 409
//! `IDEMPOTENT_REQUEST_PROCESSING`; with another body 422 `IDEMPOTENCY_KEY_REUSED`. 5xx answers
//! and `PROVIDER_ERROR` are not stored (a retry with the key tries again); everything else is.
//! Both run to their end even when the caller hangs up, as a real PG does: a caller's timeout
//! never undoes a confirm.
//!
//! A `READY` payment past its window turns `EXPIRED` when it is next touched (a lookup, a
//! confirm, a cancel), which is also when its `EXPIRED` webhook is sent; there is no sweeper.
//!
//! Webhooks (see [`webhook`]): each status change (`DONE`, `ABORTED`, `EXPIRED`,
//! `PARTIAL_CANCELED`, `CANCELED`) is POSTed as `{"eventType": "PAYMENT_STATUS_CHANGED",
//! "createdAt", "data": <Payment>}` to [`Options::webhooks`]' URL, retried with backoff until
//! answered 200. **Like Toss, the sandbox does not sign these**: a receiver must treat one as a
//! hint and re-read the payment with `GET /v1/payments/{paymentKey}` (authenticated with its own
//! secret key) before acting; duplicates and out-of-order events happen.
//!
//! Faults ([`fault`]): `X-Sandbox-Fault: decline, timeout, error, provider_error, slow,
//! timeout_after_apply, duplicate_webhook, reorder_webhook, wrong_amount, wrong_order,
//! unauthorized, latency=<ms>` on one call (`wrong_*`: the call is applied but its answer names
//! another `totalAmount` or `orderId`, a PG a merchant must not trust blindly; `unauthorized`: 401
//! `UNAUTHORIZED_KEY`, nothing changes); queued for
//! the next matching calls with `POST /v1/sandbox/faults {"fault", "orderId"?, "operation"?:
//! "confirm"|"cancel"|"lookup", "count"?}` (authenticated; `DELETE` clears) or
//! [`Control::inject`]; at random with [`Options::rates`]. Every merchant call waits
//! [`Options::latency`] (plus up to [`Options::jitter`]). `POST /v1/sandbox/clock
//! {"advanceSeconds"}` (authenticated) moves the PG's clock forward.
//!
//! All state is in memory and capped ([`Options::max_payments`],
//! [`Options::max_idempotency_keys`]). Bad input is a 4xx `{code, message}` — Toss's error
//! shape, which the client of the real API parses — never a 500 unless a fault asks for one.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let pg = fakes::pg::spawn(fakes::pg::Options::default()).await?;
//! let client = reqwest::Client::new();
//! let checkout: serde_json::Value = client
//!     .post(pg.url("/v1/sandbox/checkouts"))
//!     .json(&serde_json::json!({"orderId": "order-0001", "amount": 15000, "outcome": "approved"}))
//!     .send().await.unwrap().json().await.unwrap();
//! let done: serde_json::Value = client
//!     .post(pg.url("/v1/payments/confirm"))
//!     .header("Authorization", fakes::pg::basic_auth(fakes::pg::SANDBOX_SECRET_KEY))
//!     .json(&checkout)
//!     .send().await.unwrap().json().await.unwrap();
//! assert_eq!(done["status"], "DONE");
//! # Ok(()) }
//! ```

mod api;
mod checkout;
mod clock;
mod error;
pub mod fault;
mod model;
mod store;
pub mod webhook;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Deserializer};

pub use self::{
    clock::Clock,
    error::PgError,
    fault::{Fault, Operation, Rates, Rule},
    model::Status,
    webhook::WebhookOptions,
};
use self::{
    fault::Rules,
    store::{Idempotency, Payments},
    webhook::Webhooks,
};

/// The secret key the sandbox accepts by default (a test key, as Toss's `test_sk_…`).
pub const SANDBOX_SECRET_KEY: &str = "test_sk_boxoffice_sandbox";

/// The `Authorization` header value for `secret_key`: `Basic base64(secret_key + ":")`.
pub fn basic_auth(secret_key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{secret_key}:")))
}

/// How the sandbox PG is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Secret keys that authenticate merchants ([`SANDBOX_SECRET_KEY`] by default).
    pub secret_keys: Vec<String>,
    /// Origins (`https://tickets.example.kr`, `http://localhost:8080`) the checkout page may
    /// send browsers back to. Empty: the page redirects nowhere.
    pub redirect_origins: Vec<String>,
    /// Webhook delivery.
    pub webhooks: WebhookOptions,
    /// How long a `READY` payment may wait for its confirm before it is `EXPIRED` (Toss: 10
    /// minutes).
    pub confirm_window: Duration,
    /// Latency of every merchant call.
    pub latency: Duration,
    /// Up to this much more latency, at random.
    pub jitter: Duration,
    /// How late the `slow` fault answers.
    pub slow: Duration,
    /// How long the `timeout` faults hang (past any sensible caller timeout).
    pub hang: Duration,
    /// Faults at random.
    pub rates: Rates,
    /// Most payments kept (the oldest is forgotten).
    pub max_payments: usize,
    /// Most idempotency keys kept (the oldest is forgotten).
    pub max_idempotency_keys: usize,
    /// How long an idempotency key is kept (Toss: 15 days).
    pub idempotency_ttl: Duration,
    /// Most queued fault rules.
    pub max_fault_rules: usize,
    /// The PG's clock (share one to move time in tests).
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            secret_keys: vec![SANDBOX_SECRET_KEY.to_owned()],
            redirect_origins: Vec::new(),
            webhooks: WebhookOptions::default(),
            confirm_window: Duration::from_secs(600),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            slow: Duration::from_secs(3),
            hang: Duration::from_secs(30),
            rates: Rates::default(),
            max_payments: 100_000,
            max_idempotency_keys: 100_000,
            idempotency_ttl: Duration::from_secs(6 * 3600),
            max_fault_rules: 1_000,
            clock: Clock::new(),
        }
    }
}

/// Settings of the sandbox PG (`fakes.pg.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Secret keys besides [`SANDBOX_SECRET_KEY`]: a list or one comma-separated string (env
    /// `BOXOFFICE_FAKES__PG__SECRET_KEYS`).
    #[serde(deserialize_with = "list_or_csv")]
    pub secret_keys: Vec<String>,
    /// Origins the checkout may redirect to besides the platform's public URL's.
    #[serde(deserialize_with = "list_or_csv")]
    pub redirect_origins: Vec<String>,
    /// Where webhooks go (none by default).
    pub webhook_url: Option<String>,
    /// Webhook attempts per event, the first included.
    pub webhook_attempts: u32,
    /// The first retry's wait, in milliseconds (it doubles).
    pub webhook_backoff_ms: u64,
    /// Latency of every merchant call, in milliseconds.
    pub latency_ms: u64,
    /// Up to this much more, at random.
    pub jitter_ms: u64,
    /// How late `slow` answers.
    pub slow_ms: u64,
    /// How long the timeout faults hang.
    pub hang_ms: u64,
    /// How long a `READY` payment waits for its confirm, in seconds.
    pub confirm_window_secs: u64,
    /// Fault rates (`fakes.pg.rates.decline = 0.05`, ...).
    pub rates: Rates,
}

impl Default for Settings {
    fn default() -> Self {
        let o = Options::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            secret_keys: Vec::new(),
            redirect_origins: Vec::new(),
            webhook_url: None,
            webhook_attempts: o.webhooks.attempts,
            webhook_backoff_ms: ms(o.webhooks.backoff),
            latency_ms: 0,
            jitter_ms: 0,
            slow_ms: ms(o.slow),
            hang_ms: ms(o.hang),
            confirm_window_secs: o.confirm_window.as_secs(),
            rates: Rates::default(),
        }
    }
}

impl Settings {
    /// The options these settings describe, redirecting also to `origins` (the platform's own).
    pub fn options(&self, origins: impl IntoIterator<Item = String>) -> Options {
        let mut o = Options::default();
        o.secret_keys.extend(self.secret_keys.iter().cloned());
        o.redirect_origins = origins.into_iter().collect();
        o.redirect_origins
            .extend(self.redirect_origins.iter().cloned());
        o.webhooks.url = self.webhook_url.clone().filter(|u| !u.trim().is_empty());
        o.webhooks.attempts = self.webhook_attempts.max(1);
        o.webhooks.backoff = Duration::from_millis(self.webhook_backoff_ms);
        o.latency = Duration::from_millis(self.latency_ms);
        o.jitter = Duration::from_millis(self.jitter_ms);
        o.slow = Duration::from_millis(self.slow_ms);
        o.hang = Duration::from_millis(self.hang_ms);
        o.confirm_window = Duration::from_secs(self.confirm_window_secs);
        o.rates = self.rates;
        o
    }
}

fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The origin (`scheme://host[:port]`, lower case) of an http(s) URL, if it is one that is safe
/// to send a browser to: no user info, no backslash, no control character or space.
pub fn origin_of(url: &str) -> Option<String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) || url.contains('\\') {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// The PG's state, shared by its handlers.
pub(crate) struct Pg {
    pub(crate) options: Options,
    pub(crate) payments: Mutex<Payments>,
    pub(crate) idempotency: Mutex<Idempotency>,
    pub(crate) rules: Mutex<Rules>,
    pub(crate) webhooks: Arc<Webhooks>,
    /// The allowed origins, normalized.
    pub(crate) origins: Vec<String>,
}

pub(crate) type Shared = Arc<Pg>;

impl Pg {
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.options.clock.now()
    }

    pub(crate) fn lock_payments(&self) -> std::sync::MutexGuard<'_, Payments> {
        self.payments.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A random key of Toss's shape (alphanumeric).
pub(crate) fn random_key(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A handle on a running sandbox PG for tests: its clock, its fault queue, its payments.
#[derive(Clone)]
pub struct Control {
    pg: Shared,
}

impl Control {
    /// The PG's clock.
    pub fn clock(&self) -> &Clock {
        &self.pg.options.clock
    }

    /// Queues a fault for the next matching calls; false when the queue is full.
    pub fn inject(&self, rule: Rule) -> bool {
        self.pg
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule)
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.pg
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The Payment object of `payment_key`, as `GET /v1/payments/{paymentKey}` would answer.
    pub fn payment(&self, payment_key: &str) -> Option<serde_json::Value> {
        self.pg
            .lock_payments()
            .get_mut(payment_key)
            .map(|p| p.to_json())
    }

    /// Idempotency keys whose first request is still being processed.
    pub fn in_flight(&self) -> usize {
        self.pg
            .idempotency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight()
    }

    /// Webhook events answered 200 so far.
    pub fn webhooks_delivered(&self) -> u64 {
        self.pg.webhooks.delivered()
    }
}

fn state(options: Options) -> Shared {
    let origins = options
        .redirect_origins
        .iter()
        .filter_map(|o| origin_of(o))
        .collect();
    Arc::new(Pg {
        payments: Mutex::new(Payments::new(options.max_payments)),
        idempotency: Mutex::new(Idempotency::new(
            options.max_idempotency_keys,
            options.idempotency_ttl,
        )),
        rules: Mutex::new(Rules::new(options.max_fault_rules)),
        webhooks: Webhooks::new(options.webhooks.clone()),
        origins,
        options,
    })
}

/// The PG's routes, rooted at `/`.
pub fn router(options: Options) -> Router {
    sandbox(options).0
}

/// The PG's routes and a handle on its state.
pub fn sandbox(options: Options) -> (Router, Control) {
    let pg = state(options);
    let router = Router::new()
        .route("/checkout", get(checkout::page).post(checkout::decide))
        .route("/v1/sandbox/checkouts", post(api::sandbox_checkout))
        .route(
            "/v1/sandbox/faults",
            post(api::add_fault).delete(api::clear_faults),
        )
        .route("/v1/sandbox/clock", post(api::advance_clock))
        .route("/v1/payments/confirm", post(api::confirm))
        .route("/v1/payments/orders/{order_id}", get(api::by_order))
        .route("/v1/payments/{payment_key}", get(api::by_key))
        .route("/v1/payments/{payment_key}/cancel", post(api::cancel))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(Arc::clone(&pg));
    (router, Control { pg })
}

/// A sandbox PG serving on a free port of 127.0.0.1 until dropped.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Its state.
    pub control: Control,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a sandbox PG on a free port of 127.0.0.1 (for tests of the services that call it).
pub async fn spawn(options: Options) -> std::io::Result<Running> {
    let (router, control) = sandbox(options);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "sandbox PG stopped");
        }
    });
    Ok(Running {
        base_url: format!("http://{addr}"),
        addr,
        control,
        stop: Some(stop),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_and_refuse_tricks() {
        assert_eq!(
            origin_of("https://Tickets.example.kr/pay/ok?x=1").as_deref(),
            Some("https://tickets.example.kr")
        );
        assert_eq!(
            origin_of("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        for bad in [
            "javascript:alert(1)",
            "//evil.example/x",
            "https://good.example@evil.example/",
            "https://evil.example\\@good.example/",
            "https://good.example/\r\nSet-Cookie: x=1",
            "ftp://good.example/",
            "https:///path",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_come_from_lists_or_csv_and_make_options() {
        let s: Settings = serde_json::from_value(serde_json::json!({
            "secret_keys": "test_sk_a, test_sk_b",
            "redirect_origins": ["https://x.example"],
            "latency_ms": 300,
            "confirm_window_secs": 5,
            "rates": {"decline": 0.1}
        }))
        .unwrap();
        let o = s.options(["http://localhost:8080".to_owned()]);
        assert_eq!(
            o.secret_keys,
            [SANDBOX_SECRET_KEY, "test_sk_a", "test_sk_b"]
        );
        assert_eq!(
            o.redirect_origins,
            ["http://localhost:8080", "https://x.example"]
        );
        assert_eq!(o.latency, Duration::from_millis(300));
        assert_eq!(o.confirm_window, Duration::from_secs(5));
        assert_eq!(o.rates.decline, 0.1);
        assert!(o.webhooks.url.is_none());
        assert!(serde_json::from_value::<Settings>(serde_json::json!({"nope": 1})).is_err());
    }

    #[test]
    fn the_fakes_settings_have_a_pg_section_and_the_pg_is_registered() {
        let c: crate::Config = serde_json::from_value(serde_json::json!({
            "pg": {"webhook_url": "http://localhost:8080/hook", "rates": {"timeout": 0.01}}
        }))
        .unwrap();
        assert_eq!(
            c.pg.options([]).webhooks.url.as_deref(),
            Some("http://localhost:8080/hook")
        );
        assert_eq!(c.pg.rates.timeout, 0.01);
        assert!(crate::NAMES.contains(&"pg"));
    }

    #[test]
    fn basic_auth_is_the_key_and_a_colon() {
        assert_eq!(basic_auth("test_sk_x"), "Basic dGVzdF9za194Og==");
    }
}
