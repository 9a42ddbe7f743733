//! Automatic mode: a room's admission rate follows the seat service's load report — up while it
//! is healthy, down when its p99 climbs, its errors rise or it stops answering — and an operator's
//! hand-set rate ends the mode.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use platform::{
    http::Readiness,
    service::Service,
    testing::{self, TestServer},
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, Backend, config, performance, spawn, spawn_with_services};

/// A seat service that reports whatever load the test sets (`None`: answers 503), counting
/// the reports asked for.
#[derive(Clone, Default)]
struct FakeSeat {
    report: Arc<Mutex<Option<Value>>>,
    asked: Arc<AtomicU64>,
}

impl FakeSeat {
    fn set(&self, report: Option<Value>) {
        *self.report.lock().unwrap() = report;
    }

    fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }

    async fn serve(&self) -> TestServer {
        async fn load(State(fake): State<FakeSeat>) -> axum::response::Response {
            fake.asked.fetch_add(1, Ordering::SeqCst);
            match fake.report.lock().unwrap().clone() {
                Some(v) => Json(v).into_response(),
                None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        testing::serve(
            Service {
                name: "seat",
                router: Router::new()
                    .route("/internal/v1/load", get(load))
                    .with_state(self.clone()),
                readiness: Readiness::default(),
                tasks: Vec::new(),
            },
            Default::default(),
        )
        .await
    }
}

/// A report as the seat service's own type writes it (so the two cannot drift apart).
fn report(requests: u64, errors: u64, p99_ms: f64) -> Value {
    serde_json::to_value(seat::load::LoadReport {
        window_secs: 2,
        requests,
        errors,
        p99_ms: Some(p99_ms),
    })
    .unwrap()
}

fn healthy() -> Value {
    report(1000, 0, 12.0)
}

fn slow() -> Value {
    report(1000, 0, 4000.0)
}

fn failing() -> Value {
    report(1000, 200, 5.0)
}

fn auto_config() -> admission::Config {
    admission::Config {
        auto_interval_ms: 40,
        auto_min_rate: 2.0,
        auto_max_rate: 500.0,
        ..config()
    }
}

async fn rate(app: &App, perf: Uuid) -> (f64, bool) {
    let (code, body) = app
        .admin(
            &app.organizer(),
            Method::GET,
            &format!("/api/v1/admin/rooms/{perf}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    (
        body["rate_per_sec"].as_f64().unwrap(),
        body["auto_rate"].as_bool().unwrap(),
    )
}

async fn patch(app: &App, perf: Uuid, body: Value) -> (u16, Value) {
    app.admin(
        &app.organizer(),
        Method::PATCH,
        &format!("/api/v1/admin/rooms/{perf}"),
        Some(body),
    )
    .await
}

/// Waits until the room's rate satisfies `ok`.
async fn until_rate(app: &App, perf: Uuid, what: &str, ok: impl Fn(f64) -> bool) {
    let ok = &ok;
    testing::eventually(what, Duration::from_secs(20), || async move {
        ok(rate(app, perf).await.0)
    })
    .await;
}

async fn open_room(app: &App) -> Uuid {
    let p = performance(chrono::Duration::seconds(-1));
    app.publish_performance(&p).await;
    p.performance_id
}

#[tokio::test]
async fn the_rate_follows_the_seat_services_health_until_an_operator_sets_one() {
    let fake = FakeSeat::default();
    fake.set(Some(healthy()));
    let seat = fake.serve().await;
    let app = spawn_with_services(
        Backend::Memory,
        auto_config(),
        &[("seat", seat.base_url.clone())],
    )
    .await;
    let perf = open_room(&app).await;
    let (code, body) = patch(&app, perf, json!({"auto_rate": true, "rate_per_sec": 10})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["auto_rate"], true);

    // Healthy: it admits more, up to the ceiling.
    until_rate(&app, perf, "the rate to climb to the ceiling", |r| {
        r == 500.0
    })
    .await;

    // Its p99 climbs far past the target: it backs off, down to the floor.
    fake.set(Some(slow()));
    until_rate(&app, perf, "the rate to fall to the floor", |r| r == 2.0).await;

    // Recovered, it climbs again; then server errors push it down without any latency.
    fake.set(Some(healthy()));
    until_rate(&app, perf, "the rate to climb again", |r| r > 50.0).await;
    fake.set(Some(failing()));
    until_rate(&app, perf, "errors to push it down", |r| r < 10.0).await;

    // A seat service that does not answer is taken as one in trouble.
    fake.set(Some(healthy()));
    until_rate(&app, perf, "the rate to climb once more", |r| r > 50.0).await;
    fake.set(None);
    until_rate(&app, perf, "silence to push it down", |r| r < 10.0).await;

    // An operator's number ends automatic mode and holds, however healthy the seat service.
    fake.set(Some(healthy()));
    let (code, body) = patch(&app, perf, json!({"rate_per_sec": 7})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["auto_rate"], false);
    // A second room in automatic mode keeps the admitter asking: once it has asked several
    // times more, the first room's rate has had every chance to move.
    let other = open_room(&app).await;
    assert_eq!(patch(&app, other, json!({"auto_rate": true})).await.0, 200);
    let asked = fake.asked();
    testing::eventually(
        "the admitter to read the load five more times",
        Duration::from_secs(20),
        || async { fake.asked() >= asked + 5 },
    )
    .await;
    assert_eq!(rate(&app, perf).await, (7.0, false));
    until_rate(&app, other, "the other room to climb", |r| r > 50.0).await;
    app.infra.shutdown.cancel();
}

#[tokio::test]
async fn automatic_mode_needs_a_seat_service_and_an_owner_to_switch_it_on() {
    // No seat service in the directory: refused, and the room is unchanged.
    let app = spawn(Backend::Memory, auto_config()).await;
    let perf = open_room(&app).await;
    let (code, problem) = patch(&app, perf, json!({"auto_rate": true})).await;
    assert_eq!(
        (code, problem["code"].as_str()),
        (409, Some("auto_rate_unavailable")),
        "{problem}"
    );
    assert!(!rate(&app, perf).await.1);
    // Another organizer cannot switch it on either.
    let (code, _) = app
        .admin(
            &app.other_organizer(),
            Method::PATCH,
            &format!("/api/v1/admin/rooms/{perf}"),
            Some(json!({"auto_rate": true})),
        )
        .await;
    assert_eq!(code, 403);
    // A non-boolean is a validation error, not a 500.
    let (code, problem) = patch(&app, perf, json!({"auto_rate": "yes"})).await;
    assert_eq!(code, 400, "{problem}");
    app.infra.shutdown.cancel();
}
