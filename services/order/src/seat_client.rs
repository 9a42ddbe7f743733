//! The seat service's checkout, called synchronously when an order is made:
//! `POST <seat>/api/v1/holds/{hold_id}/checkout` with the buyer's own bearer token (the seat
//! service lets only the hold's buyer, or an admin, check it out). The checkout is idempotent on
//! the seat side, so transport failures, timeouts and 5xx are tried again, a bounded number of
//! times with a doubling pause; a refusal (4xx) is an answer and is not.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// A hold in checkout, as the seat service answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    /// The hold.
    pub hold_id: Uuid,
    /// Its performance.
    pub performance_id: Uuid,
    /// Its buyer.
    pub buyer_id: Uuid,
    /// Its seats.
    pub seat_ids: Vec<String>,
    /// Its general-admission places, by area.
    pub areas: Vec<(String, i32)>,
    /// Its price at the grades' prices, KRW.
    pub amount_krw: i64,
    /// The checkout deadline.
    pub expires_at: DateTime<Utc>,
    /// Its status (`checkout`).
    pub status: String,
}

#[derive(Deserialize)]
struct AreaView {
    area_id: String,
    quantity: i32,
}

#[derive(Deserialize)]
struct HoldView {
    hold_id: Uuid,
    performance_id: Uuid,
    buyer_id: Uuid,
    seat_ids: Vec<String>,
    #[serde(default)]
    areas: Vec<AreaView>,
    amount_krw: i64,
    expires_at: DateTime<Utc>,
    status: String,
}

/// Why a checkout did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// The seat service refused it (its status, problem code and detail).
    #[error("seat service refused the checkout: {status} {code}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its problem `code`.
        code: String,
        /// Its `detail`.
        detail: String,
    },
    /// The seat service could not be reached or answered 5xx, every attempt.
    #[error("seat service unavailable: {0}")]
    Unavailable(String),
}

/// A client of the seat service.
#[derive(Clone)]
pub struct SeatClient {
    base: String,
    http: reqwest::Client,
    attempts: u32,
}

impl SeatClient {
    /// A client of the seat service at `base`, each call bounded by `timeout`, tried `attempts`
    /// times.
    pub fn new(base: &str, timeout: Duration, attempts: u32) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            attempts: attempts.max(1),
        })
    }

    /// Moves `hold_id` into checkout for the buyer whose `bearer` token this is.
    pub async fn checkout(&self, hold_id: Uuid, bearer: &str) -> Result<CheckedOut, CheckoutError> {
        let url = format!("{}/api/v1/holds/{hold_id}/checkout", self.base);
        let mut pause = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.http.post(&url).bearer_auth(bearer).send().await {
                Ok(r) if r.status().is_success() => {
                    let v: HoldView = r
                        .json()
                        .await
                        .map_err(|e| CheckoutError::Unavailable(format!("unreadable hold: {e}")))?;
                    return Ok(CheckedOut {
                        hold_id: v.hold_id,
                        performance_id: v.performance_id,
                        buyer_id: v.buyer_id,
                        seat_ids: v.seat_ids,
                        areas: v
                            .areas
                            .into_iter()
                            .map(|a| (a.area_id, a.quantity))
                            .collect(),
                        amount_krw: v.amount_krw,
                        expires_at: v.expires_at,
                        status: v.status,
                    });
                }
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    return Err(CheckoutError::Refused {
                        status,
                        code: body["code"].as_str().unwrap_or("refused").to_owned(),
                        detail: body["detail"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(%hold_id, attempt, error = %last, "seat checkout failed; retrying");
            if attempt < self.attempts {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
        Err(CheckoutError::Unavailable(last))
    }
}
