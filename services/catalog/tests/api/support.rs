//! Starting the catalog for a test, signing tokens and reading its events.

use std::time::Duration;

use catalog::Clock;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    Envelope,
    events::{PerformancePublished, PerformanceSeats, PerformanceSpec},
    topics,
};
use platform::{
    auth::Role,
    bus::Subscription,
    http::Readiness,
    service::{Infra, Service},
    testing::{self, TestIssuer, TestServer},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// A running catalog.
pub struct App {
    pub server: TestServer,
    pub issuer: TestIssuer,
    pub pool: PgPool,
    pub infra: Infra,
    /// The service's clock.
    pub clock: Clock,
}

/// The catalog with an empty database (no seed), trusting a test issuer, on the real clock.
pub async fn spawn(label: &str) -> App {
    spawn_with(label, Clock::real()).await
}

/// [`spawn`] with the service reading `clock`.
pub async fn spawn_with(label: &str, clock: Clock) -> App {
    let infra = testing::infra(label);
    let pool = infra
        .database(catalog::NAME, &catalog::MIGRATOR)
        .await
        .expect("database");
    let issuer = TestIssuer::default();
    let state = catalog::AppState::new(pool.clone(), issuer.verifier()).with_clock(clock);
    let relay = infra.spawn_relay(catalog::NAME, pool.clone());
    let consumer = platform::bus::consumer::Consumer::new(
        catalog::NAME,
        pool.clone(),
        infra.bus.clone(),
        &[topics::SEATS],
    )
    .spawn(
        catalog::availability::CatalogHandler,
        infra.shutdown.clone(),
    );
    let service = Service {
        name: catalog::NAME,
        router: catalog::router(state),
        readiness: Readiness::default().postgres(pool.clone()),
        tasks: vec![relay, consumer],
    };
    let server = testing::serve(service, infra.shutdown.clone()).await;
    App {
        server,
        issuer,
        pool,
        infra,
        clock,
    }
}

/// Saturday 16 May 2026, 12:00 in Seoul: an awkward time for the seeded schedule. The day's
/// presale opened an hour ago, and the next one (for Monday's games, which do not exist) is two
/// days away.
pub fn saturday_noon() -> DateTime<Utc> {
    catalog::seed::schedule::seoul(date(2026, 5, 16), 12, 0)
}

/// The times a clock-dependent test runs at: 00:00, 11:00 (when KBO sales open) and 17:00 Seoul
/// time on each of the seven days from `first`.
pub fn week_of(first: NaiveDate) -> Vec<DateTime<Utc>> {
    (0..7)
        .flat_map(|d| {
            [0, 11, 17]
                .map(|h| catalog::seed::schedule::seoul(first + chrono::Duration::days(d), h, 0))
        })
        .collect()
}

/// A calendar date.
pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

impl App {
    /// The time on the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A token for a fresh user with `roles`.
    pub fn token(&self, roles: &[Role]) -> String {
        self.issuer.token(Uuid::now_v7(), roles)
    }

    /// A token for `user` with `roles`.
    pub fn token_for(&self, user: Uuid, roles: &[Role]) -> String {
        self.issuer.token(user, roles)
    }

    /// GET `path` → (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .server
            .client
            .get(self.server.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET `path` with a token.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .server
            .client
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `method` `path` with a JSON body and an optional token → (status, content type, body).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, String, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .server
            .client
            .request(method, self.server.url(path))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ctype, r.json().await.unwrap_or(Value::Null))
    }

    /// Another catalog on the same database reading `clock` (as a second replica, or this one
    /// later), stopped with this one.
    pub async fn replica(&self, clock: Clock) -> TestServer {
        let state =
            catalog::AppState::new(self.pool.clone(), self.issuer.verifier()).with_clock(clock);
        let service = Service {
            name: catalog::NAME,
            router: catalog::router(state),
            readiness: Readiness::default().postgres(self.pool.clone()),
            tasks: vec![],
        };
        testing::serve(service, self.infra.shutdown.clone()).await
    }

    /// Joins a fresh consumer group on the catalog topic.
    pub async fn subscribe(&self) -> Box<dyn Subscription> {
        self.infra
            .bus
            .subscribe(&format!("test-{}", Uuid::now_v7()), &[topics::CATALOG])
            .await
            .expect("subscribe")
    }

    /// Stops the service and drops its database.
    pub async fn finish(self) {
        self.infra.shutdown.cancel();
        self.pool.close().await;
        drop_database(&self.infra).await;
    }
}

/// Drops the catalog database of `infra`.
pub async fn drop_database(infra: &Infra) {
    let name = format!("{}{}", infra.database.name_prefix, catalog::NAME);
    let admin = PgPool::connect(&format!("{}/postgres", testing::database_url()))
        .await
        .expect("admin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .expect("drop");
    admin.close().await;
}

/// The next envelope on `sub` of `event_type` whose key is `key`, within 30 s.
pub async fn next_event(sub: &mut Box<dyn Subscription>, event_type: &str, key: Uuid) -> Envelope {
    let wait = async {
        loop {
            let d = sub.next().await.expect("delivery");
            if d.envelope.event_type == event_type && d.envelope.key == key.to_string() {
                return d.envelope;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("event within 30 s")
}

/// The next publication of `key` on `sub`, within 30 s each: its `performance.seats` chunks and
/// the `performance.published` header after them, put back together; with the envelopes as they
/// came. Checks that each envelope is within the bus's limit and that the chunks came in order,
/// before their header.
pub async fn next_publication(
    sub: &mut Box<dyn Subscription>,
    key: Uuid,
) -> (PerformanceSpec, Vec<Envelope>) {
    let mut chunks: Vec<PerformanceSeats> = Vec::new();
    let mut envelopes = Vec::new();
    let wait = async {
        loop {
            let d = sub.next().await.expect("delivery");
            let env = d.envelope;
            if env.key != key.to_string() {
                continue;
            }
            let bytes = serde_json::to_vec(&env).expect("json").len();
            assert!(
                bytes <= platform::bus::outbox::MAX_ENVELOPE_BYTES,
                "{} of {bytes} bytes",
                env.event_type
            );
            if env.is::<PerformanceSeats>() {
                let chunk: PerformanceSeats = env.decode().expect("chunk");
                assert_eq!(chunk.chunk as usize, chunks.len(), "chunks out of order");
                chunks.push(chunk);
                envelopes.push(env);
            } else if env.is::<PerformancePublished>() {
                let header: PerformancePublished = env.decode().expect("header");
                envelopes.push(env);
                return header;
            }
        }
    };
    let header = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("a publication within 30 s");
    let spec = PerformanceSpec::assemble(&header, &chunks).expect("chunks and header agree");
    (spec, envelopes)
}

/// The `field` names listed in a problem's `errors`.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A small hall: two grades, a seated block of 3 rows and a standing area.
pub fn hall() -> Value {
    json!({
        "name": "테스트홀 Test Hall",
        "name_en": "Test Hall",
        "kind": "concert_hall",
        "city": "서울 Seoul",
        "plan": {"width": 400, "height": 300},
        "grades": [
            {"code": "r", "name": "R석", "color": "#cc0000", "rank": 0},
            {"code": "floor", "name": "스탠딩", "rank": 1}
        ],
        "areas": [
            {"code": "a", "name": "A구역", "grade": "r", "geometry": {"polygon": [[0, 0], [200, 0], [200, 100], [0, 100]]},
             "rows": [{"label": "A", "seats": 10}, {"label": "B", "seats": 10, "wheelchair": [1]}, {"label": "C", "seats": 8}]},
            {"code": "floor", "name": "스탠딩 구역", "grade": "floor", "kind": "standing", "capacity": 100,
             "geometry": {"position": {"x": 300, "y": 50}}}
        ]
    })
}

/// A draft concert at `venue_id` with one performance a week after `now`, on sale from `now`.
pub fn concert(venue_id: &str, now: DateTime<Utc>) -> Value {
    let starts = now + chrono::Duration::days(7);
    json!({
        "kind": "concert",
        "title": "테스트 콘서트 Test Concert",
        "venue_id": venue_id,
        "ticket_limit": 2,
        "waiting_room": true,
        "price_tiers": [{"grade": "r", "price_krw": 99000}, {"grade": "floor", "name": "스탠딩", "price_krw": 88000}],
        "performances": [{
            "starts_at": starts.to_rfc3339(),
            "sale_windows": [
                {"kind": "presale", "opens_at": (now - chrono::Duration::hours(1)).to_rfc3339(), "closes_at": (now + chrono::Duration::days(1)).to_rfc3339()},
                {"kind": "general", "opens_at": (now + chrono::Duration::days(1)).to_rfc3339(), "closes_at": starts.to_rfc3339()}
            ]
        }]
    })
}
