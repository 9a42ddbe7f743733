//! Spawning the service against a fresh PayDB and a sandbox PG, placing orders as the order
//! service would (events on the bus), paying them as a buyer would.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use contracts::{
    Envelope, Event,
    events::{OrderCreated, RefundRequested},
};
use fakes::pg::{Fault, Operation, Options, Rule};
use payment::{
    Config, Overrides,
    config::SettleSettings,
    gateway::{
        Cancel, Confirm, PaymentGateway, PgError, PgPayment,
        toss::{Timeouts, Toss},
    },
};
use platform::{
    auth::Role,
    service::Infra,
    testing::{self, TestIssuer, TestServer},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The secret key the tests' PG knows the service by.
pub const SECRET: &str = "test_sk_payment_tests";

/// Counts the calls that reach the PG, then makes them.
pub struct Counting {
    inner: Toss,
    pub confirms: AtomicU32,
    pub cancels: AtomicU32,
    pub lookups: AtomicU32,
    /// Calls under way now, and the most seen at once.
    pub in_flight: AtomicU32,
    pub max_in_flight: AtomicU32,
}

impl Counting {
    async fn counted<T>(&self, call: impl Future<Output = T>) -> T {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let out = call.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

#[async_trait]
impl PaymentGateway for Counting {
    async fn confirm(&self, c: &Confirm, key: &str) -> Result<PgPayment, PgError> {
        self.confirms.fetch_add(1, Ordering::SeqCst);
        self.counted(self.inner.confirm(c, key)).await
    }
    async fn payment_by_order(&self, order_id: Uuid) -> Result<Option<PgPayment>, PgError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.counted(self.inner.payment_by_order(order_id)).await
    }
    async fn payment(&self, key: &str) -> Result<Option<PgPayment>, PgError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.counted(self.inner.payment(key)).await
    }
    async fn cancel(&self, key: &str, c: &Cancel, idem: &str) -> Result<PgPayment, PgError> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        self.counted(self.inner.cancel(key, c, idem)).await
    }
}

pub struct App {
    pub server: TestServer,
    pub infra: Infra,
    pub issuer: TestIssuer,
    pub pg: Option<fakes::pg::Running>,
    pub pool: PgPool,
    pub calls: Arc<Counting>,
    pub config: Config,
}

/// Quick timeouts and a quick settler, so faults resolve within a test.
pub fn config() -> Config {
    let mut c = Config::default();
    c.pg.timeout_ms = 400;
    c.pg.connect_timeout_ms = 200;
    c.pg.breaker_failures = 3;
    c.pg.breaker_open_ms = 60_000;
    c.settle = SettleSettings {
        interval_ms: 20,
        first_backoff_ms: 50,
        max_backoff_ms: 200,
        max_attempts: 5,
        refund_max_attempts: 5,
    };
    c
}

/// A sandbox PG that knows [`SECRET`] and hangs its timeouts well past the service's.
pub fn pg_options() -> Options {
    let mut o = Options::default();
    o.secret_keys.push(SECRET.to_owned());
    o.hang = Duration::from_millis(1_500);
    o.slow = Duration::from_millis(1_500);
    o
}

pub async fn spawn() -> App {
    spawn_with(pg_options(), config()).await
}

/// The service in front of a PG at `pg_url` (e.g. a closed port).
pub async fn spawn_with(options: Options, config: Config) -> App {
    let pg = fakes::pg::spawn(options).await.unwrap();
    let url = pg.base_url.clone();
    spawn_on(pg, &url, config).await
}

pub async fn spawn_on(pg: fakes::pg::Running, pg_url: &str, config: Config) -> App {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let infra = testing::infra("payment");
    infra
        .bus
        .ensure_topics(contracts::topics::ALL)
        .await
        .unwrap();
    let issuer = TestIssuer::default();
    let timeouts = Timeouts {
        connect: Duration::from_millis(config.pg.connect_timeout_ms),
        request: Duration::from_millis(config.pg.timeout_ms),
    };
    let calls = Arc::new(Counting {
        inner: Toss::new(pg_url, SECRET, timeouts).unwrap(),
        confirms: AtomicU32::new(0),
        cancels: AtomicU32::new(0),
        lookups: AtomicU32::new(0),
        in_flight: AtomicU32::new(0),
        max_in_flight: AtomicU32::new(0),
    });
    let overrides = Overrides {
        verifier: Some(issuer.verifier()),
        gateway: Some(calls.clone()),
    };
    let service = payment::start_with(&config, &infra, overrides)
        .await
        .unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let pool = paydb(&infra).await;
    App {
        server,
        infra,
        issuer,
        pg: Some(pg),
        pool,
        calls,
        config,
    }
}

/// A pool on the service's PayDB.
pub async fn paydb(infra: &Infra) -> PgPool {
    let url = format!(
        "{}/{}payment",
        infra.database_url.clone().unwrap(),
        infra.database.name_prefix
    );
    PgPool::connect(&url).await.unwrap()
}

/// Waits for `condition`, up to 10 s.
pub async fn until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    testing::eventually(what, Duration::from_secs(10), condition).await;
}

/// A confirm's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl App {
    /// An app whose PG calls are not counted (the service built its own client).
    pub fn without_counting(
        server: TestServer,
        infra: Infra,
        issuer: TestIssuer,
        pool: PgPool,
        config: Config,
    ) -> Self {
        let timeouts = Timeouts {
            connect: Duration::from_millis(1),
            request: Duration::from_millis(1),
        };
        let calls = Arc::new(Counting {
            inner: Toss::new("http://127.0.0.1:9", SECRET, timeouts).unwrap(),
            confirms: AtomicU32::new(0),
            cancels: AtomicU32::new(0),
            lookups: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
        });
        Self {
            server,
            infra,
            issuer,
            pg: None,
            pool,
            calls,
            config,
        }
    }

    /// The checkout at the given PG.
    pub async fn checkout_at(
        &self,
        pg: &fakes::pg::Running,
        order_id: Uuid,
        amount: i64,
    ) -> String {
        let r = self
            .server
            .client
            .post(pg.url("/v1/sandbox/checkouts"))
            .json(
                &json!({"orderId": order_id.to_string(), "amount": amount, "outcome": "approved"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["paymentKey"].as_str().unwrap().to_owned()
    }

    pub fn fake(&self) -> &fakes::pg::Running {
        self.pg.as_ref().unwrap()
    }

    pub fn token(&self, user: Uuid) -> String {
        self.issuer.token(user, &[Role::Buyer])
    }

    pub async fn publish<E: Event>(&self, event: &E) -> Envelope {
        let envelope = Envelope::new(event).unwrap();
        self.infra.bus.publish(E::TOPIC, &envelope).await.unwrap();
        envelope
    }

    /// Places an order of `amount` for `buyer` lapsing in `ttl`, as the order service would,
    /// and waits until the payment service knows it.
    pub async fn order_lapsing(&self, buyer: Uuid, amount: i64, ttl: chrono::Duration) -> Uuid {
        let order_id = Uuid::now_v7();
        self.publish(&OrderCreated {
            order_id,
            buyer_id: buyer,
            hold_id: Uuid::now_v7(),
            performance_id: Uuid::now_v7(),
            amount_krw: amount,
            expires_at: chrono::Utc::now() + ttl,
        })
        .await;
        let pool = self.pool.clone();
        until("the order to reach payments", || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    == 1
            }
        })
        .await;
        order_id
    }

    pub async fn order(&self, buyer: Uuid, amount: i64) -> Uuid {
        self.order_lapsing(buyer, amount, chrono::Duration::minutes(10))
            .await
    }

    /// The buyer goes through the PG's checkout: the payment key the success redirect carries.
    pub async fn checkout(&self, order_id: Uuid, amount: i64) -> String {
        self.checkout_at(self.fake(), order_id, amount).await
    }

    /// `POST /api/v1/payments/confirm` with `token` and `key`.
    pub async fn confirm_raw(&self, token: Option<&str>, key: Option<&str>, body: Value) -> Answer {
        let mut r = self
            .server
            .client
            .post(self.server.url("/api/v1/payments/confirm"))
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = r.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// The buyer confirms `payment_key` for `order_id` and `amount` under `key`.
    pub async fn confirm(
        &self,
        buyer: Uuid,
        key: &str,
        payment_key: &str,
        order_id: Uuid,
        amount: i64,
    ) -> Answer {
        self.confirm_raw(
            Some(&self.token(buyer)),
            Some(key),
            json!({"payment_key": payment_key, "order_id": order_id, "amount": amount}),
        )
        .await
    }

    /// `GET /api/v1/payments/{order_id}` as `buyer`.
    pub async fn find(&self, buyer: Uuid, order_id: Uuid) -> (u16, Value) {
        let r = self
            .server
            .client
            .get(self.server.url(&format!("/api/v1/payments/{order_id}")))
            .bearer_auth(self.token(buyer))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The payment's status in PayDB.
    pub async fn status(&self, order_id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until the payment of `order_id` is `status`.
    pub async fn wait_status(&self, order_id: Uuid, status: &str) {
        until(&format!("payment of {order_id} to be {status}"), || async {
            self.status(order_id).await.as_deref() == Some(status)
        })
        .await;
    }

    /// How many events of `event_type` the service put in its outbox for `order_id`.
    pub async fn events(&self, order_id: Uuid, event_type: &str) -> Vec<Value> {
        sqlx::query_scalar(
            "SELECT envelope FROM bus_outbox WHERE key = $1 AND envelope->>'type' = $2 ORDER BY seq",
        )
        .bind(order_id.to_string())
        .bind(event_type)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// The PG's own record of `payment_key`.
    pub fn pg_payment(&self, payment_key: &str) -> Value {
        self.fake().control.payment(payment_key).unwrap()
    }

    /// Queues `fault` for the next `operation` on `order_id` at the PG.
    pub fn fault(&self, fault: Fault, operation: Operation, order_id: Uuid) {
        assert!(
            self.fake().control.inject(
                Rule::next(fault)
                    .on(operation)
                    .on_order(order_id.to_string())
            )
        );
    }

    pub fn confirms(&self) -> u32 {
        self.calls.confirms.load(Ordering::SeqCst)
    }

    pub fn cancels(&self) -> u32 {
        self.calls.cancels.load(Ordering::SeqCst)
    }

    pub fn lookups(&self) -> u32 {
        self.calls.lookups.load(Ordering::SeqCst)
    }

    /// A paid order of `amount`: `(buyer, order_id, payment_key)`.
    pub async fn paid(&self, amount: i64) -> (Uuid, Uuid, String) {
        let buyer = Uuid::now_v7();
        let order = self.order(buyer, amount).await;
        let key = self.checkout(order, amount).await;
        let a = self.confirm(buyer, "pay-1", &key, order, amount).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body["status"], "approved");
        (buyer, order, key)
    }

    /// Asks for a refund as the order service would.
    pub async fn request_refund(&self, order_id: Uuid, amount: Option<i64>) -> Uuid {
        let refund_id = Uuid::now_v7();
        self.publish(&RefundRequested {
            refund_id,
            order_id,
            amount_krw: amount,
            reason: "buyer_cancelled".into(),
        })
        .await;
        refund_id
    }

    /// The refund's status in PayDB.
    pub async fn refund_status(&self, refund_id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM refunds WHERE refund_key = $1")
            .bind(refund_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    pub async fn wait_refund(&self, refund_id: Uuid, status: &str) {
        until(&format!("refund {refund_id} to be {status}"), || async {
            self.refund_status(refund_id).await.as_deref() == Some(status)
        })
        .await;
    }
}
