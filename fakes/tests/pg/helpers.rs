//! Starting a sandbox PG for one test, and small HTTP helpers.

use std::time::Duration;

use fakes::pg::{self, Options, Running, SANDBOX_SECRET_KEY};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// A running sandbox PG and a client that does not follow redirects.
pub struct Pg {
    pub run: Running,
    pub client: reqwest::Client,
}

/// Where test checkouts send the browser back.
pub const SHOP: &str = "http://shop.test";

pub async fn spawn() -> Pg {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Options)) -> Pg {
    let mut options = Options {
        redirect_origins: vec![SHOP.to_owned()],
        hang: Duration::from_secs(5),
        slow: Duration::from_millis(300),
        ..Options::default()
    };
    adjust(&mut options);
    let run = pg::spawn(options).await.expect("the sandbox PG starts");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Pg { run, client }
}

/// A fresh order id (Toss's rules: 6 to 64 letters, digits, `-`, `_`).
pub fn order_id() -> String {
    format!("order-{}", uuid::Uuid::new_v4())
}

impl Pg {
    pub fn url(&self, path: &str) -> String {
        self.run.url(path)
    }

    /// A request with the sandbox secret key.
    pub fn merchant(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("Authorization", pg::basic_auth(SANDBOX_SECRET_KEY))
    }

    pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.expect("request");
        let status = r.status();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST /v1/sandbox/checkouts`, approved: `{paymentKey, orderId, amount}`.
    pub async fn checkout(&self, order_id: &str, amount: i64) -> Value {
        let (status, body) = Self::send(
            self.client
                .post(self.url("/v1/sandbox/checkouts"))
                .json(&json!({"orderId": order_id, "amount": amount, "outcome": "approved"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn confirm(&self, body: &Value) -> (StatusCode, Value) {
        Self::send(
            self.merchant(reqwest::Method::POST, "/v1/payments/confirm")
                .json(body),
        )
        .await
    }

    pub async fn confirm_with(&self, body: &Value, key: &str) -> (StatusCode, Value) {
        Self::send(
            self.merchant(reqwest::Method::POST, "/v1/payments/confirm")
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
    }

    pub async fn cancel(&self, payment_key: &str, body: &Value) -> (StatusCode, Value) {
        Self::send(
            self.merchant(
                reqwest::Method::POST,
                &format!("/v1/payments/{payment_key}/cancel"),
            )
            .json(body),
        )
        .await
    }

    pub async fn payment(&self, payment_key: &str) -> (StatusCode, Value) {
        Self::send(self.merchant(reqwest::Method::GET, &format!("/v1/payments/{payment_key}")))
            .await
    }

    pub async fn status_of(&self, payment_key: &str) -> String {
        let (status, body) = self.payment(payment_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    /// A checkout confirmed: its `DONE` Payment object.
    pub async fn paid(&self, amount: i64) -> Value {
        let checkout = self.checkout(&order_id(), amount).await;
        let (status, body) = self.confirm(&checkout).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// Asserts a Toss error answer.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}
