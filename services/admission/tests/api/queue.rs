//! Joining, polling, the pre-queue draw and the pass, over HTTP.

use std::collections::HashMap;

use admission::draw;
use seat::admission_pass::PassVerifier;
use serde_json::Value;
use sha2::Digest;
use uuid::Uuid;

use crate::helpers::{Backend, config, performance, spawn};

#[tokio::test]
async fn joining_needs_a_login_and_a_waiting_room() {
    let app = spawn(Backend::Memory, config()).await;
    let p = performance(chrono::Duration::seconds(-1));
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let url = app.url(&format!("/api/v1/performances/{perf}/queue"));
    let r = app.client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .client
        .post(&url)
        .bearer_auth("forged.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (code, body) = app.join(Uuid::now_v7(), Uuid::now_v7()).await;
    assert_eq!((code, body["code"].as_str()), (404, Some("not_found")));
    let r = app
        .client
        .post(app.url("/api/v1/performances/not-a-uuid/queue"))
        .bearer_auth(app.token(Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A performance without a waiting room has no queue.
    let mut open = performance(chrono::Duration::seconds(-1));
    open.waiting_room = false;
    app.publish_performance(&open).await;
    let (code, body) = app.join(open.performance_id, Uuid::now_v7()).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("no_waiting_room"))
    );
}

#[tokio::test]
async fn a_fan_queues_is_admitted_and_gets_a_pass_for_that_performance_only() {
    let app = spawn(Backend::Memory, config()).await;
    let p = performance(chrono::Duration::seconds(-1));
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let fan = Uuid::now_v7();
    let (code, joined) = app.join(perf, fan).await;
    assert_eq!(code, 201, "{joined}");
    let token = joined["queue_token"].as_str().unwrap().to_owned();
    let body = app.until(perf, fan, &token, "admitted").await;
    let pass = body["admission_pass"].as_str().unwrap();
    assert_eq!(body["eta_seconds"], 0);
    // The pass verifies with the service's published keys, as the seat service checks it.
    let verifier = PassVerifier::remote(app.url("/.well-known/jwks.json"));
    let claims = verifier.verify(pass, perf, Some(fan)).await.unwrap();
    assert_eq!((claims.sub, claims.performance_id), (fan, perf));
    let ttl = claims.exp - claims.iat;
    assert_eq!(ttl, 600);
    assert!(
        verifier
            .verify(pass, Uuid::now_v7(), Some(fan))
            .await
            .is_err()
    );
    assert!(
        verifier
            .verify(pass, perf, Some(Uuid::now_v7()))
            .await
            .is_err()
    );
    // Joining again (another tab) answers the admission, with the same token.
    let (code, again) = app.join(perf, fan).await;
    assert_eq!(code, 200);
    assert_eq!(again["queue_token"], token);
    assert_eq!(again["status"], "admitted");
    // Another account cannot read (or give up) this place: as unknown as a made-up token.
    let (code, body) = app.status(perf, Uuid::now_v7(), &token).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("queue_token_not_found"))
    );
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/performances/{perf}/queue/{token}")))
        .bearer_auth(app.token(Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (code, _) = app
        .status(perf, fan, "0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(code, 404);
    let (code, _) = app.status(perf, fan, "..%2F..%2Fetc").await;
    assert_eq!(code, 404);
    // Leaving gives the place up: the token reports `expired`.
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/performances/{perf}/queue/{token}")))
        .bearer_auth(app.token(fan))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, body) = app.status(perf, fan, &token).await;
    assert_eq!(body["status"], "expired");
    assert!(body["admission_pass"].is_null());
}

#[tokio::test]
async fn polling_slows_with_the_distance_and_the_eta_follows_the_rate() {
    let mut cfg = config();
    cfg.rate_per_sec = 10.0;
    let app = spawn(Backend::Redis, cfg).await;
    let p = performance(chrono::Duration::seconds(-1));
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let org = app.organizer();
    let (code, _) = app
        .admin(
            &org,
            reqwest::Method::POST,
            &format!("/api/v1/admin/rooms/{perf}/pause"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    // The first join may land in the pre-queue if the draw has not run yet: wait for it.
    let first = Uuid::now_v7();
    let (_, j) = app.join(perf, first).await;
    let t = j["queue_token"].as_str().unwrap().to_owned();
    app.until_in_line(perf, first, &t).await;
    let mut views: Vec<Value> = Vec::new();
    let mut fans = Vec::new();
    for _ in 0..400 {
        let fan = Uuid::now_v7();
        let (code, j) = app.join(perf, fan).await;
        assert_eq!(code, 201, "{j}");
        views.push(j);
        fans.push(fan);
    }
    let front = &views[0];
    let back = &views[399];
    assert_eq!(front["position"], 2);
    assert_eq!(back["position"], 401);
    assert_eq!(back["ahead"], 400);
    let poll = |v: &Value| v["poll_after_ms"].as_u64().unwrap();
    assert!(poll(front) < poll(&views[200]) && poll(&views[200]) < poll(back));
    assert!(poll(back) <= 30_000 && poll(front) >= 1000);
    // Paused: no honest ETA.
    assert!(back["eta_seconds"].is_null());
    let (code, _) = app
        .admin(
            &org,
            reqwest::Method::POST,
            &format!("/api/v1/admin/rooms/{perf}/resume"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    // Running at 10/s: about 400 ahead, about 40 s, measured or set.
    let token = views[399]["queue_token"].as_str().unwrap();
    let (_, now) = app.status(perf, fans[399], token).await;
    let eta = now["eta_seconds"].as_u64().unwrap();
    assert!((30..=45).contains(&eta), "eta {eta}: {now}");
}

#[tokio::test]
async fn fans_who_come_early_are_drawn_verifiably_at_the_opening() {
    let app = spawn(Backend::Redis, config()).await;
    // Far enough ahead that every early join lands before it, even on a loaded machine.
    let p = performance(chrono::Duration::seconds(10));
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    // Before the opening: the commitment, not the seed.
    let draw_url = app.url(&format!("/api/v1/performances/{perf}/queue/draw"));
    let before: Value = app
        .client
        .get(&draw_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["drawn"], false);
    assert!(before["seed"].is_null());
    let commitment = before["seed_sha256"].as_str().unwrap().to_owned();
    let org = app.organizer();
    app.admin(
        &org,
        reqwest::Method::POST,
        &format!("/api/v1/admin/rooms/{perf}/pause"),
        None,
    )
    .await;
    let mut fans: Vec<(Uuid, String)> = Vec::new();
    for _ in 0..50 {
        let fan = Uuid::now_v7();
        let (code, j) = app.join(perf, fan).await;
        assert_eq!(code, 201);
        assert_eq!(j["prequeue"], true, "{j}");
        assert!(j["position"].is_null());
        // Told to come back after the opening, not before.
        assert!(j["poll_after_ms"].as_u64().unwrap() >= 1000);
        fans.push((fan, j["queue_token"].as_str().unwrap().to_owned()));
    }
    // Refreshing early gives no edge: the same place.
    let (code, again) = app.join(perf, fans[0].0).await;
    assert_eq!(
        (code, again["queue_token"].as_str()),
        (200, Some(fans[0].1.as_str()))
    );
    // After the opening the draw runs; each fan learns their position.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut positions: HashMap<String, u64> = HashMap::new();
    for (fan, token) in &fans {
        loop {
            let (_, body) = app.status(perf, *fan, token).await;
            if let Some(pos) = body["position"].as_u64() {
                positions.insert(token.clone(), pos);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no position: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // A permutation of 1..=50.
    let mut seen: Vec<u64> = positions.values().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    // The record: the seed matches the commitment, and anyone recomputes the order from it.
    let after: Value = app
        .client
        .get(&draw_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["drawn"], true);
    let seed = hex::decode(after["seed"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&seed)), commitment);
    let refs: Vec<draw::Digest32> = after["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            hex::decode(r.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    assert_eq!(refs.len(), 50);
    let recomputed: Vec<draw::Digest32> = draw::order(&seed, &refs)
        .into_iter()
        .map(|i| refs[i])
        .collect();
    for (token, pos) in &positions {
        let mine = draw::reference(token);
        let at = recomputed.iter().position(|r| *r == mine).unwrap();
        assert_eq!(
            at as u64 + 1,
            *pos,
            "the published order puts {token} where the queue does"
        );
    }
    let published: Vec<String> = after["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        published,
        recomputed.iter().map(hex::encode).collect::<Vec<_>>()
    );
    // A fan who joins after the opening is behind all of them.
    let late = Uuid::now_v7();
    let (_, j) = app.join(perf, late).await;
    assert_eq!(j["position"], 51);
    assert_eq!(j["prequeue"], false);
}

#[tokio::test]
async fn joins_and_polls_are_limited_per_account_and_per_address() {
    let mut cfg = config();
    cfg.join_limit_per_account = 3;
    cfg.join_limit_per_address = 5;
    cfg.status_limit_per_account = 2;
    let app = spawn(Backend::Redis, cfg).await;
    let p = performance(chrono::Duration::seconds(-1));
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let fan = Uuid::now_v7();
    let (_, first) = app.join(perf, fan).await;
    for _ in 0..2 {
        assert!(matches!(app.join(perf, fan).await.0, 200 | 201));
    }
    let r = app
        .client
        .post(app.url(&format!("/api/v1/performances/{perf}/queue")))
        .bearer_auth(app.token(fan))
        .header("x-forwarded-for", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // The address has had 4 joins; one more account gets in, the next does not.
    assert_eq!(app.join(perf, Uuid::now_v7()).await.0, 201);
    let (code, body) = app.join(perf, Uuid::now_v7()).await;
    assert_eq!((code, body["code"].as_str()), (429, Some("rate_limited")));
    // Another address is not held back by this one.
    let r = app
        .client
        .post(app.url(&format!("/api/v1/performances/{perf}/queue")))
        .bearer_auth(app.token(Uuid::now_v7()))
        .header("x-forwarded-for", crate::helpers::random_address())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Polling far faster than told is refused as well.
    let token = first["queue_token"].as_str().unwrap();
    assert_eq!(app.status(perf, fan, token).await.0, 200);
    assert_eq!(app.status(perf, fan, token).await.0, 200);
    let (code, body) = app.status(perf, fan, token).await;
    assert_eq!((code, body["code"].as_str()), (429, Some("rate_limited")));
}

#[tokio::test]
async fn with_a_redis_url_the_service_keeps_its_queues_in_redis() {
    // As `boxoffice serve admission` does with BOXOFFICE_REDIS__URL: no store given, the service
    // opens the Redis one itself; another replica's store on the same Redis sees the place.
    let mut infra = platform::testing::infra("adm_redis");
    infra.mode = platform::service::Mode::Distributed;
    infra.redis.url = Some(platform::testing::redis_url());
    infra
        .bus
        .ensure_topics(contracts::topics::ALL)
        .await
        .unwrap();
    let issuer = platform::testing::TestIssuer::default();
    let overrides = admission::Overrides {
        verifier: Some(issuer.verifier()),
        store: None,
    };
    let service = admission::start_with(&config(), &infra, overrides)
        .await
        .unwrap();
    let server = platform::testing::serve(service, infra.shutdown.clone()).await;
    let p = performance(chrono::Duration::seconds(-1));
    let perf = p.performance_id;
    for e in p.envelopes().unwrap() {
        infra
            .bus
            .publish(contracts::topics::CATALOG, &e)
            .await
            .unwrap();
    }
    let client = reqwest::Client::new();
    let fan = Uuid::now_v7();
    let url = server.url(&format!("/api/v1/performances/{perf}/queue"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let joined: Value = loop {
        let r = client
            .post(&url)
            .bearer_auth(issuer.token(fan, &[platform::auth::Role::Buyer]))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            break r.json().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room never took joins"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let token = joined["queue_token"].as_str().unwrap();
    let other = admission::store::redis::RedisQueueStore::connect(&platform::testing::redis_url())
        .await
        .unwrap();
    use admission::store::QueueStore;
    let found = other
        .status(perf, token, chrono::Utc::now().timestamp_millis())
        .await
        .unwrap()
        .expect("the place is in Redis");
    assert_eq!(found.account, fan);
    other.forget(perf).await.unwrap();
}
