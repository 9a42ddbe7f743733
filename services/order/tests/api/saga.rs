//! The saga end to end: hold → order → sandbox checkout at the fake PG → confirm → confirmed with
//! tickets and seats sold; declines, expiry, late payments, refused sales, cancellations.

use contracts::events::PaymentApproved;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{config, performance, spawn, spawn_with, until};

#[tokio::test]
async fn happy_path_ends_confirmed_with_tickets_seats_sold_and_a_gate_that_admits_once() {
    let app = spawn().await;
    let p = performance(30);
    let organizer = Uuid::now_v7();
    app.publish_performance_of(&p, Some(organizer)).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app
        .order_of(buyer, p.performance_id, &["A-01-01", "A-01-02"])
        .await;
    let paid = app.pay(buyer, order, amount).await;
    assert_eq!(paid.status, 200, "{paid:?}");

    app.wait_status(order, "confirmed").await;
    until("the seats to be sold", || async {
        app.sold(order).await.len() == 2
    })
    .await;
    assert_eq!(app.sold(order).await, ["A-01-01", "A-01-02"]);
    assert_eq!(
        app.history(order).await,
        ["pending_payment", "paid", "confirmed"]
    );
    let confirmed = app.events(order, "order.confirmed").await;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(
        confirmed[0]["payload"]["seat_ids"],
        json!(["A-01-01", "A-01-02"])
    );

    let view = app.order(buyer, order).await;
    assert_eq!(view.body["status"], "confirmed");
    let tickets = view.body["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 2);
    assert_eq!(view.body["actions"]["cancel"]["allowed"], true);
    assert_eq!(view.body["payment"], serde_json::Value::Null);

    // The ticket with its code; someone else cannot see it.
    let tid = tickets[0]["ticket_id"].as_str().unwrap();
    let t = app
        .get(&app.token(buyer), &format!("/api/v1/tickets/{tid}"))
        .await;
    assert_eq!(t.status, 200, "{t:?}");
    let code = t.body["code"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(
            &app.token(Uuid::now_v7()),
            &format!("/api/v1/tickets/{tid}")
        )
        .await
        .status,
        404
    );

    // The gate: its organizer's staff only; admits once; a forged code is refused.
    let staff = app
        .issuer
        .token(organizer, &[platform::auth::Role::Organizer]);
    let stranger = app
        .issuer
        .token(Uuid::now_v7(), &[platform::auth::Role::Organizer]);
    let body = json!({"performance_id": p.performance_id, "code": code});
    for who in [app.token(buyer), stranger.clone()] {
        let r = app.post(&who, "/api/v1/tickets/verify", body.clone()).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
    // Another organizer cannot read this performance's gate key either; its own can.
    let key_path = format!("/api/v1/tickets/gate-keys/{}", p.performance_id);
    assert_eq!(app.get(&stranger, &key_path).await.status, 403);
    let key = app.get(&staff, &key_path).await;
    assert_eq!(key.status, 200, "{key:?}");
    assert!(key.body["key"].is_string());
    let first = app
        .post(&staff, "/api/v1/tickets/verify", body.clone())
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["ticket_id"], tid);
    let second = app.post(&staff, "/api/v1/tickets/verify", body).await;
    assert_eq!(second.body["code"], "already_checked_in");
    let forged = format!("{}AA", &code[..code.len() - 2]);
    let f = app
        .post(
            &staff,
            "/api/v1/tickets/verify",
            json!({"performance_id": p.performance_id, "code": forged}),
        )
        .await;
    assert_eq!(f.status, 422);
    // At another performance's gate (an administrator's device, who may run any gate) the code
    // is not valid.
    let admin = app
        .issuer
        .token(Uuid::now_v7(), &[platform::auth::Role::Admin]);
    let other_perf = app
        .post(
            &admin,
            "/api/v1/tickets/verify",
            json!({"performance_id": Uuid::now_v7(), "code": code}),
        )
        .await;
    assert_eq!(other_perf.body["code"], "invalid_code");

    // Republishing the approval under a new envelope id changes nothing.
    app.publish(&PaymentApproved {
        order_id: order,
        payment_key: "again".into(),
        amount_krw: amount,
        approved_at: chrono::Utc::now(),
    })
    .await;
    let report = app.invariants().await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(app.events(order, "order.confirmed").await.len(), 1);
}

#[tokio::test]
async fn a_declined_payment_leaves_the_order_pending_and_payable() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-05"]).await;
    app.wait_payable(order).await;
    assert!(
        app.pg.control.inject(
            fakes::pg::Rule::next(fakes::pg::Fault::Decline)
                .on(fakes::pg::Operation::Confirm)
                .on_order(order.to_string())
        )
    );
    let declined = app.pay(buyer, order, amount).await;
    assert_eq!(declined.status, 402, "{declined:?}");
    until("the decline to be noted", || async {
        app.order(buyer, order).await.body["last_payment_error"].is_string()
    })
    .await;
    assert_eq!(app.status(order).await, "pending_payment");
    assert_eq!(app.order(buyer, order).await.body["actions"]["pay"], true);
    assert!(app.sold(order).await.is_empty());
}

#[tokio::test]
async fn an_unpaid_order_expires_and_a_payment_after_expiry_is_refunded() {
    let mut c = config();
    c.payment_window_ms = 11_000;
    let app = spawn_with(c).await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-06"]).await;
    app.wait_status(order, "expired").await;
    let cancelled = app.events(order, "order.cancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["payload"]["reason"], "expired");
    let view = app.order(buyer, order).await;
    assert_eq!(view.body["actions"]["pay"], false);

    // The PG's approval arrives anyway (a late charge).
    app.publish(&PaymentApproved {
        order_id: order,
        payment_key: "late-key".into(),
        amount_krw: amount,
        approved_at: chrono::Utc::now(),
    })
    .await;
    app.wait_status(order, "refunding").await;
    let refunds = app.events(order, "refund.requested").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payload"]["reason"], "paid_after_expiry");
    assert!(app.events(order, "order.confirmed").await.is_empty());
    assert!(app.sold(order).await.is_empty());
    assert_eq!(
        app.history(order).await,
        ["pending_payment", "expired", "refunding"]
    );
}

#[tokio::test]
async fn cancelling_on_the_booking_day_refunds_everything_and_puts_the_seats_back() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-07"]).await;
    assert_eq!(app.pay(buyer, order, amount).await.status, 200);
    app.wait_status(order, "confirmed").await;
    until("the seat to be sold", || async {
        app.sold(order).await.len() == 1
    })
    .await;
    let quote = app.order(buyer, order).await.body["actions"]["cancel"].clone();
    assert_eq!(quote["refund_krw"], amount);

    let c = app
        .post(
            &app.token(buyer),
            &format!("/api/v1/orders/{order}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200, "{c:?}");
    app.wait_status(order, "refunded").await;
    let refund = &app.events(order, "refund.requested").await[0]["payload"];
    assert_eq!(refund["amount_krw"], amount);
    until("the seat to go back on sale", || async {
        app.sold(order).await.is_empty()
    })
    .await;
    let view = app.order(buyer, order).await;
    assert_eq!(view.body["refund"]["refunded_krw"], amount);
    assert!(
        view.body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "void")
    );
    // Cancelling again answers the order as it is.
    let again = app
        .post(
            &app.token(buyer),
            &format!("/api/v1/orders/{order}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(app.events(order, "refund.requested").await.len(), 1);
    let report = app.invariants().await;
    assert!(report.ok(), "{report:?}");
}

#[tokio::test]
async fn cancelling_close_to_the_performance_keeps_the_fee() {
    let app = spawn().await;
    // Five days ahead: 20 % of the ticket price is kept; booked today, the booking fee is refunded.
    let p = performance(5);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-08"]).await;
    assert_eq!(amount, 152_000);
    assert_eq!(app.pay(buyer, order, amount).await.status, 200);
    app.wait_status(order, "confirmed").await;
    let c = app
        .post(
            &app.token(buyer),
            &format!("/api/v1/orders/{order}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200, "{c:?}");
    app.wait_status(order, "refunded").await;
    let refund = &app.events(order, "refund.requested").await[0]["payload"];
    assert_eq!(refund["amount_krw"], 150_000 * 80 / 100 + 2_000);
    let refunded: i64 = sqlx::query_scalar("SELECT refunded_krw FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.paydb)
        .await
        .unwrap();
    assert_eq!(refunded, 122_000);
}

#[tokio::test]
async fn a_cancelled_performance_refunds_every_paid_order_in_full() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let (paid_buyer, unpaid_buyer) = (Uuid::now_v7(), Uuid::now_v7());
    let (paid, amount) = app
        .order_of(paid_buyer, p.performance_id, &["A-01-01"])
        .await;
    let (unpaid, _) = app
        .order_of(unpaid_buyer, p.performance_id, &["A-01-02"])
        .await;
    assert_eq!(app.pay(paid_buyer, paid, amount).await.status, 200);
    app.wait_status(paid, "confirmed").await;
    app.publish(&contracts::events::PerformanceCancelled {
        performance_id: p.performance_id,
        reason: "rain".into(),
    })
    .await;
    app.wait_status(paid, "refunded").await;
    app.wait_status(unpaid, "cancelled").await;
    let refunded: i64 = sqlx::query_scalar("SELECT refunded_krw FROM payments WHERE order_id = $1")
        .bind(paid)
        .fetch_one(&app.paydb)
        .await
        .unwrap();
    assert_eq!(refunded, amount);
}

#[tokio::test]
async fn a_refused_sale_is_refunded_in_full() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-03"]).await;
    assert_eq!(app.pay(buyer, order, amount).await.status, 200);
    app.wait_status(order, "confirmed").await;
    let hold: Uuid = sqlx::query_scalar("SELECT hold_id FROM orders WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    let rejected = contracts::events::SaleRejected {
        order_id: order,
        hold_id: hold,
        performance_id: p.performance_id,
        buyer_id: buyer,
        reason: contracts::events::SaleRejectReason::SeatsTaken,
        detail: "test".into(),
    };
    app.publish(&rejected).await;
    app.publish(&rejected).await; // republished under a new id
    app.wait_status(order, "refunded").await;
    let refunds = app.events(order, "refund.requested").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payload"]["reason"], "sale_rejected");
    let view = app.order(buyer, order).await;
    assert!(
        view.body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "void")
    );
}

#[tokio::test]
async fn an_order_service_restarted_mid_saga_ends_the_order_right_once() {
    let mut app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-04"]).await;
    app.wait_payable(order).await;
    // The order service goes down; the payment is approved while it is away.
    app.order.shutdown.cancel();
    let r = app
        .payment
        .client
        .post(app.pg.url("/v1/sandbox/checkouts"))
        .json(&json!({"orderId": order.to_string(), "amount": amount, "outcome": "approved"}))
        .send()
        .await
        .unwrap();
    let key = r.json::<serde_json::Value>().await.unwrap()["paymentKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.confirm(buyer, order, &key, amount).await.status, 200);
    assert_eq!(app.status(order).await, "pending_payment");
    app.restart_order(&config()).await;
    app.wait_status(order, "confirmed").await;
    until("the seat to be sold", || async {
        app.sold(order).await.len() == 1
    })
    .await;
    // Restarted again: nothing is applied twice.
    app.restart_order(&config()).await;
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_inbox")
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    assert!(inbox > 0);
    assert_eq!(app.events(order, "order.confirmed").await.len(), 1);
    assert_eq!(
        app.history(order).await,
        ["pending_payment", "paid", "confirmed"]
    );
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    assert_eq!(tickets, 1);
    let report = app.invariants().await;
    assert!(report.ok(), "{report:?}");
}

/// The buyer's client learns the outcome in one request each: a confirm sent the moment the
/// order is made (before `order.created` reached the payment service) waits for it instead of
/// answering `order_not_ready`, and `GET /orders/{id}?wait_ms` answers when the order moves on.
#[tokio::test]
async fn a_buyer_learns_the_outcome_without_polling() {
    let app = spawn().await;
    let p = performance(30);
    app.publish_performance(&p).await;
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, p.performance_id, &["A-01-07"]).await;
    let token = app.token(buyer);
    // Waiting for a pending order runs alongside the payment and ends with it.
    let waiting = {
        let (client, url) = (
            app.order.client.clone(),
            app.order
                .url(&format!("/api/v1/orders/{order}?wait_ms=8000")),
        );
        let token = token.clone();
        tokio::spawn(async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        })
    };
    // At once: no wait for the payment service to know the order.
    let r = app
        .order
        .client
        .post(app.pg.url("/v1/sandbox/checkouts"))
        .json(&json!({"orderId": order.to_string(), "amount": amount, "outcome": "approved"}))
        .send()
        .await
        .unwrap();
    let key = r.json::<serde_json::Value>().await.unwrap()["paymentKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let paid = app.confirm(buyer, order, &key, amount).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    let (status, seen) = waiting.await.unwrap();
    assert_eq!(status, 200, "{seen}");
    assert_ne!(seen["status"], "pending_payment", "{seen}");
    app.wait_status(order, "confirmed").await;
    // A final order answers at once, and as it is.
    let a = app
        .get(&token, &format!("/api/v1/orders/{order}?wait_ms=8000"))
        .await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("confirmed"))
    );
    // Bad waits are refused; someone else's order is not waited on.
    let a = app
        .get(&token, &format!("/api/v1/orders/{order}?wait_ms=8001"))
        .await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let a = app
        .get(&token, &format!("/api/v1/orders/{order}?wait_ms=soon"))
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    let a = app
        .get(
            &app.token(Uuid::now_v7()),
            &format!("/api/v1/orders/{order}?wait_ms=8000"),
        )
        .await;
    assert_eq!(a.status, 404, "{a:?}");
}
