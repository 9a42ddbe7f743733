//! The live stream: two clients see the same versions in the same order; a client that
//! reconnects with `Last-Event-ID` misses nothing; one too far behind gets a snapshot.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use platform::testing;
use seat::{
    Config,
    map::RING_CAPACITY,
    store::{Hold, HoldStatus, HoldStore, book::LOG_CAPACITY},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    App, Backend, Gated, Sse, SseReader, churn, performance, spawn, spawn_configured, store,
};

/// Reads deltas until one reaches `version`; checks they follow each other without a gap.
async fn deltas_until(reader: &mut SseReader, after: u64, version: u64) -> Vec<Sse> {
    let mut seen: Vec<Sse> = Vec::new();
    let mut at = after;
    while at < version {
        let e = reader.next().await;
        assert_eq!(e.event, "delta");
        assert_eq!(
            e.data["from"].as_u64().unwrap(),
            at + 1,
            "no gap, no overlap"
        );
        assert_eq!(e.data["version"].as_u64().unwrap(), e.id);
        at = e.id;
        seen.push(e);
    }
    assert_eq!(at, version);
    seen
}

/// Seat → status after applying `events` in order.
fn states(events: &[Sse]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in events {
        for s in e.data["seats"].as_array().unwrap() {
            out.insert(s["id"].as_str().unwrap().to_owned(), s["status"].clone());
        }
    }
    out
}

#[tokio::test]
async fn clients_see_the_same_versions_and_resume_without_gaps() {
    for backend in [Backend::Memory, Backend::Redis] {
        let config = Config {
            stream_flush_ms: 20,
            ..Config::default()
        };
        let app = spawn(backend, config).await;
        let p = performance(2, 10, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let mut a = SseReader::open(&app, perf, None).await;
        let mut b = SseReader::open(&app, perf, None).await;
        let (sa, sb) = (a.next().await, b.next().await);
        assert_eq!(
            (sa.event.as_str(), sb.event.as_str()),
            ("snapshot", "snapshot")
        );
        assert_eq!(sa.id, sb.id);
        let start = sa.id;

        // Five changes, racing each other.
        let holds = (1..=5).map(|i| {
            let seat = format!("A-01-{i:02}");
            app.hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "seat_ids": [seat]}),
            )
        });
        for r in futures::future::join_all(holds).await {
            assert_eq!(r.status(), 201);
        }
        let seen_a = deltas_until(&mut a, start, start + 5).await;
        let seen_b = deltas_until(&mut b, start, start + 5).await;
        let ids = |s: &[Sse]| s.iter().map(|e| (e.id, e.data.clone())).collect::<Vec<_>>();
        assert_eq!(
            ids(&seen_a),
            ids(&seen_b),
            "both clients see the same sequence"
        );
        let held: BTreeMap<String, Value> = (1..=5)
            .map(|i| (format!("A-01-{i:02}"), json!("held")))
            .collect();
        assert_eq!(states(&seen_a), held);

        // Client b drops at start+5; five more changes; it resumes from there.
        drop(b);
        for i in 6..=10 {
            let seat = format!("A-02-{i:02}");
            let body = json!({"performance_id": perf, "seat_ids": [seat]});
            assert_eq!(app.hold(Uuid::now_v7(), body).await.status(), 201);
        }
        let a_rest = deltas_until(&mut a, start + 5, start + 10).await;
        let mut resumed = SseReader::open(&app, perf, Some(start + 5)).await;
        let b_rest = deltas_until(&mut resumed, start + 5, start + 10).await;
        assert_eq!(
            states(&b_rest),
            states(&a_rest),
            "the resumed client misses nothing"
        );
        assert_eq!(states(&b_rest).len(), 5);
        // From further back, too: one delta with everything after start+2.
        let mut older = SseReader::open(&app, perf, Some(start + 2)).await;
        let caught_up = deltas_until(&mut older, start + 2, start + 10).await;
        assert_eq!(states(&caught_up).len(), 8);

        // A client from the future gets a snapshot (from before the ring: see below).
        let mut lost = SseReader::open(&app, perf, Some(start + 1000)).await;
        let e = lost.next().await;
        assert_eq!(e.event, "snapshot");
        assert_eq!(e.id, start + 10);
        assert_eq!(e.data["counts"]["held"], 10);
    }
}

/// The version the replica serves.
async fn version(app: &App, perf: Uuid) -> u64 {
    app.seats(perf).await["version"].as_u64().unwrap()
}

/// The compact seat map, as `GET .../seats?format=compact` serves it.
async fn compact(app: &App, perf: Uuid) -> Value {
    let url = app
        .server
        .url(&format!("/api/v1/performances/{perf}/seats?format=compact"));
    let r = app.server.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Holds `seat` in the store directly (not through a replica), for good.
async fn keep(store: &dyn HoldStore, perf: Uuid, seat: &str) -> u64 {
    let h = Hold {
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        buyer_id: Uuid::now_v7(),
        seat_ids: vec![seat.to_owned()],
        areas: Vec::new(),
        amount_krw: 0,
        expires_at_ms: i64::MAX / 4,
        status: HoldStatus::Active,
        presale_limit: None,
    };
    store.hold(&h).await.unwrap().version
}

/// Waits until the replica serves `target`.
async fn serves(app: &App, perf: Uuid, target: u64) {
    testing::eventually(
        &format!("the replica to serve version {target}"),
        Duration::from_secs(30),
        || async move { version(app, perf).await == target },
    )
    .await;
}

/// Asserts `e` is a snapshot of the map as the replica serves it now, at `version`, with seat
/// A-01-01 held (the first change after the client's last event) and everything else free.
async fn is_fresh_snapshot(app: &App, perf: Uuid, e: &Sse, version: u64) {
    assert_eq!(e.event, "snapshot", "a snapshot, not a delta: {:?}", e.data);
    assert_eq!(e.id, version);
    assert_eq!(e.data["version"].as_u64(), Some(version));
    assert_eq!(
        e.data,
        compact(app, perf).await,
        "the snapshot is the current map"
    );
    let status = e.data["status"].as_str().unwrap();
    assert_eq!(status.len(), 20);
    assert_eq!(&status[..2], "ha", "the change before the ring is in it");
    assert!(status[1..].chars().all(|c| c == 'a'), "{status}");
    assert_eq!(e.data["counts"]["held"], 1);
}

#[tokio::test]
async fn a_client_resuming_from_before_the_ring_gets_a_fresh_snapshot() {
    for backend in [Backend::Memory, Backend::Redis] {
        let config = Config {
            stream_flush_ms: 20,
            ..Config::default()
        };
        let app = spawn(backend, config).await;
        let p = performance(2, 10, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let start = version(&app, perf).await;
        // The first change after `start` lasts; then more changes than the ring keeps.
        assert_eq!(keep(&*app.store, perf, "A-01-01").await, start + 1);
        let changes = RING_CAPACITY + 16;
        churn(&*app.store, perf, &["A-01-02", "A-02-02"], changes).await;
        let now = start + 1 + changes as u64;
        serves(&app, perf, now).await;

        // Within the ring: one delta with what was missed.
        let mut recent = SseReader::open(&app, perf, Some(now - 10)).await;
        let e = recent.next().await;
        assert_eq!((e.event.as_str(), e.id), ("delta", now));
        assert_eq!(e.data["from"].as_u64(), Some(now - 9));
        // The oldest version the ring still reaches back from gets a delta too ...
        let oldest = now - RING_CAPACITY as u64;
        let mut edge = SseReader::open(&app, perf, Some(oldest)).await;
        let e = edge.next().await;
        assert_eq!((e.event.as_str(), e.id), ("delta", now));
        assert_eq!(e.data["from"].as_u64(), Some(oldest + 1));
        // ... one change older, and from `start`, the ring cannot: a snapshot of the map now.
        for last in [oldest - 1, start] {
            let mut lost = SseReader::open(&app, perf, Some(last)).await;
            let e = lost.next().await;
            is_fresh_snapshot(&app, perf, &e, now).await;
        }
    }
}

// Several threads: a follower that spins (say, on a `Truncated` it ignores) must not starve the
// test of the timer that makes it fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_the_store_log_resets_its_streams_from_a_snapshot() {
    for backend in [Backend::Memory, Backend::Redis] {
        let gate = Arc::new(Gated::new(store(backend).await));
        let config = Config {
            stream_flush_ms: 20,
            seat_map_max_stale_ms: 0,
            ..Config::default()
        };
        let app = spawn_configured(gate.clone(), config).await;
        let p = performance(2, 10, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let mut live = SseReader::open(&app, perf, None).await;
        let first = live.next().await;
        assert_eq!(first.event, "snapshot");
        let start = first.id;

        // The follower falls behind: its read in flight returns with the next change, and
        // its next read waits at the gate.
        gate.close();
        assert_eq!(keep(&*gate.inner, perf, "A-01-01").await, start + 1);
        testing::eventually("the follower to wait", Duration::from_secs(10), || {
            let gate = gate.clone();
            async move { gate.parked() == 1 }
        })
        .await;
        let behind = version(&app, perf).await;
        assert!((start..=start + 1).contains(&behind), "{behind}");
        // More changes than the store's log keeps (the Redis stream trims by whole nodes of at
        // most 100 entries, so a margin beyond its 10,000).
        let changes = LOG_CAPACITY + 1_000;
        churn(
            &*gate.inner,
            perf,
            &["A-01-02", "A-01-03", "A-02-02", "A-02-03"],
            changes,
        )
        .await;
        let now = start + 1 + changes as u64;
        assert_eq!(
            version(&app, perf).await,
            behind,
            "nothing reached the replica"
        );
        assert_eq!(gate.truncated(), 0);
        gate.open();

        // The store answers the follower `Truncated`; the replica reloads and every open stream
        // gets a snapshot, not deltas.
        let mut e = live.next().await;
        while e.event == "delta" && e.id <= behind {
            e = live.next().await; // the one change it saw before the gate closed
        }
        is_fresh_snapshot(&app, perf, &e, now).await;
        assert!(
            gate.truncated() >= 1,
            "the follower read past the log's start"
        );
        assert_eq!(version(&app, perf).await, now);
        // A client resuming from where the replica stalled gets one too.
        let mut resumed = SseReader::open(&app, perf, Some(behind)).await;
        let e = resumed.next().await;
        is_fresh_snapshot(&app, perf, &e, now).await;
    }
}
