//! Spawning seat, payment and order together on one bus, publishing a performance, and walking
//! a buyer through hold → order → PG checkout → confirm.

use std::{sync::Arc, time::Duration};

use contracts::{
    Envelope, Event,
    events::{AreaSpec, PerformanceSpec, PriceSpec, SeatSpec},
};
use payment::gateway::toss::{Timeouts, Toss};
use platform::{
    auth::Role,
    bus::{Transport, memory::MemoryTransport},
    service::Infra,
    testing::{self, TestIssuer, TestServer},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub const SECRET: &str = "test_sk_order_tests";

pub struct App {
    pub order: TestServer,
    pub seat: TestServer,
    pub payment: TestServer,
    pub pg: fakes::pg::Running,
    pub issuer: TestIssuer,
    pub bus: Arc<dyn Transport>,
    pub order_infra: Infra,
    pub orderdb: PgPool,
    pub seatdb: PgPool,
    pub paydb: PgPool,
}

async fn pool(infra: &Infra, service: &str) -> PgPool {
    let url = format!(
        "{}/{}{service}",
        infra.database_url.clone().unwrap(),
        infra.database.name_prefix
    );
    PgPool::connect(&url).await.unwrap()
}

pub fn config() -> order::Config {
    order::Config {
        sweep_interval_ms: 50,
        stuck_after_ms: 500,
        ..order::Config::default()
    }
}

pub async fn spawn() -> App {
    spawn_with(config()).await
}

pub async fn spawn_with(config: order::Config) -> App {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let bus: Arc<dyn Transport> = Arc::new(MemoryTransport::new(4));
    bus.ensure_topics(contracts::topics::ALL).await.unwrap();
    let issuer = TestIssuer::default();

    let seat_infra = testing::infra_with_bus("ordseat", bus.clone());
    let seat_service = seat::start_with(
        &seat::Config::default(),
        &seat_infra,
        seat::Overrides {
            verifier: Some(issuer.verifier()),
            passes: Some(seat::admission_pass::PassVerifier::from_jwks(&[])),
            store: Some(Arc::new(seat::store::memory::MemoryStore::new())),
        },
    )
    .await
    .unwrap();
    let seat = testing::serve(seat_service, seat_infra.shutdown.clone()).await;

    let mut options = fakes::pg::Options::default();
    options.secret_keys.push(SECRET.to_owned());
    let pg = fakes::pg::spawn(options).await.unwrap();
    let pay_infra = testing::infra_with_bus("ordpay", bus.clone());
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        request: Duration::from_millis(2_000),
    };
    let mut pay_config = payment::Config::default();
    pay_config.settle.interval_ms = 20;
    pay_config.settle.first_backoff_ms = 50;
    let pay_service = payment::start_with(
        &pay_config,
        &pay_infra,
        payment::Overrides {
            verifier: Some(issuer.verifier()),
            gateway: Some(Arc::new(Toss::new(&pg.base_url, SECRET, timeouts).unwrap())),
        },
    )
    .await
    .unwrap();
    let payment = testing::serve(pay_service, pay_infra.shutdown.clone()).await;

    let mut order_infra = testing::infra_with_bus("order", bus.clone());
    order_infra
        .directory
        .0
        .insert("seat".into(), seat.base_url.clone());
    let service = order::start_with(
        &config,
        &order_infra,
        order::Overrides {
            verifier: Some(issuer.verifier()),
        },
    )
    .await
    .unwrap();
    let order = testing::serve(service, order_infra.shutdown.clone()).await;
    App {
        orderdb: pool(&order_infra, "order").await,
        seatdb: pool(&seat_infra, "seat").await,
        paydb: pool(&pay_infra, "payment").await,
        order,
        seat,
        payment,
        pg,
        issuer,
        bus,
        order_infra,
    }
}

/// Waits for `condition`, up to 15 s.
pub async fn until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    testing::eventually(what, Duration::from_secs(15), condition).await;
}

/// A performance starting in `days` days: seats `A-01-01`… (`vip`, ₩150,000) and standing `GA`
/// (₩50,000).
pub fn performance(days: i64) -> PerformanceSpec {
    let now = chrono::Utc::now();
    PerformanceSpec {
        performance_id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        venue_id: Uuid::now_v7(),
        starts_at: now + chrono::Duration::days(days),
        ticket_limit: 6,
        waiting_room: false,
        sale_opens_at: now - chrono::Duration::hours(1),
        sale_closes_at: now + chrono::Duration::days(days),
        seats: (1..=8)
            .map(|n| SeatSpec {
                seat_id: format!("A-01-{n:02}"),
                section: "A".into(),
                row: "01".into(),
                number: n,
                grade: "vip".into(),
                rank: 1,
                wheelchair: false,
                table: None,
                companion_of: None,
            })
            .collect(),
        areas: vec![AreaSpec {
            area_id: "GA".into(),
            grade: "ga".into(),
            capacity: 20,
        }],
        prices: vec![
            PriceSpec {
                grade: "vip".into(),
                name: "VIP".into(),
                price_krw: 150_000,
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

/// A response's status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: r.json().await.unwrap_or(Value::Null),
    }
}

impl App {
    /// Stops the order service (its consumer, sweeper and relay with it) and starts it again on
    /// the same OrderDB and bus, as after a crash.
    pub async fn restart_order(&mut self, config: &order::Config) {
        self.order.shutdown.cancel();
        let mut infra = self.order_infra.clone();
        infra.shutdown = tokio_util::sync::CancellationToken::new();
        let service = order::start_with(
            config,
            &infra,
            order::Overrides {
                verifier: Some(self.issuer.verifier()),
            },
        )
        .await
        .unwrap();
        self.order = testing::serve(service, infra.shutdown.clone()).await;
        self.order_infra = infra;
    }

    pub fn token(&self, user: Uuid) -> String {
        self.issuer.token(user, &[Role::Buyer])
    }

    pub async fn publish<E: Event>(&self, event: &E) -> Envelope {
        let envelope = Envelope::new(event).unwrap();
        self.bus.publish(E::TOPIC, &envelope).await.unwrap();
        envelope
    }

    /// Publishes `p` as the catalog does and waits until seat and order both know it.
    pub async fn publish_performance(&self, p: &PerformanceSpec) {
        self.publish_performance_of(p, None).await;
    }

    /// [`App::publish_performance`] with the event owned by organizer `owner`.
    pub async fn publish_performance_of(&self, p: &PerformanceSpec, owner: Option<Uuid>) {
        let (chunks, mut header) = p.split().unwrap();
        header.organizer_id = owner;
        let mut envelopes: Vec<Envelope> =
            chunks.iter().map(|c| Envelope::new(c).unwrap()).collect();
        envelopes.push(Envelope::new(&header).unwrap());
        for e in envelopes {
            self.bus
                .publish(contracts::topics::CATALOG, &e)
                .await
                .unwrap();
        }
        let url = self
            .seat
            .url(&format!("/api/v1/performances/{}/seats", p.performance_id));
        until("the seat service to serve the performance", || async {
            self.seat
                .client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        until("the order service to know the performance", || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM performances WHERE performance_id = $1",
            )
            .bind(p.performance_id)
            .fetch_one(&self.orderdb)
            .await
            .unwrap()
                == 1
        })
        .await;
    }

    /// A hold of `seats` for `buyer`: its id.
    pub async fn hold(&self, buyer: Uuid, perf: Uuid, seats: &[&str]) -> Uuid {
        let r = self
            .seat
            .client
            .post(self.seat.url("/api/v1/holds"))
            .bearer_auth(self.token(buyer))
            .json(&json!({"performance_id": perf, "seat_ids": seats}))
            .send()
            .await
            .unwrap();
        let a = answer(r).await;
        assert_eq!(a.status, 201, "{a:?}");
        Uuid::parse_str(a.body["hold_id"].as_str().unwrap()).unwrap()
    }

    /// `POST /api/v1/orders` with `token` and `key`.
    pub async fn create_raw(&self, token: Option<&str>, key: Option<&str>, body: Value) -> Answer {
        let mut r = self
            .order
            .client
            .post(self.order.url("/api/v1/orders"))
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        answer(r.send().await.unwrap()).await
    }

    pub async fn create(&self, buyer: Uuid, key: &str, hold: Uuid) -> Answer {
        self.create_raw(
            Some(&self.token(buyer)),
            Some(key),
            json!({"hold_id": hold}),
        )
        .await
    }

    /// A new order for `buyer` of `seats`: its id and amount.
    pub async fn order_of(&self, buyer: Uuid, perf: Uuid, seats: &[&str]) -> (Uuid, i64) {
        let hold = self.hold(buyer, perf, seats).await;
        let a = self.create(buyer, &format!("k-{hold}"), hold).await;
        assert_eq!(a.status, 201, "{a:?}");
        (
            Uuid::parse_str(a.body["order_id"].as_str().unwrap()).unwrap(),
            a.body["amount"].as_i64().unwrap(),
        )
    }

    pub async fn get(&self, token: &str, path: &str) -> Answer {
        let r = self
            .order
            .client
            .get(self.order.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Answer {
        let r = self
            .order
            .client
            .post(self.order.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn order(&self, buyer: Uuid, order: Uuid) -> Answer {
        self.get(&self.token(buyer), &format!("/api/v1/orders/{order}"))
            .await
    }

    pub async fn status(&self, order: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM orders WHERE order_id = $1")
            .bind(order)
            .fetch_one(&self.orderdb)
            .await
            .unwrap()
    }

    pub async fn wait_status(&self, order: Uuid, status: &str) {
        until(&format!("order {order} to be {status}"), || async {
            self.status(order).await == status
        })
        .await;
    }

    /// Waits until the payment service knows the order.
    pub async fn wait_payable(&self, order: Uuid) {
        until("payments to know the order", || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE order_id = $1")
                .bind(order)
                .fetch_one(&self.paydb)
                .await
                .unwrap()
                == 1
        })
        .await;
    }

    /// The buyer pays at the PG's sandbox checkout and confirms: the confirm's answer.
    pub async fn pay(&self, buyer: Uuid, order: Uuid, amount: i64) -> Answer {
        self.wait_payable(order).await;
        let r = self
            .order
            .client
            .post(self.pg.url("/v1/sandbox/checkouts"))
            .json(&json!({"orderId": order.to_string(), "amount": amount, "outcome": "approved"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let key = r.json::<Value>().await.unwrap()["paymentKey"]
            .as_str()
            .unwrap()
            .to_owned();
        self.confirm(buyer, order, &key, amount).await
    }

    pub async fn confirm(
        &self,
        buyer: Uuid,
        order: Uuid,
        payment_key: &str,
        amount: i64,
    ) -> Answer {
        let r = self
            .payment
            .client
            .post(self.payment.url("/api/v1/payments/confirm"))
            .bearer_auth(self.token(buyer))
            .header("Idempotency-Key", format!("pay-{order}"))
            .json(&json!({"payment_key": payment_key, "order_id": order, "amount": amount}))
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// The seats SeatDB sold to `order`.
    pub async fn sold(&self, order: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT seat_id FROM sold_seats WHERE order_id = $1 ORDER BY seat_id")
            .bind(order)
            .fetch_all(&self.seatdb)
            .await
            .unwrap()
    }

    /// The envelopes of `event_type` OrderDB's outbox holds for `order`.
    pub async fn events(&self, order: Uuid, event_type: &str) -> Vec<Value> {
        sqlx::query_scalar(
            "SELECT envelope FROM bus_outbox WHERE key = $1 AND envelope->>'type' = $2 ORDER BY seq",
        )
        .bind(order.to_string())
        .bind(event_type)
        .fetch_all(&self.orderdb)
        .await
        .unwrap()
    }

    /// The order's record: `to` statuses in order.
    pub async fn history(&self, order: Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT to_status FROM order_transitions WHERE order_id = $1 ORDER BY seq",
        )
        .bind(order)
        .fetch_all(&self.orderdb)
        .await
        .unwrap()
    }

    pub async fn invariants(&self) -> order::invariants::Report {
        order::invariants::check(&self.orderdb, &self.seatdb, &self.paydb, 5)
            .await
            .unwrap()
    }
}
