//! The Toss Payments adapter: `POST /v1/payments/confirm`, `GET /v1/payments/{paymentKey}`,
//! `GET /v1/payments/orders/{orderId}` and `POST /v1/payments/{paymentKey}/cancel`, with
//! `Authorization: Basic base64(secretKey + ":")` and an `Idempotency-Key` on the two POSTs.
//! Errors are Toss's `{code, message}`; a few codes say "try again" rather than "no" and are read
//! as unavailable (see [`RETRYABLE`]).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Cancel, Confirm, PaymentGateway, PgError, PgPayment, PgStatus};

/// The real Toss Payments API.
pub const TOSS_API: &str = "https://api.tosspayments.com";

/// Codes that do not refuse: the PG could not decide now (or the call may still be running).
pub const RETRYABLE: &[&str] = &[
    "PROVIDER_ERROR",
    "FAILED_INTERNAL_SYSTEM_PROCESSING",
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    "FAILED_METHOD_HANDLING_CANCEL",
    "IDEMPOTENT_REQUEST_PROCESSING",
    "TOO_MANY_REQUESTS",
];

/// Codes that say our secret key is not accepted: a misconfiguration (the call did nothing).
pub const KEY_REFUSED: &[&str] = &["UNAUTHORIZED_KEY", "INVALID_API_KEY"];

/// Timeouts of every call.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For the whole call.
    pub request: Duration,
}

/// A Toss Payments client.
#[derive(Clone)]
pub struct Toss {
    http: reqwest::Client,
    base_url: String,
    authorization: String,
}

impl std::fmt::Debug for Toss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toss")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Toss {
    /// A client of the API at `base_url` with `secret_key`.
    pub fn new(base_url: &str, secret_key: &str, timeouts: Timeouts) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| format!("building the PG client: {e}"))?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{secret_key}:"));
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {token}"),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
    }

    async fn call(&self, request: RequestBuilder) -> Result<PgPayment, PgError> {
        let response = request.send().await.map_err(|e| {
            PgError::Unavailable(if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                format!("cannot connect: {e}")
            } else {
                format!("request failed: {e}")
            })
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PgError::Unavailable(format!("reading the answer: {e}")))?;
        if status.is_success() {
            let payment: TossPayment = serde_json::from_slice(&body)
                .map_err(|e| PgError::Unavailable(format!("an unreadable payment: {e}")))?;
            return Ok(payment.into());
        }
        if status.is_server_error() {
            return Err(PgError::Unavailable(format!("PG answered {status}")));
        }
        let error: Option<TossError> = serde_json::from_slice(&body).ok();
        // A refused key is not an outage: nothing happened at the PG, and nothing will until an
        // operator fixes `payment.pg.secret_key`.
        if status == StatusCode::UNAUTHORIZED
            || error
                .as_ref()
                .is_some_and(|e| KEY_REFUSED.contains(&e.code.as_str()))
        {
            let code = error.map_or_else(|| "UNAUTHORIZED".to_owned(), |e| e.code);
            return Err(PgError::Misconfigured(format!(
                "PG answered {status} {code}"
            )));
        }
        let error = error
            .ok_or_else(|| PgError::Unavailable(format!("PG answered {status} without a code")))?;
        if status == StatusCode::TOO_MANY_REQUESTS || RETRYABLE.contains(&error.code.as_str()) {
            return Err(PgError::Unavailable(format!(
                "PG answered {status} {}: {}",
                error.code, error.message
            )));
        }
        Err(PgError::Refused {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        })
    }

    /// A lookup: a payment, or `None` when the PG has none.
    async fn lookup(&self, path: &str) -> Result<Option<PgPayment>, PgError> {
        match self.call(self.request(reqwest::Method::GET, path)).await {
            Ok(p) => Ok(Some(p)),
            Err(PgError::Refused { status: 404, .. }) => Ok(None),
            Err(PgError::Refused { code, .. }) if code == "NOT_FOUND_PAYMENT" => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl PaymentGateway for Toss {
    async fn confirm(
        &self,
        confirm: &Confirm,
        idempotency_key: &str,
    ) -> Result<PgPayment, PgError> {
        let request = self
            .request(reqwest::Method::POST, "/v1/payments/confirm")
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({
                "paymentKey": confirm.payment_key,
                "orderId": confirm.order_id.to_string(),
                "amount": confirm.amount_krw,
            }));
        self.call(request).await
    }

    async fn payment_by_order(&self, order_id: Uuid) -> Result<Option<PgPayment>, PgError> {
        self.lookup(&format!("/v1/payments/orders/{order_id}"))
            .await
    }

    async fn payment(&self, payment_key: &str) -> Result<Option<PgPayment>, PgError> {
        self.lookup(&format!("/v1/payments/{payment_key}")).await
    }

    async fn cancel(
        &self,
        payment_key: &str,
        cancel: &Cancel,
        idempotency_key: &str,
    ) -> Result<PgPayment, PgError> {
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/payments/{payment_key}/cancel"),
            )
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({
                "cancelReason": cancel.reason,
                "cancelAmount": cancel.amount_krw,
            }));
        self.call(request).await
    }
}

/// Toss's error body.
#[derive(Debug, Deserialize)]
struct TossError {
    code: String,
    #[serde(default)]
    message: String,
}

/// The fields of Toss's Payment object this service reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossPayment {
    payment_key: String,
    order_id: String,
    status: String,
    #[serde(default)]
    total_amount: i64,
    #[serde(default)]
    balance_amount: Option<i64>,
    #[serde(default)]
    approved_at: Option<String>,
}

impl From<TossPayment> for PgPayment {
    fn from(p: TossPayment) -> Self {
        // Toss writes times with the +09:00 offset (ISO 8601).
        let approved_at = p
            .approved_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        Self {
            payment_key: p.payment_key,
            order_id: p.order_id,
            status: PgStatus::parse(&p.status),
            total_amount: p.total_amount,
            balance_amount: p.balance_amount.unwrap_or(p.total_amount),
            approved_at,
        }
    }
}
