//! `POST /api/v1/payments/webhooks/toss`: a notice is a hint, read back from the PG; duplicates,
//! reordered and forged notices change nothing the PG does not say; the PG's own deliveries
//! settle an unknown payment; a charge found after the payment failed is refunded at once.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use fakes::pg::{Fault, Operation, Rule};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, SECRET, config, pg_options, spawn, spawn_with};

/// A settler that waits a minute before its first look: only webhooks settle payments here.
fn patient() -> payment::Config {
    let mut c = config();
    c.settle.first_backoff_ms = 60_000;
    c.settle.max_backoff_ms = 60_000;
    c
}

fn notice(order_id: Uuid, payment_key: &str, status: &str) -> Value {
    json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-12-02T15:00:00.000000",
        "data": {"paymentKey": payment_key, "orderId": order_id.to_string(), "status": status,
                 "totalAmount": 1, "balanceAmount": 1},
    })
}

async fn deliver(app: &App, body: &Value) -> (u16, Value) {
    let r = app
        .server
        .client
        .post(app.server.url("/api/v1/payments/webhooks/toss"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// An order whose confirm lost its reply after the money moved: `unknown` here, `DONE` there.
async fn unknown(app: &App, amount: i64) -> (Uuid, Uuid, String) {
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, amount).await;
    let key = app.checkout(order, amount).await;
    app.fault(Fault::TimeoutAfterApply, Operation::Confirm, order);
    let a = app.confirm(buyer, "k", &key, order, amount).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (202, Some("unknown"))
    );
    (buyer, order, key)
}

#[tokio::test]
async fn a_notice_is_read_back_from_the_pg_and_duplicates_and_reorderings_change_nothing() {
    let app = spawn_with(pg_options(), patient()).await;
    let (_, order, key) = unknown(&app, 25_000).await;
    // An older notice arriving last-first: the PG says DONE whatever the body says.
    let (status, body) = deliver(&app, &notice(order, &key, "IN_PROGRESS")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    for _ in 0..3 {
        let (status, body) = deliver(&app, &notice(order, &key, "DONE")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    }
    assert_eq!(app.status(order).await.as_deref(), Some("approved"));
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    assert_eq!(app.confirms(), 1);
}

#[tokio::test]
async fn forged_and_foreign_notices_change_nothing() {
    let app = spawn().await;
    let (_, paid, paid_key) = app.paid(10_000).await;
    // "Cancelled", says the forger; the PG says DONE: nothing is refunded.
    let (status, _) = deliver(&app, &notice(paid, &paid_key, "CANCELED")).await;
    assert_eq!(status, 200);
    assert_eq!(app.status(paid).await.as_deref(), Some("approved"));
    assert!(app.events(paid, "payment.refunded").await.is_empty());
    // "Done", says the forger of a declined payment; the PG says ABORTED: nothing is approved.
    let buyer = Uuid::now_v7();
    let declined = app.order(buyer, 10_000).await;
    let key = app.checkout(declined, 10_000).await;
    app.fault(Fault::Decline, Operation::Confirm, declined);
    assert_eq!(
        app.confirm(buyer, "k", &key, declined, 10_000).await.status,
        402
    );
    let (status, _) = deliver(&app, &notice(declined, &key, "DONE")).await;
    assert_eq!(status, 200);
    assert_eq!(app.status(declined).await.as_deref(), Some("failed"));
    assert!(app.events(declined, "payment.approved").await.is_empty());
    // Not ours, another key than ours, another event type: acknowledged and ignored.
    for body in [
        notice(Uuid::now_v7(), "pk", "DONE"),
        notice(paid, "pk_forged", "DONE"),
        json!({"eventType": "DEPOSIT_CALLBACK", "data": {}}),
        json!({"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": "not-a-uuid"}}),
    ] {
        let (status, reply) = deliver(&app, &body).await;
        assert_eq!(
            (status, reply["result"].as_str()),
            (200, Some("ignored")),
            "{body}"
        );
    }
    // Not JSON: a problem.
    let r = app
        .server
        .client
        .post(app.server.url("/api/v1/payments/webhooks/toss"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

/// Forwards what it receives to the URL set in it (the service starts after the PG that sends).
#[derive(Clone, Default)]
struct Forwarder(Arc<Mutex<Option<String>>>);

async fn forward(State(to): State<Forwarder>, body: Bytes) -> StatusCode {
    let Some(url) = to.0.lock().unwrap().clone() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match r {
        Ok(r) => StatusCode::from_u16(r.status().as_u16()).unwrap(),
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

#[tokio::test]
async fn the_pgs_own_webhooks_settle_an_unknown_payment() {
    let forwarder = Forwarder::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/hook", post(forward))
        .with_state(forwarder.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut options = pg_options();
    options.webhooks.url = Some(hook);
    options.webhooks.backoff = std::time::Duration::from_millis(50);
    let app = spawn_with(options, patient()).await;
    *forwarder.0.lock().unwrap() = Some(app.server.url("/api/v1/payments/webhooks/toss"));
    // The PG's DONE notice comes twice.
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 18_000).await;
    let key = app.checkout(order, 18_000).await;
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::TimeoutAfterApply)
                .on(Operation::Confirm)
                .on_order(order.to_string())
        )
    );
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::DuplicateWebhook)
                .on(Operation::Confirm)
                .on_order(order.to_string())
        )
    );
    // The notice may well beat the confirm's own timeout: then the buyer hears "approved" at
    // once; otherwise "unknown", until the notice is read back.
    let a = app.confirm(buyer, "k", &key, order, 18_000).await;
    assert!(
        ["approved", "unknown"].contains(&a.body["status"].as_str().unwrap()),
        "{a:?}"
    );
    app.wait_status(order, "approved").await;
    crate::helpers::until("both notices delivered", || async {
        app.fake().control.webhooks_delivered() >= 2
    })
    .await;
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    assert_eq!(app.confirms(), 1);
}

#[tokio::test]
async fn a_charge_found_after_the_payment_failed_is_refunded_at_once() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app
        .order_lapsing(buyer, 26_000, chrono::Duration::milliseconds(1_200))
        .await;
    let key = app.checkout(order, 26_000).await;
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::Error)
                .on(Operation::Confirm)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    assert_eq!(
        app.confirm(buyer, "k", &key, order, 26_000).await.status,
        202
    );
    app.wait_status(order, "failed").await;
    // The PG completes the payment after all (here: a confirm straight at the PG).
    app.fake().control.clear_faults();
    let r = app
        .server
        .client
        .post(app.fake().url("/v1/payments/confirm"))
        .header("Authorization", fakes::pg::basic_auth(SECRET))
        .json(&json!({"paymentKey": key, "orderId": order.to_string(), "amount": 26_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = deliver(&app, &notice(order, &key, "DONE")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    app.wait_status(order, "refunded").await;
    assert_eq!(app.pg_payment(&key)["status"], "CANCELED");
    // The buyer heard "failed" and gets the money back; nobody hears "approved".
    assert_eq!(app.events(order, "payment.failed").await.len(), 1);
    assert!(app.events(order, "payment.approved").await.is_empty());
    let refunded = app.events(order, "payment.refunded").await;
    assert_eq!(refunded.len(), 1);
    assert_eq!(refunded[0]["payload"]["amount_krw"], 26_000);
    let (_, view) = app.find(buyer, order).await;
    assert_eq!(view["order_status"], "refunded");
}
