//! The Kafka transport (distributed mode), on rdkafka with its bundled librdkafka.
//!
//! - Publishing: one idempotent producer per transport (`enable.idempotence`, verified against
//!   tansu 0.6, which grants producer ids), `acks=all`; the record key is the
//!   envelope key (so Kafka keeps order per key), the value is the envelope as JSON, and
//!   [`Transport::publish`] returns only after the broker acknowledged it.
//! - Topics are created explicitly (the broker may not create them on demand) and waited for
//!   until metadata lists them.
//! - Subscribing: one `StreamConsumer` per member, offsets committed by the caller, synchronously,
//!   after processing (no auto-commit); a new group starts at the earliest offset. A record that
//!   is not a JSON envelope is logged, committed and skipped rather than stopping the stream.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use contracts::Envelope;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use super::{BusError, Delivery, Subscription, Transport};

/// How long a publish may wait for the broker before it fails.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Transport::ensure_topics`] waits for new topics to appear in metadata.
const TOPIC_WAIT: Duration = Duration::from_secs(30);

/// Transport over a Kafka-protocol broker.
pub struct KafkaTransport {
    brokers: String,
    partitions: i32,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
}

fn transport_error(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Transport(format!("{what}: {e}"))
}

impl KafkaTransport {
    /// New transport on `brokers` (comma-separated `host:port`), creating topics with
    /// `partitions` partitions. Connects lazily: an unreachable broker fails the first call.
    pub fn new(brokers: &str, partitions: i32) -> Result<Self, BusError> {
        if brokers.trim().is_empty() {
            return Err(BusError::Settings("bus.kafka_brokers is empty".into()));
        }
        if partitions < 1 {
            return Err(BusError::Settings(
                "bus.partitions must be at least 1".into(),
            ));
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "0")
            .create()
            .map_err(|e| transport_error("kafka producer", e))?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(|e| transport_error("kafka admin client", e))?;
        Ok(Self {
            brokers: brokers.to_owned(),
            partitions,
            producer,
            admin,
        })
    }

    /// True once metadata lists `topic` with its partitions.
    async fn topic_visible(&self, topic: &str) -> bool {
        let producer = self.producer.clone();
        let topic = topic.to_owned();
        // librdkafka's metadata call blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            producer
                .client()
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
}

#[async_trait]
impl Transport for KafkaTransport {
    async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        if topics.is_empty() {
            return Ok(());
        }
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, self.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| transport_error("create topics", e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::Transport(format!("create topic {topic}: {code}")));
                }
            }
        }
        let deadline = tokio::time::Instant::now() + TOPIC_WAIT;
        for topic in topics {
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

    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<(), BusError> {
        let payload = serde_json::to_vec(envelope)?;
        let record = FutureRecord::to(topic)
            .key(envelope.key.as_bytes())
            .payload(&payload);
        self.producer
            .send(record, Timeout::After(PUBLISH_TIMEOUT))
            .await
            .map(|_| ())
            .map_err(|(e, _)| transport_error(&format!("publish to {topic}"), e))
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
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
