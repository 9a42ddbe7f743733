//! The Kafka transport (distributed mode), on rdkafka with its bundled librdkafka.
//!
//! - Publishing: one idempotent producer per transport (`enable.idempotence`, verified against
//!   tansu 0.6, which grants producer ids), `acks=all`; the record key is the
//!   envelope key (so Kafka keeps order per key), the value is the envelope as JSON, and
//!   [`Transport::publish`] returns only after the broker acknowledged it. A fatal producer error
//!   (librdkafka gives up on an idempotent producer whose state it can no longer trust) replaces
//!   the producer with a new one; the publishes that failed are retried by the relay.
//! - Size: the producer takes records up to `message.max.bytes` = 1,000,000 bytes (librdkafka's
//!   default, set explicitly; `bus.kafka_properties` may change it to fit the cluster), under a
//!   Kafka broker's default 1 MB (1,048,588). tansu 0.6 enforces no limit of its own (its decoder
//!   allows 1 GiB), so it is the producer's that makes a test against tansu behave like a real
//!   cluster. A record refused for its size or as invalid — by the producer or the broker — is
//!   [`BusError::Refused`]: the relay dead-letters it instead of retrying it forever.
//! - Topics: the ones the metadata already lists are left alone, so a broker that denies
//!   CreateTopics is fine when the topics were created beforehand; missing ones are created with
//!   `bus.partitions`, `bus.kafka_replication_factor` and `bus.kafka_min_insync_replicas` (the
//!   broker's defaults when unset) and waited for until metadata lists them.
//! - Security and tuning: `bus.kafka_properties` are passed to every client (producer, admin,
//!   consumers): `security.protocol`, `sasl.*`, `ssl.*`, ... The few the platform's guarantees
//!   rest on cannot be overridden.
//! - Subscribing: one `StreamConsumer` per member, offsets committed by the caller, synchronously,
//!   after processing (no auto-commit); a new group starts at the earliest offset. A record that
//!   is not a JSON envelope is logged, committed and skipped rather than stopping the stream.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use super::envelope::Envelope;
use async_trait::async_trait;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use super::{BusError, BusSettings, Delivery, Receipt, Subscription, Transport};

/// How long a publish may wait for the broker before it fails.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a CreateTopics request may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`Transport::ensure_topics`] waits for new topics to appear in metadata.
const TOPIC_WAIT: Duration = Duration::from_secs(30);
/// Properties the platform sets itself: per-key order, exactly-once application and offsets
/// committed after processing depend on them.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "request.required.acks",
];
/// The producer's largest record unless `bus.kafka_properties` says otherwise (see the module
/// docs).
const MESSAGE_MAX_BYTES: &str = "1000000";
/// librdkafka properties whose names hold an underscore (kept as they are).
const UNDERSCORED: &[&str] = &["log_level"];

/// The producer in use and how many times it was replaced.
struct ProducerSlot {
    generation: u64,
    producer: FutureProducer,
}

/// Transport over a Kafka-protocol broker.
pub struct KafkaTransport {
    brokers: String,
    partitions: i32,
    replication: Option<i32>,
    min_insync: Option<String>,
    properties: BTreeMap<String, String>,
    producer: RwLock<ProducerSlot>,
    admin: Arc<AdminClient<DefaultClientContext>>,
}

fn transport_error(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Transport(format!("{what}: {e}"))
}

/// A client configuration with the brokers and the pass-through properties.
fn client_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// What a failed publish means: a record the producer or the broker will never take (too
/// large, invalid) is [`BusError::Refused`]; anything else may pass on a later try.
fn publish_error(topic: &str, e: KafkaError) -> BusError {
    let code = match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge,
        ) => "too_large",
        Some(RDKafkaErrorCode::InvalidRecord | RDKafkaErrorCode::BadMessage) => "invalid",
        _ => return transport_error(&format!("publish to {topic}"), e),
    };
    BusError::Refused {
        code,
        reason: format!("publish to {topic}: {e}"),
    }
}

fn build_producer(
    brokers: &str,
    properties: &BTreeMap<String, String>,
) -> Result<FutureProducer, BusError> {
    let mut config = client_config(brokers, properties);
    if !properties.contains_key("message.max.bytes") {
        config.set("message.max.bytes", MESSAGE_MAX_BYTES);
    }
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "0")
        .create()
        .map_err(|e| transport_error("kafka producer", e))
}

/// The librdkafka name of a `bus.kafka_properties` key: as written when it holds a dot, else
/// with `_` read as `.` (environment variables cannot hold dots:
/// `BOXOFFICE_BUS__KAFKA_PROPERTIES__SASL_MECHANISM` sets `sasl.mechanism`).
pub fn property_name(key: &str) -> String {
    if key.contains('.') || UNDERSCORED.contains(&key) {
        key.to_owned()
    } else {
        key.replace('_', ".")
    }
}

/// Normalizes the pass-through properties and refuses the reserved ones.
fn pass_through(raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, BusError> {
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let name = property_name(key);
        if RESERVED.contains(&name.as_str()) {
            return Err(BusError::Settings(format!(
                "bus.kafka_properties cannot set `{name}`: the platform sets it (brokers go in \
                 bus.kafka_brokers)"
            )));
        }
        out.insert(name, value.clone());
    }
    Ok(out)
}

impl KafkaTransport {
    /// New transport on `brokers` (comma-separated `host:port`), creating topics with
    /// `partitions` partitions and the broker's default replication. Connects lazily: an
    /// unreachable broker fails the first call.
    pub fn new(brokers: &str, partitions: i32) -> Result<Self, BusError> {
        Self::from_settings(&BusSettings {
            kafka_brokers: brokers.to_owned(),
            partitions,
            ..BusSettings::default()
        })
    }

    /// New transport from the `bus.*` settings (brokers, partitions, replication,
    /// `min.insync.replicas`, pass-through properties).
    pub fn from_settings(settings: &BusSettings) -> Result<Self, BusError> {
        let brokers = settings.kafka_brokers.as_str();
        if brokers.trim().is_empty() {
            return Err(BusError::Settings("bus.kafka_brokers is empty".into()));
        }
        if settings.partitions < 1 {
            return Err(BusError::Settings(
                "bus.partitions must be at least 1".into(),
            ));
        }
        if settings.kafka_replication_factor.is_some_and(|r| r < 1) {
            return Err(BusError::Settings(
                "bus.kafka_replication_factor must be at least 1 (unset = broker default)".into(),
            ));
        }
        if settings.kafka_min_insync_replicas.is_some_and(|r| r < 1) {
            return Err(BusError::Settings(
                "bus.kafka_min_insync_replicas must be at least 1 (unset = broker default)".into(),
            ));
        }
        let properties = pass_through(&settings.kafka_properties)?;
        let producer = build_producer(brokers, &properties)?;
        let admin = client_config(brokers, &properties)
            // Looking a topic up must not create it with the broker's defaults.
            .set("allow.auto.create.topics", "false")
            .create()
            .map_err(|e| transport_error("kafka admin client", e))?;
        Ok(Self {
            brokers: brokers.to_owned(),
            partitions: settings.partitions,
            replication: settings.kafka_replication_factor,
            min_insync: settings.kafka_min_insync_replicas.map(|n| n.to_string()),
            properties,
            producer: RwLock::new(ProducerSlot {
                generation: 0,
                producer,
            }),
            admin: Arc::new(admin),
        })
    }

    /// The producer in use and its generation.
    fn producer(&self) -> (u64, FutureProducer) {
        let slot = self.producer.read().unwrap_or_else(|p| p.into_inner());
        (slot.generation, slot.producer.clone())
    }

    /// How many times the producer has been replaced after a fatal error.
    pub fn producer_generation(&self) -> u64 {
        self.producer().0
    }

    /// After a failed publish on the producer of `generation`: when the failure is fatal (the
    /// producer will refuse everything from now on), replaces that producer, once, however many
    /// publishes saw the failure. Returns whether it did.
    pub fn recover_from(&self, generation: u64, error: &KafkaError) -> bool {
        let (current, producer) = self.producer();
        if current != generation {
            return false; // another publish already replaced it
        }
        let fatal = producer.client().fatal_error();
        if fatal.is_none() && error.rdkafka_error_code() != Some(RDKafkaErrorCode::Fatal) {
            return false;
        }
        let replacement = match build_producer(&self.brokers, &self.properties) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "kafka producer failed fatally and cannot be rebuilt");
                return false;
            }
        };
        let mut slot = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if slot.generation != generation {
            return false;
        }
        slot.generation += 1;
        slot.producer = replacement;
        tracing::error!(
            fatal = ?fatal, error = %error, generation = slot.generation,
            "kafka producer failed fatally; replaced it (the relay publishes the failed rows again)"
        );
        metrics::counter!("boxoffice_bus_producer_rebuilds_total").increment(1);
        true
    }

    /// True once metadata lists `topic` with its partitions.
    async fn topic_visible(&self, topic: &str) -> bool {
        let admin = Arc::clone(&self.admin);
        let topic = topic.to_owned();
        // librdkafka's metadata call blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .is_ok_and(|m| {
                    m.topics().iter().any(|t| {
                        t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                    })
                })
        })
        .await
        .unwrap_or(false)
    }

    /// Creates `missing`; returns the topics the broker refused, with why.
    async fn create(&self, missing: &[&str]) -> Vec<(String, String)> {
        // -1: the broker's default replication factor (Kafka 2.4+).
        let factor = self.replication.unwrap_or(-1);
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                let topic = NewTopic::new(t, self.partitions, TopicReplication::Fixed(factor));
                match &self.min_insync {
                    Some(n) => topic.set("min.insync.replicas", n),
                    None => topic,
                }
            })
            .collect();
        // A broker without CreateTopics for us may not answer at all: do not wait for a minute.
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(CREATE_TIMEOUT));
        match self.admin.create_topics(&new, &options).await {
            Ok(results) => results
                .into_iter()
                .filter_map(|r| match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                    Err((topic, code)) => Some((topic, code.to_string())),
                })
                .collect(),
            Err(e) => missing
                .iter()
                .map(|t| ((*t).to_owned(), e.to_string()))
                .collect(),
        }
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let mut missing = Vec::new();
        for topic in topics {
            if !self.topic_visible(topic).await {
                missing.push(*topic);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let refused = self.create(&missing).await;
        for (topic, why) in &refused {
            // Another replica (or an operator) may have created it meanwhile.
            if !self.topic_visible(topic).await {
                return Err(BusError::Transport(format!(
                    "topic {topic} does not exist and the broker refused to create it ({why}): \
                     create it beforehand ({} partitions) or allow this client CreateTopics",
                    self.partitions
                )));
            }
        }
        let deadline = tokio::time::Instant::now() + TOPIC_WAIT;
        for topic in missing {
            // The broker offers no notification for this: poll metadata briefly.
            while !self.topic_visible(topic).await {
                if tokio::time::Instant::now() >= deadline {
                    return Err(BusError::Transport(format!(
                        "topic {topic} did not appear within {TOPIC_WAIT:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<Receipt, BusError> {
        let payload = serde_json::to_vec(envelope)?;
        let record = FutureRecord::to(topic)
            .key(envelope.key.as_bytes())
            .payload(&payload);
        let (generation, producer) = self.producer();
        match producer.send(record, Timeout::After(PUBLISH_TIMEOUT)).await {
            Ok(delivery) => Ok(Receipt {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((e, _)) => {
                self.recover_from(generation, &e);
                Err(publish_error(topic, e))
            }
        }
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let consumer: StreamConsumer = client_config(&self.brokers, &self.properties)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("partition.assignment.strategy", "roundrobin")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| transport_error("kafka consumer", e))?;
        consumer
            .subscribe(topics)
            .map_err(|e| transport_error("subscribe", e))?;
        Ok(Box::new(KafkaSubscription {
            consumer: Arc::new(consumer),
        }))
    }
}

/// One consumer group member on Kafka.
struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
}

impl KafkaSubscription {
    /// Commits `offset + 1` for the partition, synchronously (off the async workers).
    async fn commit_offset(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), BusError> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))
            .map_err(|e| transport_error("commit", e))?;
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| transport_error("commit", e))?
            .map_err(|e: KafkaError| transport_error("commit", e))
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let (topic, partition, offset, decoded) = {
                let message = self
                    .consumer
                    .recv()
                    .await
                    .map_err(|e| transport_error("receive", e))?;
                let decoded = match message.payload() {
                    Some(bytes) => {
                        serde_json::from_slice::<Envelope>(bytes).map_err(|e| e.to_string())
                    }
                    None => Err("empty payload".to_owned()),
                };
                (
                    message.topic().to_owned(),
                    message.partition(),
                    message.offset(),
                    decoded,
                )
            };
            match decoded {
                Ok(envelope) => {
                    return Ok(Delivery {
                        topic,
                        partition,
                        offset,
                        envelope,
                    });
                }
                Err(reason) => {
                    // Nothing can ever read it: skip it rather than block the partition.
                    tracing::error!(
                        %topic, partition, offset, %reason,
                        "skipping a record that is not an envelope"
                    );
                    metrics::counter!("boxoffice_bus_malformed_total", "topic" => topic.clone())
                        .increment(1);
                    self.commit_offset(&topic, partition, offset).await?;
                }
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.commit_offset(&delivery.topic, delivery.partition, delivery.offset)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{pass_through, property_name};

    #[test]
    fn property_names_from_the_environment_read_underscores_as_dots() {
        assert_eq!(property_name("security_protocol"), "security.protocol");
        assert_eq!(property_name("sasl_mechanism"), "sasl.mechanism");
        assert_eq!(property_name("ssl.ca.location"), "ssl.ca.location");
        assert_eq!(property_name("log_level"), "log_level");
    }

    #[test]
    fn reserved_properties_are_refused() {
        for key in [
            "group_id",
            "enable.auto.commit",
            "acks",
            "bootstrap_servers",
        ] {
            let raw = BTreeMap::from([(key.to_owned(), "x".to_owned())]);
            assert!(pass_through(&raw).is_err(), "{key}");
        }
        let raw = BTreeMap::from([("sasl_username".to_owned(), "Bob".to_owned())]);
        assert_eq!(
            pass_through(&raw).unwrap(),
            BTreeMap::from([("sasl.username".to_owned(), "Bob".to_owned())])
        );
    }
}
