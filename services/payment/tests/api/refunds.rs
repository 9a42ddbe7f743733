//! Refunds from `refund.requested`: full and partial at the PG under the refund's own
//! idempotency key, once per refund however often it is asked, retried through PG errors and
//! lost replies, refused above the balance, and waiting for an unknown payment to settle.

use fakes::pg::{Fault, Operation};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::spawn;

fn amounts(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["payload"]["amount_krw"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_full_refund_cancels_at_the_pg_once_and_emits_payment_refunded() {
    let app = spawn().await;
    let (buyer, order, key) = app.paid(48_000).await;
    let refund = app.request_refund(order, None).await;
    app.wait_refund(refund, "done").await;
    assert_eq!(app.status(order).await.as_deref(), Some("refunded"));
    let pg = app.pg_payment(&key);
    assert_eq!(
        (pg["status"].as_str(), pg["balanceAmount"].as_i64()),
        (Some("CANCELED"), Some(0))
    );
    let refunded = app.events(order, "payment.refunded").await;
    assert_eq!(amounts(&refunded), [48_000]);
    assert_eq!(refunded[0]["payload"]["reason"], "buyer_cancelled");
    // The order service asks again for the same refund (a republication): nothing more.
    app.publish(&contracts::events::RefundRequested {
        refund_id: refund,
        order_id: order,
        amount_krw: None,
        reason: "buyer_cancelled".into(),
    })
    .await;
    // A later request for another refund of the same order finds nothing left.
    let again = app.request_refund(order, None).await;
    app.wait_refund(again, "nothing_to_refund").await;
    assert_eq!(app.cancels(), 1);
    assert_eq!(app.events(order, "payment.refunded").await.len(), 1);
    let (status, body) = app.find(buyer, order).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("refunded")));
    assert_eq!(body["refunded_amount"], 48_000);
    assert_eq!(body["order_status"], "refunded");
}

#[tokio::test]
async fn partial_refunds_add_up_to_the_charge_and_no_further() {
    let app = spawn().await;
    let (_, order, key) = app.paid(10_000).await;
    let first = app.request_refund(order, Some(3_000)).await;
    app.wait_refund(first, "done").await;
    assert_eq!(
        app.status(order).await.as_deref(),
        Some("partially_refunded")
    );
    let pg = app.pg_payment(&key);
    assert_eq!(
        (pg["status"].as_str(), pg["balanceAmount"].as_i64()),
        (Some("PARTIAL_CANCELED"), Some(7_000))
    );
    // More than is left: refused here, the PG never asked.
    let over = app.request_refund(order, Some(7_001)).await;
    app.wait_refund(over, "rejected").await;
    assert_eq!(app.cancels(), 1);
    // The rest.
    let rest = app.request_refund(order, None).await;
    app.wait_refund(rest, "done").await;
    assert_eq!(app.status(order).await.as_deref(), Some("refunded"));
    assert_eq!(app.pg_payment(&key)["balanceAmount"], 0);
    assert_eq!(
        amounts(&app.events(order, "payment.refunded").await),
        [3_000, 7_000]
    );
    assert_eq!(app.cancels(), 2);
}

#[tokio::test]
async fn a_refund_goes_through_pg_errors_and_lost_replies_exactly_once() {
    let app = spawn().await;
    // A 500, then a cancel applied at the PG whose reply is lost (on another order).
    let mut before = 0;
    for fault in [Fault::Error, Fault::TimeoutAfterApply] {
        let (_, order, key) = app.paid(20_000).await;
        app.fault(fault, Operation::Cancel, order);
        let refund = app.request_refund(order, Some(5_000)).await;
        app.wait_refund(refund, "done").await;
        let cancels = app.cancels() - before;
        before = app.cancels();
        assert!(cancels >= 2, "{fault:?}: {cancels} cancel calls");
        // Retried under one idempotency key: the PG moved the money back once.
        let pg = app.pg_payment(&key);
        assert_eq!(pg["balanceAmount"], 15_000, "{fault:?}");
        assert_eq!(pg["cancels"].as_array().unwrap().len(), 1, "{fault:?}");
        assert_eq!(
            amounts(&app.events(order, "payment.refunded").await),
            [5_000]
        );
        assert_eq!(
            app.status(order).await.as_deref(),
            Some("partially_refunded")
        );
    }
}

#[tokio::test]
async fn a_refund_of_an_unknown_payment_waits_for_it_and_of_no_payment_does_nothing() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 30_000).await;
    let key = app.checkout(order, 30_000).await;
    app.fault(Fault::TimeoutAfterApply, Operation::Confirm, order);
    let a = app.confirm(buyer, "k", &key, order, 30_000).await;
    assert_eq!(a.status, 202);
    // Asked while the outcome is unknown: it waits, then refunds what was charged.
    let refund = app.request_refund(order, None).await;
    app.wait_refund(refund, "done").await;
    assert_eq!(app.status(order).await.as_deref(), Some("refunded"));
    assert_eq!(app.pg_payment(&key)["status"], "CANCELED");
    // An order never paid: nothing to refund, the PG not asked.
    let unpaid = app.order(buyer, 30_000).await;
    let none = app.request_refund(unpaid, None).await;
    app.wait_refund(none, "nothing_to_refund").await;
    assert_eq!(app.cancels(), 1);
}
