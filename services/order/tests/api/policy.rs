//! Per-event cancellation policies: the catalog publishes an event's own schedule with its
//! performance, and every order made from then on freezes it (else `order.cancellation`); a
//! re-publication changes only orders made afterwards, a late older one nothing; a publication
//! from before the field existed still counts, one with a policy this build cannot read is
//! dead-lettered rather than sold under the default.

use contracts::{
    Envelope, Event,
    events::{PerformancePublished, PerformanceSpec},
    policy::{CancellationPolicy, Tier},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, performance, spawn, until};

/// The standard schedule, but `percent` % kept whenever fewer than 40 days are left.
fn steep(percent: i64) -> CancellationPolicy {
    CancellationPolicy {
        flat_fee_from_days: 40,
        tiers: vec![Tier {
            days_before: 39,
            percent,
        }],
        ..CancellationPolicy::default()
    }
}

/// Publishes `p`'s chunks and then `header` (its header, possibly altered) as the catalog does;
/// waits until the order service has the revision and the seat service has installed it.
async fn publish(app: &App, p: &PerformanceSpec, header: &PerformancePublished) -> Envelope {
    let (chunks, _) = p.split().unwrap();
    for c in &chunks {
        app.publish(c).await;
    }
    let env = app.publish(header).await;
    wait_revision(app, p.performance_id, p.revision).await;
    wait_seat(app, p.performance_id, p.revision).await;
    env
}

async fn wait_seat(app: &App, perf: Uuid, revision: i64) {
    until("the seat service to install the revision", || async {
        sqlx::query_scalar::<_, i64>("SELECT revision FROM performances WHERE performance_id = $1")
            .bind(perf)
            .fetch_optional(&app.seatdb)
            .await
            .unwrap()
            == Some(revision)
    })
    .await;
}

async fn wait_revision(app: &App, perf: Uuid, revision: i64) {
    until("the order service to know the revision", || async {
        sqlx::query_scalar::<_, i64>("SELECT revision FROM performances WHERE performance_id = $1")
            .bind(perf)
            .fetch_optional(&app.orderdb)
            .await
            .unwrap()
            == Some(revision)
    })
    .await;
}

/// `p`'s header carrying `policy`.
fn header(p: &PerformanceSpec, policy: Option<CancellationPolicy>) -> PerformancePublished {
    let (_, mut h) = p.split().unwrap();
    h.cancellation_policy = policy;
    h
}

/// The policy frozen onto `order`.
async fn frozen(app: &App, order: Uuid) -> CancellationPolicy {
    let v: Value = sqlx::query_scalar("SELECT policy FROM orders WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// An order of `seat` for a new buyer, paid and confirmed: (buyer, order, amount).
async fn confirmed(app: &App, perf: Uuid, seat: &str) -> (Uuid, Uuid, i64) {
    let buyer = Uuid::now_v7();
    let (order, amount) = app.order_of(buyer, perf, &[seat]).await;
    assert_eq!(app.pay(buyer, order, amount).await.status, 200);
    app.wait_status(order, "confirmed").await;
    (buyer, order, amount)
}

async fn quote(app: &App, buyer: Uuid, order: Uuid) -> Value {
    app.order(buyer, order).await.body["actions"]["cancel"].clone()
}

/// Waits until the order service's consumer has taken `env` (applied or dead-lettered).
async fn wait_taken(app: &App, env: &Envelope) {
    until("the order service to take the event", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bus_inbox WHERE event_id = $1")
            .bind(env.id)
            .fetch_one(&app.orderdb)
            .await
            .unwrap()
            == 1
    })
    .await;
}

#[tokio::test]
async fn an_events_policy_is_frozen_and_quoted_and_cancelling_keeps_its_fee() {
    let app = spawn().await;
    // 30 days away: the standard schedule would be free; this one keeps 25 %.
    let p = performance(30);
    publish(&app, &p, &header(&p, Some(steep(25)))).await;
    let (buyer, order, amount) = confirmed(&app, p.performance_id, "A-01-01").await;
    assert_eq!(amount, 152_000);
    assert_eq!(frozen(&app, order).await, steep(25));

    let q = quote(&app, buyer, order).await;
    assert_eq!(q["allowed"], true, "{q}");
    assert_eq!(q["rule"], "percent_25");
    // 25 % of ₩150,000 kept; booked today, the ₩2,000 booking fee comes back.
    assert_eq!(q["fee_krw"], 37_500);
    assert_eq!(q["refund_krw"], 150_000 - 37_500 + 2_000);

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
    assert_eq!(refund["amount_krw"], 114_500);
    let refunded: i64 = sqlx::query_scalar("SELECT refunded_krw FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.paydb)
        .await
        .unwrap();
    assert_eq!(refunded, 114_500);
    let report = app.invariants().await;
    assert!(report.ok(), "{report:?}");
}

#[tokio::test]
async fn an_event_without_a_policy_gets_the_configured_default() {
    let mut config = crate::helpers::config();
    // The platform's default is configuration: a theatre-style one here.
    config.cancellation = CancellationPolicy::standard(2_000).into();
    let app = crate::helpers::spawn_with(config).await;
    let p = performance(30);
    let h = header(&p, None);
    let env = Envelope::new(&h).unwrap();
    assert!(env.payload.get("cancellation_policy").is_none());
    publish(&app, &p, &h).await;
    let (buyer, order, amount) = confirmed(&app, p.performance_id, "A-01-02").await;
    assert_eq!(
        frozen(&app, order).await,
        CancellationPolicy::standard(2_000)
    );
    let q = quote(&app, buyer, order).await;
    assert_eq!(q["rule"], "free", "{q}");
    assert_eq!(q["refund_krw"], amount);
}

#[tokio::test]
async fn a_republication_changes_only_orders_made_afterwards_and_a_late_older_one_nothing() {
    let app = spawn().await;
    let mut p = performance(30);
    publish(&app, &p, &header(&p, Some(steep(25)))).await;
    let (first_buyer, first, _) = confirmed(&app, p.performance_id, "A-01-03").await;

    // The organizer changes the event's policy: revision 2.
    p.revision = 2;
    publish(&app, &p, &header(&p, Some(steep(60)))).await;
    let (second_buyer, second, _) = confirmed(&app, p.performance_id, "A-01-04").await;
    assert_eq!(frozen(&app, second).await, steep(60));
    assert_eq!(
        quote(&app, second_buyer, second).await["rule"],
        "percent_60"
    );
    // The first order keeps what its buyer was promised.
    assert_eq!(frozen(&app, first).await, steep(25));
    assert_eq!(quote(&app, first_buyer, first).await["rule"], "percent_25");

    // Revision 1 again, late (reordered or replayed under a new id): it changes nothing.
    let mut old = p.clone();
    old.revision = 1;
    let late = app.publish(&header(&old, Some(steep(25)))).await;
    wait_taken(&app, &late).await;
    let (_, third, _) = confirmed(&app, p.performance_id, "A-01-05").await;
    assert_eq!(frozen(&app, third).await, steep(60));

    // Revision 3 without a policy: back to the platform default for new orders only.
    p.revision = 3;
    publish(&app, &p, &header(&p, None)).await;
    let (fourth_buyer, fourth, _) = confirmed(&app, p.performance_id, "A-01-06").await;
    assert_eq!(frozen(&app, fourth).await, CancellationPolicy::default());
    assert_eq!(quote(&app, fourth_buyer, fourth).await["rule"], "free");
    assert_eq!(frozen(&app, second).await, steep(60));
    assert_eq!(frozen(&app, first).await, steep(25));
}

#[tokio::test]
async fn publications_from_before_the_field_count_and_an_unreadable_policy_is_dead_lettered() {
    let app = spawn().await;
    // A version 2 header as an older catalog wrote it: no such field at all.
    let p = performance(30);
    let mut env = Envelope::new(&header(&p, None)).unwrap();
    env.payload
        .as_object_mut()
        .unwrap()
        .remove("cancellation_policy");
    let (chunks, _) = p.split().unwrap();
    for c in &chunks {
        app.publish(c).await;
    }
    app.bus
        .publish(PerformancePublished::TOPIC, &env)
        .await
        .unwrap();
    wait_revision(&app, p.performance_id, 1).await;
    wait_seat(&app, p.performance_id, 1).await;
    let buyer = Uuid::now_v7();
    let (order, _) = app.order_of(buyer, p.performance_id, &["A-01-07"]).await;
    assert_eq!(frozen(&app, order).await, CancellationPolicy::default());

    // A version 1 publication (the whole spec, from before the header split) with a null
    // policy: the default too.
    let q = performance(20);
    let mut v1 = Envelope::new(&header(&q, None)).unwrap();
    v1.version = 1;
    v1.payload = serde_json::to_value(&q).unwrap();
    v1.payload["cancellation_policy"] = Value::Null;
    app.bus
        .publish(PerformancePublished::TOPIC, &v1)
        .await
        .unwrap();
    wait_revision(&app, q.performance_id, 1).await;
    let stored: Option<Value> = sqlx::query_scalar(
        "SELECT cancellation_policy FROM performances WHERE performance_id = $1",
    )
    .bind(q.performance_id)
    .fetch_one(&app.orderdb)
    .await
    .unwrap();
    assert_eq!(stored, None);

    // Revision 2 with a policy carrying a rule this build does not know: refused (dead-lettered),
    // so the performance keeps revision 1 and its default rather than a half-read schedule.
    let mut r2 = p.clone();
    r2.revision = 2;
    let mut bad = Envelope::new(&header(&r2, Some(steep(25)))).unwrap();
    bad.payload["cancellation_policy"]["refund_everything"] = json!(true);
    app.bus
        .publish(PerformancePublished::TOPIC, &bad)
        .await
        .unwrap();
    until("the unreadable publication to be dead-lettered", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bus_dead_letters WHERE event_id = $1")
            .bind(bad.id)
            .fetch_one(&app.orderdb)
            .await
            .unwrap()
            == 1
    })
    .await;
    let revision: i64 =
        sqlx::query_scalar("SELECT revision FROM performances WHERE performance_id = $1")
            .bind(p.performance_id)
            .fetch_one(&app.orderdb)
            .await
            .unwrap();
    assert_eq!(revision, 1);
    let (later, _) = app
        .order_of(Uuid::now_v7(), p.performance_id, &["A-01-08"])
        .await;
    assert_eq!(frozen(&app, later).await, CancellationPolicy::default());
}
