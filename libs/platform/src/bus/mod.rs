//! The bus: how services tell each other what happened without losing anything.
//!
//! - [`outbox`]: a service writes its event row in the same transaction as its state change.
//! - [`relay`]: publishes outbox rows to the transport in order, marking them published.
//! - [`consumer`]: reads a topic as a consumer group and hands each event to a [`handler`] inside
//!   a database transaction that also records the event id in the inbox, so a redelivered event is
//!   skipped; the offset is committed only after that transaction commits. An event that can never
//!   apply is dead-lettered at once, a transient failure retried within a cap.
//! - Transports behind one [`Transport`] trait: [`kafka`] (distributed mode) and [`memory`]
//!   (standalone). One contract suite (`tests/bus_contract.rs`) runs against both.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
pub mod envelope;

pub use envelope::{DecodeError, Envelope, Event};
use serde::Deserialize;

pub mod consumer;
pub mod handler;
pub mod kafka;
pub mod memory;
pub mod outbox;
pub mod relay;
pub mod schema;

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The transport (broker) failed or refused.
    #[error("bus transport: {0}")]
    Transport(String),
    /// The outbox or inbox tables failed.
    #[error("bus database: {0}")]
    Db(#[from] sqlx::Error),
    /// An envelope could not be encoded or decoded.
    #[error("bus encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The bus settings are unusable.
    #[error("bus settings: {0}")]
    Settings(String),
    /// This envelope can never go out (larger than the bus takes, or a record the broker calls
    /// invalid): sending it again cannot help. `code` is a stable word for metrics and dead
    /// letters (`too_large`, `invalid`).
    #[error("bus refused the envelope ({code}): {reason}")]
    Refused {
        /// Why, as a stable word.
        code: &'static str,
        /// Details for people.
        reason: String,
    },
}

/// One message taken from the bus, with its position for committing.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Topic it came from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// The event.
    pub envelope: Envelope,
}

/// Where the transport put a published envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A message transport: Kafka in distributed mode, in-memory in standalone.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Creates the topics when they do not exist.
    async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError>;
    /// Publishes one envelope, partitioned by its key; returns once the transport has it.
    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Receipt, BusError>;
    /// Joins consumer group `group` on `topics`; delivery resumes after the group's last commit.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError>;
    /// Whether what the transport accepted survives this process (Kafka: yes; in-memory: no).
    /// The relay keeps the rows a non-durable transport holds until every consumer group of their
    /// topic has committed them, and publishes them again after a restart.
    fn durable(&self) -> bool {
        true
    }
    /// Announces that consumer group `group` will read `topics` (called before it subscribes), so
    /// a non-durable transport counts it among the readers whose commits settle a message.
    fn register_group(&self, _group: &str, _topics: &[&str]) {}
    /// For a non-durable transport: every offset of `topic`'s `partition` below the returned one
    /// has been committed by every consumer group of the topic. `None` when unknown (a durable
    /// transport, or consumer groups may still be announced).
    fn consumed_below(&self, _topic: &str, _partition: i32) -> Option<i64> {
        None
    }
}

/// A consumer group member's stream of deliveries.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next delivery.
    async fn next(&mut self) -> Result<Delivery, BusError>;
    /// Records that `delivery` (and everything before it in its partition) is done.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;
}

/// Which transport to use.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// In-process (standalone mode).
    #[default]
    Memory,
    /// A Kafka-protocol broker.
    Kafka,
}

/// Bus settings (`bus.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// `memory` or `kafka` (env `BOXOFFICE_BUS__TRANSPORT`).
    pub transport: TransportKind,
    /// Comma-separated `host:port` list (env `BOXOFFICE_BUS__KAFKA_BROKERS`).
    pub kafka_brokers: String,
    /// Partitions for topics the platform creates (env `BOXOFFICE_BUS__PARTITIONS`).
    pub partitions: i32,
    /// Longest wait between outbox scans when no notification arrives, in ms (env
    /// `BOXOFFICE_BUS__RELAY_INTERVAL_MS`).
    pub relay_interval_ms: u64,
    /// Rows published per relay batch (env `BOXOFFICE_BUS__RELAY_BATCH`).
    pub relay_batch: i64,
    /// Keys a relay publishes concurrently within a batch; rows of one key always go in order
    /// (env `BOXOFFICE_BUS__RELAY_CONCURRENCY`).
    pub relay_concurrency: usize,
    /// Attempts a consumer makes at an event that fails transiently before it dead-letters it
    /// (env `BOXOFFICE_BUS__CONSUMER_MAX_ATTEMPTS`).
    pub consumer_max_attempts: u32,
    /// Longest time a consumer retries an event that fails transiently before it dead-letters it,
    /// in ms (env `BOXOFFICE_BUS__CONSUMER_MAX_RETRY_MS`).
    pub consumer_max_retry_ms: u64,
    /// Longest backoff between two attempts at one event, in ms (env
    /// `BOXOFFICE_BUS__CONSUMER_MAX_BACKOFF_MS`).
    pub consumer_max_backoff_ms: u64,
    /// Events a consumer applies at once, each partition's in order (env
    /// `BOXOFFICE_BUS__CONSUMER_CONCURRENCY`; at most the partitions it reads are busy at once).
    pub consumer_concurrency: usize,
    /// Replication factor of the topics the platform creates on Kafka (env
    /// `BOXOFFICE_BUS__KAFKA_REPLICATION_FACTOR`); unset = the broker's default.
    pub kafka_replication_factor: Option<i32>,
    /// `min.insync.replicas` of the topics the platform creates on Kafka (env
    /// `BOXOFFICE_BUS__KAFKA_MIN_INSYNC_REPLICAS`); unset = the broker's default.
    pub kafka_min_insync_replicas: Option<i32>,
    /// librdkafka properties passed through to every Kafka client, for TLS and SASL (env
    /// `BOXOFFICE_BUS__KAFKA_PROPERTIES__SECURITY_PROTOCOL=SASL_SSL`: `_` in a key read from the
    /// environment stands for `.`).
    pub kafka_properties: BTreeMap<String, String>,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            transport: TransportKind::Memory,
            kafka_brokers: "127.0.0.1:9092".into(),
            partitions: 4,
            relay_interval_ms: 500,
            relay_batch: 200,
            relay_concurrency: 64,
            consumer_max_attempts: 20,
            consumer_max_retry_ms: 300_000,
            consumer_max_backoff_ms: 5_000,
            consumer_concurrency: 4,
            kafka_replication_factor: None,
            kafka_min_insync_replicas: None,
            kafka_properties: BTreeMap::new(),
        }
    }
}

/// Builds the configured transport and makes sure `topics` exist (the caller's list: the bus
/// knows no domain).
pub async fn connect(
    settings: &BusSettings,
    topics: &[&str],
) -> Result<Arc<dyn Transport>, BusError> {
    let transport: Arc<dyn Transport> = match settings.transport {
        TransportKind::Memory => Arc::new(memory::MemoryTransport::new(settings.partitions)),
        TransportKind::Kafka => Arc::new(kafka::KafkaTransport::from_settings(settings)?),
    };
    transport.ensure_topics(topics).await?;
    Ok(transport)
}

/// Standalone's bus: an in-memory transport with `topics`. The launcher keeps the concrete
/// handle to [`memory::MemoryTransport::seal`] it once every service has started.
pub async fn connect_memory(
    settings: &BusSettings,
    topics: &[&str],
) -> Result<memory::MemoryTransport, BusError> {
    let transport = memory::MemoryTransport::new(settings.partitions);
    transport.ensure_topics(topics).await?;
    Ok(transport)
}

/// The refusal of `serve` with the in-memory transport: the relay would publish into this
/// process's memory, mark the rows published, and no other process would ever see the events.
pub fn memory_refusal(service: &str) -> String {
    format!(
        "`serve {service}` refuses bus.transport = memory: its events would be published into \
         this process's memory, marked published, and never reach another service. Set \
         BOXOFFICE_BUS__TRANSPORT=kafka (and BOXOFFICE_BUS__KAFKA_BROKERS), or run \
         `boxoffice standalone` for everything in one process"
    )
}

/// Capped exponential backoff for retry loops (relay, consumer): never a busy loop, never longer
/// than `max` between attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubling per failure up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        delay
    }

    /// Back to the initial delay after a success.
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }

    /// Sleeps the next delay; returns false when `shutdown` fired first.
    pub(crate) async fn wait(&mut self, shutdown: &tokio_util::sync::CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backoff;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
