//! Seats held back per performance through the API: the organizer (or an admin) withholds and
//! releases them; buyers see them sold and cannot hold them; the set survives a lost store, a
//! restart and a re-publication; a race against buyers never leaves a seat in two states.

use std::{collections::HashMap, sync::Arc, time::Duration};

use contracts::events::{OrderConfirmed, PerformanceSpec};
use platform::{auth::Role, testing};
use seat::{Config, domain::SeatStatus, map::registry::SeatMaps};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    helpers::{App, Backend, Handled, SseReader, performance, spawn, wait_handled},
    race::seat_pool,
};

/// Publishes `p` as the catalog does, its header naming `organizer`, and waits until it is served.
async fn publish_owned(app: &App, p: &PerformanceSpec, organizer: Option<Uuid>) {
    let mut envelopes = p.envelopes().unwrap();
    if let Some(header) = envelopes.last_mut() {
        header.payload["organizer_id"] = json!(organizer);
    }
    for e in &envelopes {
        app.publish_envelope(contracts::topics::CATALOG, e).await;
    }
    let (perf, revision) = (p.performance_id, p.revision);
    testing::eventually("the performance served", Duration::from_secs(10), || {
        let app = &app;
        async move {
            let url = app
                .server
                .url(&format!("/api/v1/performances/{perf}/seats"));
            match app.server.client.get(url).send().await {
                Ok(r) if r.status() == 200 => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|b| b["revision"] == revision),
                _ => false,
            }
        }
    })
    .await;
}

fn organizer_token(app: &App, user: Uuid) -> String {
    app.issuer.token(user, &[Role::Organizer])
}

fn admin_token(app: &App) -> String {
    app.issuer.token(Uuid::now_v7(), &[Role::Admin])
}

async fn withhold(app: &App, token: &str, perf: Uuid, body: Value) -> reqwest::Response {
    app.server
        .client
        .post(
            app.server
                .url(&format!("/api/v1/performances/{perf}/seats/withheld")),
        )
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn release(app: &App, token: &str, perf: Uuid, seats: &[&str]) -> reqwest::Response {
    app.server
        .client
        .post(app.server.url(&format!(
            "/api/v1/performances/{perf}/seats/withheld/release"
        )))
        .bearer_auth(token)
        .json(&json!({ "seat_ids": seats }))
        .send()
        .await
        .unwrap()
}

async fn listed(app: &App, token: &str, perf: Uuid) -> Vec<String> {
    let r = app
        .server
        .client
        .get(
            app.server
                .url(&format!("/api/v1/performances/{perf}/seats/withheld")),
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seat_id"].as_str().unwrap().to_owned())
        .collect()
}

fn status<'a>(map: &'a Value, seat: &str) -> &'a Value {
    &map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == seat)
        .unwrap()["status"]
}

async fn problem(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

#[tokio::test]
async fn an_organizer_withholds_and_releases_seats_buyers_see_them_sold() {
    for backend in [Backend::Memory, Backend::Redis] {
        let config = Config {
            stream_flush_ms: 20,
            ..Config::default()
        };
        let app = spawn(backend, config).await;
        let organizer = Uuid::now_v7();
        let token = organizer_token(&app, organizer);
        let p = performance(1, 5, 0);
        let perf = p.performance_id;
        publish_owned(&app, &p, Some(organizer)).await;
        let mut live = SseReader::open(&app, perf, None).await;
        assert_eq!(live.next().await.event, "snapshot");

        let r = withhold(
            &app,
            &token,
            perf,
            json!({"seat_ids": ["A-01-02", "A-01-03"], "reason": "season_ticket"}),
        )
        .await;
        let body = problem(r, 200).await;
        assert_eq!(body["seats"][0]["seat_id"], "A-01-02", "{body}");
        assert_eq!(body["seats"][0]["reason"], "season_ticket");
        assert_eq!(body["seats"][0]["withheld_by"], json!(organizer));
        assert_eq!(body["seats"].as_array().unwrap().len(), 2);

        // Buyers see them sold, in every shape; nothing counts them as on sale.
        let map = app.seats(perf).await;
        assert_eq!(status(&map, "A-01-02"), "sold", "{backend:?}");
        assert_eq!(map["counts"]["available"], 3 + 50);
        assert_eq!(map["counts"]["sold"], 2);
        assert_eq!(map["remaining"]["vip"], 3);
        let compact: Value = app
            .server
            .client
            .get(
                app.server
                    .url(&format!("/api/v1/performances/{perf}/seats?format=compact")),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(compact["status"], "assaa");
        let delta = live.next().await;
        assert_eq!(delta.event, "delta");
        assert_eq!(
            delta.data["seats"],
            json!([{"id": "A-01-02", "status": "sold"}, {"id": "A-01-03", "status": "sold"}])
        );

        // No buyer holds one, chosen or best available.
        let r = app
            .hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "seat_ids": ["A-01-01", "A-01-03"]}),
            )
            .await;
        let refused = problem(r, 409).await;
        assert_eq!(refused["code"], "seat_unavailable");
        assert_eq!(refused["seat_ids"], json!(["A-01-03"]));
        let r = app
            .hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "quantity": 3}),
            )
            .await;
        let best = problem(r, 201).await;
        let mut got: Vec<&str> = best["seat_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, ["A-01-01", "A-01-04", "A-01-05"], "{backend:?}");

        // Released: back on sale at once, live.
        let r = release(&app, &token, perf, &["A-01-02", "A-01-04"]).await;
        let body = problem(r, 200).await;
        assert_eq!(body["seats"][0]["seat_id"], "A-01-03", "{body}");
        assert_eq!(body["seats"].as_array().unwrap().len(), 1);
        // (One flush may carry the best-available hold too: states, not transitions.)
        let seen = loop {
            let d = live.next().await;
            let seats = d.data["seats"].as_array().cloned().unwrap_or_default();
            if let Some(s) = seats.iter().find(|s| s["id"] == "A-01-02") {
                break (s["status"].clone(), seats);
            }
        };
        assert_eq!(seen.0, "available", "{backend:?}: {:?}", seen.1);
        for s in &seen.1 {
            if s["id"] == "A-01-03" {
                assert_eq!(s["status"], "sold", "still withheld");
            }
            if s["id"] == "A-01-04" {
                assert_eq!(s["status"], "held", "a held seat is not released with them");
            }
        }
        let r = app
            .hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "seat_ids": ["A-01-02"]}),
            )
            .await;
        problem(r, 201).await;
        assert_eq!(listed(&app, &token, perf).await, ["A-01-03"]);
    }
}

#[tokio::test]
async fn withholding_a_held_or_sold_seat_refuses_the_lot() {
    let app = spawn(Backend::Redis, Config::default()).await;
    let organizer = Uuid::now_v7();
    let token = organizer_token(&app, organizer);
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    publish_owned(&app, &p, Some(organizer)).await;
    let buyer = Uuid::now_v7();
    let r = app
        .hold(
            buyer,
            json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
        )
        .await;
    let hold_id: Uuid = serde_json::from_value(problem(r, 201).await["hold_id"].clone()).unwrap();
    let sold = app
        .publish(&OrderConfirmed {
            order_id: Uuid::now_v7(),
            buyer_id: buyer,
            hold_id,
            performance_id: perf,
            seat_ids: vec!["A-01-01".into()],
            areas: Vec::new(),
            amount_krw: 150_000,
            ticket_ids: Vec::new(),
        })
        .await;
    let pool = seat_pool(&app).await;
    assert_eq!(wait_handled(&pool, sold.id).await, Handled::Applied);
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-02"]}),
        )
        .await;
    problem(r, 201).await;
    let version = app.seats(perf).await["version"].clone();

    let r = withhold(
        &app,
        &token,
        perf,
        json!({"seat_ids": ["A-01-01", "A-01-02", "A-01-03"], "reason": "media"}),
    )
    .await;
    let refused = problem(r, 409).await;
    assert_eq!(refused["code"], "seat_unavailable");
    assert_eq!(refused["seat_ids"], json!(["A-01-01", "A-01-02"]));
    // Nothing written: not in SeatDB, not in the store, no version.
    assert!(listed(&app, &token, perf).await.is_empty());
    let map = app.seats(perf).await;
    assert_eq!(map["version"], version);
    assert_eq!(status(&map, "A-01-03"), "available");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM withheld_seats")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    pool.close().await;
}

#[tokio::test]
async fn only_the_organizer_or_an_admin_manages_withheld_seats() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let organizer = Uuid::now_v7();
    let mine = performance(1, 5, 0);
    let unowned = performance(1, 5, 0);
    publish_owned(&app, &mine, Some(organizer)).await;
    publish_owned(&app, &unowned, None).await;
    let body = json!({"seat_ids": ["A-01-01"], "reason": "club"});
    let perf = mine.performance_id;
    // A buyer, another organizer, an organizer on an event only admins manage: 403.
    for (token, who) in [
        (app.token(Uuid::now_v7()), "a buyer"),
        (organizer_token(&app, Uuid::now_v7()), "another organizer"),
    ] {
        let r = withhold(&app, &token, perf, body.clone()).await;
        assert_eq!(problem(r, 403).await["code"], "forbidden", "{who}");
        let r = release(&app, &token, perf, &["A-01-01"]).await;
        assert_eq!(problem(r, 403).await["code"], "forbidden", "{who}");
        let r = app
            .server
            .client
            .get(
                app.server
                    .url(&format!("/api/v1/performances/{perf}/seats/withheld")),
            )
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, 403).await["code"], "forbidden", "{who}");
    }
    let r = withhold(
        &app,
        &organizer_token(&app, organizer),
        unowned.performance_id,
        body.clone(),
    )
    .await;
    assert_eq!(problem(r, 403).await["code"], "forbidden");
    // A forged token (another issuer's key), and none: 401.
    let forged = TestIssuerForged::token(organizer);
    let r = withhold(&app, &forged, perf, body.clone()).await;
    assert_eq!(problem(r, 401).await["code"], "unauthorized");
    let r = app
        .server
        .client
        .post(
            app.server
                .url(&format!("/api/v1/performances/{perf}/seats/withheld")),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nothing got through.
    assert!(listed(&app, &admin_token(&app), perf).await.is_empty());
    // Unknown performances: 404.
    let r = withhold(&app, &admin_token(&app), Uuid::now_v7(), body.clone()).await;
    assert_eq!(problem(r, 404).await["code"], "not_found");
    // The organizer and any admin may.
    let r = withhold(&app, &organizer_token(&app, organizer), perf, body.clone()).await;
    problem(r, 200).await;
    let r = withhold(&app, &admin_token(&app), unowned.performance_id, body).await;
    problem(r, 200).await;
    assert_eq!(listed(&app, &admin_token(&app), perf).await, ["A-01-01"]);
}

/// Tokens signed by a key the service does not trust.
struct TestIssuerForged;

impl TestIssuerForged {
    fn token(user: Uuid) -> String {
        platform::testing::TestIssuer::default().token(user, &[Role::Organizer, Role::Admin])
    }
}

#[tokio::test]
async fn bad_withholding_requests_name_the_field_and_change_nothing() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let organizer = Uuid::now_v7();
    let token = organizer_token(&app, organizer);
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    publish_owned(&app, &p, Some(organizer)).await;
    let many: Vec<String> = (0..1001).map(|i| format!("A-01-{i:02}")).collect();
    for (body, field) in [
        (
            json!({"seat_ids": ["A-01-01", "Z-9"], "reason": "club"}),
            "seat_ids",
        ),
        (
            json!({"seat_ids": ["A-01-01", "A-01-01"], "reason": "club"}),
            "seat_ids",
        ),
        (json!({"seat_ids": [], "reason": "club"}), "seat_ids"),
        (json!({"seat_ids": many, "reason": "club"}), "seat_ids"),
        (json!({"seat_ids": ["A-01-01"], "reason": "vip"}), "reason"),
    ] {
        let r = withhold(&app, &token, perf, body.clone()).await;
        let refused = problem(r, 400).await;
        assert_eq!(refused["code"], "validation_failed", "{body}");
        assert_eq!(refused["errors"][0]["field"], field, "{refused}");
    }
    let r = withhold(
        &app,
        &token,
        perf,
        json!({"seat_ids": ["A-01-01"], "reason": "club", "areas": []}),
    )
    .await;
    assert_eq!(problem(r, 400).await["code"], "validation_failed");
    let r = release(&app, &token, perf, &["A-01-01", "nope"]).await;
    let refused = problem(r, 400).await;
    assert_eq!(refused["errors"][0]["field"], "seat_ids");
    assert!(listed(&app, &token, perf).await.is_empty());
    assert_eq!(app.seats(perf).await["counts"]["available"], 55);
}

#[tokio::test]
async fn withheld_seats_survive_a_lost_store_a_restart_and_a_republication() {
    // Redis flushed under the running service, then rolled back behind SeatDB.
    let app = spawn(Backend::Redis, Config::default()).await;
    let organizer = Uuid::now_v7();
    let token = organizer_token(&app, organizer);
    let mut p = performance(1, 5, 0);
    let perf = p.performance_id;
    publish_owned(&app, &p, Some(organizer)).await;
    let r = withhold(
        &app,
        &token,
        perf,
        json!({"seat_ids": ["A-01-04", "A-01-05"], "reason": "obstructed"}),
    )
    .await;
    problem(r, 200).await;
    crate::recovery::wipe(perf).await;
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-01-04"]}),
        )
        .await;
    assert_eq!(problem(r, 409).await["code"], "seat_unavailable");
    let snap = app.store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(
        snap.taken,
        vec![
            ("A-01-04".to_owned(), SeatStatus::Withheld),
            ("A-01-05".to_owned(), SeatStatus::Withheld)
        ]
    );
    // A store rolled back to before one was withheld: maintenance withholds it again.
    let mut conn = redis::Client::open(testing::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("HDEL")
        .arg(format!("seat:{{{perf}}}:seats"))
        .arg("A-01-05")
        .query_async(&mut conn)
        .await
        .unwrap();
    let pool = seat_pool(&app).await;
    let maps = SeatMaps::new(
        app.store.clone(),
        pool.clone(),
        CancellationToken::new(),
        Duration::from_millis(50),
    );
    maps.load(perf).await.unwrap().unwrap();
    let done = maps.maintain(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(done.rewithheld, 1, "{done:?}");
    let again = maps.maintain(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(again.rewithheld, 0, "nothing left to repair");
    assert_eq!(
        app.store.snapshot(perf).await.unwrap().unwrap().taken,
        snap.taken
    );

    // A re-publication (one more seat in the row) keeps them withheld.
    p.revision = 2;
    let mut extra = p.seats[0].clone();
    extra.seat_id = "A-01-06".into();
    extra.number = 6;
    p.seats.push(extra);
    publish_owned(&app, &p, Some(organizer)).await;
    let map = app.seats(perf).await;
    assert_eq!(map["revision"], 2);
    assert_eq!(status(&map, "A-01-04"), "sold");
    assert_eq!(status(&map, "A-01-05"), "sold");
    assert_eq!(status(&map, "A-01-06"), "available");
    assert_eq!(listed(&app, &token, perf).await, ["A-01-04", "A-01-05"]);
    pool.close().await;

    // A restarted standalone process: an empty in-memory store, rebuilt from SeatDB.
    let app = spawn(Backend::Memory, Config::default()).await;
    let token = organizer_token(&app, organizer);
    let p = performance(1, 5, 0);
    let perf = p.performance_id;
    publish_owned(&app, &p, Some(organizer)).await;
    let r = withhold(
        &app,
        &token,
        perf,
        json!({"seat_ids": ["A-01-02"], "reason": "club"}),
    )
    .await;
    problem(r, 200).await;
    let restarted = app
        .replica(crate::helpers::store(Backend::Memory).await)
        .await;
    let url = restarted.url(&format!("/api/v1/performances/{perf}/seats"));
    let map: Value = restarted
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status(&map, "A-01-02"), "sold");
    assert_eq!(map["counts"]["available"], 4 + 50);
    let r = restarted
        .client
        .post(restarted.url("/api/v1/holds"))
        .bearer_auth(app.token(Uuid::now_v7()))
        .json(&json!({"performance_id": perf, "seat_ids": ["A-01-02"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 409).await["code"], "seat_unavailable");
}

/// Many buyers hold the same seats the organizer withholds, all at once: every seat ends in
/// exactly one state, no seat is both withheld and held or sold, no seat is held twice, and
/// SeatDB's withheld set is the store's.
#[tokio::test]
async fn buyers_and_the_organizer_racing_for_the_same_seats_never_share_one() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = Arc::new(spawn(backend, Config::default()).await);
        let organizer = Uuid::now_v7();
        let token = organizer_token(&app, organizer);
        let p = performance(5, 10, 0); // 50 seats
        let perf = p.performance_id;
        publish_owned(&app, &p, Some(organizer)).await;
        let seats: Vec<String> = p.seats.iter().map(|s| s.seat_id.clone()).collect();
        // 150 buyers (3 seats each among the first 30) and 50 withholding requests (2 seats
        // each among the last 30), interleaved and released at once: seats 20 to 29 are fought
        // over; a request wholly beyond them always wins, so the organizer wins some whatever
        // the timing.
        let n = 200usize;
        let start = Arc::new(tokio::sync::Barrier::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (app, seats, token, start) =
                (app.clone(), seats.clone(), token.clone(), start.clone());
            let organizer_turn = i % 4 == 0;
            tasks.spawn(async move {
                let pick: Vec<String> = if organizer_turn {
                    (0..2)
                        .map(|j| seats[20 + (i * 3 + j * 11) % 30].clone())
                        .collect()
                } else {
                    (0..3)
                        .map(|j| seats[(i * 13 + j * 7) % 30].clone())
                        .collect()
                };
                start.wait().await;
                let r = if organizer_turn {
                    withhold(
                        &app,
                        &token,
                        perf,
                        json!({"seat_ids": pick, "reason": "club"}),
                    )
                    .await
                } else {
                    app.hold(
                        Uuid::now_v7(),
                        json!({"performance_id": perf, "seat_ids": pick}),
                    )
                    .await
                };
                let code = r.status().as_u16();
                let won = code == if organizer_turn { 200 } else { 201 };
                assert!(won || code == 409, "{code}: {}", r.text().await.unwrap());
                (organizer_turn, if won { pick } else { Vec::new() })
            });
        }
        let mut owner: HashMap<String, &'static str> = HashMap::new();
        let (mut won, mut refused) = ((0, 0), 0);
        while let Some(done) = tasks.join_next().await {
            let (withheld, pick) = done.unwrap();
            if pick.is_empty() {
                refused += 1;
                continue;
            }
            if withheld {
                won.1 += 1
            } else {
                won.0 += 1
            }
            for s in pick {
                let was = owner.insert(s.clone(), if withheld { "withheld" } else { "held" });
                // A seat withheld twice is allowed (the second changes nothing); held twice, or
                // held and withheld, never.
                assert!(
                    was.is_none() || (was == Some("withheld") && withheld),
                    "{backend:?}: {s} granted as {was:?} and again (withheld: {withheld})"
                );
            }
        }
        assert!(
            won.0 > 0 && won.1 > 0 && refused > 0,
            "{backend:?}: both sides won some ({won:?}), some lost ({refused})"
        );
        let map = app.seats(perf).await;
        for s in &seats {
            let want = match owner.get(s) {
                Some(&"held") => "held",
                Some(_) => "sold", // withheld, as buyers see it
                None => "available",
            };
            assert_eq!(status(&map, s), want, "{backend:?}: {s}");
        }
        let mut withheld: Vec<String> = owner
            .iter()
            .filter(|(_, st)| **st == "withheld")
            .map(|(s, _)| s.clone())
            .collect();
        withheld.sort();
        assert_eq!(
            listed(&app, &token, perf).await,
            withheld,
            "{backend:?}: SeatDB = store"
        );
        let in_store: Vec<String> = app
            .store
            .snapshot(perf)
            .await
            .unwrap()
            .unwrap()
            .taken
            .into_iter()
            .filter(|(_, st)| *st == SeatStatus::Withheld)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(in_store, withheld, "{backend:?}");
    }
}

#[test]
fn the_openapi_document_describes_withholding() {
    let doc = serde_json::to_value(seat::api::docs::openapi()).unwrap();
    let path = &doc["paths"]["/api/v1/performances/{performance_id}/seats/withheld"];
    for method in ["get", "post"] {
        assert!(
            path[method]["responses"]["403"].is_object(),
            "{method}: {path}"
        );
    }
    assert!(path["post"]["responses"]["409"].is_object());
    let release = &doc["paths"]["/api/v1/performances/{performance_id}/seats/withheld/release"];
    assert!(release["post"]["responses"]["200"].is_object(), "{release}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["WithholdReason"]["enum"],
        json!(["season_ticket", "club", "media", "obstructed", "other"])
    );
    // Operation ids stay unique (the gateway's merged document refuses duplicates).
    let mut ids = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "operationId `{id}` twice");
            }
        }
    }
    assert!(ids.contains("withhold_seats"), "{ids:?}");
    // Buyers' statuses stay the three they were: a withheld seat shows as sold.
    assert_eq!(
        schemas["SeatStatus"]["enum"],
        json!(["available", "held", "sold"])
    );
}
