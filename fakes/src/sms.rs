//! An SMS provider sandbox in the shape of Solapi's send API (v4), so the notification service's
//! client can be pointed at it or at the real provider by configuration alone.
//!
//! - `POST /messages/v4/send {"message": {"to", "from", "text", "type"?}}` with
//!   `Authorization: HMAC-SHA256 apiKey=<key>, date=<RFC 3339>, salt=<salt>,
//!   signature=<hex HMAC-SHA256(secret, date + salt)>` → 200 `{"groupId", "messageId", "to",
//!   "from", "type": "SMS"|"LMS", "statusCode": "2000", "statusMessage", "country": "82"}`.
//!   A bad or missing signature is 401 `{"errorCode": "InvalidAPIKey", "errorMessage"}`; a
//!   number that is not 8–15 digits 400 `InvalidPhoneNumber`; empty text 400 `ValidationError`.
//! - Test side (not Solapi's): `GET /api/v1/messages` → `{total, messages: [{id, to, from, text,
//!   type, created}]}` newest first; `DELETE /api/v1/messages`; `PUT /api/v1/sandbox/fault
//!   {"mode": "none"|"temporary"|"permanent", "count"?}` (temporary: 503 `ServiceUnavailable`;
//!   permanent: 400 `InvalidPhoneNumber`).
//!
//! Keys: `sandbox-sms-key` / `sandbox-sms-secret` (plus [`Options::keys`]).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The sandbox's own API key.
pub const SANDBOX_API_KEY: &str = "sandbox-sms-key";
/// Its secret.
pub const SANDBOX_API_SECRET: &str = "sandbox-sms-secret";

/// How the SMS sandbox is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// `(api key, secret)` pairs it accepts, besides the sandbox's own.
    pub keys: Vec<(String, String)>,
    /// Most messages kept (default 1,000).
    pub max_messages: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keys: vec![(SANDBOX_API_KEY.into(), SANDBOX_API_SECRET.into())],
            max_messages: 1_000,
        }
    }
}

/// What the sandbox does instead of accepting a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Accept.
    #[default]
    None,
    /// 503: try again.
    Temporary,
    /// 400 `InvalidPhoneNumber`: never.
    Permanent,
}

/// A message the sandbox accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Sms {
    /// Its message id.
    pub id: String,
    /// The recipient.
    pub to: String,
    /// The sender number.
    pub from: String,
    /// The text.
    pub text: String,
    /// `SMS` (up to 90 bytes, a Hangul syllable counting two) or `LMS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it arrived.
    pub created: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Inner {
    messages: Vec<Sms>,
    fault: FaultMode,
    fault_left: Option<u32>,
}

/// The sandbox's state (shared by its clones).
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
    options: Arc<Options>,
}

impl Outbox {
    /// An empty sandbox.
    pub fn new(mut options: Options) -> Self {
        let own = (SANDBOX_API_KEY.to_owned(), SANDBOX_API_SECRET.to_owned());
        if !options.keys.contains(&own) {
            options.keys.push(own);
        }
        Self {
            inner: Arc::default(),
            options: Arc::new(options),
        }
    }

    /// Forgets every message.
    pub fn clear(&self) {
        self.lock().messages.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<Sms> {
        self.lock().messages.clone()
    }

    /// Fails as `mode` for the next `count` sends (`None`: until changed).
    pub fn set_fault(&self, mode: FaultMode, count: Option<u32>) {
        let mut s = self.lock();
        s.fault = mode;
        s.fault_left = count;
    }

    fn take_fault(&self) -> FaultMode {
        let mut s = self.lock();
        let mode = s.fault;
        if let Some(left) = s.fault_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                s.fault = FaultMode::None;
                s.fault_left = None;
            }
        }
        mode
    }
}

/// `HMAC-SHA256 apiKey=..., date=..., salt=..., signature=...` for `key`/`secret` now: what a
/// Solapi client sends.
pub fn authorization(key: &str, secret: &str, date: &str, salt: &str) -> String {
    format!(
        "HMAC-SHA256 apiKey={key}, date={date}, salt={salt}, signature={}",
        signature(secret, date, salt)
    )
}

fn signature(secret: &str, date: &str, salt: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(date.as_bytes());
    mac.update(salt.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errorCode": code, "errorMessage": message})),
    )
        .into_response()
}

fn authorized(outbox: &Outbox, headers: &HeaderMap) -> bool {
    let Some(raw) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("HMAC-SHA256 "))
    else {
        return false;
    };
    let field = |name: &str| {
        raw.split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    let (Some(key), Some(date), Some(salt), Some(sig)) = (
        field("apiKey"),
        field("date"),
        field("salt"),
        field("signature"),
    ) else {
        return false;
    };
    // Solapi refuses a date more than 15 minutes off.
    let fresh = DateTime::parse_from_rfc3339(&date)
        .is_ok_and(|d| (Utc::now() - d.with_timezone(&Utc)).num_minutes().abs() <= 15);
    fresh
        && outbox
            .options
            .keys
            .iter()
            .any(|(k, s)| *k == key && signature(s, &date, &salt) == sig)
}

#[derive(Debug, Deserialize)]
struct SendBody {
    message: SendMessage,
}

#[derive(Debug, Deserialize)]
struct SendMessage {
    to: String,
    from: String,
    text: String,
}

/// Bytes as a Korean carrier counts them (EUC-KR: Hangul two, ASCII one).
fn carrier_bytes(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

async fn send(State(outbox): State<Outbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&outbox, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAPIKey",
            "the signature, key or date is not valid",
        );
    }
    let Ok(SendBody { message: m }) = serde_json::from_slice::<SendBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "body must be {\"message\": {\"to\", \"from\", \"text\"}}",
        );
    };
    let digits = |s: &str| (8..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&m.to) || !digits(&m.from) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidPhoneNumber",
            "to and from are 8-15 digits",
        );
    }
    if m.text.trim().is_empty() || m.text.chars().count() > 2_000 {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "text is 1-2000 characters",
        );
    }
    match outbox.take_fault() {
        FaultMode::Temporary => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "sandbox fault: try again",
            );
        }
        FaultMode::Permanent => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPhoneNumber",
                "sandbox fault: the number cannot receive messages",
            );
        }
        FaultMode::None => {}
    }
    let kind = if carrier_bytes(&m.text) <= 90 {
        "SMS"
    } else {
        "LMS"
    };
    let sms = Sms {
        id: format!("M4V{}", uuid::Uuid::new_v4().simple()),
        to: m.to,
        from: m.from,
        text: m.text,
        kind: kind.into(),
        created: Utc::now(),
    };
    let answer = json!({
        "groupId": format!("G4V{}", uuid::Uuid::new_v4().simple()),
        "messageId": sms.id,
        "to": sms.to,
        "from": sms.from,
        "type": sms.kind,
        "statusCode": "2000",
        "statusMessage": "정상 접수(이통사로 접수 예정)",
        "country": "82",
    });
    let mut s = outbox.lock();
    if s.messages.len() >= outbox.options.max_messages.max(1) {
        s.messages.remove(0);
    }
    s.messages.push(sms);
    Json(answer).into_response()
}

async fn list(State(outbox): State<Outbox>) -> Json<Value> {
    let mut all = outbox.messages();
    all.reverse();
    Json(json!({"total": all.len(), "messages": all}))
}

async fn clear(State(outbox): State<Outbox>) -> StatusCode {
    outbox.lock().messages.clear();
    StatusCode::OK
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    mode: FaultMode,
    #[serde(default)]
    count: Option<u32>,
}

async fn fault(State(outbox): State<Outbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultBody>(&body) {
        Ok(f) => {
            outbox.set_fault(f.mode, f.count);
            Json(json!({"mode": f.mode})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// The routes, rooted at `/`.
pub fn router(outbox: Outbox) -> Router {
    Router::new()
        .route("/messages/v4/send", post(send))
        .route("/api/v1/messages", get(list).delete(clear))
        .route("/api/v1/sandbox/fault", put(fault))
        .with_state(outbox)
}

/// The sandbox on a free loopback port; dropping it stops it.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Its state.
    pub outbox: Outbox,
    _stop: DropGuard,
}

impl Running {
    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Starts the sandbox on a free loopback port.
pub async fn spawn(options: Options) -> std::io::Result<Running> {
    let outbox = Outbox::new(options);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let router = router(outbox.clone());
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "SMS sandbox stopped");
        }
    });
    Ok(Running {
        base_url: format!("http://{addr}"),
        outbox,
        _stop: stop.drop_guard(),
    })
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new(Options::default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn send(s: &Running, auth: String, to: &str, text: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(s.url("/messages/v4/send"))
            .header("Authorization", auth)
            .json(&json!({"message": {"to": to, "from": "0215880000", "text": text}}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    fn now() -> String {
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    #[tokio::test]
    async fn signed_sends_are_listed_and_the_rest_refused_in_solapis_shape() {
        let s = spawn(Options::default()).await.unwrap();
        let good = || authorization(SANDBOX_API_KEY, SANDBOX_API_SECRET, &now(), "salt-1");
        let (status, body) = send(&s, good(), "01012345678", "짧은 문자").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["type"], "SMS");
        assert_eq!(body["statusCode"], "2000");
        let long = "가".repeat(46);
        let (_, body) = send(&s, good(), "01012345678", &long).await;
        assert_eq!(body["type"], "LMS", "92 carrier bytes");

        let forged = authorization(SANDBOX_API_KEY, "not-the-secret", &now(), "salt-1");
        let (status, body) = send(&s, forged, "01012345678", "x").await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (401, Some("InvalidAPIKey"))
        );
        let stale = authorization(
            SANDBOX_API_KEY,
            SANDBOX_API_SECRET,
            "2020-01-01T00:00:00Z",
            "s",
        );
        let (status, _) = send(&s, stale, "01012345678", "x").await;
        assert_eq!(status, 401);
        let (status, body) = send(&s, good(), "12", "x").await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (400, Some("InvalidPhoneNumber"))
        );
        let (status, _) = send(&s, good(), "01012345678", " ").await;
        assert_eq!(status, 400);

        let client = reqwest::Client::new();
        let r = client
            .put(s.url("/api/v1/sandbox/fault"))
            .json(&json!({"mode": "temporary", "count": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (status, _) = send(&s, good(), "01012345678", "x").await;
        assert_eq!(status, 503);
        let (status, _) = send(&s, good(), "01012345678", "x").await;
        assert_eq!(status, 200, "the fault was for one send");

        let list: Value = reqwest::get(s.url("/api/v1/messages"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["total"], 3);
        assert_eq!(list["messages"][2]["text"], "짧은 문자", "newest first");
        client
            .delete(s.url("/api/v1/messages"))
            .send()
            .await
            .unwrap();
        assert!(s.outbox.messages().is_empty());
    }
}
