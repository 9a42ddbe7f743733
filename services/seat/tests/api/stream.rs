//! The live stream: two clients see the same versions in the same order; a client that
//! reconnects with `Last-Event-ID` misses nothing; one too far behind gets a snapshot.

use std::collections::BTreeMap;

use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, Sse, SseReader, performance, spawn};

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
        let held = states(&seen_a);
        assert_eq!(held.len(), 5);
        assert!(held.values().all(|s| s == "held"));

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

        // A client from the future (or from before the ring) gets a snapshot.
        let mut lost = SseReader::open(&app, perf, Some(start + 1000)).await;
        let e = lost.next().await;
        assert_eq!(e.event, "snapshot");
        assert_eq!(e.id, start + 10);
        assert_eq!(e.data["counts"]["held"], 10);
    }
}
