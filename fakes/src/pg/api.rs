//! The PG's JSON API: the merchant's calls (authenticated with the secret key), the sandbox
//! checkout for automated buyers, and the sandbox's own controls (faults, clock).

use std::{future::Future, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Shared,
    error::PgError,
    fault::{Fault, Faults, Operation, Rule},
    model::{Method, Payment, kst},
    random_key,
    store::{Begin, Stored},
};

/// The header that asks for faults on one call.
pub const FAULT_HEADER: &str = "x-sandbox-fault";
const MAX_AMOUNT: i64 = 10_000_000_000;

/// What a call answers, and whether a retry with its idempotency key gets it again.
pub(crate) struct Reply {
    status: StatusCode,
    body: Value,
    store: bool,
    /// The answer is stored, then the reply waits `hang` (a timeout after the money moved).
    hang_after: bool,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            store: true,
            hang_after: false,
        }
    }

    fn error(e: &PgError) -> Self {
        let (status, code, message) = e.parts();
        Self {
            status,
            body: json!({"code": code, "message": message}),
            // A retry should try again after a 5xx or Toss's retryable error; an unauthenticated
            // call (the `unauthorized` fault) was never the merchant's.
            store: !status.is_server_error()
                && code != "PROVIDER_ERROR"
                && status != StatusCode::UNAUTHORIZED,
            hang_after: false,
        }
    }

    fn into_parts(self) -> (StatusCode, Bytes) {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        (self.status, Bytes::from(body))
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (status, body) = self.into_parts();
        json_response(status, body)
    }
}

/// The merchant behind `Authorization: Basic base64(secret:)`: its secret key.
fn authenticate(pg: &Shared, headers: &HeaderMap) -> Result<String, PgError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(PgError::Unauthorized)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or(PgError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(PgError::Unauthorized);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| PgError::Unauthorized)?;
    let decoded = String::from_utf8(decoded).map_err(|_| PgError::Unauthorized)?;
    let (secret, _) = decoded.split_once(':').ok_or(PgError::Unauthorized)?;
    if secret.is_empty() || !pg.options.secret_keys.iter().any(|k| k == secret) {
        return Err(PgError::Unauthorized);
    }
    Ok(secret.to_owned())
}

fn header_faults(headers: &HeaderMap) -> Result<Faults, PgError> {
    match headers.get(FAULT_HEADER) {
        None => Ok(Faults::default()),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| PgError::Invalid("X-Sandbox-Fault is not text".into()))?;
            Faults::parse(v).map_err(PgError::Invalid)
        }
    }
}

/// The configured latency (with jitter) and the header's.
async fn wait_latency(pg: &Shared, faults: &Faults) {
    let jitter = pg.options.jitter.as_millis() as u64;
    let jitter = if jitter > 0 {
        Duration::from_millis(rand::rng().random_range(0..=jitter))
    } else {
        Duration::ZERO
    };
    let wait = pg.options.latency + jitter + faults.latency.unwrap_or_default();
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// The faults that fail a call before it touches anything; `None` to go on.
async fn fail_early(pg: &Shared, faults: &Faults) -> Option<Reply> {
    if faults.has(Fault::Slow) {
        tokio::time::sleep(pg.options.slow).await;
    }
    if faults.has(Fault::Timeout) {
        tokio::time::sleep(pg.options.hang).await;
        return Some(Reply::error(&PgError::Internal));
    }
    if faults.has(Fault::Unauthorized) {
        return Some(Reply::error(&PgError::Unauthorized));
    }
    if faults.has(Fault::Error) {
        return Some(Reply::error(&PgError::Internal));
    }
    if faults.has(Fault::ProviderError) {
        return Some(Reply::error(&PgError::ProviderError));
    }
    None
}

/// The call's faults: the header's, the queued rules that match, the configured rates.
fn faults_of(pg: &Shared, header: &Faults, operation: Operation, order_id: Option<&str>) -> Faults {
    let mut faults = header.clone();
    pg.rules
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(operation, order_id, &mut faults);
    pg.options.rates.draw(operation, &mut faults);
    faults
}

/// The Payment object `payment` as the `wrong_amount` / `wrong_order` faults garble it (the
/// PG's state is untouched: only this answer lies).
fn garble(mut payment: Value, faults: &Faults) -> Value {
    if faults.has(Fault::WrongAmount)
        && let Some(total) = payment["totalAmount"].as_i64()
    {
        payment["totalAmount"] = json!(total + 1_000);
    }
    if faults.has(Fault::WrongOrder)
        && let Some(order_id) = payment["orderId"].as_str()
    {
        payment["orderId"] = json!(format!("{order_id}-other"));
    }
    payment
}

/// Sends the webhooks of `changed` (Payment objects of one payment, in order).
fn notify(pg: &Shared, payment_key: &str, changed: Vec<Value>, faults: &Faults) {
    for payment in changed {
        pg.webhooks.status_changed(
            payment_key,
            payment,
            kst(pg.now()),
            faults.has(Fault::DuplicateWebhook),
            faults.has(Fault::ReorderWebhook),
        );
    }
}

/// Releases an idempotency key whose request ended without an answer (its future dropped).
struct Claim<'a> {
    pg: &'a Shared,
    scope: &'a str,
    key: String,
    seq: u64,
    done: bool,
}

impl Claim<'_> {
    fn finish(mut self, answer: Option<Stored>) {
        self.done = true;
        self.pg
            .idempotency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish(self.scope, &self.key, self.seq, answer);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pg
                .idempotency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .finish(self.scope, &self.key, self.seq, None);
        }
    }
}

fn fingerprint(route: &str, body: &Bytes) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update(b"\n");
    // The same JSON with other spacing or key order is the same request.
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => h.update(v.to_string().as_bytes()),
        Err(_) => h.update(body),
    }
    h.finalize().into()
}

/// Runs `run` at most once per (secret key, `Idempotency-Key`); without the header, always.
async fn idempotent(
    pg: &Shared,
    scope: &str,
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
    run: impl Future<Output = Reply>,
) -> Response {
    let Some(key) = headers.get("idempotency-key") else {
        return finish_reply(pg, run.await).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 300 && !k.chars().any(char::is_control) => k,
        _ => return PgError::BadIdempotencyKey.into_response(),
    };
    let begun = pg
        .idempotency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .begin(scope, key, fingerprint(route, body), pg.now());
    let seq = match begun {
        Begin::Fresh(seq) => seq,
        Begin::Replay(stored) => return json_response(stored.status, stored.body),
        Begin::InFlight => return PgError::IdempotentInFlight.into_response(),
        Begin::Mismatch => return PgError::IdempotentMismatch.into_response(),
    };
    let claim = Claim {
        pg,
        scope,
        key: key.to_owned(),
        seq,
        done: false,
    };
    let reply = run.await;
    let (store, hang_after) = (reply.store, reply.hang_after);
    let (status, bytes) = reply.into_parts();
    claim.finish(store.then(|| Stored {
        status,
        body: bytes.clone(),
    }));
    if hang_after {
        tokio::time::sleep(pg.options.hang).await;
    }
    json_response(status, bytes)
}

async fn finish_reply(pg: &Shared, reply: Reply) -> Response {
    if reply.hang_after {
        tokio::time::sleep(pg.options.hang).await;
    }
    reply.into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, PgError> {
    serde_json::from_slice(body)
        .map_err(|e| PgError::Invalid(format!("the body cannot be read: {e}")))
}

/// The merchant's common preamble: key, faults header, latency.
async fn preamble(pg: &Shared, headers: &HeaderMap) -> Result<(String, Faults), PgError> {
    let scope = authenticate(pg, headers)?;
    let faults = header_faults(headers)?;
    wait_latency(pg, &faults).await;
    Ok((scope, faults))
}

/// Runs a call that moves money to its end even when the caller hangs up (a timeout on the
/// caller's side does not stop a PG): the connection's future only waits for it.
async fn detached(call: impl Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(call)
        .await
        .unwrap_or_else(|_| PgError::Internal.into_response())
}

fn confirm_window(pg: &Shared) -> chrono::Duration {
    chrono::Duration::from_std(pg.options.confirm_window).unwrap_or(chrono::Duration::MAX)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmBody {
    payment_key: String,
    order_id: String,
    amount: i64,
}

/// `POST /v1/payments/confirm`.
pub(crate) async fn confirm(State(pg): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    detached(confirm_detached(pg, headers, body)).await
}

async fn confirm_detached(pg: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let (scope, header) = match preamble(&pg, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let run = async {
        let req: ConfirmBody = match parse(&body) {
            Ok(r) => r,
            Err(e) => return Reply::error(&e),
        };
        let faults = faults_of(&pg, &header, Operation::Confirm, Some(&req.order_id));
        if let Some(reply) = fail_early(&pg, &faults).await {
            return reply;
        }
        let now = pg.now();
        let mut changed = Vec::new();
        let result = {
            let mut payments = pg.lock_payments();
            match payments.get_mut(&req.payment_key) {
                None => Err(PgError::NoSession),
                Some(p) => {
                    if p.expire_if_due(now, confirm_window(&pg)) {
                        changed.push(p.to_json());
                    }
                    match p.check_confirm(&req.order_id, req.amount) {
                        Err(e) => Err(e),
                        Ok(()) if faults.has(Fault::Decline) => {
                            let (_, code, message) = PgError::Declined.parts();
                            p.abort(code, &message);
                            changed.push(p.to_json());
                            Err(PgError::Declined)
                        }
                        Ok(()) => {
                            p.approve(random_key(32), now);
                            changed.push(p.to_json());
                            Ok(p.to_json())
                        }
                    }
                }
            }
        };
        notify(&pg, &req.payment_key, changed, &faults);
        match result {
            Ok(payment) => Reply {
                hang_after: faults.has(Fault::TimeoutAfterApply),
                ..Reply::ok(garble(payment, &faults))
            },
            Err(e) => Reply::error(&e),
        }
    };
    idempotent(&pg, &scope, &headers, "confirm", &body, run).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody {
    cancel_reason: String,
    #[serde(default)]
    cancel_amount: Option<i64>,
}

/// `POST /v1/payments/{paymentKey}/cancel`.
pub(crate) async fn cancel(
    State(pg): State<Shared>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    detached(cancel_detached(pg, payment_key, headers, body)).await
}

async fn cancel_detached(
    pg: Shared,
    payment_key: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (scope, header) = match preamble(&pg, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let route = format!("cancel:{payment_key}");
    let run = async {
        let req: CancelBody = match parse(&body) {
            Ok(r) => r,
            Err(e) => return Reply::error(&e),
        };
        let reason = req.cancel_reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Reply::error(&PgError::Invalid(
                "cancelReason is required (at most 200 characters)".into(),
            ));
        }
        let order_id = pg
            .lock_payments()
            .get_mut(&payment_key)
            .map(|p| p.order_id.clone());
        let faults = faults_of(&pg, &header, Operation::Cancel, order_id.as_deref());
        if let Some(reply) = fail_early(&pg, &faults).await {
            return reply;
        }
        let now = pg.now();
        let mut changed = Vec::new();
        let result = {
            let mut payments = pg.lock_payments();
            match payments.get_mut(&payment_key) {
                None => Err(PgError::NotFound),
                Some(p) => {
                    if p.expire_if_due(now, confirm_window(&pg)) {
                        changed.push(p.to_json());
                    }
                    p.cancel(reason.to_owned(), req.cancel_amount, random_key(32), now)
                        .map(|()| {
                            changed.push(p.to_json());
                            p.to_json()
                        })
                }
            }
        };
        notify(&pg, &payment_key, changed, &faults);
        match result {
            Ok(payment) => Reply {
                hang_after: faults.has(Fault::TimeoutAfterApply),
                ..Reply::ok(payment)
            },
            Err(e) => Reply::error(&e),
        }
    };
    idempotent(&pg, &scope, &headers, &route, &body, run).await
}

enum Lookup {
    Key(String),
    Order(String),
}

async fn lookup(pg: Shared, headers: HeaderMap, by: Lookup) -> Response {
    let header = match preamble(&pg, &headers).await {
        Ok((_, f)) => f,
        Err(e) => return e.into_response(),
    };
    let order_id = match &by {
        Lookup::Order(o) => Some(o.as_str()),
        Lookup::Key(_) => None,
    };
    let faults = faults_of(&pg, &header, Operation::Lookup, order_id);
    if let Some(reply) = fail_early(&pg, &faults).await {
        return reply.into_response();
    }
    let now = pg.now();
    let found = {
        let mut payments = pg.lock_payments();
        let p = match &by {
            Lookup::Key(k) => payments.get_mut(k),
            Lookup::Order(o) => payments.by_order_mut(o),
        };
        p.map(|p| {
            let expired = p.expire_if_due(now, confirm_window(&pg));
            (p.payment_key.clone(), p.to_json(), expired)
        })
    };
    match found {
        None => PgError::NotFound.into_response(),
        Some((key, payment, expired)) => {
            if expired {
                notify(&pg, &key, vec![payment.clone()], &Faults::default());
            }
            Reply::ok(garble(payment, &faults)).into_response()
        }
    }
}

/// `GET /v1/payments/{paymentKey}`.
pub(crate) async fn by_key(
    State(pg): State<Shared>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    lookup(pg, headers, Lookup::Key(payment_key)).await
}

/// `GET /v1/payments/orders/{orderId}`.
pub(crate) async fn by_order(
    State(pg): State<Shared>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    lookup(pg, headers, Lookup::Order(order_id)).await
}

/// Whether `order_id` is one Toss accepts: 6 to 64 of letters, digits, `-`, `_`, `=`.
pub(crate) fn valid_order_id(order_id: &str) -> bool {
    (6..=64).contains(&order_id.len())
        && order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
}

/// Creates the `READY` payment of an approved checkout.
pub(crate) fn open_checkout(
    pg: &Shared,
    order_id: &str,
    amount: i64,
    order_name: Option<&str>,
    method: Method,
) -> Result<Payment, PgError> {
    if !valid_order_id(order_id) {
        return Err(PgError::Invalid(
            "orderId must be 6 to 64 letters, digits, '-', '_' or '='".into(),
        ));
    }
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(PgError::Invalid(format!(
            "amount must be between 1 and {MAX_AMOUNT}"
        )));
    }
    let order_name = order_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Boxoffice order");
    if order_name.chars().count() > 100 || order_name.chars().any(char::is_control) {
        return Err(PgError::Invalid(
            "orderName must be at most 100 printable characters".into(),
        ));
    }
    let mut payments = pg.lock_payments();
    if payments.order_paid(order_id) {
        return Err(PgError::DuplicatedOrderId);
    }
    let payment = Payment::ready(
        random_key(50),
        order_id.to_owned(),
        order_name.to_owned(),
        amount,
        method,
        pg.now(),
    );
    payments.insert(payment.clone());
    Ok(payment)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SandboxCheckout {
    order_id: String,
    amount: i64,
    outcome: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    order_name: Option<String>,
}

/// `POST /v1/sandbox/checkouts`: what the checkout page does for a buyer, as one call.
pub(crate) async fn sandbox_checkout(State(pg): State<Shared>, body: Bytes) -> Response {
    let req: SandboxCheckout = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let method = match req.method.as_deref().map(Method::parse) {
        None => Method::Card,
        Some(Some(m)) => m,
        Some(None) => {
            return PgError::Invalid("method must be `card` or `easypay`".into()).into_response();
        }
    };
    match req.outcome.as_str() {
        "approved" => {
            match open_checkout(
                &pg,
                &req.order_id,
                req.amount,
                req.order_name.as_deref(),
                method,
            ) {
                Ok(p) => Json(json!({
                    "paymentKey": p.payment_key,
                    "orderId": p.order_id,
                    "amount": p.total_amount,
                }))
                .into_response(),
                Err(e) => e.into_response(),
            }
        }
        "declined" => {
            if !valid_order_id(&req.order_id) {
                return PgError::Invalid(
                    "orderId must be 6 to 64 letters, digits, '-', '_' or '='".into(),
                )
                .into_response();
            }
            let (status, code, message) = PgError::Declined.parts();
            (
                status,
                Json(json!({"code": code, "message": message, "orderId": req.order_id})),
            )
                .into_response()
        }
        _ => PgError::Invalid("outcome must be `approved` or `declined`".into()).into_response(),
    }
}

/// `POST /v1/sandbox/faults`: queues a fault (authenticated).
pub(crate) async fn add_fault(
    State(pg): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authenticate(&pg, &headers) {
        return e.into_response();
    }
    let rule: Rule = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let queued = pg
        .rules
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(rule);
    if !queued {
        return PgError::Invalid("too many faults queued; DELETE /v1/sandbox/faults".into())
            .into_response();
    }
    (StatusCode::CREATED, Json(json!({"queued": true}))).into_response()
}

/// `DELETE /v1/sandbox/faults` (authenticated).
pub(crate) async fn clear_faults(State(pg): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = authenticate(&pg, &headers) {
        return e.into_response();
    }
    pg.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockBody {
    advance_seconds: u64,
}

/// `POST /v1/sandbox/clock {"advanceSeconds"}` (authenticated): moves the PG's time forward.
pub(crate) async fn advance_clock(
    State(pg): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authenticate(&pg, &headers) {
        return e.into_response();
    }
    let req: ClockBody = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if req.advance_seconds > 366 * 86_400 {
        return PgError::Invalid("advanceSeconds must be at most a year".into()).into_response();
    }
    pg.options
        .clock
        .advance(Duration::from_secs(req.advance_seconds));
    Json(json!({"now": kst(pg.now())})).into_response()
}

/// Any other path.
pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "NOT_FOUND", "message": "존재하지 않는 정보 입니다. (no such API)"})),
    )
        .into_response()
}
