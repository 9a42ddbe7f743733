//! The `Idempotency-Key` header: replay, mismatch, in flight, per secret key.

use fakes::pg;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Pg, assert_error, order_id, spawn, spawn_with};

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer_without_charging_again() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 2_000).await;
    let first = pg.confirm_with(&checkout, "confirm-1").await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    let replay = pg.confirm_with(&checkout, "confirm-1").await;
    assert_eq!(replay, first, "same status and body");
    // Without the key the second confirm is a second request.
    assert_error(
        &pg.confirm(&checkout).await,
        StatusCode::BAD_REQUEST,
        "ALREADY_PROCESSED_PAYMENT",
    );
    // The same JSON spelled differently is the same request.
    let respelled = format!(
        r#"{{ "amount": {}, "orderId": "{}", "paymentKey": "{}" }}"#,
        checkout["amount"],
        checkout["orderId"].as_str().unwrap(),
        checkout["paymentKey"].as_str().unwrap()
    );
    let got = Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("Idempotency-Key", "confirm-1")
            .header("Content-Type", "application/json")
            .body(respelled),
    )
    .await;
    assert_eq!(got, first);
}

#[tokio::test]
async fn a_refusal_is_replayed_too() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 2_000).await;
    let mut tampered = checkout.clone();
    tampered["amount"] = json!(1);
    let first = pg.confirm_with(&tampered, "k").await;
    assert_error(&first, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    assert_eq!(pg.confirm_with(&tampered, "k").await, first);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let pg = spawn().await;
    let a = pg.checkout(&order_id(), 2_000).await;
    let b = pg.checkout(&order_id(), 3_000).await;
    assert_eq!(pg.confirm_with(&a, "shared").await.0, StatusCode::OK);
    assert_error(
        &pg.confirm_with(&b, "shared").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert_eq!(
        pg.status_of(b["paymentKey"].as_str().unwrap()).await,
        "READY"
    );
    // A key used for a confirm is another request on the cancel route.
    let cancel = Pg::send(
        pg.merchant(
            Method::POST,
            &format!("/v1/payments/{}/cancel", a["paymentKey"].as_str().unwrap()),
        )
        .header("Idempotency-Key", "shared")
        .json(&a),
    )
    .await;
    assert_error(
        &cancel,
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
    );
}

#[tokio::test]
async fn the_same_key_while_the_first_is_in_flight_is_409() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 2_000).await;
    let slow = pg
        .merchant(Method::POST, "/v1/payments/confirm")
        .header("Idempotency-Key", "busy")
        .header("X-Sandbox-Fault", "slow")
        .json(&checkout)
        .send();
    let first = tokio::spawn(slow);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while pg.run.control.in_flight() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first request never started"
        );
        tokio::task::yield_now().await;
    }
    assert_error(
        &pg.confirm_with(&checkout, "busy").await,
        StatusCode::CONFLICT,
        "IDEMPOTENT_REQUEST_PROCESSING",
    );
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: serde_json::Value = first.json().await.unwrap();
    let replay = pg.confirm_with(&checkout, "busy").await;
    assert_eq!(replay, (StatusCode::OK, first));
}

#[tokio::test]
async fn keys_are_scoped_per_secret_key() {
    let pg = spawn_with(|o| o.secret_keys.push("test_sk_other_shop".into())).await;
    let checkout = pg.checkout(&order_id(), 2_000).await;
    assert_eq!(pg.confirm_with(&checkout, "k").await.0, StatusCode::OK);
    let other = Pg::send(
        pg.client
            .post(pg.url("/v1/payments/confirm"))
            .header("Authorization", pg::basic_auth("test_sk_other_shop"))
            .header("Idempotency-Key", "k")
            .json(&checkout),
    )
    .await;
    // Not the first merchant's stored answer: a request of its own.
    assert_error(&other, StatusCode::BAD_REQUEST, "ALREADY_PROCESSED_PAYMENT");
}

#[tokio::test]
async fn a_retried_cancel_refunds_once() {
    let pg = spawn().await;
    let done = pg.paid(9_000).await;
    let key = done["paymentKey"].as_str().unwrap();
    let cancel = || {
        Pg::send(
            pg.merchant(Method::POST, &format!("/v1/payments/{key}/cancel"))
                .header("Idempotency-Key", "refund-1")
                .json(&json!({"cancelReason": "seat", "cancelAmount": 4_000})),
        )
    };
    let first = cancel().await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(cancel().await, first);
    assert_eq!(pg.payment(key).await.1["balanceAmount"], 5_000);
}

#[tokio::test]
async fn bad_keys_are_refused_and_keys_expire() {
    let pg = spawn_with(|o| o.idempotency_ttl = std::time::Duration::from_secs(3600)).await;
    let checkout = pg.checkout(&order_id(), 2_000).await;
    assert_error(
        &pg.confirm_with(&checkout, &"k".repeat(301)).await,
        StatusCode::BAD_REQUEST,
        "INVALID_IDEMPOTENCY_KEY",
    );
    assert_eq!(pg.confirm_with(&checkout, "old").await.0, StatusCode::OK);
    pg.run
        .control
        .clock()
        .advance(std::time::Duration::from_secs(3601));
    // The key is forgotten: the same request is processed anew.
    assert_error(
        &pg.confirm_with(&checkout, "old").await,
        StatusCode::BAD_REQUEST,
        "ALREADY_PROCESSED_PAYMENT",
    );
}
