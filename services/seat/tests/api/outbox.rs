//! The hold store is the seat service's outbox: every hold placed or ended records its event in
//! the same atomic step as the change, and the store relay moves it to the PostgreSQL outbox
//! exactly once, whatever dies in between. Both stores, against the real Redis and PostgreSQL.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use contracts::{
    Envelope,
    events::{HoldEndReason, HoldEnded, HoldPlaced},
    topics,
};
use platform::{
    bus::consumer::{Consumer, HandleError, Handler},
    testing::{self, TestIssuer},
};
use seat::{
    Config, Overrides,
    admission_pass::PassVerifier,
    store::{
        EventReader, Hold, HoldStatus, HoldStore, StoreError,
        outbox::{EventKind, event_id},
    },
    store_relay::{Nudges, StoreRelay, Written},
};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    helpers::{App, Backend, performance, spawn},
    race::seat_pool,
};

const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Redis, Backend::Cluster];

/// A replica whose store relay acts only when this replica changes a hold (its pass over every
/// performance comes once, at start): changes made on the store directly stay unrelayed, as
/// those of a replica that died right after its store call.
/// A replica whose own relay and sweeper stay out of the way (each runs once at start, then
/// not for half an hour): the test drives the store and expires holds itself, and a sweep of
/// its own in between would expire a lapsed hold first.
fn quiet() -> Config {
    Config {
        event_relay_interval_ms: 3_600_000,
        sweep_interval_ms: 3_600_000,
        ..Config::default()
    }
}

/// A replica that looks at every performance often, to meet the others' relays head on.
fn eager() -> Config {
    Config {
        event_relay_interval_ms: 20,
        event_relay_lease_ms: 500,
        ..Config::default()
    }
}

/// Another replica of `app`'s service: the same SeatDB, hold store, bus and keys; its own tasks,
/// store relay and port.
async fn replica(app: &App, config: Config) -> App {
    let mut infra = app.infra.clone();
    infra.shutdown = CancellationToken::new();
    let issuer = TestIssuer {
        key: app.issuer.key.clone(),
    };
    let overrides = Overrides {
        verifier: Some(issuer.verifier()),
        passes: Some(PassVerifier::from_jwks(&[app
            .pass_key
            .public_jwk()
            .unwrap()])),
        store: Some(app.store.clone()),
    };
    let service = seat::start_with(&config, &infra, overrides).await.unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    App {
        server,
        infra,
        issuer,
        pass_key: app.pass_key.clone(),
        store: app.store.clone(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn store_hold(perf: Uuid, seats: &[&str], expires_at_ms: i64) -> Hold {
    Hold {
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        buyer_id: Uuid::now_v7(),
        seat_ids: seats.iter().map(|s| (*s).to_owned()).collect(),
        areas: Vec::new(),
        amount_krw: 1000,
        expires_at_ms,
        status: HoldStatus::Active,
        presale_limit: None,
    }
}

/// The performance's seat events in the outbox, in outbox order.
async fn outbox(pool: &PgPool, perf: Uuid) -> Vec<Envelope> {
    let rows: Vec<sqlx::types::Json<Envelope>> = sqlx::query_scalar(
        "SELECT envelope FROM bus_outbox WHERE topic = $1 AND key = $2 ORDER BY seq",
    )
    .bind(topics::SEATS)
    .bind(perf.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|j| j.0).collect()
}

/// Waits until the outbox holds exactly the events `expected` of `perf`, then checks that each
/// is there once, and that a hold's `hold.placed` comes before its `hold.ended`.
async fn outbox_settles(pool: &PgPool, perf: Uuid, expected: &BTreeSet<Uuid>) -> Vec<Envelope> {
    testing::eventually(
        "the outbox to hold every event",
        Duration::from_secs(15),
        || async {
            let ids: BTreeSet<Uuid> = outbox(pool, perf).await.iter().map(|e| e.id).collect();
            ids == *expected
        },
    )
    .await;
    let rows = outbox(pool, perf).await;
    let mut copies: BTreeMap<Uuid, usize> = BTreeMap::new();
    for e in &rows {
        *copies.entry(e.id).or_default() += 1;
    }
    assert!(
        copies.values().all(|n| *n == 1),
        "an event in the outbox twice: {copies:?}"
    );
    let mut placed_at: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (i, e) in rows.iter().enumerate() {
        if e.is::<HoldPlaced>() {
            placed_at.insert(e.decode::<HoldPlaced>().unwrap().hold_id, i);
        } else if e.is::<HoldEnded>() {
            let hold = e.decode::<HoldEnded>().unwrap().hold_id;
            assert!(
                placed_at.get(&hold).is_some_and(|p| *p < i),
                "hold.ended of {hold} before its hold.placed"
            );
        }
    }
    rows
}

/// How many events the performance's log holds, acknowledged by no one, read without taking
/// them (a Redis reader would take the log's lease; the memory store has none).
async fn log_len(backend: Backend, store: &dyn HoldStore, perf: Uuid) -> usize {
    match backend {
        Backend::Redis => {
            let client = redis::Client::open(testing::redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("XLEN")
                .arg(format!("{}events", seat::store::redis::prefix(perf)))
                .query_async(&mut conn)
                .await
                .unwrap()
        }
        Backend::Cluster => {
            let timeouts = platform::service::RedisTimeouts {
                connect: std::time::Duration::from_secs(3),
                response: std::time::Duration::from_secs(10),
            };
            let mut conn = crate::helpers::cluster_target()
                .connect(timeouts)
                .await
                .unwrap();
            redis::cmd("XLEN")
                .arg(format!("{}events", seat::store::redis::prefix(perf)))
                .query_async(&mut conn)
                .await
                .unwrap()
        }
        Backend::Memory => {
            let probe = EventReader {
                name: "probe".into(),
                lease_ms: 1,
            };
            store
                .read_events(perf, &probe, usize::MAX)
                .await
                .unwrap()
                .len()
        }
    }
}

/// Waits until nothing is left in the performance's event log: everything was acknowledged.
async fn log_drains(backend: Backend, store: &dyn HoldStore, perf: Uuid) {
    testing::eventually(
        "the store's event log to be empty",
        Duration::from_secs(15),
        || async { log_len(backend, store, perf).await == 0 },
    )
    .await;
}

fn placed(h: &Hold) -> Uuid {
    event_id(h.hold_id, EventKind::Placed)
}

fn ended(h: &Hold) -> Uuid {
    event_id(h.hold_id, EventKind::Released)
}

/// The crash window of the old design: the store changed, then the process died before the
/// event was written anywhere else. Nothing is lost: a fresh replica relays it all.
#[tokio::test]
async fn a_crash_between_a_store_change_and_its_event_loses_nothing() {
    for backend in BACKENDS {
        let app = spawn(backend, quiet()).await;
        let pool = seat_pool(&app).await;
        let p = performance(2, 5, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        // Store changes of a replica that died right after each store call returned: no map
        // update, no relay nudge, no outbox write.
        let now = now_ms();
        let holds: Vec<Hold> = (1..=5)
            .map(|n| store_hold(perf, &[&format!("A-01-{n:02}")], now + 600_000))
            .collect();
        for h in &holds {
            assert!(app.store.hold(h).await.unwrap().version > 0);
        }
        for h in &holds[..2] {
            app.store
                .release(perf, h.hold_id, HoldStatus::Released)
                .await
                .unwrap()
                .unwrap();
        }
        let lapsed = store_hold(perf, &["A-02-01"], now - 1_000);
        app.store.hold(&lapsed).await.unwrap();
        let (expired, _) = app.store.expire_next(perf).await.unwrap().unwrap();
        assert_eq!(expired.hold_id, lapsed.hold_id);
        // A repeated hold (a retry after a lost reply) and a refused one record nothing.
        assert_eq!(app.store.hold(&holds[2]).await.unwrap().version, 0);
        let refused = store_hold(perf, &["A-01-03"], now + 600_000);
        assert!(matches!(
            app.store.hold(&refused).await,
            Err(StoreError::Unavailable { .. })
        ));
        assert!(
            outbox(&pool, perf).await.is_empty(),
            "{backend:?}: nobody told the relay"
        );
        assert_eq!(log_len(backend, &*app.store, perf).await, 9, "{backend:?}");
        // The replica is gone; a fresh one comes up on the same store and SeatDB.
        app.infra.shutdown.cancel();
        let fresh = replica(&app, Config::default()).await;
        let mut expected: BTreeSet<Uuid> = holds.iter().map(placed).collect();
        expected.extend([
            placed(&lapsed),
            ended(&lapsed),
            ended(&holds[0]),
            ended(&holds[1]),
        ]);
        let rows = outbox_settles(&pool, perf, &expected).await;
        for e in &rows {
            if e.is::<HoldEnded>() {
                let end = e.decode::<HoldEnded>().unwrap();
                let want = if end.hold_id == lapsed.hold_id {
                    HoldEndReason::Expired
                } else {
                    HoldEndReason::Released
                };
                assert_eq!(end.reason, want, "{backend:?}");
                assert!(!end.seat_ids.is_empty());
            } else {
                let hold = e.decode::<HoldPlaced>().unwrap();
                let h = holds
                    .iter()
                    .chain([&lapsed])
                    .find(|h| h.hold_id == hold.hold_id)
                    .unwrap();
                assert_eq!(
                    (hold.buyer_id, &hold.seat_ids, hold.amount_krw),
                    (h.buyer_id, &h.seat_ids, h.amount_krw)
                );
                assert_eq!(hold.expires_at.timestamp_millis(), h.expires_at_ms);
            }
            assert_eq!(e.key, perf.to_string());
        }
        log_drains(backend, &*fresh.store, perf).await;
        fresh.infra.shutdown.cancel();
    }
}

/// Counts how often each event is applied.
#[derive(Clone, Default)]
struct Counting(
    Arc<std::sync::Mutex<BTreeMap<Uuid, usize>>>,
    Arc<AtomicUsize>,
);

#[async_trait]
impl Handler for Counting {
    async fn handle(&self, _tx: &mut PgConnection, env: &Envelope) -> Result<(), HandleError> {
        *self.0.lock().unwrap().entry(env.id).or_default() += 1;
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A relay that committed its outbox rows and died before acknowledging them: the events are
/// read again, by itself or another replica, and the outbox still has each once. Should a copy
/// reach the bus anyway, it carries the same id, and a consumer applies it once.
#[tokio::test]
async fn a_relay_killed_after_its_commit_duplicates_nothing() {
    for backend in BACKENDS {
        let app = spawn(backend, quiet()).await;
        let pool = seat_pool(&app).await;
        let p = performance(2, 5, 0);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let now = now_ms();
        let holds: Vec<Hold> = (1..=3)
            .map(|n| store_hold(perf, &[&format!("A-01-{n:02}")], now + 600_000))
            .collect();
        for h in &holds {
            app.store.hold(h).await.unwrap();
        }
        app.store
            .release(perf, holds[0].hold_id, HoldStatus::Released)
            .await
            .unwrap()
            .unwrap();
        // The dying relay reads, writes and commits ...
        let reader = EventReader {
            name: format!("dying-{}", Uuid::now_v7().simple()),
            lease_ms: 1_000,
        };
        let dying = StoreRelay::new(
            app.store.clone(),
            pool.clone(),
            reader.clone(),
            Duration::from_secs(3600),
            Nudges::default(),
        );
        let events = app.store.read_events(perf, &reader, 100).await.unwrap();
        assert_eq!(events.len(), 4, "{backend:?}");
        let first = dying.write(perf, &events).await.unwrap();
        assert_eq!(
            first,
            Written {
                written: 4,
                ..Written::default()
            }
        );
        // ... and writes them again (its commit's reply was lost): nothing new.
        let again = dying.write(perf, &events).await.unwrap();
        assert_eq!(
            again,
            Written {
                duplicates: 4,
                ..Written::default()
            }
        );
        // It never acknowledges. Read again, the events come back: nothing was dropped.
        assert_eq!(
            app.store
                .read_events(perf, &reader, 100)
                .await
                .unwrap()
                .len(),
            4
        );
        if matches!(backend, Backend::Redis | Backend::Cluster) {
            // While its lease runs, no other relay reads the performance's log.
            let other = EventReader {
                name: "other".into(),
                lease_ms: 1_000,
            };
            assert!(
                app.store
                    .read_events(perf, &other, 100)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        // A fresh replica takes the log over once the lease lapses, and relays nothing twice.
        let fresh = replica(&app, eager()).await;
        let mut expected: BTreeSet<Uuid> = holds.iter().map(placed).collect();
        expected.insert(ended(&holds[0]));
        let rows = outbox_settles(&pool, perf, &expected).await;
        log_drains(backend, &*app.store, perf).await;
        assert_eq!(outbox(&pool, perf).await.len(), 4, "{backend:?}");

        // A copy on the bus anyway (an event relayed again past the outbox's retention): the
        // same id, applied once by a consumer's inbox.
        let counting = Counting::default();
        let stop = CancellationToken::new();
        let name = format!("test-inbox-{}", Uuid::now_v7().simple());
        let _consumer = Consumer::new(&name, pool.clone(), app.infra.bus.clone(), &[topics::SEATS])
            .spawn(counting.clone(), stop.clone());
        let copy = &rows[0];
        let sentinel = Envelope::new(&HoldEnded {
            hold_id: Uuid::now_v7(),
            performance_id: perf,
            seat_ids: Vec::new(),
            reason: HoldEndReason::Released,
        })
        .unwrap();
        for env in [copy, copy, &sentinel] {
            app.infra.bus.publish(topics::SEATS, env).await.unwrap();
        }
        // Same key, same partition: once the sentinel is applied, both copies were delivered.
        testing::eventually("the sentinel applied", Duration::from_secs(10), || async {
            counting.0.lock().unwrap().contains_key(&sentinel.id)
        })
        .await;
        assert_eq!(counting.0.lock().unwrap().get(&copy.id), Some(&1));
        let inbox: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bus_inbox WHERE consumer = $1 AND event_id = $2",
        )
        .bind(&name)
        .bind(copy.id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(inbox, 1);
        stop.cancel();
        fresh.infra.shutdown.cancel();
        app.infra.shutdown.cancel();
    }
}

/// Places a hold on `app` over HTTP; its id.
async fn hold_over_http(app: &App, perf: Uuid, seat: &str) -> (Uuid, Uuid) {
    let buyer = Uuid::now_v7();
    let r = app
        .hold(buyer, json!({"performance_id": perf, "seat_ids": [seat]}))
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (
        serde_json::from_value(body["hold_id"].clone()).unwrap(),
        buyer,
    )
}

async fn release_over_http(app: &App, hold: Uuid, buyer: Uuid) {
    let r = app
        .server
        .client
        .delete(app.server.url(&format!("/api/v1/holds/{hold}")))
        .bearer_auth(app.token(buyer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// Two replicas, each relaying its own changes at once and both looking at every performance
/// every 20 ms, on one store: every event reaches the outbox once, in the order of the log.
#[tokio::test]
async fn two_replicas_relay_each_event_once() {
    for backend in BACKENDS {
        let a = spawn(backend, eager()).await;
        let pool = seat_pool(&a).await;
        let p = performance(4, 5, 0);
        let perf = p.performance_id;
        a.publish_performance(&p).await;
        let b = replica(&a, eager()).await;
        let seats: Vec<String> = (1..=4)
            .flat_map(|r| (1..=5).map(move |n| format!("A-{r:02}-{n:02}")))
            .collect();
        // Holds on both replicas at once; each releases half of the other's.
        let placing = seats.iter().enumerate().map(|(i, seat)| {
            let (on, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            async move {
                let (hold, buyer) = hold_over_http(on, perf, seat).await;
                if i % 4 < 2 {
                    release_over_http(other, hold, buyer).await;
                    (hold, true)
                } else {
                    (hold, false)
                }
            }
        });
        let done = futures::future::join_all(placing).await;
        let mut expected = BTreeSet::new();
        for (hold, released) in &done {
            expected.insert(event_id(*hold, EventKind::Placed));
            if *released {
                expected.insert(event_id(*hold, EventKind::Released));
            }
        }
        assert_eq!(expected.len(), 30);
        outbox_settles(&pool, perf, &expected).await;
        log_drains(backend, &*a.store, perf).await;
        assert_eq!(outbox(&pool, perf).await.len(), 30, "{backend:?}");
        b.infra.shutdown.cancel();
        a.infra.shutdown.cancel();
    }
}

/// The store's side, on both stores: which changes record an event, that an event stays until
/// acknowledged, and that the log is never trimmed however long it grows.
#[tokio::test]
async fn the_store_records_each_event_once_and_keeps_it_until_acknowledged() {
    for backend in BACKENDS {
        let store = crate::helpers::store(backend).await;
        let perf = Uuid::now_v7();
        store
            .install(&crate::contract::inventory(perf, 1, 6, 0))
            .await
            .unwrap();
        let reader = EventReader {
            name: format!("r-{}", Uuid::now_v7().simple()),
            lease_ms: 5_000,
        };
        let now = now_ms();
        let a = store_hold(perf, &["S1"], now + 600_000);
        let b = store_hold(perf, &["S2"], now + 600_000);
        let lapsed = store_hold(perf, &["S3"], now - 1);
        for h in [&a, &b, &lapsed] {
            store.hold(h).await.unwrap();
        }
        // Nothing for: a repeat, a refusal, a checkout, a sale, a sale undone.
        store.hold(&a).await.unwrap();
        assert!(store.hold(&store_hold(perf, &["S1"], now)).await.is_err());
        store.checkout(perf, b.hold_id, 60_000).await.unwrap();
        store.confirm(&b).await.unwrap();
        store.unsell(&b).await.unwrap().unwrap();
        store
            .release(perf, a.hold_id, HoldStatus::Released)
            .await
            .unwrap()
            .unwrap();
        store.expire_next(perf).await.unwrap().unwrap();
        let read = store.read_events(perf, &reader, 100).await.unwrap();
        let got: Vec<(Uuid, EventKind)> = read
            .iter()
            .map(|e| {
                let ev = e.event.as_ref().unwrap();
                (ev.hold.hold_id, ev.kind)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (a.hold_id, EventKind::Placed),
                (b.hold_id, EventKind::Placed),
                (lapsed.hold_id, EventKind::Placed),
                (a.hold_id, EventKind::Released),
                (lapsed.hold_id, EventKind::Expired),
            ],
            "{backend:?}"
        );
        // The store's clock stamps them.
        for e in &read {
            let at = e.event.as_ref().unwrap().at_ms;
            assert!((now - 5_000..now_ms() + 5_000).contains(&at), "{at}");
        }
        // Unacknowledged, they come back, in the same order; acknowledged, they are gone.
        let again = store.read_events(perf, &reader, 100).await.unwrap();
        assert_eq!(again, read);
        let (first, rest) = read.split_at(2);
        let ids =
            |es: &[seat::store::LoggedEvent]| es.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        store.ack_events(perf, &ids(first)).await.unwrap();
        assert_eq!(store.read_events(perf, &reader, 100).await.unwrap(), rest);
        store.ack_events(perf, &ids(rest)).await.unwrap();
        // Acknowledging again, or what never was, is harmless.
        store.ack_events(perf, &ids(rest)).await.unwrap();
        store.ack_events(perf, &["1-0".to_owned()]).await.unwrap();
        assert!(
            store
                .read_events(perf, &reader, 100)
                .await
                .unwrap()
                .is_empty()
        );

        // Longer than the seat-map change log (trimmed to 10 000): every event still there.
        crate::helpers::churn(&*store, perf, &["S4", "S5", "S6", "S1"], 10_400).await;
        let mut total = 0;
        loop {
            let batch = store.read_events(perf, &reader, 500).await.unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.iter().all(|e| e.event.is_ok()));
            total += batch.len();
            store.ack_events(perf, &ids(&batch)).await.unwrap();
        }
        assert_eq!(total, 10_400, "{backend:?}");
    }
}

/// Redis: one relay at a time per performance; a relay that stops mid-way (its lease lapses) is
/// taken over with what it read and never acknowledged, before anything newer.
#[tokio::test]
async fn a_dead_relays_events_are_taken_over_first() {
    let store = crate::helpers::store(Backend::Redis).await;
    let perf = Uuid::now_v7();
    store
        .install(&crate::contract::inventory(perf, 1, 6, 0))
        .await
        .unwrap();
    let dead = EventReader {
        name: format!("dead-{}", Uuid::now_v7().simple()),
        lease_ms: 300,
    };
    let live = EventReader {
        name: format!("live-{}", Uuid::now_v7().simple()),
        lease_ms: 5_000,
    };
    let now = now_ms();
    let old: Vec<Hold> = ["S1", "S2"]
        .iter()
        .map(|s| store_hold(perf, &[s], now + 600_000))
        .collect();
    for h in &old {
        store.hold(h).await.unwrap();
    }
    let taken = store.read_events(perf, &dead, 1).await.unwrap();
    assert_eq!(taken.len(), 1);
    let newer = store_hold(perf, &["S3"], now + 600_000);
    store.hold(&newer).await.unwrap();
    // While the dead relay's lease runs, the live one reads nothing.
    assert!(store.read_events(perf, &live, 10).await.unwrap().is_empty());
    // Then it gets the dead one's entry first, then the rest, in log order.
    testing::eventually("the lease to lapse", Duration::from_secs(5), || async {
        !store.read_events(perf, &live, 10).await.unwrap().is_empty()
    })
    .await;
    let read = store.read_events(perf, &live, 10).await.unwrap();
    let order: Vec<Uuid> = read
        .iter()
        .map(|e| e.event.as_ref().unwrap().hold.hold_id)
        .collect();
    assert_eq!(order, vec![old[0].hold_id, old[1].hold_id, newer.hold_id]);
    assert_eq!(read[0].id, taken[0].id);
    // The dead relay, back, finds the log taken: nothing to read while the live one has it.
    assert!(store.read_events(perf, &dead, 10).await.unwrap().is_empty());
    let ids: Vec<String> = read.iter().map(|e| e.id.clone()).collect();
    store.ack_events(perf, &ids).await.unwrap();
    // Once empty, the log is free again for whoever reads next.
    assert!(store.read_events(perf, &live, 10).await.unwrap().is_empty());
    let next = store_hold(perf, &["S4"], now + 600_000);
    store.hold(&next).await.unwrap();
    assert_eq!(store.read_events(perf, &dead, 10).await.unwrap().len(), 1);
}

/// Redis: a refused hold leaves no key behind (its hold-index entry goes with the refusal); a
/// granted one stays findable.
#[tokio::test]
async fn a_refused_hold_leaves_no_index_key() {
    let store = crate::helpers::store(Backend::Redis).await;
    let perf = Uuid::now_v7();
    store
        .install(&crate::contract::inventory(perf, 1, 3, 0))
        .await
        .unwrap();
    let granted = store_hold(perf, &["S1"], now_ms() + 600_000);
    store.hold(&granted).await.unwrap();
    let refused = store_hold(perf, &["S1", "S2"], now_ms() + 600_000);
    assert!(store.hold(&refused).await.is_err());
    let elsewhere = store_hold(Uuid::now_v7(), &["S1"], now_ms() + 600_000);
    assert!(matches!(
        store.hold(&elsewhere).await,
        Err(StoreError::UnknownPerformance)
    ));
    let client = redis::Client::open(testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (h, kept) in [(&granted, true), (&refused, false), (&elsewhere, false)] {
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("seat:hold-index:{}", h.hold_id))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(exists, kept, "{:?}", h.seat_ids);
    }
    assert!(store.find_hold(granted.hold_id).await.unwrap().is_some());
    assert!(store.find_hold(refused.hold_id).await.unwrap().is_none());
}

/// Redis: a caller that knows the performance finds a hold whose index entry is gone (a failover
/// on a cluster can lose that entry alone, it lives in another slot), and only in its own
/// performance; the id alone then finds nothing.
#[tokio::test]
async fn a_hold_is_found_in_its_performance_without_its_index_entry() {
    let store = crate::helpers::store(Backend::Redis).await;
    let perf = Uuid::now_v7();
    store
        .install(&crate::contract::inventory(perf, 1, 3, 0))
        .await
        .unwrap();
    let hold = store_hold(perf, &["S1"], now_ms() + 600_000);
    store.hold(&hold).await.unwrap();
    let client = redis::Client::open(testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("seat:hold-index:{}", hold.hold_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(store.find_hold(hold.hold_id).await.unwrap().is_none());
    let found = store.find_hold_in(perf, hold.hold_id).await.unwrap();
    assert_eq!(found.map(|h| h.seat_ids), Some(vec!["S1".to_owned()]));
    assert!(
        store
            .find_hold_in(Uuid::now_v7(), hold.hold_id)
            .await
            .unwrap()
            .is_none()
    );
    // The seat service's abandon path uses it: the hold ends and its seat is free again.
    assert!(store.abandon(perf, hold.hold_id).await.unwrap().is_some());
    let again = store_hold(perf, &["S1"], now_ms() + 600_000);
    store.hold(&again).await.unwrap();
}
