//! Webhooks: delivered to a local receiver, retried, duplicated and reordered on request.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{Pg, order_id, spawn_with};

/// A webhook receiver that refuses its first `fail_first` deliveries with a 500.
struct Receiver {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    seen: watch::Receiver<usize>,
}

#[derive(Clone)]
struct Inbox {
    events: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    fail_first: usize,
    seen: Arc<watch::Sender<usize>>,
}

async fn receive(State(inbox): State<Inbox>, Json(event): Json<Value>) -> StatusCode {
    let attempt = inbox.attempts.fetch_add(1, Ordering::SeqCst) + 1;
    inbox.seen.send_modify(|n| *n += 1);
    if attempt <= inbox.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    inbox.events.lock().unwrap().push(event);
    inbox.seen.send_modify(|n| *n += 1);
    StatusCode::OK
}

async fn receiver(fail_first: usize) -> Receiver {
    let (tx, rx) = watch::channel(0);
    let inbox = Inbox {
        events: Arc::default(),
        attempts: Arc::default(),
        fail_first,
        seen: Arc::new(tx),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/toss", listener.local_addr().unwrap());
    let r = Receiver {
        url,
        events: Arc::clone(&inbox.events),
        attempts: Arc::clone(&inbox.attempts),
        seen: rx,
    };
    let app = Router::new()
        .route("/webhooks/toss", post(receive))
        .with_state(inbox);
    tokio::spawn(async move { axum::serve(listener, app).await });
    r
}

impl Receiver {
    /// Waits (at most 10 s) until `done` holds for the events and attempts.
    async fn until(&mut self, done: impl Fn(&[Value], usize) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events.lock().unwrap().clone();
            if done(&events, self.attempts.load(Ordering::SeqCst)) {
                return events;
            }
            tokio::time::timeout_at(deadline, self.seen.changed())
                .await
                .unwrap_or_else(|_| panic!("webhooks never arrived: {events:?}"))
                .unwrap();
        }
    }

    async fn events(&mut self, n: usize) -> Vec<Value> {
        self.until(|e, _| e.len() >= n).await
    }
}

async fn pg_to(r: &Receiver) -> Pg {
    let url = r.url.clone();
    spawn_with(move |o| {
        o.webhooks.url = Some(url);
        o.webhooks.backoff = Duration::from_millis(10);
        o.webhooks.attempts = 4;
        o.webhooks.reorder_flush = Duration::from_secs(30);
    })
    .await
}

fn status(event: &Value) -> &str {
    event["data"]["status"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_confirm_posts_payment_status_changed_with_the_payment() {
    let mut r = receiver(0).await;
    let pg = pg_to(&r).await;
    let done = pg.paid(7_000).await;
    let events = r.events(1).await;
    assert_eq!(events[0]["eventType"], "PAYMENT_STATUS_CHANGED");
    assert!(
        events[0]["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with("+09:00"))
    );
    assert_eq!(events[0]["data"], done);
}

#[tokio::test]
async fn a_refused_delivery_is_retried_until_answered_200() {
    let mut r = receiver(2).await;
    let pg = pg_to(&r).await;
    let done = pg.paid(7_000).await;
    let events = r.events(1).await;
    assert_eq!(
        r.attempts.load(Ordering::SeqCst),
        3,
        "two refusals, then delivered"
    );
    assert_eq!(events[0]["data"]["paymentKey"], done["paymentKey"]);
    // The PG counts it once it has read the 200, a moment after the receiver kept it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pg.run.control.webhooks_delivered() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never counted as delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_delivery_refused_every_time_is_given_up_after_its_attempts() {
    let mut r = receiver(usize::MAX).await;
    let pg = pg_to(&r).await;
    pg.paid(7_000).await;
    r.until(|_, attempts| attempts >= 4).await;
    assert_eq!(pg.run.control.webhooks_delivered(), 0);
    assert!(r.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_duplicate_fault_delivers_an_event_twice() {
    let mut r = receiver(0).await;
    let pg = pg_to(&r).await;
    let checkout = pg.checkout(&order_id(), 3_000).await;
    let (code, _) = Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("X-Sandbox-Fault", "duplicate_webhook")
            .json(&checkout),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let events = r.events(2).await;
    assert_eq!(events[0], events[1]);
    assert_eq!(status(&events[0]), "DONE");
}

#[tokio::test]
async fn the_reorder_fault_delivers_an_event_after_the_next_one() {
    let mut r = receiver(0).await;
    let pg = pg_to(&r).await;
    let checkout = pg.checkout(&order_id(), 3_000).await;
    let (code, _) = Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("X-Sandbox-Fault", "reorder_webhook")
            .json(&checkout),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let key = checkout["paymentKey"].as_str().unwrap();
    let (code, _) = pg.cancel(key, &json!({"cancelReason": "buyer"})).await;
    assert_eq!(code, StatusCode::OK);
    let events = r.events(2).await;
    let order: Vec<_> = events.iter().map(status).collect();
    assert_eq!(order, ["CANCELED", "DONE"], "the older event arrives last");
    // A receiver that re-reads the payment gets the truth whatever the order.
    assert_eq!(pg.status_of(key).await, "CANCELED");
}

#[tokio::test]
async fn an_event_held_back_with_nothing_after_it_still_arrives() {
    let mut r = receiver(0).await;
    let url = r.url.clone();
    let pg = spawn_with(move |o| {
        o.webhooks.url = Some(url);
        o.webhooks.reorder_flush = Duration::from_millis(50);
    })
    .await;
    let checkout = pg.checkout(&order_id(), 3_000).await;
    let (code, _) = Pg::send(
        pg.merchant(Method::POST, "/v1/payments/confirm")
            .header("X-Sandbox-Fault", "reorder_webhook")
            .json(&checkout),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status(&r.events(1).await[0]), "DONE");
}

#[tokio::test]
async fn partial_and_full_cancels_and_expiry_each_post_an_event() {
    let mut r = receiver(0).await;
    let pg = pg_to(&r).await;
    let done = pg.paid(10_000).await;
    let key = done["paymentKey"].as_str().unwrap();
    r.events(1).await;
    pg.cancel(key, &json!({"cancelReason": "a", "cancelAmount": 4_000}))
        .await;
    r.events(2).await;
    pg.cancel(key, &json!({"cancelReason": "b"})).await;
    let stale = pg.checkout(&order_id(), 1_000).await;
    pg.run.control.clock().advance(Duration::from_secs(601));
    assert_eq!(
        pg.status_of(stale["paymentKey"].as_str().unwrap()).await,
        "EXPIRED"
    );
    let events = r.events(4).await;
    let mut statuses: Vec<_> = events.iter().map(status).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        ["CANCELED", "DONE", "EXPIRED", "PARTIAL_CANCELED"]
    );
}
