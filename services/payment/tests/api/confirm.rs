//! The confirm: the happy path, a decline, tampering, repeats, someone else's order, tokens,
//! orders not known yet, closed orders and bad input.

use fakes::pg::{Fault, Operation};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{self, spawn};

#[tokio::test]
async fn an_approved_confirm_charges_once_and_emits_payment_approved() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 55_000).await;
    let key = app.checkout(order, 55_000).await;
    let a = app.confirm(buyer, "k1", &key, order, 55_000).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["status"], "approved");
    assert_eq!(a.body["order_status"], "paid");
    assert_eq!(a.body["amount"], 55_000);
    assert_eq!(a.body["currency"], "KRW");
    assert_eq!(a.body["payment_key"], key.as_str());
    assert!(a.body["approved_at"].is_string());
    let pg = app.pg_payment(&key);
    assert_eq!(pg["status"], "DONE");
    assert_eq!(pg["totalAmount"], 55_000);
    assert_eq!(app.confirms(), 1);
    let approved = app.events(order, "payment.approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["payload"]["amount_krw"], 55_000);
    assert_eq!(approved[0]["payload"]["payment_key"], key.as_str());
    let (status, body) = app.find(buyer, order).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
}

#[tokio::test]
async fn a_declined_confirm_fails_with_the_pg_code_and_emits_payment_failed() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 20_000).await;
    let key = app.checkout(order, 20_000).await;
    app.fault(Fault::Decline, Operation::Confirm, order);
    let a = app.confirm(buyer, "k1", &key, order, 20_000).await;
    assert_eq!(a.status, 402, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(a.body["code"], "payment_declined");
    assert_eq!(a.body["pg_code"], "REJECT_CARD_COMPANY");
    assert_eq!(a.body["payment"]["status"], "failed");
    assert_eq!(app.pg_payment(&key)["status"], "ABORTED");
    let failed = app.events(order, "payment.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["payload"]["code"], "REJECT_CARD_COMPANY");
    assert!(app.events(order, "payment.approved").await.is_empty());
    // Asked again, the first answer; the PG is not asked again.
    let again = app.confirm(buyer, "k1", &key, order, 20_000).await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (402, Some("payment_declined"))
    );
    assert_eq!(app.confirms(), 1);
}

#[tokio::test]
async fn a_tampered_amount_is_refused_and_the_pg_is_never_called() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 90_000).await;
    // The buyer's browser pays 100 KRW at the PG and claims the order is paid.
    let key = app.checkout(order, 100).await;
    let a = app.confirm(buyer, "k1", &key, order, 100).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(a.body["code"], "amount_mismatch");
    assert_eq!(app.confirms(), 0, "the PG was called");
    assert_eq!(app.pg_payment(&key)["status"], "READY");
    assert_eq!(app.status(order).await, None);
    // The right amount against a checkout of the wrong one: the PG refuses, nothing charged.
    let b = app.confirm(buyer, "k2", &key, order, 90_000).await;
    assert_eq!(b.status, 402, "{b:?}");
    assert_ne!(app.pg_payment(&key)["status"], "DONE");
    assert!(app.events(order, "payment.approved").await.is_empty());
}

#[tokio::test]
async fn confirms_repeated_with_the_same_and_other_keys_charge_once() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 33_000).await;
    let key = app.checkout(order, 33_000).await;
    // Twenty at once, under two idempotency keys: one PG confirm, one payment.
    let answers = futures::future::join_all((0..20).map(|i| {
        let idem = format!("k{}", i % 2);
        let (app, key) = (&app, key.clone());
        async move { app.confirm(buyer, &idem, &key, order, 33_000).await }
    }))
    .await;
    for a in &answers {
        match a.status {
            200 => assert_eq!(a.body["status"], "approved"),
            409 => assert_eq!(a.body["code"], "confirm_in_progress"),
            _ => panic!("unexpected answer {a:?}"),
        }
    }
    assert!(answers.iter().any(|a| a.status == 200));
    assert_eq!(app.confirms(), 1, "one PG confirm");
    // Later, with a third key: the first result, still no new PG call.
    let later = app.confirm(buyer, "k-later", &key, order, 33_000).await;
    assert_eq!(
        (later.status, later.body["status"].as_str()),
        (200, Some("approved"))
    );
    assert_eq!(app.confirms(), 1);
    let pg = app.pg_payment(&key);
    assert_eq!(
        (pg["status"].as_str(), pg["totalAmount"].as_i64()),
        (Some("DONE"), Some(33_000))
    );
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    // Another payment key for the paid order is refused, and the PG is not called (the PG
    // itself refuses a second checkout of a paid order).
    let o = app
        .confirm(buyer, "k-other", "pk_other", order, 33_000)
        .await;
    assert_eq!(
        (o.status, o.body["code"].as_str()),
        (409, Some("payment_exists"))
    );
    assert_eq!(app.confirms(), 1);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let first = app.order(buyer, 10_000).await;
    let second = app.order(buyer, 10_000).await;
    let k1 = app.checkout(first, 10_000).await;
    let k2 = app.checkout(second, 10_000).await;
    assert_eq!(
        app.confirm(buyer, "same", &k1, first, 10_000).await.status,
        200
    );
    let a = app.confirm(buyer, "same", &k2, second, 10_000).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(app.pg_payment(&k2)["status"], "READY");
    // Keys are the buyer's own: another buyer may use the same one.
    let other = Uuid::now_v7();
    let third = app.order(other, 10_000).await;
    let k3 = app.checkout(third, 10_000).await;
    assert_eq!(
        app.confirm(other, "same", &k3, third, 10_000).await.status,
        200
    );
}

#[tokio::test]
async fn someone_elses_order_is_not_found_and_nothing_is_charged() {
    let app = spawn().await;
    let (owner, intruder) = (Uuid::now_v7(), Uuid::now_v7());
    let order = app.order(owner, 10_000).await;
    let key = app.checkout(order, 10_000).await;
    let a = app.confirm(intruder, "k1", &key, order, 10_000).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(app.confirms(), 0);
    assert_eq!(app.pg_payment(&key)["status"], "READY");
    // Paid by its owner, it is still nobody else's to read.
    assert_eq!(
        app.confirm(owner, "k1", &key, order, 10_000).await.status,
        200
    );
    let (status, body) = app.find(intruder, order).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(app.find(owner, order).await.0, 200);
}

#[tokio::test]
async fn missing_forged_and_foreign_tokens_are_refused() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 10_000).await;
    let key = app.checkout(order, 10_000).await;
    let body = json!({"payment_key": key, "order_id": order, "amount": 10_000});
    let missing = app.confirm_raw(None, Some("k"), body.clone()).await;
    assert_eq!(
        (missing.status, missing.body["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(missing.content_type, "application/problem+json");
    // Signed by a key the service does not trust, for the right buyer.
    let stranger = platform::testing::TestIssuer::default();
    let forged = stranger.token(buyer, &[platform::auth::Role::Buyer]);
    let f = app
        .confirm_raw(Some(&forged), Some("k"), body.clone())
        .await;
    assert_eq!(f.status, 401);
    // A real token with its signature tampered.
    // (A character in the middle of the signature: the last one may carry only padding bits.)
    let token = app.token(buyer);
    let at = token.rfind('.').unwrap() + 10;
    let was = &token[at..=at];
    let tampered = format!(
        "{}{}{}",
        &token[..at],
        if was == "A" { "B" } else { "A" },
        &token[at + 1..]
    );
    assert_eq!(
        app.confirm_raw(Some(&tampered), Some("k"), body)
            .await
            .status,
        401
    );
    assert_eq!(app.confirms(), 0);
    assert_eq!(app.status(order).await, None);
}

#[tokio::test]
async fn an_order_not_known_yet_is_a_retryable_conflict() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let a = app
        .confirm(buyer, "k", "pk_unknown", Uuid::now_v7(), 10_000)
        .await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (409, Some("order_not_ready"))
    );
    assert_eq!(a.body["retry_after_secs"], 1);
    assert_eq!(app.confirms(), 0);
}

#[tokio::test]
async fn cancelled_and_expired_orders_are_not_charged() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 10_000).await;
    let key = app.checkout(order, 10_000).await;
    app.publish(&contracts::events::OrderCancelled {
        order_id: order,
        buyer_id: buyer,
        performance_id: Uuid::now_v7(),
        seat_ids: Vec::new(),
        areas: Vec::new(),
        refund_krw: 0,
        reason: "buyer_cancelled".into(),
        hold_id: None,
    })
    .await;
    let pool = app.pool.clone();
    helpers::until("the cancel to reach payments", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT cancelled_at IS NOT NULL FROM orders WHERE order_id = $1",
            )
            .bind(order)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    })
    .await;
    let a = app.confirm(buyer, "k", &key, order, 10_000).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (409, Some("order_cancelled"))
    );
    let lapsed = app
        .order_lapsing(buyer, 10_000, chrono::Duration::milliseconds(-1))
        .await;
    let k2 = app.checkout(lapsed, 10_000).await;
    let b = app.confirm(buyer, "k2", &k2, lapsed, 10_000).await;
    assert_eq!(
        (b.status, b.body["code"].as_str()),
        (409, Some("order_expired"))
    );
    assert_eq!(app.confirms(), 0);
    assert_eq!(app.pg_payment(&key)["status"], "READY");
}

#[tokio::test]
async fn bad_input_is_a_problem_with_a_stable_code() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let token = app.token(buyer);
    let order = app.order(buyer, 10_000).await;
    let cases = [
        (
            json!({"payment_key": "pk", "order_id": "nope", "amount": 10_000}),
            Some("k"),
            400,
            "validation_failed",
        ),
        (
            json!({"payment_key": "../../v1/payments", "order_id": order, "amount": 10_000}),
            Some("k"),
            400,
            "validation_failed",
        ),
        (
            json!({"payment_key": "pk", "order_id": order, "amount": -5}),
            Some("k"),
            400,
            "validation_failed",
        ),
        (
            json!({"payment_key": "pk", "order_id": order}),
            Some("k"),
            400,
            "validation_failed",
        ),
        (
            json!({"payment_key": "pk", "order_id": order, "amount": 10_000, "x": 1}),
            Some("k"),
            400,
            "validation_failed",
        ),
        (
            json!({"payment_key": "pk", "order_id": order, "amount": 10_000}),
            None,
            400,
            "idempotency_key_required",
        ),
    ];
    for (body, key, status, code) in cases {
        let a = app.confirm_raw(Some(&token), key, body.clone()).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert_eq!(a.content_type, "application/problem+json", "{body}");
    }
    let long = "k".repeat(301);
    let a = app
        .confirm_raw(
            Some(&token),
            Some(&long),
            json!({"payment_key": "pk", "order_id": order, "amount": 10_000}),
        )
        .await;
    assert_eq!(a.body["code"], "invalid_idempotency_key");
    let (status, body) = app.find(buyer, Uuid::now_v7()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(app.confirms(), 0);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_its_problems() {
    let app = spawn().await;
    let r = app
        .server
        .client
        .get(app.server.url("/api/docs/payment/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let confirm = &doc["paths"]["/api/v1/payments/confirm"]["post"];
    for status in [
        "200", "202", "400", "401", "402", "404", "409", "422", "503",
    ] {
        assert!(confirm["responses"][status].is_object(), "confirm {status}");
    }
    assert!(
        confirm["responses"]["402"]["content"]["application/problem+json"].is_object(),
        "{confirm}"
    );
    assert_eq!(confirm["parameters"][0]["name"], "Idempotency-Key");
    assert!(doc["paths"]["/api/v1/payments/{order_id}"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/payments/webhooks/toss"]["post"].is_object());
    let schemas = &doc["components"]["schemas"];
    for name in ["ConfirmBody", "PaymentView", "Problem", "PaymentStatus"] {
        assert!(schemas[name].is_object(), "schema {name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn after_a_decline_the_buyer_may_pay_the_order_again_and_is_charged_once() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 21_000).await;
    let first = app.checkout(order, 21_000).await;
    app.fault(Fault::Decline, Operation::Confirm, order);
    assert_eq!(
        app.confirm(buyer, "k1", &first, order, 21_000).await.status,
        402
    );
    // Another card: a new checkout, a new confirm (a new key: the old one named the old body).
    let second = app.checkout(order, 21_000).await;
    let reused = app.confirm(buyer, "k1", &second, order, 21_000).await;
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    let a = app.confirm(buyer, "k2", &second, order, 21_000).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("approved")),
        "{a:?}"
    );
    assert_eq!(a.body["payment_key"], second.as_str());
    assert_eq!(app.pg_payment(&second)["status"], "DONE");
    assert_eq!(app.pg_payment(&first)["status"], "ABORTED");
    // Paid now: no third attempt, whatever the key.
    let third = app.confirm(buyer, "k3", "pk_third", order, 21_000).await;
    assert_eq!(
        (third.status, third.body["code"].as_str()),
        (409, Some("payment_exists"))
    );
    assert_eq!(app.events(order, "payment.failed").await.len(), 1);
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    assert_eq!(app.confirms(), 2);
    let entries = payment::store::ledger(&app.pool).await.unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .filter(|(_, o, _)| *o == order)
        .map(|(_, _, e)| e.kind())
        .collect();
    assert_eq!(
        kinds,
        ["confirm_started", "failed", "confirm_started", "approved"]
    );
}
