//! Checkout, confirm, lookups and cancels, with each refusal beside the happy path.

use fakes::pg;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Pg, assert_error, order_id, spawn, spawn_with};

#[tokio::test]
async fn a_checkout_confirmed_is_done_and_found_by_key_and_by_order() {
    let pg = spawn().await;
    let order = order_id();
    let checkout = pg.checkout(&order, 15_000).await;
    assert_eq!(checkout["orderId"], order);
    assert_eq!(checkout["amount"], 15_000);
    let key = checkout["paymentKey"].as_str().unwrap().to_owned();
    assert_eq!(pg.status_of(&key).await, "READY");

    let (status, done) = pg.confirm(&checkout).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "DONE");
    assert_eq!(done["paymentKey"], key.as_str());
    assert_eq!(done["orderId"], order);
    assert_eq!(done["totalAmount"], 15_000);
    assert_eq!(done["balanceAmount"], 15_000);
    assert_eq!(done["method"], "카드");
    assert!(done["approvedAt"].as_str().unwrap().ends_with("+09:00"));
    assert!(done["cancels"].is_null());

    let (status, by_key) = pg.payment(&key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_key, done);
    let (status, by_order) =
        Pg::send(pg.merchant(Method::GET, &format!("/v1/payments/orders/{order}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_order["paymentKey"], key.as_str());
}

#[tokio::test]
async fn a_declined_checkout_answers_what_the_fail_redirect_carries() {
    let pg = spawn().await;
    let order = order_id();
    let got = Pg::send(
        pg.client
            .post(pg.url("/v1/sandbox/checkouts"))
            .json(&json!({"orderId": order, "amount": 1000, "outcome": "declined"})),
    )
    .await;
    assert_error(&got, StatusCode::FORBIDDEN, "REJECT_CARD_COMPANY");
    assert_eq!(got.1["orderId"], order);
    let none = Pg::send(pg.merchant(Method::GET, &format!("/v1/payments/orders/{order}"))).await;
    assert_error(&none, StatusCode::NOT_FOUND, "NOT_FOUND_PAYMENT");
}

#[tokio::test]
async fn bad_checkouts_are_refused() {
    let pg = spawn().await;
    for body in [
        json!({"orderId": "short", "amount": 1000, "outcome": "approved"}),
        json!({"orderId": "order/../x", "amount": 1000, "outcome": "approved"}),
        json!({"orderId": order_id(), "amount": 0, "outcome": "approved"}),
        json!({"orderId": order_id(), "amount": -5, "outcome": "approved"}),
        json!({"orderId": order_id(), "amount": 1000, "outcome": "maybe"}),
        json!({"orderId": order_id(), "amount": 1000, "outcome": "approved", "method": "cash"}),
        json!({"orderId": order_id(), "amount": "1000", "outcome": "approved"}),
    ] {
        let got = Pg::send(pg.client.post(pg.url("/v1/sandbox/checkouts")).json(&body)).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    }
    let got = Pg::send(
        pg.client
            .post(pg.url("/v1/sandbox/checkouts"))
            .body("{not json"),
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
}

#[tokio::test]
async fn an_order_paid_once_cannot_be_checked_out_again() {
    let pg = spawn().await;
    let done = pg.paid(5_000).await;
    let order = done["orderId"].as_str().unwrap();
    let got = Pg::send(
        pg.client
            .post(pg.url("/v1/sandbox/checkouts"))
            .json(&json!({"orderId": order, "amount": 5_000, "outcome": "approved"})),
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "DUPLICATED_ORDER_ID");
}

#[tokio::test]
async fn a_tampered_amount_is_refused_and_charges_nothing() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 50_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let mut tampered = checkout.clone();
    tampered["amount"] = json!(100);
    assert_error(
        &pg.confirm(&tampered).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    let mut other_order = checkout.clone();
    other_order["orderId"] = json!(order_id());
    assert_error(
        &pg.confirm(&other_order).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
    assert_eq!(pg.status_of(key).await, "READY", "nothing moved");
    let (status, done) = pg.confirm(&checkout).await;
    assert_eq!(
        (status, done["totalAmount"].clone()),
        (StatusCode::OK, json!(50_000))
    );
}

#[tokio::test]
async fn confirming_twice_is_already_processed() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 1_000).await;
    assert_eq!(pg.confirm(&checkout).await.0, StatusCode::OK);
    assert_error(
        &pg.confirm(&checkout).await,
        StatusCode::BAD_REQUEST,
        "ALREADY_PROCESSED_PAYMENT",
    );
}

#[tokio::test]
async fn unknown_payments_are_not_found() {
    let pg = spawn().await;
    let body = json!({"paymentKey": "nope", "orderId": order_id(), "amount": 1000});
    assert_error(
        &pg.confirm(&body).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT_SESSION",
    );
    assert_error(
        &pg.payment("nope").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT",
    );
    assert_error(
        &pg.cancel("nope", &json!({"cancelReason": "x"})).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT",
    );
    assert_error(
        &pg.confirm(&json!({"paymentKey": "x"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
    );
}

#[tokio::test]
async fn a_missing_or_wrong_secret_key_is_unauthorized_and_moves_nothing() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 1_000).await;
    let key = checkout["paymentKey"].as_str().unwrap();
    let confirm = || {
        pg.client
            .post(pg.url("/v1/payments/confirm"))
            .json(&checkout)
    };
    for req in [
        confirm(),
        confirm().header("Authorization", pg::basic_auth("test_sk_someone_else")),
        confirm().header(
            "Authorization",
            format!("Bearer {}", pg::SANDBOX_SECRET_KEY),
        ),
        confirm().header("Authorization", "Basic !!!not-base64"),
        confirm().header("Authorization", pg::basic_auth("")),
    ] {
        assert_error(
            &Pg::send(req).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED_KEY",
        );
    }
    let lookup = Pg::send(pg.client.get(pg.url(&format!("/v1/payments/{key}")))).await;
    assert_error(&lookup, StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY");
    let faults = Pg::send(
        pg.client
            .post(pg.url("/v1/sandbox/faults"))
            .json(&json!({"fault": "decline"})),
    )
    .await;
    assert_error(&faults, StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY");
    assert_eq!(pg.status_of(key).await, "READY");
}

#[tokio::test]
async fn a_checkout_not_confirmed_within_the_window_expires() {
    let pg = spawn().await;
    let late = pg.checkout(&order_id(), 1_000).await;
    let in_time = pg.checkout(&order_id(), 1_000).await;
    pg.run
        .control
        .clock()
        .advance(std::time::Duration::from_secs(9 * 60 + 50));
    assert_eq!(
        pg.confirm(&in_time).await.0,
        StatusCode::OK,
        "within 10 minutes"
    );
    pg.run
        .control
        .clock()
        .advance(std::time::Duration::from_secs(10));
    assert_error(
        &pg.confirm(&late).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT_SESSION",
    );
    assert_eq!(
        pg.status_of(late["paymentKey"].as_str().unwrap()).await,
        "EXPIRED"
    );
    assert_eq!(
        pg.status_of(in_time["paymentKey"].as_str().unwrap()).await,
        "DONE",
        "a DONE payment never expires"
    );
}

#[tokio::test]
async fn the_clock_moves_over_http_too_and_the_window_is_configurable() {
    let pg = spawn_with(|o| o.confirm_window = std::time::Duration::from_secs(30)).await;
    let checkout = pg.checkout(&order_id(), 1_000).await;
    let (status, _) = Pg::send(
        pg.merchant(Method::POST, "/v1/sandbox/clock")
            .json(&json!({"advanceSeconds": 31})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &pg.confirm(&checkout).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT_SESSION",
    );
}

#[tokio::test]
async fn partial_then_full_cancels_follow_the_balance() {
    let pg = spawn().await;
    let done = pg.paid(10_000).await;
    let key = done["paymentKey"].as_str().unwrap();

    let (status, partial) = pg
        .cancel(
            key,
            &json!({"cancelReason": "one seat", "cancelAmount": 3_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert_eq!(partial["status"], "PARTIAL_CANCELED");
    assert_eq!(partial["balanceAmount"], 7_000);
    assert_eq!(partial["cancels"][0]["cancelAmount"], 3_000);
    assert_eq!(partial["cancels"][0]["cancelReason"], "one seat");
    assert_eq!(partial["cancels"][0]["refundableAmount"], 7_000);

    let over = pg
        .cancel(
            key,
            &json!({"cancelReason": "too much", "cancelAmount": 7_001}),
        )
        .await;
    assert_error(&over, StatusCode::BAD_REQUEST, "NOT_CANCELABLE_AMOUNT");
    let zero = pg
        .cancel(key, &json!({"cancelReason": "zero", "cancelAmount": 0}))
        .await;
    assert_error(&zero, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    let no_reason = pg.cancel(key, &json!({"cancelAmount": 1})).await;
    assert_error(&no_reason, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    assert_eq!(
        pg.payment(key).await.1["balanceAmount"],
        7_000,
        "refusals moved nothing"
    );

    let (status, full) = pg.cancel(key, &json!({"cancelReason": "the rest"})).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert_eq!(full["status"], "CANCELED");
    assert_eq!(full["balanceAmount"], 0);
    assert_eq!(full["cancels"].as_array().unwrap().len(), 2);
    assert_eq!(full["cancels"][1]["cancelAmount"], 7_000);

    let again = pg.cancel(key, &json!({"cancelReason": "again"})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "ALREADY_CANCELED_PAYMENT");
}

#[tokio::test]
async fn a_payment_never_approved_cannot_be_cancelled() {
    let pg = spawn().await;
    let checkout = pg.checkout(&order_id(), 1_000).await;
    let got = pg
        .cancel(
            checkout["paymentKey"].as_str().unwrap(),
            &json!({"cancelReason": "x"}),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "NOT_CANCELABLE_PAYMENT");
}

#[tokio::test]
async fn a_flood_of_checkouts_keeps_memory_bounded() {
    let pg = spawn_with(|o| o.max_payments = 3).await;
    let first = pg.checkout(&order_id(), 1_000).await;
    for _ in 0..10 {
        pg.checkout(&order_id(), 1_000).await;
    }
    assert_error(
        &pg.payment(first["paymentKey"].as_str().unwrap()).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT",
    );
}
