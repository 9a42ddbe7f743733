//! Spawning the admission service (and, for the end-to-end tests, the seat service and the
//! gateway in front of both) against fresh databases and the in-memory bus.

use std::{sync::Arc, time::Duration};

use admission::{
    Config, Overrides,
    store::{QueueStore, memory::MemoryQueueStore, redis::RedisQueueStore},
};
use contracts::{
    Envelope,
    events::{AreaSpec, PerformanceSpec, PriceSpec, SeatSpec},
};
use platform::{
    auth::Role,
    service::Infra,
    testing::{self, TestIssuer, TestServer},
};
use serde_json::Value;
use uuid::Uuid;

/// Which queue store a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Redis,
}

pub async fn store(backend: Backend) -> Arc<dyn QueueStore> {
    match backend {
        Backend::Memory => Arc::new(MemoryQueueStore::new()),
        Backend::Redis => Arc::new(
            RedisQueueStore::connect_in(
                &testing::redis_url(),
                &format!("test-{}:", Uuid::new_v4().simple()),
            )
            .await
            .unwrap(),
        ),
    }
}

pub struct App {
    pub server: TestServer,
    pub infra: Infra,
    pub issuer: TestIssuer,
    pub client: reqwest::Client,
    /// A client address of this test's own (`X-Forwarded-For` from loopback is believed), so
    /// per-address limits of tests running together never meet.
    pub address: String,
    /// The organizer account that owns every performance [`App::publish_performance`]
    /// publishes (its token: [`App::organizer`]).
    pub owner: Uuid,
    /// The service's queue store (tests act as a replica's admitter on it).
    pub store: Arc<dyn QueueStore>,
}

fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Settings for tests: a fast admitter.
pub fn config() -> Config {
    Config {
        tick_ms: 20,
        reload_ms: 50,
        // Tests poll far faster than a fan is told to; the limits have tests of their own.
        status_limit_per_account: 0,
        join_limit_per_address: 100_000,
        // Exact pauses, so tests can compare them (the spread has a unit test).
        poll_jitter: 0.0,
        ..Config::default()
    }
}

/// Spawns the admission service on `backend` with `config`.
pub async fn spawn(backend: Backend, config: Config) -> App {
    spawn_with_services(backend, config, &[]).await
}

/// [`spawn`] with `services` (name, base URLs) in its directory.
pub async fn spawn_with_services(
    backend: Backend,
    config: Config,
    services: &[(&str, String)],
) -> App {
    trace();
    let mut infra = testing::infra("adm");
    for (name, url) in services {
        infra.directory.0.insert((*name).to_owned(), url.clone());
    }
    infra
        .bus
        .ensure_topics(contracts::topics::ALL)
        .await
        .unwrap();
    let issuer = TestIssuer::default();
    let store = store(backend).await;
    let overrides = Overrides {
        verifier: Some(issuer.verifier()),
        store: Some(store.clone()),
    };
    let service = admission::start_with(&config, &infra, overrides)
        .await
        .unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    App {
        server,
        infra,
        issuer,
        client: reqwest::Client::new(),
        address: random_address(),
        owner: Uuid::now_v7(),
        store,
    }
}

pub fn random_address() -> String {
    let b = Uuid::new_v4().into_bytes();
    format!("10.{}.{}.{}", b[0], b[1], b[2])
}

/// A performance with 2 × 4 seats in section `A` and a waiting room whose sale opens at
/// `opens_in` from now (negative: already open).
pub fn performance(opens_in: chrono::Duration) -> PerformanceSpec {
    let now = chrono::Utc::now();
    let seats = (1..=2)
        .flat_map(|row| {
            (1..=4).map(move |n| SeatSpec {
                seat_id: format!("A-{row:02}-{n:02}"),
                section: "A".into(),
                row: format!("{row:02}"),
                number: n,
                grade: "r".into(),
                rank: row,
                wheelchair: false,
                table: None,
                companion_of: None,
            })
        })
        .collect();
    PerformanceSpec {
        performance_id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        venue_id: Uuid::now_v7(),
        starts_at: now + chrono::Duration::days(30),
        ticket_limit: 4,
        waiting_room: true,
        sale_opens_at: now + opens_in,
        sale_closes_at: now + chrono::Duration::days(29),
        seats,
        areas: vec![AreaSpec {
            area_id: "GA".into(),
            grade: "r".into(),
            capacity: 10,
        }],
        prices: vec![PriceSpec {
            grade: "r".into(),
            name: "R".into(),
            price_krw: 100_000,
            ticket_types: vec![],
        }],
        revision: 1,
        presale: None,
    }
}

impl App {
    /// Publishes `envelope` on `topic`.
    pub async fn publish_envelope(&self, topic: &str, envelope: &Envelope) {
        self.infra.bus.publish(topic, envelope).await.unwrap();
    }

    /// Publishes `p` as the catalog does, owned by [`App::owner`], and waits until its room
    /// answers.
    pub async fn publish_performance(&self, p: &PerformanceSpec) {
        let (chunks, mut header) = p.split().unwrap();
        header.organizer_id = Some(self.owner);
        for chunk in &chunks {
            let e = Envelope::new(chunk).unwrap();
            self.publish_envelope(contracts::topics::CATALOG, &e).await;
        }
        let e = Envelope::new(&header).unwrap();
        self.publish_envelope(contracts::topics::CATALOG, &e).await;
        let url = self.url(&format!(
            "/api/v1/performances/{}/queue/draw",
            p.performance_id
        ));
        let client = self.client.clone();
        let guarded = p.waiting_room;
        testing::eventually("the room to exist", Duration::from_secs(10), || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let Ok(r) = client.get(&url).send().await else {
                    return false;
                };
                if guarded {
                    return r.status() == 200;
                }
                r.json::<Value>()
                    .await
                    .is_ok_and(|b| b["code"] == "no_waiting_room")
            }
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn token(&self, user: Uuid) -> String {
        self.issuer.token(user, &[Role::Buyer])
    }

    /// A token of the organizer who owns the performances this app publishes.
    pub fn organizer(&self) -> String {
        self.issuer.token(self.owner, &[Role::Organizer])
    }

    /// A token of an organizer who owns none of them.
    pub fn other_organizer(&self) -> String {
        self.issuer.token(Uuid::now_v7(), &[Role::Organizer])
    }

    /// `POST .../queue` as `user`: status and body.
    pub async fn join(&self, perf: Uuid, user: Uuid) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(&format!("/api/v1/performances/{perf}/queue")))
            .bearer_auth(self.token(user))
            .header("x-forwarded-for", &self.address)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// `GET .../queue/{token}` as `user`: status and body.
    pub async fn status(&self, perf: Uuid, user: Uuid, token: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(&format!("/api/v1/performances/{perf}/queue/{token}")))
            .bearer_auth(self.token(user))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Polls the place of `token` until `status` is `want`; answers the last body.
    pub async fn until(&self, perf: Uuid, user: Uuid, token: &str, want: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = self.status(perf, user, token).await;
            assert_eq!(code, 200, "{body}");
            if body["status"] == want {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for `{want}`: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the place of `token` until it has a position in the queue (the draw ran).
    pub async fn until_in_line(&self, perf: Uuid, user: Uuid, token: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = self.status(perf, user, token).await;
            assert_eq!(code, 200, "{body}");
            if body["position"].is_u64() {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still not in line: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An operator's call: method, path, optional JSON body.
    pub async fn admin(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}
