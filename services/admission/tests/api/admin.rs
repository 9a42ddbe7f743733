//! Operating a waiting room: pause, resume, the rate and the active-buyer cap, who may, and the
//! metrics.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, Backend, config, performance, spawn};

async fn room(app: &App, perf: Uuid) -> Value {
    let (code, body) = app
        .admin(
            &app.organizer(),
            Method::GET,
            &format!("/api/v1/admin/rooms/{perf}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

/// Publishes an open room and answers its id.
async fn open_room(app: &App) -> Uuid {
    let p = performance(chrono::Duration::seconds(-1));
    app.publish_performance(&p).await;
    p.performance_id
}

/// Joins a fan, waiting until its place is out of the pre-queue (the draw ran); answers the
/// fan and its token.
async fn queued(app: &App, perf: Uuid) -> (Uuid, String) {
    let fan = Uuid::now_v7();
    let (code, j) = app.join(perf, fan).await;
    assert_eq!(code, 201, "{j}");
    (fan, j["queue_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn only_organizers_and_administrators_operate_rooms() {
    let app = spawn(Backend::Memory, config()).await;
    let perf = open_room(&app).await;
    let buyer = app.token(Uuid::now_v7());
    // An organizer, but not the one whose event this is.
    let stranger = app.other_organizer();
    for (method, path) in [
        (Method::GET, format!("/api/v1/admin/rooms/{perf}")),
        (Method::POST, format!("/api/v1/admin/rooms/{perf}/pause")),
        (Method::POST, format!("/api/v1/admin/rooms/{perf}/resume")),
        (Method::PATCH, format!("/api/v1/admin/rooms/{perf}")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"rate_per_sec": 1}));
        for who in [&buyer, &stranger] {
            let (code, problem) = app.admin(who, method.clone(), &path, body.clone()).await;
            assert_eq!(
                (code, problem["code"].as_str()),
                (403, Some("forbidden")),
                "{method} {path}"
            );
        }
        let (code, _) = app.admin("nope", method, &path, body).await;
        assert_eq!(code, 401);
    }
    // Nothing the stranger sent changed the room; its organizer sees it as published.
    let before = room(&app, perf).await;
    assert_eq!(before["paused"], false);
    assert_eq!(before["rate_per_sec"], config().rate_per_sec);
    assert_eq!(before["organizer_id"], app.owner.to_string());
    let admin = app
        .issuer
        .token(Uuid::now_v7(), &[platform::auth::Role::Admin]);
    let (code, _) = app
        .admin(
            &admin,
            Method::GET,
            &format!("/api/v1/admin/rooms/{perf}"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = app
        .admin(
            &admin,
            Method::GET,
            &format!("/api/v1/admin/rooms/{}", Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(code, 404);
    // Bad settings are refused, naming the field.
    let org = app.organizer();
    let path = format!("/api/v1/admin/rooms/{perf}");
    for bad in [
        json!({"rate_per_sec": -1}),
        json!({"rate_per_sec": 1e9}),
        json!({"max_active": -3}),
    ] {
        let (code, problem) = app
            .admin(&org, Method::PATCH, &path, Some(bad.clone()))
            .await;
        assert_eq!(
            (code, problem["code"].as_str()),
            (400, Some("validation_failed")),
            "{bad}"
        );
    }
    let (code, _) = app
        .admin(&org, Method::PATCH, &path, Some(json!({"rate": 5})))
        .await;
    assert_eq!(code, 400);
    let (code, body) = app
        .admin(
            &org,
            Method::PATCH,
            &path,
            Some(json!({"rate_per_sec": 7.5, "max_active": 40})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        (body["rate_per_sec"].as_f64(), body["max_active"].as_i64()),
        (Some(7.5), Some(40))
    );
    let (_, body) = app
        .admin(
            &org,
            Method::PATCH,
            &path,
            Some(json!({"max_active": null})),
        )
        .await;
    assert!(body["max_active"].is_null());
    assert_eq!(body["rate_per_sec"], 7.5);
}

#[tokio::test]
async fn a_paused_room_admits_nobody_until_resumed() {
    let mut cfg = config();
    cfg.rate_per_sec = 1000.0;
    let app = spawn(Backend::Redis, cfg).await;
    let org = app.organizer();
    let paused = open_room(&app).await;
    let (code, body) = app
        .admin(
            &org,
            Method::POST,
            &format!("/api/v1/admin/rooms/{paused}/pause"),
            None,
        )
        .await;
    assert_eq!((code, body["paused"].as_bool()), (200, Some(true)));
    // A room published after the pause is picked up by a reload that also saw the pause: once
    // its fan is in, the admitter runs with the pause.
    let running = open_room(&app).await;
    let (fan, token) = queued(&app, running).await;
    app.until(running, fan, &token, "admitted").await;
    let fans: Vec<(Uuid, String)> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(queued(&app, paused).await);
        }
        v
    };
    // More admissions elsewhere: the admitter has gone round many times since.
    let (fan, token) = queued(&app, running).await;
    app.until(running, fan, &token, "admitted").await;
    for (fan, token) in &fans {
        let (_, body) = app.status(paused, *fan, token).await;
        assert_eq!(body["status"], "waiting", "{body}");
    }
    assert_eq!(room(&app, paused).await["active"], 0);
    let (code, _) = app
        .admin(
            &org,
            Method::POST,
            &format!("/api/v1/admin/rooms/{paused}/resume"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    for (fan, token) in &fans {
        app.until(paused, *fan, token, "admitted").await;
    }
    let r = room(&app, paused).await;
    assert_eq!(
        (r["active"].as_u64(), r["waiting"].as_u64()),
        (Some(5), Some(0))
    );
}

/// The admitter reads the room (paused or not) at the start of its tick; one that read it just
/// before a pause admits nobody after it, because the store itself refuses from the pause on.
#[tokio::test]
async fn a_tick_that_read_the_room_before_the_pause_admits_nobody_after_it() {
    for backend in [Backend::Memory, Backend::Redis] {
        let mut cfg = config();
        cfg.rate_per_sec = 1000.0;
        let app = spawn(backend, cfg).await;
        let org = app.organizer();
        let perf = open_room(&app).await;
        let (fan, token) = queued(&app, perf).await;
        app.until(perf, fan, &token, "admitted").await;
        let (code, _) = app
            .admin(
                &org,
                Method::POST,
                &format!("/api/v1/admin/rooms/{perf}/pause"),
                None,
            )
            .await;
        assert_eq!(code, 200);
        let fans: Vec<(Uuid, String)> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                let (fan, token) = queued(&app, perf).await;
                app.until_in_line(perf, fan, &token).await;
                v.push((fan, token));
            }
            v
        };
        // The step of a tick that read the room before the pause: it owes 10 admissions.
        let now = chrono::Utc::now().timestamp_millis();
        let step = app.store.admit(perf, 10, None, now, 600_000).await.unwrap();
        assert_eq!(step.admitted, 0, "{backend:?}: admitted while paused");
        for (fan, token) in &fans {
            let (_, body) = app.status(perf, *fan, token).await;
            assert_eq!(body["status"], "waiting", "{backend:?}: {body}");
        }
        let (code, _) = app
            .admin(
                &org,
                Method::POST,
                &format!("/api/v1/admin/rooms/{perf}/resume"),
                None,
            )
            .await;
        assert_eq!(code, 200);
        for (fan, token) in &fans {
            app.until(perf, *fan, token, "admitted").await;
        }
    }
}

#[tokio::test]
async fn the_admission_rate_is_obeyed() {
    let mut cfg = config();
    cfg.rate_per_sec = 20.0;
    let app = spawn(Backend::Redis, cfg).await;
    let org = app.organizer();
    let perf = open_room(&app).await;
    app.admin(
        &org,
        Method::POST,
        &format!("/api/v1/admin/rooms/{perf}/pause"),
        None,
    )
    .await;
    let (fan, token) = queued(&app, perf).await;
    app.until_in_line(perf, fan, &token).await;
    for _ in 0..199 {
        queued(&app, perf).await;
    }
    app.admin(
        &org,
        Method::POST,
        &format!("/api/v1/admin/rooms/{perf}/resume"),
        None,
    )
    .await;
    // Measure from the first admission on: 60 more at 20/s take 3 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (t0, a0) = loop {
        let a = room(&app, perf).await["active"].as_u64().unwrap();
        if a > 0 {
            break (Instant::now(), a);
        }
        assert!(Instant::now() < deadline, "nobody admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (t1, a1) = loop {
        let a = room(&app, perf).await["active"].as_u64().unwrap();
        if a >= a0 + 60 {
            break (Instant::now(), a);
        }
        assert!(Instant::now() < deadline, "only {a} admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let rate = (a1 - a0) as f64 / (t1 - t0).as_secs_f64();
    assert!(
        (16.0..=24.0).contains(&rate),
        "admitted {rate:.1}/s at a set 20/s"
    );
    // The measured rate is what fans' ETAs use, and it shows in the room.
    app.until_measured(perf).await;
}

impl App {
    async fn until_measured(&self, perf: Uuid) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = room(self, perf).await;
            let m = r["measured_rate"].as_f64().unwrap();
            if (14.0..=26.0).contains(&m) {
                return;
            }
            assert!(Instant::now() < deadline, "measured rate {m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn at_most_the_cap_are_active_and_a_leaver_frees_a_place() {
    let mut cfg = config();
    cfg.rate_per_sec = 1000.0;
    cfg.max_active = Some(3);
    let app = spawn(Backend::Memory, cfg).await;
    let perf = open_room(&app).await;
    let mut fans = Vec::new();
    for _ in 0..6 {
        fans.push(queued(&app, perf).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = room(&app, perf).await;
        if r["active"] == 3 {
            assert_eq!(r["waiting"], 3, "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An admitted fan leaves: the next comes in, and the cap holds.
    let mut admitted = None;
    for (fan, token) in &fans {
        if app.status(perf, *fan, token).await.1["status"] == "admitted" {
            admitted = Some((*fan, token.clone()));
            break;
        }
    }
    let (fan, token) = admitted.unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/performances/{perf}/queue/{token}")))
        .bearer_auth(app.token(fan))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = room(&app, perf).await;
        if r["waiting"] == 2 {
            assert_eq!(r["active"], 3, "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The metrics show the queue (the gauges are set once a second).
    let url = app.url("/metrics");
    let line = format!("boxoffice_admission_active_buyers{{performance_id=\"{perf}\"}} 3");
    platform::testing::eventually("the gauges", Duration::from_secs(10), || async {
        let m = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.contains(&line)
            && m.contains(&format!(
                "boxoffice_admission_queue_length{{performance_id=\"{perf}\"}} 2"
            ))
            && m.contains("boxoffice_admission_admitted_total")
    })
    .await;
}

/// Reads server-sent events from `r` until one whose body has `status` equal to `want`;
/// answers that body. Panics past a deadline or if the stream ends first.
async fn next_event(r: &mut reqwest::Response, buf: &mut String, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            assert!(frame.contains("event: status"), "{frame}");
            let body: Value = serde_json::from_str(&data).unwrap();
            if body["status"] == want {
                return body;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for a `{want}` event"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before a `{want}` event"));
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_event_stream_tells_a_place_and_ends_with_the_pass() {
    let mut cfg = config();
    cfg.rate_per_sec = 1000.0;
    cfg.poll_min_ms = 50;
    cfg.poll_max_ms = 200;
    let app = spawn(Backend::Memory, cfg).await;
    let org = app.organizer();
    let perf = open_room(&app).await;
    let (code, _) = app
        .admin(
            &org,
            Method::POST,
            &format!("/api/v1/admin/rooms/{perf}/pause"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (fan, token) = queued(&app, perf).await;
    let url = app.url(&format!("/api/v1/performances/{perf}/queue/{token}/events"));

    // Someone else's token, and no token at all, open no stream.
    let r = app
        .client
        .get(&url)
        .bearer_auth(app.token(Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);

    let mut r = app
        .client
        .get(&url)
        .bearer_auth(app.token(fan))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut buf = String::new();
    // The room is paused: the place is told while it waits, before anyone is admitted.
    let waiting = next_event(&mut r, &mut buf, "waiting").await;
    assert_eq!(waiting["queue_token"], token.as_str());
    assert!(waiting["admission_pass"].is_null(), "{waiting}");

    let (code, _) = app
        .admin(
            &org,
            Method::POST,
            &format!("/api/v1/admin/rooms/{perf}/resume"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let admitted = next_event(&mut r, &mut buf, "admitted").await;
    assert!(admitted["admission_pass"].is_string(), "{admitted}");
    // The stream ends after the pass: nothing more arrives, not even a keep-alive.
    let rest = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("the stream ends after the pass")
        .unwrap();
    assert!(rest.is_none(), "{rest:?}");
    // The pass in the stream is the one polling answers.
    let (_, polled) = app.status(perf, fan, &token).await;
    assert_eq!(polled["status"], "admitted");
    assert_eq!(polled["admission_pass"], admitted["admission_pass"]);
}
