//! The seat service's checkout, called synchronously when an order is made:
//! `POST <seat>/api/v1/holds/{hold_id}/checkout` with the buyer's own bearer token (the seat
//! service lets only the hold's buyer, or an admin, check it out), and the read of a hold before
//! it (`GET <seat>/api/v1/holds/{hold_id}`) when the order's choices must be checked first. Both
//! are idempotent on the seat side, so transport failures, timeouts and 5xx are tried again, a bounded number of
//! times with a doubling pause; a refusal (4xx) is an answer and is not. `services.seat` may
//! name several instances, comma-separated: calls take turns over them, and each attempt after a
//! failure goes to the next one, so one instance down costs a retry, not an order.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::ticket_types::{HeldArea, HeldSeat};

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
    /// Its seats with their grades and standard prices (empty: a seat service that does not
    /// tell them).
    pub held_seats: Vec<HeldSeat>,
    /// Its places with their areas' grades (those the seat service told).
    pub held_areas: Vec<HeldArea>,
}

#[derive(Deserialize)]
struct AreaView {
    area_id: String,
    quantity: i32,
    #[serde(default)]
    grade: Option<String>,
}

#[derive(Deserialize)]
struct SeatView {
    seat_id: String,
    grade: String,
    price_krw: i64,
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
    #[serde(default)]
    seats: Vec<SeatView>,
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
    /// The instances' base URLs (at least one).
    bases: Arc<[String]>,
    /// Which instance the next call starts at.
    next: Arc<AtomicUsize>,
    http: reqwest::Client,
    attempts: u32,
}

impl SeatClient {
    /// A client of the seat service at `base` (one base URL, or several comma-separated), each
    /// call bounded by `timeout`, tried `attempts` times.
    pub fn new(base: &str, timeout: Duration, attempts: u32) -> Result<Self, String> {
        let bases: Vec<String> = base
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        if bases.is_empty() {
            return Err("services.seat names no address".to_owned());
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            bases: bases.into(),
            next: Arc::new(AtomicUsize::new(0)),
            http,
            attempts: attempts.max(1),
        })
    }

    /// Moves `hold_id` into checkout for the buyer whose `bearer` token this is.
    pub async fn checkout(&self, hold_id: Uuid, bearer: &str) -> Result<CheckedOut, CheckoutError> {
        self.call(reqwest::Method::POST, hold_id, "/checkout", bearer)
            .await
    }

    /// Reads `hold_id` as the buyer whose `bearer` token this is, changing nothing: what an
    /// order is checked against before the hold goes into checkout (a hold in checkout cannot
    /// be released by its buyer and lasts until the checkout deadline, so a request refused for
    /// what the buyer chose must be refused before it).
    pub async fn hold(&self, hold_id: Uuid, bearer: &str) -> Result<CheckedOut, CheckoutError> {
        self.call(reqwest::Method::GET, hold_id, "", bearer).await
    }

    /// `method` `/api/v1/holds/{hold_id}{suffix}`, tried over the instances (both calls are
    /// idempotent on the seat side).
    async fn call(
        &self,
        method: reqwest::Method,
        hold_id: Uuid,
        suffix: &str,
        bearer: &str,
    ) -> Result<CheckedOut, CheckoutError> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut pause = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let base = &self.bases[(first + attempt as usize - 1) % self.bases.len()];
            let url = format!("{base}/api/v1/holds/{hold_id}{suffix}");
            match self
                .http
                .request(method.clone(), &url)
                .bearer_auth(bearer)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    let v: HoldView = r
                        .json()
                        .await
                        .map_err(|e| CheckoutError::Unavailable(format!("unreadable hold: {e}")))?;
                    return Ok(v.into());
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
            tracing::warn!(%hold_id, attempt, instance = %base, %method, error = %last,
                "seat hold call failed; retrying");
            if attempt < self.attempts {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
        Err(CheckoutError::Unavailable(last))
    }
}

impl From<HoldView> for CheckedOut {
    fn from(v: HoldView) -> Self {
        let held_seats = v
            .seats
            .iter()
            .map(|s| HeldSeat {
                seat_id: s.seat_id.clone(),
                grade: s.grade.clone(),
                price_krw: s.price_krw,
            })
            .collect();
        let held_areas = v
            .areas
            .iter()
            .filter_map(|a| {
                a.grade.as_ref().map(|g| HeldArea {
                    area_id: a.area_id.clone(),
                    grade: g.clone(),
                    quantity: i64::from(a.quantity),
                })
            })
            .collect();
        Self {
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
            held_seats,
            held_areas,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::{Json, Router, extract::Path, routing::post};
    use serde_json::json;

    use super::*;

    /// A seat instance that checks out any hold; counts its calls.
    async fn seat_instance(calls: Arc<AtomicUsize>) -> String {
        let router = Router::new().route(
            "/api/v1/holds/{hold_id}/checkout",
            post(move |Path(hold_id): Path<Uuid>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Json(json!({
                        "hold_id": hold_id, "performance_id": Uuid::nil(), "buyer_id": Uuid::nil(),
                        "seat_ids": ["a-1-1"], "amount_krw": 1000,
                        "expires_at": "2030-01-01T00:00:00Z", "status": "checkout"
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_dead_instance_in_the_list_costs_a_retry_not_a_checkout() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let live = seat_instance(calls.clone()).await;
        let client =
            SeatClient::new(&format!("{dead}, {live}/"), Duration::from_secs(2), 2).unwrap();
        for _ in 0..6 {
            let hold = Uuid::new_v4();
            let out = client.checkout(hold, "token").await.unwrap();
            assert_eq!(out.hold_id, hold);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert!(SeatClient::new(" , ", Duration::from_secs(1), 1).is_err());
    }
}
