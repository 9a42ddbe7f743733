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
