//! The bus contract suite: one set of cases (`bus_contract/cases.rs`) run against every
//! transport, plus Kafka-only cases (`bus_contract/kafka_only.rs`). The Kafka cases need a
//! Kafka-protocol broker at `platform::testing::kafka_brokers()` (`BOXOFFICE_TEST_KAFKA_BROKERS`,
//! default `127.0.0.1:9092`); every case needs PostgreSQL (`BOXOFFICE_TEST_DATABASE_URL`).

// Test code: a failed step should panic with its error, wherever the helper lives.
#![allow(clippy::unwrap_used)]

#[path = "bus_contract/cases.rs"]
mod cases;
#[path = "bus_contract/kafka_only.rs"]
mod kafka_only;
#[path = "bus_contract/support.rs"]
mod support;

/// Instantiates every contract case for one transport, as `<module>::<case>`.
macro_rules! contract {
    ($module:ident, $kind:expr, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::cases::$case($kind).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($module:ident, $kind:expr) => {
        contract!(
            $module,
            $kind,
            [
                publish_then_consume,
                resume_after_commit,
                relay_crash_publishes_everything_once,
                concurrent_relays_publish_each_row_once,
                consumer_killed_mid_handler_resumes,
                consumer_killed_before_offset_commit_handles_once,
                redelivered_envelope_is_applied_once,
                reject_dead_letters_and_retry_applies_once,
                group_members_split_partitions,
            ]
        );
    };
}

all_cases!(memory, crate::support::Kind::Memory);
all_cases!(kafka, crate::support::Kind::Kafka);

/// Standalone's in-memory bus dies with its process: a new process's relay replays what went out
/// shortly before, and the consumer's inbox turns what was already handled into no-ops.
mod memory_restart {
    use std::sync::Arc;

    use platform::{
        bus::{
            BusSettings, Transport, consumer::Consumer, memory::MemoryTransport, outbox,
            relay::Relay,
        },
        testing::{TestDb, eventually},
    };
    use tokio_util::sync::CancellationToken;

    use crate::support::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_after_a_process_restart_loses_nothing() {
        let db = TestDb::new("bus_replay", None).await;
        create_handled_table(&db.pool).await;
        let topic = format!("replay-{}", uuid::Uuid::new_v4().simple());
        let settings = BusSettings {
            replay_window_ms: 600_000,
            ..relay_settings(100)
        };

        // "Process 1": 6 events relayed; the consumer handles them, then the process dies with
        // 4 more relayed but never consumed.
        let first: Arc<dyn Transport> = Arc::new(MemoryTransport::new(2));
        first.ensure_topics(&[&topic]).await.unwrap();
        let events = interleaved(2, 5);
        let mut tx = db.pool.begin().await.unwrap();
        for e in &events[..6] {
            outbox::enqueue_envelope(&mut tx, &topic, e).await.unwrap();
        }
        tx.commit().await.unwrap();
        let relay = Relay::new("svc", db.pool.clone(), first.clone(), &settings);
        assert_eq!(relay.run_once().await.unwrap(), 6);
        let stop = CancellationToken::new();
        let consumer = Consumer::new("replay", db.pool.clone(), first.clone(), &[&topic])
            .spawn(Recorder::new("one"), stop.clone());
        eventually("6 handled", DEADLINE, || async {
            handled(&db.pool).await.distinct == 6
        })
        .await;
        stop.cancel();
        consumer.await.unwrap();
        let mut tx = db.pool.begin().await.unwrap();
        for e in &events[6..] {
            outbox::enqueue_envelope(&mut tx, &topic, e).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(relay.run_once().await.unwrap(), 4);
        drop(first); // the process dies: the 4 relayed events vanish with its bus

        // "Process 2": a fresh in-memory bus; the relay replays, the consumer catches up.
        let second: Arc<dyn Transport> = Arc::new(MemoryTransport::new(2));
        second.ensure_topics(&[&topic]).await.unwrap();
        let relay = Relay::new("svc", db.pool.clone(), second.clone(), &settings);
        assert_eq!(relay.replay_recent().await.unwrap(), 10);
        assert_eq!(relay.run_once().await.unwrap(), 10);
        let stop = CancellationToken::new();
        let consumer = Consumer::new("replay", db.pool.clone(), second, &[&topic])
            .spawn(Recorder::new("two"), stop.clone());
        eventually("all 10 handled", DEADLINE, || async {
            handled(&db.pool).await.distinct == 10
        })
        .await;
        stop.cancel();
        consumer.await.unwrap();
        assert_handled_exactly_once(&db.pool, 10).await;
        assert_per_key_order(&db.pool).await;
        db.drop_database().await;
    }
}
