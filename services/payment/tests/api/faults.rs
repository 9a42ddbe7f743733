//! The PG misbehaving: a timeout, a timeout after the money moved, 5xx and retryable errors
//! (the payment is `unknown`, never assumed failed, and the reconciler settles it), a PG that is
//! down or slow (confirms fail fast with a problem instead of piling up).

use std::time::{Duration, Instant};

use fakes::pg::{Fault, Operation, Rule};
use uuid::Uuid;

use crate::helpers::{config, pg_options, spawn, spawn_on, spawn_with};

#[tokio::test]
async fn a_timeout_leaves_the_payment_unknown_until_the_reconciler_settles_it() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 41_000).await;
    let key = app.checkout(order, 41_000).await;
    app.fault(Fault::Timeout, Operation::Confirm, order);
    let started = Instant::now();
    let a = app.confirm(buyer, "k1", &key, order, 41_000).await;
    assert!(
        started.elapsed() < Duration::from_millis(1_400),
        "waited for the PG"
    );
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.body["status"], "unknown");
    assert_eq!(a.body["order_status"], "pending_payment");
    // Never assumed failed: the reconciler finds the confirm never took and sends it again.
    app.wait_status(order, "approved").await;
    assert!(app.events(order, "payment.failed").await.is_empty());
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    let pg = app.pg_payment(&key);
    assert_eq!(
        (pg["status"].as_str(), pg["totalAmount"].as_i64()),
        (Some("DONE"), Some(41_000))
    );
    let (status, body) = app.find(buyer, order).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
}

#[tokio::test]
async fn a_timeout_after_the_money_moved_is_reconciled_to_approved_and_never_charged_twice() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 77_000).await;
    let key = app.checkout(order, 77_000).await;
    app.fault(Fault::TimeoutAfterApply, Operation::Confirm, order);
    let a = app.confirm(buyer, "k1", &key, order, 77_000).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (202, Some("unknown"))
    );
    assert_eq!(app.pg_payment(&key)["status"], "DONE", "the money moved");
    app.wait_status(order, "approved").await;
    // The reconciler asked; it did not confirm again.
    assert_eq!(app.confirms(), 1);
    // The buyer's client retries after the lost reply (same key, then another): the first
    // result, and still one confirm at the PG.
    for idem in ["k1", "k2"] {
        let r = app.confirm(buyer, idem, &key, order, 77_000).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (200, Some("approved"))
        );
    }
    assert_eq!(app.confirms(), 1);
    let pg = app.pg_payment(&key);
    assert_eq!(pg["balanceAmount"], 77_000);
    assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    assert!(app.events(order, "payment.failed").await.is_empty());
}

#[tokio::test]
async fn pg_errors_are_unknown_outcomes_that_settle() {
    let app = spawn().await;
    for fault in [Fault::Error, Fault::ProviderError] {
        let buyer = Uuid::now_v7();
        let order = app.order(buyer, 12_000).await;
        let key = app.checkout(order, 12_000).await;
        app.fault(fault, Operation::Confirm, order);
        let a = app.confirm(buyer, "k1", &key, order, 12_000).await;
        assert_eq!(
            (a.status, a.body["status"].as_str()),
            (202, Some("unknown")),
            "{fault:?}"
        );
        app.wait_status(order, "approved").await;
        assert_eq!(app.pg_payment(&key)["status"], "DONE");
        assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    }
}

#[tokio::test]
async fn a_pg_that_stays_undecided_fails_the_payment_once_the_order_lapses() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app
        .order_lapsing(buyer, 15_000, chrono::Duration::milliseconds(1_200))
        .await;
    let key = app.checkout(order, 15_000).await;
    // Every confirm fails at the PG without a verdict.
    assert!(
        app.fake().control.inject(
            Rule::next(Fault::Error)
                .on(Operation::Confirm)
                .on_order(order.to_string())
                .times(1_000)
        )
    );
    let a = app.confirm(buyer, "k1", &key, order, 15_000).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (202, Some("unknown"))
    );
    app.wait_status(order, "failed").await;
    assert_ne!(app.pg_payment(&key)["status"], "DONE");
    let failed = app.events(order, "payment.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["payload"]["code"], "PG_UNDECIDED");
    assert!(app.events(order, "payment.approved").await.is_empty());
}

#[tokio::test]
async fn a_down_pg_opens_the_circuit_and_confirms_fail_fast_with_a_problem() {
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let pg = fakes::pg::spawn(pg_options()).await.unwrap();
    let app = spawn_on(pg, &url, config()).await;
    let buyer = Uuid::now_v7();
    // Until the breaker opens the calls are made, fail, and leave their payments unknown (a
    // refused connection says nothing of what a real PG did with an earlier call). The
    // reconciler's lookups fail too and count towards the threshold.
    let mut opened = false;
    for i in 0..=app.config.pg.breaker_failures {
        let order = app.order(buyer, 10_000).await;
        let a = app
            .confirm(buyer, &format!("k{i}"), &format!("pk{i}"), order, 10_000)
            .await;
        if a.status == 503 {
            opened = true;
            break;
        }
        assert_eq!(
            (a.status, a.body["status"].as_str()),
            (202, Some("unknown")),
            "{a:?}"
        );
    }
    assert!(opened, "the circuit did not open");
    let calls = app.confirms();
    let order = app.order(buyer, 10_000).await;
    let started = Instant::now();
    let a = app.confirm(buyer, "k-open", "pk-open", order, 10_000).await;
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(a.body["code"], "pg_unavailable");
    assert_eq!(a.body["retry_after_secs"], 2);
    assert_eq!(
        app.confirms(),
        calls,
        "the PG was called through an open circuit"
    );
    assert_eq!(
        app.status(order).await,
        None,
        "a refused confirm left a payment behind"
    );
}

#[tokio::test]
async fn a_slow_pg_holds_at_most_max_in_flight_calls() {
    let mut cfg = config();
    cfg.pg.max_in_flight = 2;
    cfg.pg.breaker_failures = 100;
    let app = spawn_with(pg_options(), cfg).await;
    assert!(
        app.fake()
            .control
            .inject(Rule::next(Fault::Slow).on(Operation::Confirm).times(100))
    );
    let buyer = Uuid::now_v7();
    let mut orders = Vec::new();
    for _ in 0..6 {
        let order = app.order(buyer, 10_000).await;
        let key = app.checkout(order, 10_000).await;
        orders.push((order, key));
    }
    let answers = futures::future::join_all(orders.iter().enumerate().map(|(i, (order, key))| {
        let app = &app;
        async move {
            app.confirm(buyer, &format!("k{i}"), key, *order, 10_000)
                .await
        }
    }))
    .await;
    let refused = answers
        .iter()
        .filter(|a| a.status == 503 && a.body["code"] == "pg_unavailable")
        .count();
    let waited = answers.iter().filter(|a| a.status == 202).count();
    assert_eq!((waited, refused), (2, 4), "{answers:?}");
    // Never more than two PG calls at once, the reconciler's included.
    assert_eq!(
        app.calls
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

/// A crash between the two writes of a confirm: the payment was recorded `confirming`, then the
/// process died — before calling the PG, or after the PG took the money but before the outcome
/// was written. The reconciler finds both and settles them from the PG, one charge each.
#[tokio::test]
async fn a_confirm_cut_short_by_a_crash_is_settled_by_the_reconciler() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let mut cases = Vec::new();
    for charged in [false, true] {
        let order = app.order(buyer, 16_000).await;
        let key = app.checkout(order, 16_000).await;
        if charged {
            let r = app
                .server
                .client
                .post(app.fake().url("/v1/payments/confirm"))
                .header("Authorization", fakes::pg::basic_auth(crate::helpers::SECRET))
                .header("Idempotency-Key", payment::gateway::confirm_key(order, 1))
                .json(&serde_json::json!({"paymentKey": key, "orderId": order.to_string(), "amount": 16_000}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        // What the first write left: `confirming`, due for a look now.
        let mut tx = app.pool.begin().await.unwrap();
        let started = payment::store::start(
            &mut tx,
            order,
            &payment::domain::Entry::ConfirmStarted {
                buyer_id: buyer,
                payment_key: key.clone(),
                amount_krw: 16_000,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert!(started.is_some());
        tx.commit().await.unwrap();
        cases.push((order, key, charged));
    }
    for (order, key, charged) in cases {
        app.wait_status(order, "approved").await;
        let pg = app.pg_payment(&key);
        assert_eq!(
            (pg["status"].as_str(), pg["balanceAmount"].as_i64()),
            (Some("DONE"), Some(16_000)),
            "charged before: {charged}"
        );
        assert_eq!(app.events(order, "payment.approved").await.len(), 1);
    }
    // Only the one cut short before its call was confirmed by the service.
    assert_eq!(app.confirms(), 1);
}
