//! Cases only the Kafka transport has: foreign records on a topic, topic creation.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
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
