//! Two money bugs a review found: a refund recorded by two replicas (the first one's lease ran
//! out while its PG call was running), and a charge the PG completes after we gave the payment
//! up as undecided, with no webhook to tell us.

use std::time::Duration;

use fakes::pg::{Fault, Operation, Rule};
use payment::{gateway::guard::Guard, payments::Payments, store::Refund};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, spawn, until};

/// Another replica's `Payments` on the same PayDB and PG.
fn replica(app: &App) -> Payments {
    Payments::new(
        app.pool.clone(),
        Some(app.calls.clone()),
        Guard::new(100, Duration::from_secs(1), 16),
        app.config.settle.clone(),
        Duration::from_millis(app.config.pg.timeout_ms),
    )
}

async fn refunded_entries(app: &App, order: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM payment_ledger WHERE order_id = $1 AND entry->>'kind' = 'refunded'",
    )
    .bind(order)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn refunded_krw(app: &App, order: Uuid) -> i64 {
    sqlx::query_scalar("SELECT refunded_krw FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refund_a_second_replica_records_after_the_first_is_recorded_once() {
    let app = spawn().await;
    let (_, order, key) = app.paid(10_000).await;
    let refund = app.request_refund(order, Some(3_000)).await;
    // Replica B claimed the refund too (A's lease ran out while A's PG call was running).
    let claimed = Refund {
        refund_key: refund.to_string(),
        order_id: order,
        amount_krw: Some(3_000),
        reason: "buyer_cancelled".into(),
        cancel_krw: Some(3_000),
        attempts: 1,
    };
    app.wait_refund(refund, "done").await;
    // B's PG call returns (the PG replays the same idempotency key) after A recorded it.
    assert!(replica(&app).refund(&claimed).await.unwrap());
    assert_eq!(refunded_entries(&app, order).await, 1);
    assert_eq!(app.events(order, "payment.refunded").await.len(), 1);
    assert_eq!(refunded_krw(&app, order).await, 3_000);
    assert_eq!(app.pg_payment(&key)["balanceAmount"], 7_000);
    assert_eq!(
        app.status(order).await.as_deref(),
        Some("partially_refunded")
    );
}

#[tokio::test]
async fn two_replicas_recording_one_refund_at_once_record_it_once() {
    let app = spawn().await;
    let (_, order, _) = app.paid(10_000).await;
    // A refund the settler leaves alone (not due for an hour): only the two replicas make it.
    let refund_key = format!("review-{}", Uuid::now_v7());
    sqlx::query(
        "INSERT INTO refunds (refund_key, order_id, amount_krw, reason, cancel_krw, attempts, \
         next_attempt_at) VALUES ($1, $2, 4000, 'buyer_cancelled', 4000, 1, \
         now() + interval '1 hour')",
    )
    .bind(&refund_key)
    .bind(order)
    .execute(&app.pool)
    .await
    .unwrap();
    let claimed = Refund {
        refund_key: refund_key.clone(),
        order_id: order,
        amount_krw: Some(4_000),
        reason: "buyer_cancelled".into(),
        cancel_krw: Some(4_000),
        attempts: 1,
    };
    let (a, b) = (replica(&app), replica(&app));
    let (ra, rb) = tokio::join!(a.refund(&claimed), b.refund(&claimed));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // One of them may have been told to try again (the PG's call under the same key still
    // running); it then finds the refund done.
    if !(ra && rb) {
        assert!(a.refund(&claimed).await.unwrap());
    }
    let status: String = sqlx::query_scalar("SELECT status FROM refunds WHERE refund_key = $1")
        .bind(&refund_key)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "done");
    assert_eq!(refunded_entries(&app, order).await, 1);
    assert_eq!(app.events(order, "payment.refunded").await.len(), 1);
    assert_eq!(refunded_krw(&app, order).await, 4_000);
}

#[tokio::test]
async fn a_charge_the_pg_completes_after_we_gave_up_is_found_and_refunded_without_a_webhook() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app
        .order_lapsing(buyer, 15_000, chrono::Duration::milliseconds(1_200))
        .await;
    let key = app.checkout(order, 15_000).await;
    // Every confirm of ours fails at the PG without a verdict, until the order closed.
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::Error)
                .on(Operation::Confirm)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    let a = app.confirm(buyer, "k1", &key, order, 15_000).await;
    assert_eq!(a.status, 202, "{a:?}");
    app.wait_status(order, "failed").await;
    let failed = app.events(order, "payment.failed").await;
    assert_eq!(failed[0]["payload"]["code"], "PG_UNDECIDED");
    // Still on the recheck schedule.
    let next: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT next_check_at FROM payments WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        next.is_some(),
        "a payment given up as undecided is looked at again"
    );
    // The PG completes the payment late (a confirm it sat on), and tells no one.
    app.fake().control.clear_faults();
    let r = app
        .server
        .client
        .post(app.fake().url("/v1/payments/confirm"))
        .header(
            "Authorization",
            fakes::pg::basic_auth(crate::helpers::SECRET),
        )
        .header("Idempotency-Key", format!("late-{order}"))
        .json(&json!({"paymentKey": key, "orderId": order.to_string(), "amount": 15_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(app.pg_payment(&key)["status"], "DONE");
    // The reconciler finds the charge: a late approval, refunded in full.
    until("the late charge to be refunded", || async {
        app.status(order).await.as_deref() == Some("refunded")
    })
    .await;
    let pg: Value = app.pg_payment(&key);
    assert_eq!(
        (pg["status"].as_str(), pg["balanceAmount"].as_i64()),
        (Some("CANCELED"), Some(0))
    );
    let late: bool = sqlx::query_scalar("SELECT late FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(late);
    assert_eq!(app.events(order, "payment.refunded").await.len(), 1);
    assert_eq!(app.fake().control.webhooks_delivered(), 0);
}
