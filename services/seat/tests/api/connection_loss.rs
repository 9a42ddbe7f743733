//! Redis connection loss in the middle of a script call. A proxy between the store and Redis
//! drops the connection of one chosen call — before its request reaches Redis (the script never
//! runs) or once Redis has run it and answers (the reply is lost) — once, or on every attempt.
//! Whatever the store answers, the hold happened whole or not at all, and the next call after
//! the reconnect succeeds. Each case uses its own performance id; nothing else on the shared
//! Redis is touched.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use platform::testing;
use seat::{
    Config,
    domain::SeatStatus,
    store::{HoldStatus, HoldStore, Snapshot, StoreError, redis::RedisStore},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use uuid::Uuid;

use crate::{
    contract::{hold, inventory},
    helpers::{performance, spawn_configured},
};

/// Where the chosen call's connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Before its request reaches Redis: the script never runs.
    BeforeRequest,
    /// Once Redis answers it: the script ran, the reply never arrives.
    BeforeReply,
}

/// Which call to cut: the first `times` requests whose bytes contain `marker`.
struct Rule {
    marker: Vec<u8>,
    cut: Cut,
    times: usize,
    done: usize,
}

/// A TCP proxy to Redis that passes everything through, except the calls a [`Rule`] names.
struct Proxy {
    addr: SocketAddr,
    rule: Arc<Mutex<Option<Rule>>>,
}

impl Proxy {
    async fn start() -> Self {
        let upstream = authority(&testing::redis_url()).to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rule: Arc<Mutex<Option<Rule>>> = Arc::default();
        let shared = rule.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), shared.clone()));
            }
        });
        Self { addr, rule }
    }

    /// The Redis URL through this proxy.
    fn url(&self) -> String {
        let url = testing::redis_url();
        url.replacen(authority(&url), &self.addr.to_string(), 1)
    }

    /// Cuts the next `times` calls that carry `marker`.
    fn cut(&self, marker: &str, cut: Cut, times: usize) {
        *self.rule.lock().unwrap() = Some(Rule {
            marker: marker.as_bytes().to_vec(),
            cut,
            times,
            done: 0,
        });
    }

    /// Passes everything again; returns how many calls were cut.
    fn pass(&self) -> usize {
        self.rule.lock().unwrap().take().map_or(0, |r| r.done)
    }
}

/// `host:port` of a `redis://[user:pass@]host:port[/db]` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    hostport.rsplit_once('@').map_or(hostport, |(_, h)| h)
}

async fn relay(mut client: TcpStream, upstream: String, rule: Arc<Mutex<Option<Rule>>>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut lose_reply = false;
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let n = match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &up[..n];
                let cut = {
                    let mut rule = rule.lock().unwrap();
                    match rule.as_mut() {
                        Some(r)
                            if r.done < r.times
                                && chunk.windows(r.marker.len()).any(|w| w == r.marker) =>
                        {
                            r.done += 1;
                            Some(r.cut)
                        }
                        _ => None,
                    }
                };
                match cut {
                    // Dropping both sockets: the client sees its connection close.
                    Some(Cut::BeforeRequest) => return,
                    Some(Cut::BeforeReply) => lose_reply = true,
                    None => {}
                }
                if server.write_all(chunk).await.is_err() {
                    return;
                }
            }
            n = server.read(&mut down) => {
                let n = match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if lose_reply {
                    return;
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

const FAR: i64 = i64::MAX / 4;

/// The store's state, read over a connection of its own (not through the proxy).
async fn state(direct: &RedisStore, perf: Uuid) -> Snapshot {
    direct.snapshot(perf).await.unwrap().unwrap()
}

fn taken(seats: &[(&str, SeatStatus)]) -> Vec<(String, SeatStatus)> {
    let mut out: Vec<(String, SeatStatus)> =
        seats.iter().map(|(s, st)| ((*s).to_owned(), *st)).collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_connection_lost_mid_script_leaves_the_hold_whole_or_absent() {
    let proxy = Proxy::start().await;
    let store = RedisStore::connect(&proxy.url()).await.unwrap();
    let direct = RedisStore::connect(&testing::redis_url()).await.unwrap();
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 10, 0)).await.unwrap();
    // Through the proxy as is (and the hold script is loaded, so no call meets NOSCRIPT).
    let warm = hold(perf, Uuid::now_v7(), &["S10"], FAR);
    assert_eq!(store.hold(&warm).await.unwrap().version, 2);
    let mut held = vec![("S10", SeatStatus::Held)];
    let mut version = 2;

    // The reply is lost on every attempt: the call fails, and the hold is there, whole, once.
    let a = hold(perf, Uuid::now_v7(), &["S1", "S2"], FAR);
    proxy.cut(&a.hold_id.to_string(), Cut::BeforeReply, usize::MAX);
    let got = store.hold(&a).await;
    let cuts = proxy.pass();
    assert!(
        got.as_ref().is_err_and(StoreError::is_failure),
        "a store failure: {got:?}"
    );
    assert!(cuts >= 1);
    version += 1;
    held.extend([("S1", SeatStatus::Held), ("S2", SeatStatus::Held)]);
    let snap = state(&direct, perf).await;
    assert_eq!(snap.version, version, "applied once over {cuts} attempts");
    assert_eq!(snap.taken, taken(&held));
    assert_eq!(direct.find_hold(a.hold_id).await.unwrap(), Some(a.clone()));
    // Reconnected: the caller's retry of the same hold is answered as a repeat, changing nothing.
    assert_eq!(store.hold(&a).await.unwrap().version, 0);
    assert_eq!(state(&direct, perf).await.version, version);

    // The reply is lost once: the store's own retry finds the hold placed.
    let b = hold(perf, Uuid::now_v7(), &["S3"], FAR);
    proxy.cut(&b.hold_id.to_string(), Cut::BeforeReply, 1);
    let got = store.hold(&b).await;
    assert_eq!(proxy.pass(), 1);
    assert!(got.is_ok(), "{got:?}");
    version += 1;
    held.push(("S3", SeatStatus::Held));
    let snap = state(&direct, perf).await;
    assert_eq!((snap.version, &snap.taken), (version, &taken(&held)));
    assert_eq!(direct.find_hold(b.hold_id).await.unwrap(), Some(b.clone()));

    // The request is lost on every attempt: the call fails, and nothing is held.
    let c = hold(perf, Uuid::now_v7(), &["S4", "S5"], FAR);
    proxy.cut(&c.hold_id.to_string(), Cut::BeforeRequest, usize::MAX);
    let got = store.hold(&c).await;
    assert!(proxy.pass() >= 1);
    assert!(
        got.as_ref().is_err_and(StoreError::is_failure),
        "a store failure: {got:?}"
    );
    let snap = state(&direct, perf).await;
    assert_eq!((snap.version, &snap.taken), (version, &taken(&held)));
    assert_eq!(direct.find_hold(c.hold_id).await.unwrap(), None);
    // Reconnected: the next call places it, once.
    assert_eq!(store.hold(&c).await.unwrap().version, version + 1);
    version += 1;
    held.extend([("S4", SeatStatus::Held), ("S5", SeatStatus::Held)]);

    // The request is lost once: the retry places it, once.
    let d = hold(perf, Uuid::now_v7(), &["S6"], FAR);
    proxy.cut(&d.hold_id.to_string(), Cut::BeforeRequest, 1);
    assert_eq!(store.hold(&d).await.unwrap().version, version + 1);
    assert_eq!(proxy.pass(), 1);
    version += 1;
    held.push(("S6", SeatStatus::Held));
    let snap = state(&direct, perf).await;
    assert_eq!((snap.version, &snap.taken), (version, &taken(&held)));

    // A release whose reply is always lost: an error, and the hold ended whole; asking again
    // finds it ended.
    proxy.cut(&a.hold_id.to_string(), Cut::BeforeReply, usize::MAX);
    let got = store.release(perf, a.hold_id, HoldStatus::Released).await;
    assert!(proxy.pass() >= 1);
    assert!(got.is_err(), "an error: {got:?}");
    version += 1;
    held.retain(|(s, _)| !["S1", "S2"].contains(s));
    let snap = state(&direct, perf).await;
    assert_eq!((snap.version, &snap.taken), (version, &taken(&held)));
    let ended = direct.find_hold(a.hold_id).await.unwrap().unwrap();
    assert_eq!(ended.status, HoldStatus::Released);
    assert!(
        store
            .release(perf, a.hold_id, HoldStatus::Released)
            .await
            .unwrap()
            .is_none()
    );
    // The store through the proxy agrees with Redis.
    assert_eq!(store.snapshot(perf).await.unwrap(), Some(snap));
}

#[tokio::test]
async fn a_hold_whose_reply_is_lost_answers_503_and_the_map_follows_the_store() {
    let proxy = Proxy::start().await;
    let store = Arc::new(RedisStore::connect(&proxy.url()).await.unwrap());
    let config = Config {
        seat_map_max_stale_ms: 0,
        ..Config::default()
    };
    let app = spawn_configured(store.clone(), config).await;
    let p = performance(2, 5, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let before = app.seats(perf).await["version"].as_u64().unwrap();

    // The hold's script runs; its reply never comes back, on any attempt.
    proxy.cut(r#""seat_ids":["A-02-03"]"#, Cut::BeforeReply, usize::MAX);
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-02-03"]}),
        )
        .await;
    assert!(proxy.pass() >= 1);
    assert_eq!(r.status(), 503, "an error, not a 500 or a wrong answer");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable", "{problem}");
    // The store has the hold, once; the map learns it from the store's log.
    let direct = RedisStore::connect(&testing::redis_url()).await.unwrap();
    let snap = direct.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(snap.version, before + 1);
    assert_eq!(snap.taken, taken(&[("A-02-03", SeatStatus::Held)]));
    testing::eventually(
        "the map to follow the store",
        Duration::from_secs(10),
        || {
            let app = &app;
            async move { app.seats(perf).await["version"] == before + 1 }
        },
    )
    .await;
    let map = app.seats(perf).await;
    assert_eq!(map["counts"]["held"], 1);
    assert_eq!(map["seats"][7]["id"], "A-02-03");
    assert_eq!(map["seats"][7]["status"], "held");
    // Reconnected: the next hold goes through.
    let r = app
        .hold(
            Uuid::now_v7(),
            json!({"performance_id": perf, "seat_ids": ["A-02-04"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(app.seats(perf).await["version"], before + 2);
}
