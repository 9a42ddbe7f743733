//! The money path against a PG that answers wrong, refuses refunds, is flooded with forged
//! webhooks or does not accept our key: nothing is approved that the PG's answer does not prove,
//! no refund hangs forever, a flood costs one lookup, and a wrong key says so.

use contracts::events::{OrderCancelled, RefundRequested};
use fakes::pg::{Fault, Operation, Options, Rule};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, SECRET, config, pg_options, spawn, spawn_with, until};

/// The ledger entries of `order`'s payment: `(kind, entry)`.
async fn ledger(app: &App, order: Uuid) -> Vec<Value> {
    sqlx::query_scalar("SELECT entry FROM payment_ledger WHERE order_id = $1 ORDER BY seq")
        .bind(order)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn refund_error(app: &App, refund: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT error FROM refunds WHERE refund_key = $1")
        .bind(refund.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Calls the PG as an operator at its console would (outside our books).
async fn pg_cancel(app: &App, payment_key: &str, amount: Option<i64>) {
    let mut body = json!({"cancelReason": "console"});
    if let Some(a) = amount {
        body["cancelAmount"] = json!(a);
    }
    let r = app
        .server
        .client
        .post(
            app.fake()
                .url(&format!("/v1/payments/{payment_key}/cancel")),
        )
        .header("Authorization", fakes::pg::basic_auth(SECRET))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn webhook(app: &App, order: Uuid, key: &str) -> (u16, Value) {
    let body = json!({
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-12-02T15:00:00.000000",
        "data": {"paymentKey": key, "orderId": order.to_string(), "status": "DONE"},
    });
    let r = app
        .server
        .client
        .post(app.server.url("/api/v1/payments/webhooks/toss"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_confirm_answered_with_another_amount_is_flagged_and_never_approved() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 40_000).await;
    let key = app.checkout(order, 40_000).await;
    app.fault(Fault::WrongAmount, Operation::Confirm, order);
    let a = app.confirm(buyer, "k", &key, order, 40_000).await;
    assert_eq!(a.status, 502, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(a.body["code"], "payment_under_review");
    assert_eq!(a.body["payment"]["status"], "flagged");
    assert_eq!(app.status(order).await.as_deref(), Some("flagged"));
    assert!(app.events(order, "payment.approved").await.is_empty());
    let failed = app.events(order, "payment.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["payload"]["code"], "PG_AMOUNT_MISMATCH");
    // The ledger says why, for the operator.
    let entries = ledger(&app, order).await;
    let last = entries.last().unwrap();
    assert_eq!(last["kind"], "flagged");
    assert_eq!(last["code"], "PG_AMOUNT_MISMATCH");
    assert!(last["reason"].as_str().unwrap().contains("41000"), "{last}");
    // The buyer's view and a retry say the same; neither calls the PG again, nor does a webhook.
    let (status, view) = app.find(buyer, order).await;
    assert_eq!(
        (status, view["order_status"].as_str()),
        (200, Some("under_review"))
    );
    assert_eq!(view["failure"]["code"], "PG_AMOUNT_MISMATCH");
    assert!(
        !view["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("41000"),
        "the PG's answer is the operator's: {view}"
    );
    let again = app.confirm(buyer, "k", &key, order, 40_000).await;
    assert_eq!(again.status, 502);
    let other = app
        .confirm(buyer, "k2", "another-checkout", order, 40_000)
        .await;
    assert_eq!(
        (other.status, other.body["code"].as_str()),
        (409, Some("payment_exists"))
    );
    let lookups = app.lookups();
    let (status, body) = webhook(&app, order, &key).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("flagged")));
    assert_eq!(app.lookups(), lookups);
    assert_eq!(app.confirms(), 1);
}

#[tokio::test]
async fn a_lookup_naming_another_order_is_flagged_not_approved() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 21_000).await;
    let key = app.checkout(order, 21_000).await;
    // The money moves, the reply is lost; every lookup of the order then names another one.
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::WrongOrder)
                .on(Operation::Lookup)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    app.fault(Fault::TimeoutAfterApply, Operation::Confirm, order);
    assert_eq!(
        app.confirm(buyer, "k", &key, order, 21_000).await.status,
        202
    );
    app.wait_status(order, "flagged").await;
    assert!(app.events(order, "payment.approved").await.is_empty());
    let last = ledger(&app, order).await.pop().unwrap();
    assert_eq!(last["code"], "PG_ORDER_MISMATCH");
    assert_eq!(
        app.pg_payment(&key)["status"],
        "DONE",
        "the operator's to settle"
    );
}

#[tokio::test]
async fn a_payment_cancelled_at_the_pg_that_we_never_approved_is_not_approved() {
    let app = spawn_with(pg_options(), {
        // The settler waits: the PG's state changes before anyone looks.
        let mut c = config();
        c.settle.first_backoff_ms = 60_000;
        c.settle.max_backoff_ms = 60_000;
        c
    })
    .await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 17_000).await;
    let key = app.checkout(order, 17_000).await;
    app.fault(Fault::TimeoutAfterApply, Operation::Confirm, order);
    assert_eq!(
        app.confirm(buyer, "k", &key, order, 17_000).await.status,
        202
    );
    // Someone cancels it at the PG's console before we learn it was approved.
    until("the PG to have it DONE", || async {
        app.pg_payment(&key)["status"] == "DONE"
    })
    .await;
    pg_cancel(&app, &key, None).await;
    let (status, body) = webhook(&app, order, &key).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("flagged")),
        "{body}"
    );
    assert!(app.events(order, "payment.approved").await.is_empty());
    let last = ledger(&app, order).await.pop().unwrap();
    assert_eq!(last["code"], "PG_CANCELED_UNAPPROVED");
}

#[tokio::test]
async fn a_refund_the_pg_refuses_for_good_emits_payment_refund_failed_once() {
    let app = spawn().await;
    let (_, order, key) = app.paid(20_000).await;
    // Part of it went back at the PG's console: a full refund is more than the PG's balance.
    pg_cancel(&app, &key, Some(1_000)).await;
    let refund = app.request_refund(order, None).await;
    app.wait_refund(refund, "rejected").await;
    assert!(
        refund_error(&app, refund)
            .await
            .unwrap()
            .starts_with("NOT_CANCELABLE_AMOUNT")
    );
    let failed = app.events(order, "payment.refund_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["payload"]["refund_key"], refund.to_string());
    assert_eq!(failed[0]["payload"]["code"], "NOT_CANCELABLE_AMOUNT");
    assert_eq!(failed[0]["payload"]["amount_krw"], 20_000);
    assert!(app.events(order, "payment.refunded").await.is_empty());
    // Asked again (the order service's sweeper): the same refund, ended; nothing new. (The
    // order's cancellation, on the same key, is consumed after it.)
    let cancels = app.cancels();
    app.publish(&RefundRequested {
        refund_id: refund,
        order_id: order,
        amount_krw: None,
        reason: "buyer_cancelled".into(),
    })
    .await;
    app.publish(&OrderCancelled {
        order_id: order,
        buyer_id: Uuid::now_v7(),
        performance_id: Uuid::now_v7(),
        seat_ids: vec![],
        areas: vec![],
        refund_krw: 0,
        reason: "buyer_cancelled".into(),
        hold_id: None,
    })
    .await;
    until("the republication to be consumed", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT cancelled_at IS NOT NULL FROM orders WHERE order_id = $1",
        )
        .bind(order)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(app.refund_status(refund).await.as_deref(), Some("rejected"));
    assert_eq!(app.events(order, "payment.refund_failed").await.len(), 1);
    assert_eq!(app.cancels(), cancels);
}

#[tokio::test]
async fn a_refund_of_a_payment_already_cancelled_at_the_pg_is_recorded_as_done() {
    let app = spawn().await;
    let (_, order, key) = app.paid(15_000).await;
    pg_cancel(&app, &key, None).await;
    let refund = app.request_refund(order, None).await;
    app.wait_refund(refund, "done").await;
    assert_eq!(app.status(order).await.as_deref(), Some("refunded"));
    let refunded = app.events(order, "payment.refunded").await;
    assert_eq!(refunded.len(), 1);
    assert_eq!(refunded[0]["payload"]["amount_krw"], 15_000);
    assert!(app.events(order, "payment.refund_failed").await.is_empty());
}

#[tokio::test]
async fn a_refund_failing_past_its_attempts_is_given_up_to_an_operator() {
    let app = spawn().await;
    let (_, order, key) = app.paid(12_000).await;
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::Error)
                .on(Operation::Cancel)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    let refund = app.request_refund(order, None).await;
    app.wait_refund(refund, "failed").await;
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM refunds WHERE refund_key = $1")
        .bind(refund.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, app.config.settle.refund_max_attempts);
    let failed = app.events(order, "payment.refund_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["payload"]["code"], "REFUND_GAVE_UP");
    assert_eq!(app.pg_payment(&key)["status"], "DONE");
    assert_eq!(app.status(order).await.as_deref(), Some("approved"));
}

#[tokio::test]
async fn a_refund_whose_replies_were_lost_until_it_gave_up_is_found_done_at_the_pg() {
    let app = spawn().await;
    let (_, order, key) = app.paid(9_000).await;
    // Every cancel is applied at the PG but its reply is lost.
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::TimeoutAfterApply)
                .on(Operation::Cancel)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    let refund = app.request_refund(order, None).await;
    app.wait_refund(refund, "done").await;
    assert_eq!(app.pg_payment(&key)["status"], "CANCELED");
    assert_eq!(app.events(order, "payment.refunded").await.len(), 1);
    assert!(app.events(order, "payment.refund_failed").await.is_empty());
}

#[tokio::test]
async fn a_flood_of_webhooks_for_one_payment_costs_one_pg_lookup() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 11_000).await;
    let key = app.checkout(order, 11_000).await;
    app.fault(Fault::Decline, Operation::Confirm, order);
    assert_eq!(
        app.confirm(buyer, "k", &key, order, 11_000).await.status,
        402
    );
    let before = app.lookups();
    let answers = futures::future::join_all((0..200).map(|_| webhook(&app, order, &key))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["status"], "failed", "{body}");
    }
    let looked = app.lookups() - before;
    assert!(
        (1..=2).contains(&looked),
        "{looked} PG lookups for 200 webhooks"
    );
    let dropped = answers
        .iter()
        .filter(|(_, b)| b["result"] == "ignored")
        .count();
    assert!(dropped >= 198, "{dropped} dropped");
    assert_eq!(app.status(order).await.as_deref(), Some("failed"));
}

#[tokio::test]
async fn webhook_lookups_in_flight_are_bounded_across_payments() {
    let mut c = config();
    c.webhook_max_in_flight = 1;
    // Slow, but within the service's PG timeout (400 ms).
    let mut o = pg_options();
    o.slow = std::time::Duration::from_millis(300);
    let app = spawn_with(o, c).await;
    let mut declined = Vec::new();
    for _ in 0..2 {
        let buyer = Uuid::now_v7();
        let order = app.order(buyer, 8_000).await;
        let key = app.checkout(order, 8_000).await;
        app.fault(Fault::Decline, Operation::Confirm, order);
        assert_eq!(
            app.confirm(buyer, "k", &key, order, 8_000).await.status,
            402
        );
        declined.push((order, key));
    }
    // The first payment's lookup is slow (by key: any order); the second waits its turn.
    assert!(
        app.fake()
            .control
            .inject(Rule::next(Fault::Slow).on(Operation::Lookup))
    );
    let (a, b) = (&declined[0], &declined[1]);
    let slow = webhook(&app, a.0, &a.1);
    let second = async {
        until("the first lookup to be under way", || async {
            app.calls
                .in_flight
                .load(std::sync::atomic::Ordering::SeqCst)
                == 1
        })
        .await;
        webhook(&app, b.0, &b.1).await
    };
    let ((s1, _), (s2, body2)) = tokio::join!(slow, second);
    assert_eq!(s1, 200);
    assert_eq!(
        (s2, body2["code"].as_str()),
        (503, Some("webhooks_busy")),
        "{body2}"
    );
    assert_eq!(body2["retry_after_secs"], 5);
}

/// A PG that knows the sandbox key only: ours ([`SECRET`]) is refused.
fn wrong_key() -> Options {
    let mut o = pg_options();
    o.secret_keys.retain(|k| k != SECRET);
    o
}

async fn readyz(app: &App) -> (u16, Value) {
    let r = app
        .server
        .client
        .get(app.server.url("/readyz"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_wrong_secret_key_is_a_misconfiguration_not_an_outage() {
    let app = spawn_with(wrong_key(), config()).await;
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 13_000).await;
    let key = app.checkout(order, 13_000).await;
    let a = app.confirm(buyer, "k", &key, order, 13_000).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (503, Some("pg_misconfigured")),
        "{a:?}"
    );
    assert_eq!(a.content_type, "application/problem+json");
    // Nothing moved at the PG; the payment failed for our reason, not the buyer's.
    assert_eq!(app.pg_payment(&key)["status"], "READY");
    let entries = ledger(&app, order).await;
    assert_eq!(entries.last().unwrap()["code"], "PG_MISCONFIGURED");
    // The replica says it is not ready, and why; the breaker stays closed.
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["pg_key"]["status"], "down");
    assert!(
        ready["checks"]["pg_key"]["error"]
            .as_str()
            .unwrap()
            .contains("pg_misconfigured"),
        "{ready}"
    );
    assert_eq!(ready["checks"]["pg_circuit"]["status"], "up");
    // Confirms meanwhile fail fast without calling the PG.
    let again = app.confirm(buyer, "k", &key, order, 13_000).await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (503, Some("pg_misconfigured"))
    );
    assert_eq!(app.confirms(), 1);
}

#[tokio::test]
async fn a_confirm_sent_again_with_a_refused_key_leaves_the_outcome_unknown() {
    let mut c = config();
    c.pg.breaker_open_ms = 50;
    let app = spawn_with(pg_options(), c).await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 16_000).await;
    let key = app.checkout(order, 16_000).await;
    // The first confirm hangs (for all we know it may have charged); then the key is refused on
    // every confirm the settler sends again.
    app.fault(Fault::Timeout, Operation::Confirm, order);
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::Unauthorized)
                .on(Operation::Confirm)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    assert_eq!(
        app.confirm(buyer, "k", &key, order, 16_000).await.status,
        202
    );
    until("the settler to send the confirm again", || async {
        app.confirms() >= 2
    })
    .await;
    // Never taken for a "no": still unknown, never failed.
    until("the refused key to be seen", || async {
        readyz(&app).await.0 == 503
    })
    .await;
    assert_eq!(app.status(order).await.as_deref(), Some("unknown"));
    assert!(app.events(order, "payment.failed").await.is_empty());
    // The key works again: the payment is approved, once.
    app.fake().control.clear_faults();
    app.wait_status(order, "approved").await;
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    until("the replica to be ready again", || async {
        readyz(&app).await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn an_open_breaker_is_reported_but_keeps_the_replica_ready() {
    let app = spawn().await;
    // A PG answering 500 to every call opens the breaker after three failures.
    assert!(
        app.fake()
            .control
            .inject(Rule::next(Fault::Error).times(1_000))
    );
    for _ in 0..3 {
        let buyer = Uuid::now_v7();
        let order = app.order(buyer, 5_000).await;
        let key = app.checkout(order, 5_000).await;
        let a = app.confirm(buyer, "k", &key, order, 5_000).await;
        assert!([202, 503].contains(&a.status), "{a:?}");
    }
    until("the breaker to open", || async {
        readyz(&app).await.1["checks"]["pg_circuit"]["status"] == "down"
    })
    .await;
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["pg_circuit"]["required"], false);
    assert!(
        ready["checks"]["pg_circuit"]["error"]
            .as_str()
            .unwrap()
            .starts_with("breaker "),
        "{ready}"
    );
    assert_eq!(ready["checks"]["pg_key"]["status"], "up");
}
