//! Cases only the Kafka transport has: foreign records on a topic, topic creation on brokers that
//! allow it or not, producer recovery, settings passed to the broker. Broker faults come from
//! librdkafka's in-process mock cluster.

use std::time::Duration;

use platform::bus::{Transport, kafka::KafkaTransport};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
    types::{RDKafkaApiKey, RDKafkaRespErr},
};

use crate::support::*;

/// A record that is not an envelope is skipped and committed; the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_record_is_skipped() {
    let (transport, topic) = transport(Kind::Kafka, 1).await;
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", platform::testing::kafka_brokers())
        .create()
        .unwrap();
    raw.send(
        FutureRecord::to(&topic).key("k").payload("not an envelope"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let good = envelope("k", 1);
    transport.publish(&topic, &good).await.unwrap();

    let g = group("malformed");
    let mut sub = transport.subscribe(&g, &[&topic]).await.unwrap();
    let first = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.envelope, good);
    assert_eq!(first.offset, 1, "the malformed record sat at offset 0");
    drop(sub);

    // The skip was committed (the good record was not): the group's offset is 1.
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", platform::testing::kafka_brokers())
        .set("group.id", &g)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition(&topic, 0);
    let committed = tokio::task::spawn_blocking(move || {
        probe
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap()
    })
    .await
    .unwrap();
    let offset = committed.find_partition(&topic, 0).unwrap().offset();
    assert_eq!(offset, Offset::Offset(1));
}

/// Creating topics that already exist succeeds (services call it at every start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_topics_is_idempotent() {
    let (transport, topic) = transport(Kind::Kafka, 2).await;
    transport.ensure_topics(&[&topic]).await.unwrap();
    transport.publish(&topic, &envelope("k", 0)).await.unwrap();
}

/// Settings for a transport on `brokers` with one partition per topic.
fn kafka_settings(brokers: &str) -> platform::bus::BusSettings {
    platform::bus::BusSettings {
        kafka_brokers: brokers.to_owned(),
        partitions: 1,
        ..platform::bus::BusSettings::default()
    }
}

/// A broker that denies CreateTopics (librdkafka's mock cluster does not offer the API at all):
/// topics created beforehand are fine, a missing one is a clear error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_topics_are_fine_when_the_broker_denies_create_topics() {
    let mock = MockCluster::new(1).unwrap();
    let topic = format!("bus-test-{}", uuid::Uuid::new_v4().simple());
    mock.create_topic(&topic, 1, 1).unwrap();
    let transport =
        KafkaTransport::from_settings(&kafka_settings(&mock.bootstrap_servers())).unwrap();
    tokio::time::timeout(DEADLINE, transport.ensure_topics(&[&topic]))
        .await
        .unwrap()
        .unwrap();
    transport.publish(&topic, &envelope("k", 0)).await.unwrap();

    let missing = format!("bus-test-{}", uuid::Uuid::new_v4().simple());
    let err = tokio::time::timeout(DEADLINE, transport.ensure_topics(&[&topic, &missing]))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&missing) && err.contains("refused to create"),
        "{err}"
    );
}

/// A fatal producer error (here: the idempotent producer is refused a producer id) replaces the
/// producer; the publish that saw it fails (the relay retries it), the next one goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_rebuilds_the_producer() {
    let mock = MockCluster::new(1).unwrap();
    let topic = format!("bus-test-{}", uuid::Uuid::new_v4().simple());
    mock.create_topic(&topic, 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
    );
    let transport =
        KafkaTransport::from_settings(&kafka_settings(&mock.bootstrap_servers())).unwrap();
    let first = tokio::time::timeout(DEADLINE, transport.publish(&topic, &envelope("k", 0)))
        .await
        .unwrap();
    assert!(first.is_err(), "published with a fatally failed producer");
    assert_eq!(transport.producer_generation(), 1, "producer not replaced");
    let receipt = tokio::time::timeout(DEADLINE, transport.publish(&topic, &envelope("k", 1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.partition, 0);
    assert_eq!(
        transport.producer_generation(),
        1,
        "replaced more than once"
    );
}

/// Topic settings reach the broker: with a replication factor and `min.insync.replicas` the
/// single test broker can honour, topics are created and usable; pass-through properties reach
/// librdkafka (a bad value is refused when the clients are built, reserved ones up front).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_settings_and_properties_reach_the_broker() {
    let mut settings = kafka_settings(&platform::testing::kafka_brokers());
    settings.kafka_replication_factor = Some(1);
    settings.kafka_min_insync_replicas = Some(1);
    settings
        .kafka_properties
        .insert("security_protocol".into(), "plaintext".into());
    settings
        .kafka_properties
        .insert("client.id".into(), "boxoffice-bus-test".into());
    let transport = KafkaTransport::from_settings(&settings).unwrap();
    let topic = format!("bus-test-{}", uuid::Uuid::new_v4().simple());
    transport.ensure_topics(&[&topic]).await.unwrap();
    transport.publish(&topic, &envelope("k", 0)).await.unwrap();

    let mut bad = settings.clone();
    bad.kafka_properties
        .insert("security_protocol".into(), "carrier_pigeon".into());
    let err = KafkaTransport::from_settings(&bad)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("security.protocol"), "{err}");
    let mut reserved = settings.clone();
    reserved
        .kafka_properties
        .insert("enable_auto_commit".into(), "true".into());
    let err = KafkaTransport::from_settings(&reserved)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("enable.auto.commit"), "{err}");
}

/// Writes `envelope` straight into the outbox, as a service did before `outbox::enqueue` refused
/// large envelopes (or as a row of another writer would be).
async fn insert_unchecked(pool: &sqlx::PgPool, topic: &str, envelope: &contracts::Envelope) {
    sqlx::query("INSERT INTO bus_outbox (id, topic, key, envelope) VALUES ($1, $2, $3, $4)")
        .bind(envelope.id)
        .bind(topic)
        .bind(&envelope.key)
        .bind(sqlx::types::Json(envelope))
        .execute(pool)
        .await
        .unwrap();
}

/// Over the real broker: a row larger than a Kafka cluster takes (the producer's
/// `message.max.bytes`, 1,000,000 bytes as on a real cluster; tansu itself would take it) is
/// dead-lettered as `too_large` at its first try, and the rows after it on its key still go out,
/// in order; a row under the limit goes out however large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_too_large_for_the_broker_is_dead_lettered_and_its_key_goes_on() {
    use platform::bus::{outbox, relay::Relay};

    let db = platform::testing::TestDb::new("bus_oversize", None).await;
    let (transport, topic) = transport(Kind::Kafka, 2).await;
    let first = envelope("k", 0);
    let huge = envelope_with("k", 1, serde_json::json!({ "pad": "x".repeat(1_200_000) }));
    let large = envelope_with("k", 2, serde_json::json!({ "pad": "y".repeat(900_000) }));
    let last = envelope("k", 3);
    let mut tx = db.pool.begin().await.unwrap();
    outbox::enqueue_envelope(&mut tx, &topic, &first)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    insert_unchecked(&db.pool, &topic, &huge).await;
    insert_unchecked(&db.pool, &topic, &large).await;
    let mut tx = db.pool.begin().await.unwrap();
    outbox::enqueue_envelope(&mut tx, &topic, &last)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let relay = Relay::new(
        "svc",
        db.pool.clone(),
        transport.clone(),
        &relay_settings(100),
    );
    let published = tokio::time::timeout(DEADLINE, relay.run_once())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(published, 3);
    let dead = outbox_dead_letters(&db.pool).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].event_id, dead[0].reason.as_str()),
        (huge.id, "too_large")
    );
    assert!(
        dead[0].error.to_lowercase().contains("too large"),
        "{}",
        dead[0].error
    );
    assert!(!in_outbox(&db.pool, huge.id).await);
    assert_eq!(
        tokio::time::timeout(DEADLINE, relay.run_once())
            .await
            .unwrap()
            .unwrap(),
        0
    );

    let mut sub = transport
        .subscribe(&group("oversize"), &[&topic])
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let d = tokio::time::timeout(DEADLINE, sub.next())
            .await
            .unwrap()
            .unwrap();
        got.push(d.envelope);
    }
    let ids: Vec<uuid::Uuid> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![first.id, large.id, last.id]);
    assert!(serde_json::to_vec(&got[1]).unwrap().len() > 900_000);
    db.drop_database().await;
}
