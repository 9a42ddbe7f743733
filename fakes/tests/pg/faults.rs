//! Fault injection per request (header), queued (HTTP and Rust), at random, and latency.

use std::time::{Duration, Instant};

use fakes::pg::{Fault, Operation, Rule};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Pg, assert_error, order_id, spawn, spawn_with};

async fn confirm_faulty(
    pg: &Pg,
    checkout: &serde_json::Value,
    fault: &str,
) -> (StatusCode, serde_json::Value) {
    Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("X-Sandbox-Fault", fault)
            .json(checkout),
    )
    .await
}

#[tokio::test]
async fn a_declined_confirm_aborts_the_payment() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let got = confirm_faulty(&pg, &checkout, "decline").await;
    assert_error(&got, StatusCode::FORBIDDEN, "REJECT_CARD_COMPANY");
    let (_, payment) = pg.payment(key).await;
    assert_eq!(payment["status"], "ABORTED");
    assert_eq!(payment["failure"]["code"], "REJECT_CARD_COMPANY");
    assert_error(
        &pg.confirm(&checkout).await,
        StatusCode::BAD_REQUEST,
        "ALREADY_PROCESSED_PAYMENT",
    );
}

#[tokio::test]
async fn an_unknown_fault_is_refused_and_moves_nothing() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let got = confirm_faulty(&pg, &checkout, "declined").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    assert_eq!(
        pg.status_of(checkout["paymentKey"].as_str().unwrap()).await,
        "READY"
    );
}

#[tokio::test]
async fn a_500_or_provider_error_changes_nothing_and_is_not_stored_under_the_key() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    for (fault, status, code) in [
        (
            "error",
            StatusCode::INTERNAL_SERVER_ERROR,
            "FAILED_INTERNAL_SYSTEM_PROCESSING",
        ),
        ("provider_error", StatusCode::BAD_REQUEST, "PROVIDER_ERROR"),
    ] {
        let got = Pg::send(
            pg.merchant(Method::POST, "/v1/payments/confirm")
                .header("X-Sandbox-Fault", fault)
                .header("Idempotency-Key", "retry-me")
                .json(&checkout),
        )
        .await;
        assert_error(&got, status, code);
        assert_eq!(pg.status_of(key).await, "READY");
    }
    // The retry with the same key is processed, not answered the stored failure.
    let (status, done) = pg.confirm_with(&checkout, "retry-me").await;
    assert_eq!(
        (status, done["status"].clone()),
        (StatusCode::OK, json!("DONE"))
    );
}

#[tokio::test]
async fn a_timeout_moves_no_money_and_holds_its_key_while_it_hangs() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let sent = pg
        .merchant(Method::POST, "/v1/payments/confirm")
        .header("X-Sandbox-Fault", "timeout")
        .header("Idempotency-Key", "t-1")
        .timeout(Duration::from_millis(300))
        .json(&checkout)
        .send()
        .await;
    assert!(sent.is_err_and(|e| e.is_timeout()), "the caller times out");
    assert_eq!(pg.status_of(key).await, "READY", "no money moved");
    assert_error(
        &pg.confirm_with(&checkout, "t-1").await,
        StatusCode::CONFLICT,
        "IDEMPOTENT_REQUEST_PROCESSING",
    );
    let (status, _) = pg.confirm_with(&checkout, "t-2").await;
    assert_eq!(status, StatusCode::OK, "another attempt goes through");
}

#[tokio::test]
async fn a_timeout_after_the_money_moved_leaves_it_done_and_the_retry_gets_the_answer() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let sent = pg
        .merchant(Method::POST, "/v1/payments/confirm")
        .header("X-Sandbox-Fault", "timeout_after_apply")
        .header("Idempotency-Key", "lost-reply")
        .timeout(Duration::from_millis(300))
        .json(&checkout)
        .send()
        .await;
    assert!(sent.is_err_and(|e| e.is_timeout()));
    let (_, payment) = pg.payment(key).await;
    assert_eq!(payment["status"], "DONE", "the money moved");
    let (status, replay) = pg.confirm_with(&checkout, "lost-reply").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the stored answer, not ALREADY_PROCESSED"
    );
    assert_eq!(replay, payment);
    // Reconciliation by order finds it too.
    let (_, by_order) = Pg::send(pg.merchant(
        Method::GET,
        &format!(
            "/v1/payments/orders/{}",
            checkout["orderId"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(by_order["status"], "DONE");
}

#[tokio::test]
async fn queued_faults_hit_only_their_order_and_only_as_often_as_asked() {
    let pg = spawn().await;
    let target = pg.checkout(&order_id(), 4_000).await;
    let bystander = pg.checkout(&order_id(), 4_000).await;
    let (status, _) = Pg::send(
        pg.merchant(Method::POST, "/v1/sandbox/faults")
            .json(&json!({
                "fault": "error", "orderId": target["orderId"], "operation": "confirm", "count": 1
            })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(pg.confirm(&bystander).await.0, StatusCode::OK);
    assert_error(
        &pg.confirm(&target).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
    );
    assert_eq!(pg.confirm(&target).await.0, StatusCode::OK, "used up");

    let bad = Pg::send(
        pg.merchant(Method::POST, "/v1/sandbox/faults")
            .json(&json!({"fault": "meteor"})),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
}

#[tokio::test]
async fn faults_injected_from_rust_apply_to_cancels_and_can_be_cleared() {
    let pg = spawn().await;
    let done = pg.paid(8_000).await;
    let key = done["paymentKey"].as_str().unwrap();
    assert!(
        pg.run
            .control
            .inject(Rule::next(Fault::Error).on(Operation::Cancel))
    );
    let got = pg
        .cancel(key, &json!({"cancelReason": "x", "cancelAmount": 1_000}))
        .await;
    assert_error(
        &got,
        StatusCode::INTERNAL_SERVER_ERROR,
        "FAILED_INTERNAL_SYSTEM_PROCESSING",
    );
    assert_eq!(pg.payment(key).await.1["balanceAmount"], 8_000);

    pg.run.control.inject(Rule::next(Fault::Decline).times(5));
    let (status, _) = Pg::send(pg.merchant(Method::DELETE, "/v1/sandbox/faults")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(pg.paid(1_000).await["status"], "DONE", "cleared");
}

#[tokio::test]
async fn configured_rates_fire_on_every_call_at_one() {
    let pg = spawn_with(|o| o.rates.decline = 1.0).await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    assert_error(
        &pg.confirm(&checkout).await,
        StatusCode::FORBIDDEN,
        "REJECT_CARD_COMPANY",
    );
}

#[tokio::test]
async fn latency_and_slow_delay_the_answer_not_the_outcome() {
    let pg = spawn_with(|o| o.latency = Duration::from_millis(200)).await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let started = Instant::now();
    let (status, _) = pg.payment(checkout["paymentKey"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let started = Instant::now();
    let got = confirm_faulty(&pg, &checkout, "slow, latency=100").await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    // 200 configured + 100 asked + 300 slow (the helpers' setting).
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn wrong_answers_lie_about_the_amount_or_order_and_leave_the_payment_as_it_is() {
    let pg = spawn().await;
    let order = order_id();
    let checkout = pg.checkout(&order, 4_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let (status, answer) = confirm_faulty(&pg, &checkout, "wrong_amount").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (answer["status"].as_str(), answer["totalAmount"].as_i64()),
        (Some("DONE"), Some(5_000))
    );
    assert_eq!(answer["orderId"], order.as_str());
    // Only the answer lied: the PG charged the checkout's amount.
    let (_, payment) = pg.payment(key).await;
    assert_eq!(
        (payment["status"].as_str(), payment["totalAmount"].as_i64()),
        (Some("DONE"), Some(4_000))
    );
    let (status, lookup) = Pg::send(
        pg.merchant(Method::GET, &format!("/v1/payments/{key}"))
            .header("X-Sandbox-Fault", "wrong_order"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lookup["orderId"], format!("{order}-other"));
    assert_eq!(lookup["totalAmount"], 4_000);
}

#[tokio::test]
async fn the_unauthorized_fault_answers_401_and_changes_nothing() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 4_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let got = Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("X-Sandbox-Fault", "unauthorized")
            .header("Idempotency-Key", "k-unauth")
            .json(&checkout),
    )
    .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY");
    assert_eq!(pg.status_of(key).await, "READY");
    // Not stored under the key: the same call without the fault goes through.
    let (status, done) = Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("Idempotency-Key", "k-unauth")
            .json(&checkout),
    )
    .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (StatusCode::OK, Some("DONE"))
    );
}
