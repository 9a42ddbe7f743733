//! A refund the payment service gives up (`payment.refund_failed`): the order ends
//! `refund_failed` for an operator, the sweeper stops asking, the buyer sees it, and duplicated or
//! reordered refund events change nothing but "money back wins".

use contracts::events::{PaymentRefundFailed, PaymentRefunded};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, SECRET, performance, spawn, until};

/// A confirmed order of one seat whose PG balance an operator already cut by 1,000 KRW at the
/// PG's console, so a full refund is more than the PG will give back: `(buyer, order, amount,
/// payment key)`.
async fn confirmed_with_a_short_balance(app: &App, seat: &str) -> (Uuid, Uuid, i64, String) {
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &[seat]).await;
    let paid = app.pay(buyer, order, amount).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    let key = paid.body["payment_key"].as_str().unwrap().to_owned();
    app.wait_status(order, "confirmed").await;
    let r = app
        .order
        .client
        .post(app.pg.url(&format!("/v1/payments/{key}/cancel")))
        .header("Authorization", fakes::pg::basic_auth(SECRET))
        .json(&json!({"cancelReason": "console", "cancelAmount": 1_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (buyer, order, amount, key)
}

async fn cancel(app: &App, buyer: Uuid, order: Uuid) -> Value {
    let c = app
        .post(
            &app.token(buyer),
            &format!("/api/v1/orders/{order}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200, "{c:?}");
    c.body
}

async fn transitions_to(app: &App, order: Uuid, status: &str) -> usize {
    app.history(order)
        .await
        .iter()
        .filter(|s| *s == status)
        .count()
}

#[tokio::test]
async fn a_refund_the_pg_refuses_ends_the_order_refund_failed_and_the_sweeper_lets_it_be() {
    let app = spawn().await;
    let (buyer, order, amount, _) = confirmed_with_a_short_balance(&app, "A-01-04").await;
    assert_eq!(cancel(&app, buyer, order).await["status"], "refunding");
    app.wait_status(order, "refund_failed").await;
    let asked = app.events(order, "refund.requested").await;
    assert!(
        asked
            .iter()
            .all(|e| e["payload"]["refund_id"] == asked[0]["payload"]["refund_id"]),
        "one refund, maybe asked again by the sweeper before it failed"
    );
    let asked = asked.len();
    // The sweeper, even with everything counting as stuck, no longer asks for it.
    let (_, nudged) = order::sweeper::sweep_once(&app.orderdb, &order::orders::Orders, 0)
        .await
        .unwrap();
    assert_eq!(nudged, 0);
    assert_eq!(app.events(order, "refund.requested").await.len(), asked);
    // The buyer sees it, and cannot cancel it again.
    let mine = app.get(&app.token(buyer), "/api/v1/me/orders").await;
    assert_eq!(mine.status, 200);
    let listed = &mine.body["orders"][0];
    assert_eq!(listed["order_id"], order.to_string());
    assert_eq!(listed["status"], "refund_failed");
    assert_eq!(listed["actions"]["cancel"]["allowed"], false);
    assert_eq!(listed["refund"]["refunded_krw"], 0);
    let again = cancel(&app, buyer, order).await;
    assert_eq!(again["status"], "refund_failed");
    assert_eq!(app.events(order, "refund.requested").await.len(), asked);
    // The money question is still open, but every other invariant holds.
    let report = app.invariants().await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(listed["amount"], amount);
}

#[tokio::test]
async fn refund_events_duplicated_or_reordered_end_the_order_once_and_money_back_wins() {
    let app = spawn().await;
    let (buyer, order, amount, key) = confirmed_with_a_short_balance(&app, "A-01-05").await;
    cancel(&app, buyer, order).await;
    app.wait_status(order, "refund_failed").await;
    let refund_id: Uuid = sqlx::query_scalar("SELECT refund_id FROM orders WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    let failed = PaymentRefundFailed {
        order_id: order,
        refund_key: refund_id.to_string(),
        amount_krw: Some(amount),
        code: "NOT_CANCELABLE_AMOUNT".into(),
        message: "republished".into(),
    };
    // Republished (a new envelope id the inbox cannot recognise), and one for a refund that is
    // not the order's (the payment service's own late-charge refund): nothing changes.
    app.publish(&failed).await;
    app.publish(&PaymentRefundFailed {
        refund_key: format!("late-{order}"),
        ..failed.clone()
    })
    .await;
    // An operator's retry gives the money back after all: `payment.refunded` ends it refunded.
    app.publish(&PaymentRefunded {
        order_id: order,
        payment_key: key,
        amount_krw: amount,
        reason: "buyer_cancelled".into(),
    })
    .await;
    app.wait_status(order, "refunded").await;
    // A failure arriving after the money came back changes nothing.
    let late = app.publish(&failed).await;
    until("the late failure to be consumed", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bus_inbox WHERE event_id = $1")
            .bind(late.id)
            .fetch_one(&app.orderdb)
            .await
            .unwrap()
            == 1
    })
    .await;
    assert_eq!(app.status(order).await, "refunded");
    assert_eq!(transitions_to(&app, order, "refund_failed").await, 1);
    assert_eq!(transitions_to(&app, order, "refunded").await, 1);
    let view = app.order(buyer, order).await;
    assert_eq!(view.body["refund"]["refunded_krw"], amount);
}
