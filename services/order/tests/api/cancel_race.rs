//! A buyer's cancellation racing the seat service's refusal of the sale (`sale.rejected`): the
//! buyer paid for a sale that never happened, so whichever arrives first the buyer ends with all
//! the money back, and never more than was paid.

use contracts::events::{SaleRejectReason, SaleRejected};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{App, performance, spawn, until};

/// A confirmed order five days ahead (a cancellation keeps 20 % of the ticket price):
/// `(buyer, order, amount, performance, payment key)`.
async fn confirmed(app: &App, seat: &str) -> (Uuid, Uuid, i64, Uuid, String) {
    let p = performance(5);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &[seat]).await;
    let paid = app.pay(buyer, order, amount).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    app.wait_status(order, "confirmed").await;
    let key = paid.body["payment_key"].as_str().unwrap().to_owned();
    (buyer, order, amount, p.performance_id, key)
}

async fn reject(app: &App, order: Uuid, buyer: Uuid, perf: Uuid) {
    let hold: Uuid = sqlx::query_scalar("SELECT hold_id FROM orders WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    let rejected = SaleRejected {
        order_id: order,
        hold_id: hold,
        performance_id: perf,
        buyer_id: buyer,
        reason: SaleRejectReason::SeatsTaken,
        detail: "test".into(),
    };
    app.publish(&rejected).await;
    app.publish(&rejected).await; // republished under a new id
}

async fn cancel(app: &App, buyer: Uuid, order: Uuid) -> u16 {
    app.post(
        &app.token(buyer),
        &format!("/api/v1/orders/{order}/cancel"),
        json!({}),
    )
    .await
    .status
}

/// The refunds asked for `order`, each once (the sweeper may ask one again, same id), in order.
async fn refunds(app: &App, order: Uuid) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in app.events(order, "refund.requested").await {
        let id = e["payload"]["refund_id"].clone();
        if !seen.contains(&id) {
            seen.push(id);
            out.push(e);
        }
    }
    out
}

/// Waits until all of `amount` is back, by every account, and checks it went back no further.
async fn all_back_once(app: &App, order: Uuid, key: &str, amount: i64) {
    until("everything to be refunded", || async {
        let refunded: i64 =
            sqlx::query_scalar("SELECT refunded_krw FROM payments WHERE order_id = $1")
                .bind(order)
                .fetch_one(&app.paydb)
                .await
                .unwrap();
        refunded == amount && app.status(order).await == "refunded"
    })
    .await;
    let pg = app.pg.control.payment(key).unwrap();
    assert_eq!(pg["status"], "CANCELED");
    assert_eq!(pg["balanceAmount"], 0);
    let given: i64 = pg["cancels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cancelAmount"].as_i64().unwrap())
        .sum();
    assert_eq!(given, amount, "the PG gave back exactly what was paid");
    let refunded: i64 = sqlx::query_scalar("SELECT refunded_krw FROM orders WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    assert_eq!(refunded, amount);
}

#[tokio::test]
async fn a_cancel_then_a_refused_sale_gives_everything_back() {
    let app = spawn().await;
    let (buyer, order, amount, perf, key) = confirmed(&app, "A-01-02").await;
    assert_eq!(cancel(&app, buyer, order).await, 200);
    // The refusal right behind: the buyer's partial refund may or may not be made yet.
    reject(&app, order, buyer, perf).await;
    all_back_once(&app, order, &key, amount).await;
    let asked = refunds(&app, order).await;
    assert_eq!(asked.len(), 2, "the buyer's refund and its rest: {asked:?}");
    assert_eq!(
        asked[0]["payload"]["amount_krw"],
        150_000 * 80 / 100 + 2_000
    );
    assert_eq!(asked[1]["payload"]["amount_krw"], serde_json::Value::Null);
    assert_eq!(asked[1]["payload"]["reason"], "sale_rejected");
    assert_ne!(
        asked[0]["payload"]["refund_id"],
        asked[1]["payload"]["refund_id"]
    );
}

#[tokio::test]
async fn a_refused_sale_after_the_partial_refund_was_made_gives_the_rest_back() {
    let app = spawn().await;
    let (buyer, order, amount, perf, key) = confirmed(&app, "A-01-06").await;
    assert_eq!(cancel(&app, buyer, order).await, 200);
    app.wait_status(order, "refunded").await;
    reject(&app, order, buyer, perf).await;
    all_back_once(&app, order, &key, amount).await;
    assert_eq!(
        app.history(order).await,
        [
            "pending_payment",
            "paid",
            "confirmed",
            "refunding",
            "refunded",
            "refunding",
            "refunded"
        ]
    );
    // Cancelling again, or the refusal republished later, changes nothing.
    assert_eq!(cancel(&app, buyer, order).await, 200);
    reject(&app, order, buyer, perf).await;
    let last = app
        .publish(&SaleRejected {
            order_id: order,
            hold_id: Uuid::now_v7(),
            performance_id: perf,
            buyer_id: buyer,
            reason: SaleRejectReason::SeatsTaken,
            detail: "late".into(),
        })
        .await;
    until("the late refusal to be consumed", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bus_inbox WHERE event_id = $1")
            .bind(last.id)
            .fetch_one(&app.orderdb)
            .await
            .unwrap()
            == 1
    })
    .await;
    assert_eq!(refunds(&app, order).await.len(), 2);
    assert_eq!(app.status(order).await, "refunded");
}

#[tokio::test]
async fn a_refused_sale_then_a_cancel_refunds_once_in_full() {
    let app = spawn().await;
    let (buyer, order, amount, perf, key) = confirmed(&app, "A-01-01").await;
    reject(&app, order, buyer, perf).await;
    until("the refusal to be applied", || async {
        ["refunding", "refunded"].contains(&app.status(order).await.as_str())
    })
    .await;
    // The buyer cancels too: the order as it is, no second refund.
    assert_eq!(cancel(&app, buyer, order).await, 200);
    all_back_once(&app, order, &key, amount).await;
    let asked = refunds(&app, order).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["payload"]["reason"], "sale_rejected");
    assert_eq!(asked[0]["payload"]["amount_krw"], serde_json::Value::Null);
}
