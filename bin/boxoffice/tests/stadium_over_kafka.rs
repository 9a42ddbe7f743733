//! A seeded stadium over a real Kafka-protocol broker: the catalog publishes a Jamsil game
//! (about 24,000 seats, 2.5–2.8 MB of JSON whole, over a Kafka broker's 1 MB message limit)
//! through its outbox and relay; the seat service, consuming over the broker, installs its
//! layout with every seat. Every record that crossed the broker is within the bus's 256 KiB
//! (`platform::bus::outbox::MAX_ENVELOPE_BYTES`), nothing was dead-lettered, and the producer
//! refuses records over 1,000,000 bytes as a Kafka cluster would (tansu itself takes 1 GiB).
//!
//! In process: the catalog's database, seed and relay, and `seat::start_with`, on one
//! [`platform::service::Infra`] whose bus is the Kafka transport. The seat service's consumer
//! group has a fixed name (`seat`), so on a shared broker another run's seat service could take
//! this run's partition; the test therefore runs its own tansu broker (memory storage, a free
//! port) when the binary `scripts/infra.sh` installs is at hand, and the shared test broker
//! (`BOXOFFICE_TEST_KAFKA_BROKERS`, default 127.0.0.1:9092) only without one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test set-up may panic

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use contracts::{
    admission::{AdmissionClaims, HEADER},
    events::{PerformancePublished, PerformanceSeats, PerformanceSpec},
    topics,
};
use platform::{
    auth::{SigningKey, Verifier},
    bus::{BusSettings, TransportKind, outbox::MAX_ENVELOPE_BYTES},
    testing,
};
use seat::{Overrides, admission_pass::PassVerifier, store::memory::MemoryStore};
use uuid::Uuid;

/// Longest wait for the broker, the seed, the relay and the seat service's consumer.
const DEADLINE: Duration = Duration::from_secs(180);

/// A tansu broker of this test's own; killed when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tansu binary `scripts/infra.sh` installs (`$BOXOFFICE_TOOLS_DIR/bin`, by default
/// `~/.cache/boxoffice/tools/bin`), else one on `PATH`.
fn tansu_binary() -> Option<PathBuf> {
    let tools = std::env::var_os("BOXOFFICE_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let state = std::env::var_os("BOXOFFICE_STATE_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/boxoffice"))
                })?;
            Some(state.join("tools"))
        });
    let installed = tools.map(|t| t.join("bin/tansu")).filter(|p| p.is_file());
    installed.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    })
}

/// This run's own broker on a free loopback port, once it accepts connections; `None` without
/// a tansu binary.
async fn private_broker() -> Option<(String, Broker)> {
    let tansu = tansu_binary()?;
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", tansu.display()));
        let mut broker = Broker(child);
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some((format!("127.0.0.1:{port}"), broker));
            }
            if broker.0.try_wait().unwrap().is_some() {
                break; // most likely the port was taken meanwhile: another one
            }
            assert!(
                started.elapsed() < DEADLINE,
                "tansu did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!(
        "tansu ({}) did not start on any of 3 ports",
        tansu.display()
    );
}

/// Polls `condition` until it holds, failing after [`DEADLINE`] with `what`.
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    testing::eventually(what, DEADLINE, condition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_stadium_published_over_the_broker_reaches_the_seat_service() {
    let (brokers, _broker) = match private_broker().await {
        Some((addr, broker)) => (addr, Some(broker)),
        None => {
            eprintln!(
                "no tansu binary: using the shared broker {}, whose `seat` consumer group \
                 another run's seat service may join",
                testing::kafka_brokers()
            );
            (testing::kafka_brokers(), None)
        }
    };
    let settings = BusSettings {
        transport: TransportKind::Kafka,
        kafka_brokers: brokers,
        partitions: 4,
        relay_interval_ms: 50,
        ..BusSettings::default()
    };
    let bus = platform::bus::connect(&settings, contracts::topics::ALL)
        .await
        .unwrap();
    let mut infra = testing::infra_with_bus("stadium", bus.clone());
    infra.bus_settings = settings;

    // The catalog: the seeded season, nothing sent yet; then one announced Jamsil game is
    // published as the catalog publishes it (autopublish's transaction).
    let pool = infra
        .database(catalog::NAME, &catalog::MIGRATOR)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    catalog::seed::run_with(&pool, catalog::seed::today_in_seoul(now), now, false)
        .await
        .unwrap();
    let jamsil = catalog::seed::layout::venue_id("jamsil");
    let perf_id: Uuid = sqlx::query_scalar(
        "SELECT p.id FROM performances p JOIN events e ON e.id = p.event_id \
         WHERE e.venue_id = $1 AND p.status = 'announced' ORDER BY p.starts_at LIMIT 1",
    )
    .bind(jamsil)
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let perf = catalog::store::events::performance(&mut tx, perf_id, true)
        .await
        .unwrap()
        .unwrap();
    let event = catalog::store::events::event(&mut tx, perf.event_id, false)
        .await
        .unwrap()
        .unwrap();
    let inventory = catalog::store::venues::inventory(&mut tx, event.venue_id)
        .await
        .unwrap();
    catalog::publish::publish(&mut tx, &event, &perf, &inventory)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let venue_seats: BTreeSet<String> = inventory.0.iter().map(|s| s.seat_id.clone()).collect();
    assert!(venue_seats.len() > 20_000, "{} seats", venue_seats.len());
    let whole = PerformanceSpec {
        seats: inventory.0.clone(),
        ..publication_stub(perf_id)
    };
    assert!(
        serde_json::to_vec(&whole).unwrap().len() > 1_048_588,
        "the whole would fit one Kafka message: the test proves nothing"
    );

    // The seat service, consuming over the broker, and the catalog's relay publishing to it.
    let pass_key = SigningKey::generate(format!("adm-{}", Uuid::now_v7().simple()));
    let overrides = Overrides {
        verifier: Some(Verifier::from_jwks(Vec::new())),
        passes: Some(PassVerifier::from_jwks(&[pass_key.public_jwk().unwrap()])),
        store: Some(Arc::new(MemoryStore::new())),
    };
    let service = seat::start_with(&seat::Config::default(), &infra, overrides)
        .await
        .unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let relay = infra.spawn_relay(catalog::NAME, pool.clone());

    // The seat map serves the game with every seat of the stadium.
    let pass = seat::admission_pass::sign(
        &pass_key,
        &AdmissionClaims::new(Uuid::now_v7(), perf_id, now.timestamp(), 600),
    )
    .unwrap();
    let url = server.url(&format!("/api/v1/performances/{perf_id}/seats"));
    let map = Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
    eventually("the seat service to serve the stadium", || {
        let (client, url, pass, map) = (
            server.client.clone(),
            url.clone(),
            pass.clone(),
            map.clone(),
        );
        async move {
            match client.get(&url).header(HEADER, pass).send().await {
                Ok(r) if r.status() == 200 => {
                    *map.lock().unwrap() = r.json().await.unwrap_or_default();
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    let map = map.lock().unwrap().clone();
    assert_eq!(map["revision"], 1);
    let served: BTreeSet<String> = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(served.len(), venue_seats.len());
    assert_eq!(served, venue_seats, "the map is not the stadium");

    // What the catalog wrote went out whole, in pieces within the bus's limit, none refused.
    let (rows, unpublished, largest, refused): (i64, i64, i32, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL), \
                max(octet_length(envelope::text)), \
                (SELECT count(*) FROM bus_outbox_dead_letters) \
         FROM bus_outbox WHERE key = $1",
    )
    .bind(perf_id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(rows > 10, "{rows} rows");
    assert_eq!((unpublished, refused), (0, 0));
    assert!(largest as usize <= MAX_ENVELOPE_BYTES, "{largest} bytes");

    // And that is what crossed the broker: read back by a group of our own, chunks in order,
    // then the header; every record within the limit.
    let mut sub = bus
        .subscribe(&format!("stadium-{}", Uuid::now_v7()), &[topics::CATALOG])
        .await
        .unwrap();
    let mut chunks: Vec<PerformanceSeats> = Vec::new();
    let header = tokio::time::timeout(DEADLINE, async {
        loop {
            let d = sub.next().await.unwrap();
            if d.envelope.key != perf_id.to_string() {
                continue;
            }
            let bytes = serde_json::to_vec(&d.envelope).unwrap().len();
            assert!(bytes <= MAX_ENVELOPE_BYTES, "a record of {bytes} bytes");
            if d.envelope.is::<PerformanceSeats>() {
                chunks.push(d.envelope.decode().unwrap());
            } else {
                break d.envelope.decode::<PerformancePublished>().unwrap();
            }
        }
    })
    .await
    .expect("the publication read back from the broker");
    assert_eq!(chunks.len() as i64 + 1, rows);
    assert!(
        chunks
            .iter()
            .enumerate()
            .all(|(i, c)| c.chunk as usize == i)
    );
    let spec = PerformanceSpec::assemble(&header, &chunks).unwrap();
    assert_eq!(spec.seats, inventory.0);

    // The seat service holds nothing back: no dead letter, nothing left in staging.
    let seat_db = sqlx::PgPool::connect(&format!(
        "{}/{}{}",
        testing::database_url(),
        infra.database.name_prefix,
        seat::NAME
    ))
    .await
    .unwrap();
    let (dead, staged): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bus_dead_letters), \
                (SELECT count(*) FROM publication_chunks) + \
                (SELECT count(*) FROM publication_headers)",
    )
    .fetch_one(&seat_db)
    .await
    .unwrap();
    assert_eq!((dead, staged), (0, 0));
    seat_db.close().await;

    infra.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), relay).await;
    pool.close().await;
    drop_databases(&infra.database.name_prefix).await;
}

/// A publication of `perf` with nothing in it but its id (to measure a whole one).
fn publication_stub(perf: Uuid) -> PerformanceSpec {
    let now = chrono::Utc::now();
    PerformanceSpec {
        performance_id: perf,
        event_id: perf,
        venue_id: perf,
        starts_at: now,
        ticket_limit: 0,
        waiting_room: false,
        sale_opens_at: now,
        sale_closes_at: now,
        seats: Vec::new(),
        areas: Vec::new(),
        prices: Vec::new(),
        revision: 1,
        presale: None,
    }
}

/// Drops this run's catalog and seat databases.
async fn drop_databases(prefix: &str) {
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", testing::database_url()))
        .await
        .unwrap();
    for service in [catalog::NAME, seat::NAME] {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{prefix}{service}\" WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
    }
    admin.close().await;
}
