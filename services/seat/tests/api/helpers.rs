//! Spawning the service against fresh databases, publishing events, reading event streams.

use std::{sync::Arc, time::Duration};

use contracts::{
    Envelope, Event,
    admission::AdmissionClaims,
    events::{AreaSpec, PerformanceSpec, PriceSpec, SeatSpec},
};
use platform::{
    auth::{Role, SigningKey},
    service::Infra,
    testing::{self, TestIssuer, TestServer},
};
use seat::{
    Config, Overrides,
    admission_pass::{self, PassVerifier},
    domain::Change,
    store::{
        Changes, Confirmed, EventReader, Hold, HoldStatus, HoldStore, LoggedEvent, Snapshot,
        StoreError, StoreInventory, memory::MemoryStore, redis::RedisStore,
    },
};
use uuid::Uuid;

/// Which hold store a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Redis,
    /// The test Redis Cluster (`BOXOFFICE_TEST_REDIS_CLUSTER`, 3 masters).
    Cluster,
}

pub async fn store(backend: Backend) -> Arc<dyn HoldStore> {
    match backend {
        Backend::Memory => Arc::new(MemoryStore::new()),
        Backend::Redis => Arc::new(RedisStore::connect(&testing::redis_url()).await.unwrap()),
        Backend::Cluster => Arc::new(cluster_store().await),
    }
}

/// The test Redis Cluster, as the service finds it (`redis.url` with `redis.cluster = true`).
pub fn cluster_target() -> platform::service::RedisTarget {
    platform::service::RedisSettings::cluster(testing::redis_cluster())
        .target()
        .unwrap()
        .unwrap()
}

/// A hold store on the test Redis Cluster.
pub async fn cluster_store() -> RedisStore {
    let store = RedisStore::connect_to(&cluster_target())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the test Redis Cluster (BOXOFFICE_TEST_REDIS_CLUSTER={}): {e}",
                testing::redis_cluster()
            )
        });
    assert!(store.is_cluster());
    store
}

pub struct App {
    pub server: TestServer,
    pub infra: Infra,
    pub issuer: TestIssuer,
    pub pass_key: SigningKey,
    pub store: Arc<dyn HoldStore>,
}

/// Spawns the service; seat-map reads are always at the latest version (tests compare them).
pub async fn spawn(backend: Backend, mut config: Config) -> App {
    config.seat_map_max_stale_ms = 0;
    spawn_configured(store(backend).await, config).await
}

/// Spawns the service on `store` with `config` exactly as given (no freshness override).
pub async fn spawn_configured(store: Arc<dyn HoldStore>, config: Config) -> App {
    // Warnings and errors show in a failed test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let infra = testing::infra("seat");
    infra
        .bus
        .ensure_topics(contracts::topics::ALL)
        .await
        .unwrap();
    let issuer = TestIssuer::default();
    let pass_key = SigningKey::generate(format!("adm-{}", Uuid::now_v7().simple()));
    let overrides = Overrides {
        verifier: Some(issuer.verifier()),
        passes: Some(PassVerifier::from_jwks(&[pass_key.public_jwk().unwrap()])),
        store: Some(store.clone()),
    };
    let service = seat::start_with(&config, &infra, overrides).await.unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    App {
        server,
        infra,
        issuer,
        pass_key,
        store,
    }
}

impl App {
    /// Publishes `event` in a new envelope; returns the envelope (its id is what the
    /// consumer's inbox records, see [`handled`]).
    pub async fn publish<E: Event>(&self, event: &E) -> Envelope {
        let envelope = Envelope::new(event).unwrap();
        self.publish_envelope(E::TOPIC, &envelope).await;
        envelope
    }

    /// Publishes `envelope` as is (the same id again is a transport redelivery).
    pub async fn publish_envelope(&self, topic: &str, envelope: &Envelope) {
        self.infra.bus.publish(topic, envelope).await.unwrap();
    }

    /// Publishes `p` as the catalog does: its `performance.seats` chunks, then its
    /// `performance.published` header; returns the header's envelope.
    pub async fn publish_spec(&self, p: &PerformanceSpec) -> Envelope {
        let envelopes = p.envelopes().unwrap();
        for e in &envelopes {
            self.publish_envelope(contracts::topics::CATALOG, e).await;
        }
        envelopes.last().unwrap().clone()
    }

    /// Publishes `p` ([`App::publish_spec`]) and waits until the seat map serves its revision.
    pub async fn publish_performance(&self, p: &PerformanceSpec) {
        self.publish_spec(p).await;
        let url = self
            .server
            .url(&format!("/api/v1/performances/{}/seats", p.performance_id));
        let pass = self.pass(Uuid::nil(), p.performance_id);
        let client = self.server.client.clone();
        let revision = p.revision;
        testing::eventually(
            "the performance to be served",
            Duration::from_secs(10),
            || {
                let (client, url, pass) = (client.clone(), url.clone(), pass.clone());
                async move {
                    match client
                        .get(&url)
                        .header("x-admission-pass", pass)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => r
                            .json::<serde_json::Value>()
                            .await
                            .is_ok_and(|b| b["revision"] == revision),
                        _ => false,
                    }
                }
            },
        )
        .await;
    }

    pub fn token(&self, user: Uuid) -> String {
        self.issuer.token(user, &[Role::Buyer])
    }

    pub fn pass(&self, user: Uuid, perf: Uuid) -> String {
        let now = chrono::Utc::now().timestamp();
        admission_pass::sign(&self.pass_key, &AdmissionClaims::new(user, perf, now, 600)).unwrap()
    }

    pub async fn seats(&self, perf: Uuid) -> serde_json::Value {
        let r = self
            .server
            .client
            .get(
                self.server
                    .url(&format!("/api/v1/performances/{perf}/seats")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn hold(&self, user: Uuid, body: serde_json::Value) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url("/api/v1/holds"))
            .bearer_auth(self.token(user))
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// A performance with `rows` × `per_row` seats in section `A` (rows 1–2 grade `vip`, the rest
/// `r`; rank = row), and a general-admission area `GA` of 50.
pub fn performance(rows: i32, per_row: i32, ticket_limit: i32) -> PerformanceSpec {
    let mut seats = Vec::new();
    for row in 1..=rows {
        for n in 1..=per_row {
            seats.push(SeatSpec {
                seat_id: format!("A-{row:02}-{n:02}"),
                section: "A".into(),
                row: format!("{row:02}"),
                number: n,
                grade: if row <= 2 { "vip".into() } else { "r".into() },
                rank: row,
                wheelchair: n == 1,
                table: None,
                companion_of: None,
            });
        }
    }
    let now = chrono::Utc::now();
    PerformanceSpec {
        performance_id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        venue_id: Uuid::now_v7(),
        starts_at: now + chrono::Duration::days(30),
        ticket_limit,
        waiting_room: false,
        sale_opens_at: now,
        sale_closes_at: now + chrono::Duration::days(29),
        seats,
        areas: vec![AreaSpec {
            area_id: "GA".into(),
            grade: "ga".into(),
            capacity: 50,
        }],
        prices: vec![
            PriceSpec {
                grade: "vip".into(),
                name: "VIP".into(),
                price_krw: 150_000,
                ticket_types: vec![],
            },
            PriceSpec {
                grade: "r".into(),
                name: "R".into(),
                price_krw: 100_000,
                ticket_types: vec![],
            },
            PriceSpec {
                grade: "ga".into(),
                name: "Standing".into(),
                price_krw: 50_000,
                ticket_types: vec![],
            },
        ],
        revision: 1,
        presale: None,
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    /// The version part of the event id (`<epoch>-<version>`).
    pub id: u64,
    /// The whole event id, as a client sends it back in `Last-Event-ID`.
    pub raw_id: String,
    pub data: serde_json::Value,
}

/// Reads a `text/event-stream` response event by event.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// Opens the stream, resuming after `last_event_id` (a version of the current epoch).
    pub async fn open(app: &App, perf: Uuid, last_event_id: Option<u64>) -> Self {
        let raw = match last_event_id {
            Some(v) => {
                let epoch = app.seats(perf).await["epoch"].as_str().unwrap().to_owned();
                Some(format!("{epoch}-{v}"))
            }
            None => None,
        };
        Self::open_raw(app, perf, raw.as_deref()).await
    }

    /// Opens the stream with `Last-Event-ID: last_event_id` as given.
    pub async fn open_raw(app: &App, perf: Uuid, last_event_id: Option<&str>) -> Self {
        let mut req = app.server.client.get(
            app.server
                .url(&format!("/api/v1/performances/{perf}/seats/stream")),
        );
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), within 10 s.
    pub async fn next(&mut self) -> Sse {
        tokio::time::timeout(Duration::from_secs(10), self.next_inner())
            .await
            .expect("an event within 10 s")
    }

    async fn next_inner(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(raw_id) = id {
                    let (_, version) = raw_id.rsplit_once('-').expect("id is <epoch>-<version>");
                    return Sse {
                        event,
                        id: version.parse().unwrap(),
                        raw_id,
                        data: serde_json::from_str(&data).unwrap(),
                    };
                }
                continue;
            }
            let chunk = self.response.chunk().await.unwrap().expect("stream open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

impl App {
    /// Another replica of the service on the same SeatDB and bus, with `store`.
    pub async fn replica(&self, store: Arc<dyn HoldStore>) -> TestServer {
        let mut infra = self.infra.clone();
        infra.shutdown = tokio_util::sync::CancellationToken::new();
        let overrides = Overrides {
            verifier: Some(self.issuer.verifier()),
            passes: Some(PassVerifier::from_jwks(&[self
                .pass_key
                .public_jwk()
                .unwrap()])),
            store: Some(store),
        };
        let config = Config {
            seat_map_max_stale_ms: 0,
            ..Config::default()
        };
        let service = seat::start_with(&config, &infra, overrides).await.unwrap();
        testing::serve(service, infra.shutdown.clone()).await
    }
}

/// What the service's consumer did with one event, read from its own database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Not yet (or a redelivery of an id already in the inbox, which leaves no new row).
    Pending,
    /// Applied: its id is in `bus_inbox`.
    Applied,
    /// Rejected: its id is in `bus_dead_letters`, with the handler's reason.
    DeadLettered(String),
}

/// Where the seat consumer stands with event `id`. A dead-lettered event has its inbox row too
/// (written in the same transaction), so the dead letters are looked at first.
pub async fn handled(pool: &sqlx::PgPool, id: Uuid) -> Handled {
    // One statement, one snapshot: a dead letter and its inbox row commit together, so two
    // separate reads could see the inbox row without the dead letter written with it.
    let (rejected, applied): (Option<String>, bool) = sqlx::query_as(
        "SELECT (SELECT error FROM bus_dead_letters WHERE consumer = $1 AND event_id = $2), \
                EXISTS (SELECT 1 FROM bus_inbox WHERE consumer = $1 AND event_id = $2)",
    )
    .bind(seat::NAME)
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    match (rejected, applied) {
        (Some(reason), _) => Handled::DeadLettered(reason),
        (None, true) => Handled::Applied,
        (None, false) => Handled::Pending,
    }
}

/// Waits until the consumer has applied or dead-lettered event `id`; returns which.
pub async fn wait_handled(pool: &sqlx::PgPool, id: Uuid) -> Handled {
    let seen = Arc::new(std::sync::Mutex::new(Handled::Pending));
    testing::eventually(
        &format!("event {id} to be handled"),
        Duration::from_secs(10),
        || {
            let seen = seen.clone();
            async move {
                let now = handled(pool, id).await;
                let done = now != Handled::Pending;
                *seen.lock().unwrap() = now;
                done
            }
        },
    )
    .await;
    seen.lock().unwrap().clone()
}

/// A hold store whose change log can be closed to readers: while closed, `changes_after` waits
/// at the gate (a replica's follower falls behind). Everything else goes straight through.
pub struct Gated {
    pub inner: Arc<dyn HoldStore>,
    open: tokio::sync::watch::Sender<bool>,
    parked: std::sync::atomic::AtomicUsize,
    truncated: std::sync::atomic::AtomicUsize,
}

impl Gated {
    pub fn new(inner: Arc<dyn HoldStore>) -> Self {
        Self {
            inner,
            open: tokio::sync::watch::channel(true).0,
            parked: std::sync::atomic::AtomicUsize::new(0),
            truncated: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn close(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Readers waiting at the closed gate.
    pub fn parked(&self) -> usize {
        self.parked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reads the store answered with `Changes::Truncated`.
    pub fn truncated(&self) -> usize {
        self.truncated.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Counts a parked reader for as long as it waits (also when its future is dropped).
struct Parked<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl HoldStore for Gated {
    async fn install_with_records(
        &self,
        inventory: &StoreInventory,
        sold: Option<&[Hold]>,
        withheld: &[String],
    ) -> Result<Option<Change>, StoreError> {
        self.inner
            .install_with_records(inventory, sold, withheld)
            .await
    }
    async fn withhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError> {
        self.inner.withhold(performance_id, seat_ids).await
    }
    async fn unwithhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError> {
        self.inner.unwithhold(performance_id, seat_ids).await
    }
    async fn live_holds(&self, performance_id: Uuid) -> Result<u64, StoreError> {
        self.inner.live_holds(performance_id).await
    }
    async fn hold(&self, hold: &Hold) -> Result<Change, StoreError> {
        self.inner.hold(hold).await
    }
    async fn release(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        reason: HoldStatus,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        self.inner.release(performance_id, hold_id, reason).await
    }
    async fn abandon(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        self.inner.abandon(performance_id, hold_id).await
    }
    async fn expire_next(
        &self,
        performance_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        self.inner.expire_next(performance_id).await
    }
    async fn read_events(
        &self,
        performance_id: Uuid,
        reader: &EventReader,
        max: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        self.inner.read_events(performance_id, reader, max).await
    }
    async fn ack_events(&self, performance_id: Uuid, ids: &[String]) -> Result<(), StoreError> {
        self.inner.ack_events(performance_id, ids).await
    }
    async fn checkout(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        ttl_ms: i64,
    ) -> Result<Hold, StoreError> {
        self.inner.checkout(performance_id, hold_id, ttl_ms).await
    }
    async fn confirm(&self, sale: &Hold) -> Result<Confirmed, StoreError> {
        self.inner.confirm(sale).await
    }
    async fn restore(&self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        self.inner.restore(sale).await
    }
    async fn unsell(&self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        self.inner.unsell(sale).await
    }
    async fn find_hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        self.inner.find_hold(hold_id).await
    }
    async fn find_hold_in(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<Hold>, StoreError> {
        self.inner.find_hold_in(performance_id, hold_id).await
    }
    async fn snapshot(&self, performance_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.inner.snapshot(performance_id).await
    }
    async fn changes_after(
        &self,
        performance_id: Uuid,
        after: u64,
        wait: Duration,
    ) -> Result<Changes, StoreError> {
        let mut open = self.open.subscribe();
        if !*open.borrow_and_update() {
            self.parked
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _parked = Parked(&self.parked);
            let _ = open.wait_for(|o| *o).await;
        }
        let read = self.inner.changes_after(performance_id, after, wait).await;
        if matches!(read, Ok(Changes::Truncated)) {
            self.truncated
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        read
    }
}

/// Makes `changes` changes on `store` (not through any replica), by holding and releasing each
/// of `seats` in turn, the seats concurrently. Every change is one version.
pub async fn churn(store: &dyn HoldStore, perf: Uuid, seats: &[&str], changes: usize) {
    let per_seat = changes / seats.len();
    assert_eq!(
        per_seat * seats.len(),
        changes,
        "changes divide among the seats"
    );
    assert_eq!(per_seat % 2, 0, "each seat ends available");
    let runs = seats.iter().map(|seat| async move {
        for _ in 0..per_seat / 2 {
            let h = Hold {
                hold_id: Uuid::now_v7(),
                performance_id: perf,
                buyer_id: Uuid::now_v7(),
                seat_ids: vec![(*seat).to_owned()],
                areas: Vec::new(),
                amount_krw: 0,
                expires_at_ms: i64::MAX / 4,
                status: HoldStatus::Active,
                presale_limit: None,
            };
            assert!(store.hold(&h).await.unwrap().version > 0);
            let ended = store
                .release(perf, h.hold_id, HoldStatus::Released)
                .await
                .unwrap();
            assert!(ended.is_some());
        }
    });
    futures::future::join_all(runs).await;
}

/// An observer of the seat topic: subscribe before making the events it waits for.
pub struct Observer(Box<dyn platform::bus::Subscription>);

impl Observer {
    pub async fn seats(app: &App) -> Self {
        let group = format!("test-observer-{}", Uuid::now_v7().simple());
        let sub = app
            .infra
            .bus
            .subscribe(&group, &[contracts::topics::SEATS])
            .await
            .unwrap();
        Self(sub)
    }

    /// The next `E` for which `pred` holds, within 10 s.
    pub async fn next<E: Event>(&mut self, pred: impl Fn(&E) -> bool) -> E {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let d = self.0.next().await.unwrap();
                if d.envelope.is::<E>() {
                    let e: E = d.envelope.decode().unwrap();
                    if pred(&e) {
                        return e;
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {} within 10 s", E::TYPE))
    }
}
