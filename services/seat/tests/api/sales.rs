//! Sales that can no longer be honoured: a general-admission area never sells past capacity, a
//! buyer never past the limit, a sale sells exactly its hold; each refusal answers the order side
//! with `sale.rejected` instead of a dead letter. Holds in checkout outlive their TTL and cannot
//! be released; holds outside the sale window are refused. Both stores, through HTTP and the
//! consumer; SeatDB's own guards directly.

use contracts::events::{
    HoldEndReason, HoldEnded, OrderCancelled, OrderConfirmed, PerformanceSpec, SaleRejectReason,
    SaleRejected,
};
use seat::{
    Config,
    db::{self, Recorded, Refusal},
    store::{Hold, HoldStatus},
};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::{
    helpers::{App, Backend, Handled, Observer, performance, spawn, wait_handled},
    race::seat_pool,
};

const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Redis];

/// Places a hold over HTTP; returns its id.
async fn hold(app: &App, buyer: Uuid, body: Value) -> Uuid {
    let r = app.hold(buyer, body).await;
    assert_eq!(r.status(), 201);
    serde_json::from_value(r.json::<Value>().await.unwrap()["hold_id"].clone()).unwrap()
}

/// The order confirmation for `hold` as the order service would send it.
fn confirmation(hold: Uuid, buyer: Uuid, perf: Uuid, seats: &[&str], ga: i32) -> OrderConfirmed {
    OrderConfirmed {
        order_id: Uuid::now_v7(),
        buyer_id: buyer,
        hold_id: hold,
        performance_id: perf,
        seat_ids: seats.iter().map(|s| (*s).to_owned()).collect(),
        areas: if ga > 0 {
            vec![("GA".into(), ga)]
        } else {
            Vec::new()
        },
        amount_krw: 0,
        ticket_ids: Vec::new(),
    }
}

/// Publishes `e` and waits until the consumer applied it (a refusal is applied, not dead-lettered).
async fn confirm(app: &App, pool: &sqlx::PgPool, e: &OrderConfirmed) {
    let env = app.publish(e).await;
    assert_eq!(wait_handled(pool, env.id).await, Handled::Applied);
}

async fn area_sold(pool: &sqlx::PgPool, perf: Uuid) -> i32 {
    sqlx::query_scalar("SELECT sold FROM area_sales WHERE performance_id = $1 AND area_id = 'GA'")
        .bind(perf)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn tickets_sold_to(pool: &sqlx::PgPool, perf: Uuid, buyer: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sold_seats WHERE performance_id = $1 AND buyer_id = $2) \
         + (SELECT COALESCE(sum(quantity), 0) FROM sold_areas \
            WHERE performance_id = $1 AND buyer_id = $2)",
    )
    .bind(perf)
    .bind(buyer)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_lapsed_hold_cannot_oversell_general_admission() {
    for backend in BACKENDS {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let mut seats = Observer::seats(&app).await;
        let p = performance(1, 2, 0); // GA: 50 places
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        // A buyer holds 10 places; the hold lapses while it pays (its expiry, driven here).
        let late_buyer = Uuid::now_v7();
        let ga = |q: i32| json!({"performance_id": perf, "area_id": "GA", "quantity": q});
        let late = hold(&app, late_buyer, ga(10)).await;
        let (expired, _) = app
            .store
            .release(perf, late, HoldStatus::Expired)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(expired.hold_id, late);
        // Meanwhile five others buy every place.
        for _ in 0..5 {
            let buyer = Uuid::now_v7();
            let h = hold(&app, buyer, ga(10)).await;
            confirm(&app, &pool, &confirmation(h, buyer, perf, &[], 10)).await;
        }
        // The late payment: refused, answered with sale.rejected, nothing sold past 50.
        let order = confirmation(late, late_buyer, perf, &[], 10);
        confirm(&app, &pool, &order).await;
        let rejected = seats
            .next(|e: &SaleRejected| e.order_id == order.order_id)
            .await;
        assert_eq!(rejected.reason, SaleRejectReason::SoldOut, "{backend:?}");
        assert_eq!(
            (rejected.hold_id, rejected.buyer_id, rejected.performance_id),
            (late, late_buyer, perf)
        );
        let map = app.seats(perf).await;
        assert_eq!(map["areas"][0]["sold"], 50, "{backend:?}: {map}");
        assert_eq!(area_sold(&pool, perf).await, 50);
        assert_eq!(tickets_sold_to(&pool, perf, late_buyer).await, 0);
        pool.close().await;
    }
}

#[tokio::test]
async fn a_released_hold_cannot_lift_the_buyer_limit() {
    for backend in BACKENDS {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let mut seats = Observer::seats(&app).await;
        let p = performance(2, 5, 4);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let buyer = Uuid::now_v7();
        // Hold 4, (order,) release, hold 4 more, pay both.
        let first_seats = ["A-01-01", "A-01-02", "A-01-03", "A-01-04"];
        let second_seats = ["A-02-01", "A-02-02", "A-02-03", "A-02-04"];
        let first = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": first_seats}),
        )
        .await;
        let r = app
            .server
            .client
            .delete(app.server.url(&format!("/api/v1/holds/{first}")))
            .bearer_auth(app.token(buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let second = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": second_seats}),
        )
        .await;
        let first_order = confirmation(first, buyer, perf, &first_seats, 0);
        confirm(&app, &pool, &first_order).await;
        confirm(
            &app,
            &pool,
            &confirmation(second, buyer, perf, &second_seats, 0),
        )
        .await;
        let rejected = seats
            .next(|e: &SaleRejected| e.order_id == first_order.order_id)
            .await;
        assert_eq!(
            rejected.reason,
            SaleRejectReason::LimitExceeded,
            "{backend:?}"
        );
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 4, "{backend:?}");
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["sold"], 4, "{backend:?}");
        assert_eq!(map["seats"][0]["status"], "available");
        assert_eq!(map["seats"][5]["status"], "sold");
        pool.close().await;
    }
}

#[tokio::test]
async fn a_sale_sells_exactly_its_hold_and_a_refusal_sticks() {
    for backend in BACKENDS {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let mut seats = Observer::seats(&app).await;
        let p = performance(1, 5, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let buyer = Uuid::now_v7();
        let h = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01", "A-01-02"]}),
        )
        .await;
        // An order naming other seats than its hold's: refused, no seat changes.
        let wrong = confirmation(h, buyer, perf, &["A-01-01", "A-01-03"], 0);
        confirm(&app, &pool, &wrong).await;
        let rejected = seats
            .next(|e: &SaleRejected| e.order_id == wrong.order_id)
            .await;
        assert_eq!(rejected.reason, SaleRejectReason::NotTheHold, "{backend:?}");
        let map = app.seats(perf).await;
        let status = |i: usize| map["seats"][i]["status"].as_str().unwrap().to_owned();
        assert_eq!(
            (status(0), status(1), status(2)),
            ("held".into(), "held".into(), "available".into())
        );
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 0);
        // The same order again, now with the right seats: still refused (its refund is under way).
        let mut again = wrong.clone();
        again.seat_ids = vec!["A-01-01".into(), "A-01-02".into()];
        confirm(&app, &pool, &again).await;
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 0);
        // A new order with the hold's seats sells them; a second order for the same hold does not.
        let right = confirmation(h, buyer, perf, &["A-01-01", "A-01-02"], 0);
        confirm(&app, &pool, &right).await;
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 2);
        let twice = confirmation(h, buyer, perf, &["A-01-01", "A-01-02"], 0);
        confirm(&app, &pool, &twice).await;
        let rejected = seats
            .next(|e: &SaleRejected| e.order_id == twice.order_id)
            .await;
        assert_eq!(rejected.reason, SaleRejectReason::HoldUsed);
        // An order through a hold nobody placed.
        let forged = confirmation(Uuid::now_v7(), buyer, perf, &["A-01-04"], 0);
        confirm(&app, &pool, &forged).await;
        let rejected = seats
            .next(|e: &SaleRejected| e.order_id == forged.order_id)
            .await;
        assert_eq!(rejected.reason, SaleRejectReason::UnknownHold);
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["sold"], 2);
        assert_eq!(map["seats"][3]["status"], "available");
        let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(dead, 0, "refusals are answers, not dead letters");
        pool.close().await;
    }
}

/// An order's sale reached the store but its SeatDB transaction was lost; before it is
/// redelivered, another order names the same hold with other seats. The store's "already sold"
/// must not let that order record seats nobody held.
#[tokio::test]
async fn a_sold_hold_carries_no_other_seats() {
    for backend in BACKENDS {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let mut seats = Observer::seats(&app).await;
        let p = performance(1, 5, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let buyer = Uuid::now_v7();
        let h = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01", "A-01-02"]}),
        )
        .await;
        let mut lost = sale(perf, buyer, &["A-01-01", "A-01-02"], 0);
        lost.hold_id = h;
        app.store.confirm(&lost).await.unwrap();
        let other = confirmation(h, buyer, perf, &["A-01-03", "A-01-04"], 0);
        confirm(&app, &pool, &other).await;
        let rejected = seats
            .next(|e: &SaleRejected| e.order_id == other.order_id)
            .await;
        assert_eq!(rejected.reason, SaleRejectReason::NotTheHold, "{backend:?}");
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sold_seats WHERE performance_id = $1 AND seat_id IN ('A-01-03', 'A-01-04')",
        )
        .bind(perf)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            recorded, 0,
            "{backend:?}: seats nobody held were recorded as sold"
        );
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 0, "{backend:?}");
        // The lost order, redelivered, still sells the hold's own seats.
        let first = confirmation(h, buyer, perf, &["A-01-01", "A-01-02"], 0);
        confirm(&app, &pool, &first).await;
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 2, "{backend:?}");
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["sold"], 2, "{backend:?}");
        pool.close().await;
    }
}

/// A cancelled order stays cancelled: its confirmation sent again (or arriving behind the
/// cancel) sells nothing, and neither does one for an order cancelled before it was confirmed.
#[tokio::test]
async fn a_cancelled_order_is_never_sold_again() {
    for backend in BACKENDS {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let p = performance(1, 5, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let buyer = Uuid::now_v7();
        let h = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
        let order = confirmation(h, buyer, perf, &["A-01-01"], 0);
        confirm(&app, &pool, &order).await;
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 1, "{backend:?}");
        let cancel = |e: &OrderConfirmed| OrderCancelled {
            order_id: e.order_id,
            buyer_id: e.buyer_id,
            performance_id: e.performance_id,
            seat_ids: e.seat_ids.clone(),
            areas: Vec::new(),
            refund_krw: 0,
            reason: "buyer_cancelled".into(),
            hold_id: Some(e.hold_id),
        };
        let env = app.publish(&cancel(&order)).await;
        assert_eq!(wait_handled(&pool, env.id).await, Handled::Applied);
        assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 0, "{backend:?}");
        // The same confirmation again, under a new event id (the inbox cannot catch it).
        confirm(&app, &pool, &order).await;
        assert_eq!(
            tickets_sold_to(&pool, perf, buyer).await,
            0,
            "{backend:?}: sold again"
        );
        let map = app.seats(perf).await;
        assert_eq!(map["counts"]["sold"], 0, "{backend:?}");
        // Reordered: the cancel of an order that was never confirmed comes first.
        let h2 = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-02"]}),
        )
        .await;
        let late = confirmation(h2, buyer, perf, &["A-01-02"], 0);
        let env = app.publish(&cancel(&late)).await;
        assert_eq!(wait_handled(&pool, env.id).await, Handled::Applied);
        confirm(&app, &pool, &late).await;
        assert_eq!(
            tickets_sold_to(&pool, perf, buyer).await,
            0,
            "{backend:?}: sold after its cancel"
        );
        pool.close().await;
    }
}

#[tokio::test]
async fn a_hold_in_checkout_outlives_its_ttl_and_cannot_be_released() {
    for backend in BACKENDS {
        let config = Config {
            hold_ttl_ms: 400,
            checkout_ttl_ms: 120_000,
            sweep_interval_ms: 50,
            ..Config::default()
        };
        let app = spawn(backend, config).await;
        let mut seats = Observer::seats(&app).await;
        let p = performance(1, 4, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let buyer = Uuid::now_v7();
        let paying = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
        let url = |id: Uuid, tail: &str| app.server.url(&format!("/api/v1/holds/{id}{tail}"));
        let post = |id: Uuid, who: Uuid| {
            app.server
                .client
                .post(url(id, "/checkout"))
                .bearer_auth(app.token(who))
                .send()
        };
        let r = post(paying, buyer).await.unwrap();
        assert_eq!(r.status(), 200, "{backend:?}");
        let checked: Value = r.json().await.unwrap();
        assert_eq!(checked["status"], "checkout");
        let deadline: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(checked["expires_at"].clone()).unwrap();
        assert!(
            deadline > chrono::Utc::now() + chrono::Duration::seconds(100),
            "{checked}"
        );
        // Repeating it changes nothing; someone else's token finds no hold.
        let r = post(paying, buyer).await.unwrap();
        assert_eq!(
            r.json::<Value>().await.unwrap()["expires_at"],
            checked["expires_at"]
        );
        assert_eq!(post(paying, Uuid::now_v7()).await.unwrap().status(), 404);
        // The buyer cannot release it.
        let r = app
            .server
            .client
            .delete(url(paying, ""))
            .bearer_auth(app.token(buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "hold_in_checkout");
        // A hold placed after it, with the same TTL, expires: the sweeper has passed the paying
        // hold's normal expiry (it expires holds in expiry order) and left it alone.
        let control = hold(
            &app,
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-02"]}),
        )
        .await;
        let ended = seats.next(|e: &HoldEnded| e.hold_id == control).await;
        assert_eq!(ended.reason, HoldEndReason::Expired);
        let r = app
            .server
            .client
            .get(url(paying, ""))
            .bearer_auth(app.token(buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.json::<Value>().await.unwrap()["status"],
            "checkout",
            "{backend:?}"
        );
        let map = app.seats(perf).await;
        assert_eq!(map["seats"][0]["status"], "held");
        assert_eq!(map["seats"][1]["status"], "available");
        // An expired hold cannot go into checkout.
        let r = post(control, buyer).await.unwrap();
        assert_eq!(r.status(), 404, "someone else's hold");
        let admin = app
            .issuer
            .token(Uuid::now_v7(), &[platform::auth::Role::Admin]);
        let r = app
            .server
            .client
            .post(url(control, "/checkout"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "hold_expired");
        // The paying hold is sold when its order confirms.
        let pool = seat_pool(&app).await;
        confirm(
            &app,
            &pool,
            &confirmation(paying, buyer, perf, &["A-01-01"], 0),
        )
        .await;
        assert_eq!(app.seats(perf).await["seats"][0]["status"], "sold");
        pool.close().await;
    }
}

#[tokio::test]
async fn an_order_that_ends_unpaid_gives_its_checkout_hold_back_at_once() {
    for backend in BACKENDS {
        let config = Config {
            checkout_ttl_ms: 600_000,
            ..Config::default()
        };
        let app = spawn(backend, config).await;
        let mut events = Observer::seats(&app).await;
        let p = performance(1, 4, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let pool = seat_pool(&app).await;
        let (buyer, other) = (Uuid::now_v7(), Uuid::now_v7());
        let paying = hold(
            &app,
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
        let others = hold(
            &app,
            other,
            json!({"performance_id": perf, "seat_ids": ["A-01-02"]}),
        )
        .await;
        for (id, who) in [(paying, buyer), (others, other)] {
            let r = app
                .server
                .client
                .post(app.server.url(&format!("/api/v1/holds/{id}/checkout")))
                .bearer_auth(app.token(who))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{backend:?}");
        }
        let ended = |order_id: Uuid, hold_id: Uuid| OrderCancelled {
            order_id,
            buyer_id: buyer,
            performance_id: perf,
            seat_ids: vec!["A-01-01".into()],
            areas: Vec::new(),
            refund_krw: 0,
            reason: "expired".into(),
            hold_id: Some(hold_id),
        };
        // An order of `buyer` naming someone else's hold changes nothing.
        let env = app.publish(&ended(Uuid::now_v7(), others)).await;
        assert_eq!(wait_handled(&pool, env.id).await, Handled::Applied);
        // The buyer's own order lapsed unpaid: its hold ends now, not at the checkout deadline.
        let order = Uuid::now_v7();
        let env = app.publish(&ended(order, paying)).await;
        assert_eq!(wait_handled(&pool, env.id).await, Handled::Applied);
        let gone = events.next(|e: &HoldEnded| e.hold_id == paying).await;
        assert_eq!(gone.reason, HoldEndReason::Released);
        let map = app.seats(perf).await;
        assert_eq!(map["seats"][0]["status"], "available", "{backend:?}");
        assert_eq!(
            map["seats"][1]["status"], "held",
            "{backend:?}: not its hold"
        );
        // A confirmation arriving behind the cancel sells nothing.
        let late = OrderConfirmed {
            order_id: order,
            ..confirmation(paying, buyer, perf, &["A-01-01"], 0)
        };
        let env = app.publish(&late).await;
        assert_eq!(wait_handled(&pool, env.id).await, Handled::Applied);
        assert_eq!(app.seats(perf).await["counts"]["sold"], 0, "{backend:?}");
        pool.close().await;
    }
}

#[tokio::test]
async fn holds_outside_the_sale_window_are_refused() {
    for backend in BACKENDS {
        let app = spawn(backend, Config::default()).await;
        let now = chrono::Utc::now();
        let mut early = performance(1, 3, 0);
        early.sale_opens_at = now + chrono::Duration::hours(1);
        let mut late = performance(1, 3, 0);
        late.sale_opens_at = now - chrono::Duration::days(2);
        late.sale_closes_at = now - chrono::Duration::minutes(1);
        for p in [&early, &late] {
            app.publish_performance(p).await;
            for body in [
                json!({"performance_id": p.performance_id, "seat_ids": ["A-01-01"]}),
                json!({"performance_id": p.performance_id, "area_id": "GA", "quantity": 2}),
            ] {
                let r = app.hold(Uuid::now_v7(), body).await;
                assert_eq!(r.status(), 409, "{backend:?}");
                let problem: Value = r.json().await.unwrap();
                assert_eq!(problem["code"], "not_on_sale");
                let opens: chrono::DateTime<chrono::Utc> =
                    serde_json::from_value(problem["sale_opens_at"].clone()).unwrap();
                assert_eq!(opens.timestamp_millis(), p.sale_opens_at.timestamp_millis());
            }
            let map = app.seats(p.performance_id).await;
            assert_eq!(map["counts"]["held"], 0);
        }
        // The store refuses by its own clock too, whatever the API's clock says.
        let h = Hold {
            hold_id: Uuid::now_v7(),
            performance_id: early.performance_id,
            buyer_id: Uuid::now_v7(),
            seat_ids: vec!["A-01-01".into()],
            areas: Vec::new(),
            amount_krw: 0,
            expires_at_ms: i64::MAX / 4,
            status: HoldStatus::Active,
            presale_limit: None,
        };
        assert!(matches!(
            app.store.hold(&h).await,
            Err(seat::store::StoreError::NotOnSale { .. })
        ));
    }
}

/// A performance published straight into SeatDB (as the consumer would), for its guards.
async fn seatdb_with(pool: &sqlx::PgPool, p: &PerformanceSpec) {
    let mut conn = pool.acquire().await.unwrap();
    assert!(db::save_published(&mut conn, p).await.unwrap());
}

fn sale(perf: Uuid, buyer: Uuid, seats: &[&str], ga: i64) -> Hold {
    Hold {
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        buyer_id: buyer,
        seat_ids: seats.iter().map(|s| (*s).to_owned()).collect(),
        areas: if ga > 0 {
            vec![("GA".into(), ga)]
        } else {
            Vec::new()
        },
        amount_krw: 0,
        expires_at_ms: 0,
        status: HoldStatus::Sold,
        presale_limit: None,
    }
}

#[tokio::test]
async fn seatdb_guards_capacity_and_the_limit_on_its_own() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let pool = seat_pool(&app).await;
    let p = performance(1, 6, 4); // GA 50, limit 4
    let perf = p.performance_id;
    seatdb_with(&pool, &p).await;
    let mut tx = pool.begin().await.unwrap();
    // Places past the area's capacity.
    let mut sp = tx.begin().await.unwrap();
    let got = db::record_sale(
        &mut sp,
        &sale(perf, Uuid::now_v7(), &[], 51),
        Uuid::now_v7(),
        0,
    )
    .await
    .unwrap();
    assert_eq!(got, Recorded::Refused(Refusal::SoldOut(vec!["GA".into()])));
    sp.rollback().await.unwrap();
    // A buyer past the limit over two sales.
    let buyer = Uuid::now_v7();
    let first = sale(perf, buyer, &["A-01-01", "A-01-02", "A-01-03"], 0);
    assert_eq!(
        db::record_sale(&mut tx, &first, Uuid::now_v7(), 4)
            .await
            .unwrap(),
        Recorded::New
    );
    let mut sp = tx.begin().await.unwrap();
    let second = sale(perf, buyer, &[], 2);
    assert_eq!(
        db::record_sale(&mut sp, &second, Uuid::now_v7(), 4)
            .await
            .unwrap(),
        Recorded::Refused(Refusal::LimitExceeded {
            limit: 4,
            current: 3
        })
    );
    sp.rollback().await.unwrap();
    // A seat sold to another order.
    let mut sp = tx.begin().await.unwrap();
    let taken = sale(perf, Uuid::now_v7(), &["A-01-03", "A-01-04"], 0);
    assert_eq!(
        db::record_sale(&mut sp, &taken, Uuid::now_v7(), 4)
            .await
            .unwrap(),
        Recorded::Refused(Refusal::SeatsTaken(vec!["A-01-03".into()]))
    );
    sp.rollback().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(tickets_sold_to(&pool, perf, buyer).await, 3);
    assert_eq!(area_sold(&pool, perf).await, 0);
    // The row's CHECK is the last guard, whoever writes.
    let err = sqlx::query("UPDATE area_sales SET sold = capacity + 1 WHERE performance_id = $1")
        .bind(perf)
        .execute(&pool)
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|d| d.code())
        .unwrap_or_default();
    assert_eq!(code, "23514", "{err}");
    // A re-publication cutting the capacity below what is sold keeps the sold count.
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let ga = sale(perf, Uuid::now_v7(), &[], 40);
    assert_eq!(
        db::record_sale(&mut tx, &ga, Uuid::now_v7(), 0)
            .await
            .unwrap(),
        Recorded::New
    );
    tx.commit().await.unwrap();
    let mut smaller = p.clone();
    smaller.revision = 2;
    smaller.areas[0].capacity = 30;
    assert!(db::save_published(&mut conn, &smaller).await.unwrap());
    let (cap, sold): (i32, i32) =
        sqlx::query_as("SELECT capacity, sold FROM area_sales WHERE performance_id = $1")
            .bind(perf)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((cap, sold), (40, 40));
    drop(conn);
    pool.close().await;
}

/// The consumer skips what the handler does not want without a transaction: the handler must
/// want exactly the types it acts on (an event it acts on but does not want would be lost).
#[tokio::test]
async fn the_handler_wants_exactly_the_events_it_acts_on() {
    use platform::bus::consumer::Handler;
    let app = spawn(Backend::Memory, Config::default()).await;
    let maps = seat::map::registry::SeatMaps::new(
        app.store.clone(),
        seat_pool(&app).await,
        tokio_util::sync::CancellationToken::new(),
        std::time::Duration::from_millis(50),
    );
    let handler = seat::events::SeatHandler {
        holds: seat::holds::HoldService::new(
            app.store.clone(),
            maps,
            seat::store_relay::Nudges::default(),
            60_000,
        ),
    };
    let acted = platform::testing::types_handled(&handler, contracts::events::ALL_TYPES).await;
    assert!(acted.contains(&"order.confirmed"), "{acted:?}");
    for t in contracts::events::ALL_TYPES {
        assert_eq!(handler.wants(t), acted.contains(t), "{t}");
    }
}
