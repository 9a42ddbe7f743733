//! Shared pieces of the bus contract suite: transports under test, test envelopes, a recording
//! handler, a fault-injecting transport wrapper and queries over what was handled.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use contracts::Envelope;
use platform::bus::{
    BusError, BusSettings, Delivery, Receipt, Subscription, Transport,
    consumer::{HandleError, Handler},
    kafka::KafkaTransport,
    memory::MemoryTransport,
};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

/// Generous deadline for conditions that involve a broker and consumer group joins.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Which transport a case runs against.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Memory,
    Kafka,
}

/// A fresh transport of `kind` with `partitions` per topic, plus a fresh topic created on it.
pub async fn transport(kind: Kind, partitions: i32) -> (Arc<dyn Transport>, String) {
    let transport: Arc<dyn Transport> = match kind {
        Kind::Memory => Arc::new(MemoryTransport::new(partitions)),
        Kind::Kafka => {
            Arc::new(KafkaTransport::new(&platform::testing::kafka_brokers(), partitions).unwrap())
        }
    };
    let topic = format!("bus-test-{}", Uuid::new_v4().simple());
    transport.ensure_topics(&[&topic]).await.unwrap();
    (transport, topic)
}

/// A unique consumer group / consumer name.
pub fn group(label: &str) -> String {
    format!("{label}-{}", Uuid::new_v4().simple())
}

/// Relay settings that make tests quick.
pub fn relay_settings(batch: i64) -> BusSettings {
    BusSettings {
        relay_batch: batch,
        relay_interval_ms: 100,
        ..BusSettings::default()
    }
}

/// Consumer settings that retry quickly: `attempts` attempts at most, 20 ms apart at most.
pub fn consumer_settings(attempts: u32) -> BusSettings {
    BusSettings {
        consumer_max_attempts: attempts,
        consumer_max_backoff_ms: 20,
        ..BusSettings::default()
    }
}

/// Envelope number `seq` of aggregate `key`, with extra payload fields (`poison`, `violate`,
/// `fail_times`).
pub fn envelope_with(key: &str, seq: i64, extra: serde_json::Value) -> Envelope {
    let mut payload = serde_json::json!({ "seq": seq });
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    Envelope {
        id: Uuid::now_v7(),
        event_type: "bus_test.happened".into(),
        version: 1,
        occurred_at: chrono::Utc::now(),
        key: key.into(),
        payload,
    }
}

/// Envelope number `seq` of aggregate `key`.
pub fn envelope(key: &str, seq: i64) -> Envelope {
    envelope_with(key, seq, serde_json::json!({}))
}

/// `keys` × `per_key` envelopes, interleaved across keys, `seq` counting per key.
pub fn interleaved(keys: usize, per_key: i64) -> Vec<Envelope> {
    let mut out = Vec::new();
    for seq in 0..per_key {
        for k in 0..keys {
            out.push(envelope(&format!("key-{k}"), seq));
        }
    }
    out
}

pub fn seq_of(envelope: &Envelope) -> i64 {
    envelope.payload["seq"].as_i64().unwrap()
}

/// The `seq` the handler writes for a `violate` event, which the table's CHECK refuses.
pub const VIOLATING_SEQ: i64 = -1000;

/// Creates the table the recording handler writes to. No uniqueness on `event_id`: a duplicate
/// application must show up as a second row.
pub async fn create_handled_table(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE handled (n BIGSERIAL PRIMARY KEY, replica TEXT NOT NULL, \
         event_id UUID NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL CHECK (seq > -1000))",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A handler that records each event in `handled` and can be told to misbehave:
/// payload `poison: true` → reject (domain code `poison`); `violate: true` → record the event,
/// then break the table's CHECK constraint (SQLSTATE 23514, through `?`); `fail_times: n` → fail
/// transiently the first n attempts; `hang_on` → the first attempt on that event never finishes.
#[derive(Clone, Default)]
pub struct Recorder {
    pub replica: String,
    pub attempts: Arc<Mutex<HashMap<Uuid, u64>>>,
    pub hang_on: Option<Uuid>,
    pub hanging: Arc<AtomicBool>,
}

impl Recorder {
    pub fn new(replica: &str) -> Self {
        Self {
            replica: replica.into(),
            ..Self::default()
        }
    }

    pub fn attempts(&self, id: Uuid) -> u64 {
        self.attempts.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, tx: &mut PgConnection, envelope: &Envelope) -> Result<(), HandleError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(envelope.id).or_insert(0);
            *n += 1;
            *n
        };
        if envelope.payload["poison"].as_bool() == Some(true) {
            return Err(HandleError::domain(
                "poison",
                format!("poison {}", envelope.id),
            ));
        }
        if envelope.payload["fail_times"]
            .as_u64()
            .is_some_and(|n| attempt <= n)
        {
            return Err(HandleError::transient(format!("attempt {attempt} fails")));
        }
        let insert = "INSERT INTO handled (replica, event_id, key, seq) VALUES ($1, $2, $3, $4)";
        sqlx::query(insert)
            .bind(&self.replica)
            .bind(envelope.id)
            .bind(&envelope.key)
            .bind(seq_of(envelope))
            .execute(&mut *tx)
            .await?;
        if envelope.payload["violate"].as_bool() == Some(true) {
            // A deterministic database error after a write the rejection must undo.
            sqlx::query(insert)
                .bind(&self.replica)
                .bind(envelope.id)
                .bind(&envelope.key)
                .bind(VIOLATING_SEQ)
                .execute(&mut *tx)
                .await?;
        }
        if self.hang_on == Some(envelope.id) && attempt == 1 {
            // Dies mid-transaction: the insert above must never become visible.
            self.hanging.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// Counts of what the recording handler left behind.
pub struct Handled {
    pub rows: i64,
    pub distinct: i64,
}

pub async fn handled(pool: &PgPool) -> Handled {
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM handled")
            .fetch_one(pool)
            .await
            .unwrap();
    Handled { rows, distinct }
}

/// Waits until `expected` distinct events were handled, then checks none was handled twice and
/// each key's events were handled in order.
pub async fn assert_handled_exactly_once(pool: &PgPool, expected: i64) {
    platform::testing::eventually(&format!("{expected} events handled"), DEADLINE, || async {
        handled(pool).await.distinct >= expected
    })
    .await;
    let h = handled(pool).await;
    assert_eq!(h.distinct, expected, "distinct events handled");
    assert_eq!(h.rows, expected, "handled rows: an event was applied twice");
    assert_per_key_order(pool).await;
}

/// Each key's `seq` strictly increases in handling order.
pub async fn assert_per_key_order(pool: &PgPool) {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT key, seq FROM handled ORDER BY n")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut last: HashMap<String, i64> = HashMap::new();
    for (key, seq) in rows {
        if let Some(prev) = last.insert(key.clone(), seq) {
            assert!(seq > prev, "key {key}: seq {seq} handled after {prev}");
        }
    }
}

/// Wraps a transport to count and break things:
/// - `refuse_publish`: every publish fails before reaching the broker;
/// - `refuse_marked`: envelopes marked `unpublishable` are refused for good;
/// - publish number `fail_publish_after + 1` and later reach the inner transport, then fail
///   (a crash between publishing and marking the row);
/// - publish number `hang_publish_after + 1` and later reach the inner transport, then never
///   return;
/// - commit number `hang_commit_after + 1` never returns (a crash after the handler's
///   transaction committed but before the offset did);
/// - every delivered event id is recorded.
#[derive(Default)]
pub struct Faults {
    /// Every publish fails without reaching the inner transport (broker down).
    pub refuse_publish: bool,
    /// Envelopes whose payload has `unpublishable: true` are refused for good
    /// ([`BusError::Refused`], as a broker refuses a record too large), without reaching the
    /// inner transport.
    pub refuse_marked: bool,
    /// Each publish takes this long (widens race windows; never used to synchronize).
    pub publish_delay: Option<Duration>,
    pub fail_publish_after: Option<usize>,
    pub hang_publish_after: Option<usize>,
    pub hang_commit_after: Option<usize>,
}

pub struct Faulty {
    inner: Arc<dyn Transport>,
    faults: Faults,
    pub published: AtomicUsize,
    pub commits: Arc<AtomicUsize>,
    /// The event whose offset commit hangs, once one does.
    pub stuck_commit: Arc<Mutex<Option<Uuid>>>,
    pub delivered: Arc<Mutex<Vec<Uuid>>>,
}

impl Faulty {
    pub fn new(inner: Arc<dyn Transport>, faults: Faults) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults,
            published: AtomicUsize::new(0),
            commits: Arc::default(),
            stuck_commit: Arc::default(),
            delivered: Arc::default(),
        })
    }

    pub fn delivered(&self) -> Vec<Uuid> {
        self.delivered.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for Faulty {
    async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        self.inner.ensure_topics(topics).await
    }

    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Receipt, BusError> {
        if self.faults.refuse_publish {
            return Err(BusError::Transport("injected: broker down".into()));
        }
        if self.faults.refuse_marked && envelope.payload["unpublishable"].as_bool() == Some(true) {
            return Err(BusError::Refused {
                code: "too_large",
                reason: "injected: the broker will never take it".into(),
            });
        }
        if let Some(delay) = self.faults.publish_delay {
            tokio::time::sleep(delay).await;
        }
        let receipt = self.inner.publish(topic, envelope).await?;
        let n = self.published.fetch_add(1, Ordering::SeqCst) + 1;
        if self.faults.hang_publish_after.is_some_and(|k| n > k) {
            std::future::pending::<()>().await;
        }
        if self.faults.fail_publish_after.is_some_and(|k| n > k) {
            return Err(BusError::Transport(
                "injected: published but reported lost".into(),
            ));
        }
        Ok(receipt)
    }

    fn durable(&self) -> bool {
        self.inner.durable()
    }

    fn register_group(&self, group: &str, topics: &[&str]) {
        self.inner.register_group(group, topics);
    }

    fn consumed_below(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner.consumed_below(topic, partition)
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        Ok(Box::new(FaultySubscription {
            inner: self.inner.subscribe(group, topics).await?,
            hang_commit_after: self.faults.hang_commit_after,
            commits: Arc::clone(&self.commits),
            stuck_commit: Arc::clone(&self.stuck_commit),
            delivered: Arc::clone(&self.delivered),
        }))
    }
}

struct FaultySubscription {
    inner: Box<dyn Subscription>,
    hang_commit_after: Option<usize>,
    commits: Arc<AtomicUsize>,
    stuck_commit: Arc<Mutex<Option<Uuid>>>,
    delivered: Arc<Mutex<Vec<Uuid>>>,
}

#[async_trait]
impl Subscription for FaultySubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let delivery = self.inner.next().await?;
        self.delivered.lock().unwrap().push(delivery.envelope.id);
        Ok(delivery)
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.hang_commit_after.is_some_and(|k| n > k) {
            *self.stuck_commit.lock().unwrap() = Some(delivery.envelope.id);
            std::future::pending::<()>().await;
        }
        self.inner.commit(delivery).await
    }
}

/// Wraps a transport so that publishing waits at a gate: each publish announces itself on
/// `entered`, then waits until the test calls [`Gate::open`].
pub struct Gate {
    inner: Arc<dyn Transport>,
    pub entered: Notify,
    opened: Notify,
    open: AtomicBool,
}

impl Gate {
    pub fn new(inner: Arc<dyn Transport>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            entered: Notify::new(),
            opened: Notify::new(),
            open: AtomicBool::new(false),
        })
    }

    /// Lets every waiting and later publish through.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

#[async_trait]
impl Transport for Gate {
    async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        self.inner.ensure_topics(topics).await
    }

    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Receipt, BusError> {
        let opened = self.opened.notified();
        tokio::pin!(opened);
        opened.as_mut().enable();
        self.entered.notify_one();
        if !self.open.load(Ordering::SeqCst) {
            opened.await;
        }
        self.inner.publish(topic, envelope).await
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.subscribe(group, topics).await
    }

    fn durable(&self) -> bool {
        self.inner.durable()
    }
}

/// One relay-side dead letter: a row the transport refused for good.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxDeadLetter {
    pub event_id: Uuid,
    pub topic: String,
    pub key: String,
    pub reason: String,
    pub error: String,
}

/// The rows the relay dead-lettered, oldest first.
pub async fn outbox_dead_letters(pool: &PgPool) -> Vec<OutboxDeadLetter> {
    sqlx::query_as(
        "SELECT event_id, topic, key, reason, error FROM bus_outbox_dead_letters ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Whether the outbox still holds the row of event `id`.
pub async fn in_outbox(pool: &PgPool, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bus_outbox WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}
