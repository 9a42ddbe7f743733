//! The hold store on a Redis Cluster: every key of one performance hashes to one slot (checked
//! with the cluster's slot function, cross-checked against `CLUSTER KEYSLOT`), and a store keeps
//! serving holds while the master owning a performance's slot fails over, losing and doubling
//! nothing it acknowledged — on its own, and under a seat service serving buyers over HTTP. The
//! failovers run on private 6-node clusters of their own, so the shared test cluster other tests
//! use is never disturbed.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use platform::{
    service::{RedisConn, RedisTarget, RedisTimeouts},
    testing,
};
use proptest::prelude::*;
use seat::{
    Config,
    domain::SeatStatus,
    store::{
        EventReader, Hold, HoldStatus, HoldStore, StoreError,
        redis::{RedisStore, index_key, prefix},
    },
};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::contract::{FAR, hold, inventory};

/// The cluster slot of `key`.
fn slot(key: &str) -> u16 {
    platform::testing::redis_cluster_slot(key)
}

fn timeouts() -> RedisTimeouts {
    RedisTimeouts {
        connect: Duration::from_secs(3),
        response: Duration::from_secs(10),
    }
}

async fn single_conn() -> RedisConn {
    RedisTarget::Single(testing::redis_url())
        .connect(timeouts())
        .await
        .unwrap()
}

proptest! {
    /// Whatever the performance and whatever follows the prefix, the key is in the slot of the
    /// performance's id.
    #[test]
    fn every_key_under_a_performance_prefix_is_in_its_slot(
        perf in any::<u128>(),
        suffix in "[a-z0-9:|_-]{0,40}",
    ) {
        let perf = Uuid::from_u128(perf);
        let want = slot(&perf.to_string());
        prop_assert_eq!(slot(&prefix(perf)), want);
        prop_assert_eq!(slot(&format!("{}{suffix}", prefix(perf))), want);
        prop_assert_eq!(slot(&format!("{}hold:{}", prefix(perf), Uuid::now_v7())), want);
    }
}

/// The test's slot function is the cluster's.
#[tokio::test]
async fn the_slot_function_is_the_clusters() {
    let mut conn = crate::helpers::cluster_target()
        .connect(timeouts())
        .await
        .unwrap();
    let perf = Uuid::now_v7();
    let keys = [
        prefix(perf),
        format!("{}events", prefix(perf)),
        index_key(Uuid::now_v7()),
        "foo".into(),
        "{}empty-tag".into(),
        "a{b}c{d}".into(),
        "unclosed{tag".into(),
    ];
    for key in keys {
        let theirs: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(slot(&key), theirs, "{key}");
    }
}

/// Every key the store writes for a performance, whatever the operation (install with areas,
/// holds, checkout, sale, release, expiry, the change log, the relay's lease and group), is in
/// the performance's slot; the only other key a hold has is its index entry. Read back from one
/// server, where nothing would refuse a stray key.
#[tokio::test]
async fn every_key_the_store_writes_for_a_performance_is_in_its_slot() {
    let store = RedisStore::connect(&testing::redis_url()).await.unwrap();
    let perf = Uuid::now_v7();
    store
        .install_with_sales(&inventory(perf, 1, 6, 0), Some(&[]))
        .await
        .unwrap();
    let buyer = Uuid::now_v7();
    let now = chrono::Utc::now().timestamp_millis();
    let sold = hold(perf, buyer, &["S1"], FAR);
    let released = hold(perf, buyer, &["S2"], FAR);
    let lapsing = hold(perf, buyer, &["S3"], now + 50);
    let mut area = hold(perf, buyer, &[], FAR);
    area.areas = vec![("GA".into(), 2)];
    for h in [&sold, &released, &lapsing, &area] {
        store.hold(h).await.unwrap();
    }
    store.checkout(perf, sold.hold_id, 60_000).await.unwrap();
    store.confirm(&sold).await.unwrap();
    store
        .release(perf, released.hold_id, HoldStatus::Released)
        .await
        .unwrap();
    testing::eventually("the short hold lapses", Duration::from_secs(10), || {
        let store = &store;
        async move { store.expire_next(perf).await.unwrap().is_some() }
    })
    .await;
    let reader = EventReader {
        name: "slot-check".into(),
        lease_ms: 60_000,
    };
    assert!(
        !store
            .read_events(perf, &reader, 2)
            .await
            .unwrap()
            .is_empty()
    );
    let mut conn = single_conn().await;
    let keys = platform::testing::scan_keys(&mut conn, &format!("*{perf}*")).await;
    let want = slot(&prefix(perf));
    let suffixes: BTreeSet<&str> = keys
        .iter()
        .map(|k| {
            assert_eq!(slot(k), want, "{k} is not in the performance's slot");
            k.strip_prefix(&prefix(perf)).unwrap_or(k)
        })
        .collect();
    for expected in [
        "meta", "inv", "seats", "areas", "arealist", "buyers", "expiries", "changes", "events",
        "relay",
    ] {
        assert!(
            suffixes.contains(expected),
            "no `{expected}` in {suffixes:?}"
        );
    }
    // A hold's own keys: its record in the performance's slot, and the index entry.
    for h in [&sold, &released, &lapsing, &area] {
        let mut keys = platform::testing::scan_keys(&mut conn, &format!("*{}*", h.hold_id)).await;
        keys.sort();
        assert_eq!(
            keys,
            [
                index_key(h.hold_id),
                format!("{}hold:{}", prefix(perf), h.hold_id)
            ]
        );
    }
}

/// A private Redis Cluster of 3 masters and 3 replicas on free loopback ports, in a folder of
/// its own; every node is killed and the folder removed on drop.
struct PrivateCluster {
    dir: PathBuf,
    nodes: BTreeMap<u16, Child>,
}

impl PrivateCluster {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("boxoffice-failover-{}", Uuid::now_v7()));
        let mut cluster = Self {
            dir,
            nodes: BTreeMap::new(),
        };
        for port in free_ports(6) {
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .arg("--logfile")
                .arg(node_dir.join("redis.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting redis-server (scripts/infra.sh installs it): {e}")
                });
            cluster.nodes.insert(port, child);
        }
        for &port in cluster.nodes.keys() {
            let what = format!("redis-server on {port} answers PING");
            testing::eventually(&what, Duration::from_secs(20), || async move {
                let pong: Option<String> = query(port, &["PING"]).await;
                pong.as_deref() == Some("PONG")
            })
            .await;
        }
        let addrs: Vec<String> = cluster
            .nodes
            .keys()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = tokio::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok(Duration::from_secs(30)).await;
        // Every master has its replica online, so each slot can fail over.
        let ports: Vec<u16> = cluster.nodes.keys().copied().collect();
        testing::eventually("every replica is online", Duration::from_secs(30), || {
            let ports = ports.clone();
            async move {
                let mut online = 0;
                for port in ports {
                    let info: Option<String> = query(port, &["INFO", "replication"]).await;
                    online += info.map_or(0, |i| {
                        i.lines()
                            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                            .count()
                    });
                }
                online == 3
            }
        })
        .await;
        cluster
    }

    /// Every node still running reports `cluster_state:ok`.
    async fn wait_ok(&self, within: Duration) {
        let ports: Vec<u16> = self.nodes.keys().copied().collect();
        testing::eventually("cluster_state:ok on every node", within, || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let info: Option<String> = query(port, &["CLUSTER", "INFO"]).await;
                    if !info.is_some_and(|i| i.contains("cluster_state:ok")) {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }

    fn seeds(&self) -> RedisTarget {
        RedisTarget::Cluster(
            self.nodes
                .keys()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
        )
    }

    /// The master serving `slot` and its replica (if it has one), by `CLUSTER NODES` on a
    /// running node.
    async fn owner(&self, slot: u16) -> (u16, Option<u16>) {
        let port = *self.nodes.keys().next().unwrap();
        let nodes: String = query(port, &["CLUSTER", "NODES"]).await.unwrap();
        let lines: Vec<Vec<&str>> = nodes
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let port_of =
            |addr: &str| -> u16 { addr.split(['@', ':']).nth(1).unwrap().parse().unwrap() };
        let master = lines
            .iter()
            .find(|f| {
                f[2].contains("master")
                    && f[8..].iter().any(|range| {
                        let (a, b) = range.split_once('-').unwrap_or((range, range));
                        (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&slot)
                    })
            })
            .unwrap();
        let replica = lines.iter().find(|f| f[3] == master[0]);
        (port_of(master[1]), replica.map(|r| port_of(r[1])))
    }

    /// SIGKILL for the node on `port`.
    fn kill(&mut self, port: u16) {
        let mut child = self.nodes.remove(&port).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in self.nodes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` loopback ports that are free now, each with its cluster bus port (+10000) free too.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut held = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port < 55_000
            && let Ok(bus) = TcpListener::bind(("127.0.0.1", port + 10_000))
        {
            ports.push(port);
            held.push(bus);
        }
        held.push(listener);
    }
    ports
}

/// One command to the node on `port` over a connection of its own; `None` when it fails.
async fn query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.ok()
}

/// Places `hold` until the store answers, through any failure, for at most `within`: the hold
/// placed (or found placed by an earlier attempt whose reply was lost), or a refusal.
async fn place(store: &RedisStore, hold: &Hold, within: Duration) -> Result<(), StoreError> {
    let deadline = Instant::now() + within;
    loop {
        match store.hold(hold).await {
            Err(e) if e.is_failure() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r => return r.map(|_| ()),
        }
    }
}

/// SIGKILL the master that owns the performance's slot: the store serves holds again once the
/// replica took over (within a bound), and after it every hold the store acknowledged — before
/// the kill (replicated) and after it — is there with its seats, no seat is held twice, and no
/// other seat is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_keep_being_served_through_a_failover() {
    let mut cluster = PrivateCluster::start().await;
    let store = RedisStore::connect_to(&cluster.seeds()).await.unwrap();
    let perf = Uuid::now_v7();
    store
        .install_with_sales(&inventory(perf, 1, 60, 0), Some(&[]))
        .await
        .unwrap();
    let (master, replica) = cluster.owner(slot(&prefix(perf))).await;
    let replica = replica.expect("the master has a replica");

    // Before: 20 holds, acknowledged.
    let mut acked: Vec<Hold> = Vec::new();
    for i in 1..=20 {
        let h = hold(perf, Uuid::now_v7(), &[&format!("S{i}")], FAR);
        store.hold(&h).await.unwrap();
        acked.push(h);
    }
    // The replica has all of it: a write on the master's connection, then WAIT for one
    // replica to acknowledge it (replication is in order, so everything before it is there).
    replicated(master, perf).await;

    cluster.kill(master);
    let killed = Instant::now();

    // During and after: 20 more holds, each retried (same hold id) until the store answers.
    let mut first_served = None;
    for i in 21..=40 {
        let h = hold(perf, Uuid::now_v7(), &[&format!("S{i}")], FAR);
        place(&store, &h, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("hold S{i} after the kill: {e}"));
        first_served.get_or_insert(killed.elapsed());
        acked.push(h);
    }
    let first_served = first_served.unwrap();
    // It was a failover: the replica is the slot's master now.
    testing::eventually(
        "the replica is promoted",
        Duration::from_secs(10),
        || async move {
            let info: Option<String> = query(replica, &["INFO", "replication"]).await;
            info.is_some_and(|i| i.lines().any(|l| l.trim() == "role:master"))
        },
    )
    .await;
    assert_eq!(cluster.owner(slot(&prefix(perf))).await.0, replica);
    cluster.wait_ok(Duration::from_secs(30)).await;
    eprintln!(
        "failover: the first hold after SIGKILL of the master on {master} was served after {first_served:?} (replica {replica} promoted)"
    );
    assert!(
        first_served < Duration::from_secs(20),
        "holds served again {first_served:?} after the kill"
    );

    // Reads work, and nothing acknowledged is lost.
    for h in &acked {
        let found = store.find_hold(h.hold_id).await.unwrap().unwrap();
        assert_eq!(
            (found.status, &found.seat_ids),
            (HoldStatus::Active, &h.seat_ids)
        );
    }
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    let taken: BTreeSet<(String, SeatStatus)> = snap.taken.into_iter().collect();
    let want: BTreeSet<(String, SeatStatus)> = acked
        .iter()
        .map(|h| (h.seat_ids[0].clone(), SeatStatus::Held))
        .collect();
    assert_eq!(taken, want, "exactly the acknowledged seats are held");
    assert_eq!(store.live_holds(perf).await.unwrap(), acked.len() as u64);
    // No seat can be held a second time.
    for h in &acked {
        let again = hold(perf, Uuid::now_v7(), &[&h.seat_ids[0]], FAR);
        assert!(
            matches!(
                store.hold(&again).await,
                Err(StoreError::Unavailable { .. })
            ),
            "{} held twice",
            h.seat_ids[0]
        );
    }
    // And a free seat still can.
    store
        .hold(&hold(perf, Uuid::now_v7(), &["S60"], FAR))
        .await
        .unwrap();
}

/// Writes on the master on `port` reached one replica: a write of this connection's, then `WAIT`
/// for a replica to acknowledge it (replication is in order, so all before it is there too).
async fn replicated(port: u16, perf: Uuid) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    // A fresh replica may still be in its first sync on a loaded machine: WAIT in short rounds
    // (each well inside the connection's response timeout) until it acknowledges, within 30 s.
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(10)));
    let mut direct = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{{{perf}}}:failover-probe"))
        .arg(1)
        .query_async(&mut direct)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let replicas: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query_async(&mut direct)
            .await
            .unwrap();
        if replicas >= 1 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the replica did not acknowledge the writes within 30 s"
        );
    }
}

/// One seat replica keeps serving while the cluster node holding its performance fails over:
/// buyers' holds over HTTP are answered 201 again within a bound after the master's SIGKILL,
/// holds placed before are still found by id, and the seat map shows exactly the seats the
/// service acknowledged as held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_service_keeps_serving_through_a_failover() {
    let mut cluster = PrivateCluster::start().await;
    let store = Arc::new(RedisStore::connect_to(&cluster.seeds()).await.unwrap());
    let config = Config {
        seat_map_max_stale_ms: 0,
        ..Config::default()
    };
    let app = crate::helpers::spawn_configured(store, config).await;
    let p = crate::helpers::performance(2, 10, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let (master, _) = cluster.owner(slot(&prefix(perf))).await;
    let hold_seat = |buyer: Uuid, seat: String| {
        let app = &app;
        async move {
            app.hold(buyer, json!({"performance_id": perf, "seat_ids": [seat]}))
                .await
        }
    };
    // seat → (hold, buyer)
    let mut held: BTreeMap<String, (Uuid, Uuid)> = BTreeMap::new();
    for n in 1..=5 {
        let seat = format!("A-01-{n:02}");
        let buyer = Uuid::now_v7();
        let r = hold_seat(buyer, seat.clone()).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["hold_id"].clone();
        held.insert(seat, (serde_json::from_value(id).unwrap(), buyer));
    }
    replicated(master, perf).await;

    cluster.kill(master);
    let killed = Instant::now();
    let mut first_served = None;
    for n in 1..=5 {
        let seat = format!("A-02-{n:02}");
        let buyer = Uuid::now_v7();
        loop {
            let r = hold_seat(buyer, seat.clone()).await;
            match r.status().as_u16() {
                201 => {
                    let id = r.json::<Value>().await.unwrap()["hold_id"].clone();
                    held.insert(seat, (serde_json::from_value(id).unwrap(), buyer));
                    first_served.get_or_insert(killed.elapsed());
                    break;
                }
                // The store is failing over: a buyer tries again.
                503 | 504 if killed.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                status => panic!(
                    "hold of {seat} {:?} after the kill: {status} {}",
                    killed.elapsed(),
                    r.text().await.unwrap()
                ),
            }
        }
    }
    let first_served = first_served.unwrap();
    eprintln!(
        "failover under the seat service: a hold was answered 201 {first_served:?} after the SIGKILL"
    );
    assert!(
        first_served < Duration::from_secs(20),
        "holds served again {first_served:?} after the kill"
    );
    for (seat, (id, buyer)) in &held {
        let r = app
            .server
            .client
            .get(app.server.url(&format!("/api/v1/holds/{id}")))
            .bearer_auth(app.token(*buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "hold of {seat}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "active", "{body}");
    }
    let map = app.seats(perf).await;
    let taken: BTreeSet<String> = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "available")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        taken,
        held.keys().cloned().collect(),
        "the map shows exactly the held seats"
    );
}
