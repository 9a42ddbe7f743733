//! Creating orders: pricing, idempotency, someone else's hold and order, tokens, bad input.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{performance, spawn};

#[tokio::test]
async fn an_order_is_priced_from_its_hold_with_the_booking_fee_and_replayed_by_its_key() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let hold = app
        .hold(buyer, p.performance_id, &["A-01-01", "A-01-02"])
        .await;

    let first = app.create(buyer, "key-1", hold).await;
    assert_eq!(first.status, 201, "{first:?}");
    let b = &first.body;
    assert_eq!(b["status"], "pending_payment");
    assert_eq!(b["currency"], "KRW");
    assert_eq!(b["tickets_krw"], 300_000);
    assert_eq!(b["booking_fee_krw"], 4_000);
    assert_eq!(b["amount"], 304_000);
    assert_eq!(b["payment"]["amount"], 304_000);
    assert_eq!(b["payment"]["order_id"], b["order_id"]);
    assert_eq!(b["actions"]["pay"], true);
    let order = Uuid::parse_str(b["order_id"].as_str().unwrap()).unwrap();

    // The same key and body: the same answer, no second order.
    let again = app.create(buyer, "key-1", hold).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["order_id"], b["order_id"]);
    // Another key for the same hold: the existing order.
    let other_key = app.create(buyer, "key-2", hold).await;
    assert_eq!(other_key.status, 200, "{other_key:?}");
    assert_eq!(other_key.body["order_id"], b["order_id"]);
    // The same key with another body.
    let reused = app.create(buyer, "key-1", Uuid::now_v7()).await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.body["code"], "idempotency_key_reused");

    assert_eq!(app.events(order, "order.created").await.len(), 1);
    assert_eq!(app.history(order).await, ["pending_payment"]);
    // The payment window ends before the seat checkout deadline.
    let (expires, hold_expires): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT expires_at, hold_expires_at FROM orders WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.orderdb)
            .await
            .unwrap();
    assert!(expires < hold_expires);
    // The hold is in checkout: its buyer can no longer release it.
    let r = app
        .seat
        .client
        .delete(app.seat.url(&format!("/api/v1/holds/{hold}")))
        .bearer_auth(app.token(buyer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn concurrent_submits_of_one_key_make_one_order() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let hold = app.hold(buyer, p.performance_id, &["A-01-03"]).await;
    let (a, b) = tokio::join!(
        app.create(buyer, "dbl", hold),
        app.create(buyer, "dbl", hold)
    );
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&201), "{a:?} {b:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE hold_id = $1")
        .bind(hold)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_key_left_claimed_by_a_dead_process_is_taken_over_by_the_same_request() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let hold = app.hold(buyer, p.performance_id, &["A-01-05"]).await;
    let fingerprint = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!("hold_id={hold}")))
    };
    let claim = |key: &'static str, age_secs: f64| {
        let (pool, fingerprint) = (app.orderdb.clone(), fingerprint.clone());
        async move {
            sqlx::query(
                "INSERT INTO order_requests (buyer_id, idempotency_key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, now() - make_interval(secs => $4))",
            )
            .bind(buyer)
            .bind(key)
            .bind(fingerprint)
            .bind(age_secs)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // A request still running (claimed a moment ago): 409, try again shortly.
    claim("running", 1.0).await;
    let r = app.create(buyer, "running", hold).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["code"], "idempotency_in_flight");
    // A claim its process never finished (it died): the same request takes it over.
    claim("orphaned", order::store::STALE_CLAIM_SECS + 60.0).await;
    let r = app.create(buyer, "orphaned", hold).await;
    assert_eq!(r.status, 201, "{r:?}");
    // ... but never for another body.
    claim("orphaned-other", order::store::STALE_CLAIM_SECS + 60.0).await;
    let r = app.create(buyer, "orphaned-other", Uuid::now_v7()).await;
    assert_eq!(r.status, 422, "{r:?}");
}

#[tokio::test]
async fn someone_elses_hold_and_order_are_not_found_and_tokens_are_checked() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let (alice, mallory) = (Uuid::now_v7(), Uuid::now_v7());
    let hold = app.hold(alice, p.performance_id, &["A-01-04"]).await;

    let stolen = app.create(mallory, "m-1", hold).await;
    assert_eq!(stolen.status, 404, "{stolen:?}");
    assert_eq!(stolen.body["code"], "hold_not_found");
    assert!(stolen.content_type.starts_with("application/problem+json"));

    let (order, _) = {
        let a = app.create(alice, "a-1", hold).await;
        assert_eq!(a.status, 201);
        (
            Uuid::parse_str(a.body["order_id"].as_str().unwrap()).unwrap(),
            0,
        )
    };
    // Mallory asks for Alice's hold again now that it is ordered: still nothing of hers.
    assert_eq!(app.create(mallory, "m-2", hold).await.status, 404);
    assert_eq!(app.order(mallory, order).await.status, 404);
    let cancel = app
        .post(
            &app.token(mallory),
            &format!("/api/v1/orders/{order}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 404);
    assert_eq!(app.status(order).await, "pending_payment");
    let mine = app.get(&app.token(mallory), "/api/v1/me/orders").await;
    assert_eq!(mine.body["orders"].as_array().unwrap().len(), 0);
    let alices = app.get(&app.token(alice), "/api/v1/me/orders").await;
    assert_eq!(alices.body["orders"][0]["order_id"], order.to_string());

    // A forged token (another issuer's key), none, and a missing key.
    let forged =
        platform::testing::TestIssuer::default().token(alice, &[platform::auth::Role::Buyer]);
    let a = app
        .create_raw(Some(&forged), Some("f-1"), json!({"hold_id": hold}))
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        app.create_raw(None, Some("f-2"), json!({"hold_id": hold}))
            .await
            .status,
        401
    );
    assert_eq!(
        app.get(&forged, &format!("/api/v1/orders/{order}"))
            .await
            .status,
        401
    );
    let no_key = app
        .create_raw(Some(&app.token(alice)), None, json!({"hold_id": hold}))
        .await;
    assert_eq!(no_key.body["code"], "idempotency_key_required");
    let bad = app
        .create_raw(
            Some(&app.token(alice)),
            Some("b-1"),
            json!({"hold_id": "nope", "x": 1}),
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(app.order(alice, Uuid::now_v7()).await.status, 404);
    assert_eq!(
        app.get(&app.token(alice), "/api/v1/orders/not-an-id")
            .await
            .status,
        404
    );
    let unknown = app.create(alice, "u-1", Uuid::now_v7()).await;
    assert_eq!(unknown.status, 404);
}
