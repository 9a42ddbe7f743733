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
                poison_event_does_not_delay_the_next,
                transient_failures_past_the_cap_are_dead_lettered,
                concurrent_writers_on_one_key_publish_in_commit_order,
                relay_holds_no_transaction_while_publishing,
                refused_row_is_dead_lettered_and_its_key_goes_on,
                a_stuck_partition_holds_back_only_itself,
            ]
        );
    };
}

all_cases!(memory, crate::support::Kind::Memory);
all_cases!(kafka, crate::support::Kind::Kafka);

/// Standalone's in-memory bus dies with its process: a new process's relay publishes again every
/// row that some consumer group had not committed, however long ago it went out, and the
/// consumer's inbox turns what was already handled into no-ops.
mod memory_restart {
    use std::{sync::Arc, time::Duration};

    use platform::{
        bus::{Transport, consumer::Consumer, memory::MemoryTransport, outbox, relay::Relay},
        testing::{TestDb, eventually},
    };
    use tokio_util::sync::CancellationToken;

    use crate::support::*;

    async fn unsettled(db: &TestDb) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM bus_outbox WHERE published_at IS NOT NULL AND settled_at IS NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_after_a_process_restart_covers_every_unconsumed_row() {
        let db = TestDb::new("bus_replay", None).await;
        create_handled_table(&db.pool).await;
        let topic = format!("replay-{}", uuid::Uuid::new_v4().simple());
        let settings = relay_settings(100);

        // "Process 1": 6 events relayed and handled; then 4 more relayed but never consumed
        // before the process dies.
        let memory = MemoryTransport::new(2);
        let first: Arc<dyn Transport> = Arc::new(memory.clone());
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
        // Every consumer has been announced: commits can settle rows from now on.
        memory.seal();
        eventually("6 handled", DEADLINE, || async {
            handled(&db.pool).await.distinct == 6
        })
        .await;
        eventually("the 6 handled rows settled", DEADLINE, || async {
            relay.settle().await.unwrap();
            unsettled(&db).await == 0
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
        assert_eq!(
            relay.settle().await.unwrap(),
            0,
            "settled rows nobody consumed"
        );
        // They went out long ago (no time window may leave them behind); the consumed ones
        // went out last.
        sqlx::query(
            "UPDATE bus_outbox SET published_at = now() - interval '1 day' WHERE settled_at IS NULL",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        drop(relay);
        drop(first);
        drop(memory); // the process dies: the 4 relayed events vanish with its bus

        // "Process 2": a fresh in-memory bus; the relay replays exactly the unconsumed rows.
        let memory = MemoryTransport::new(2);
        let second: Arc<dyn Transport> = Arc::new(memory.clone());
        second.ensure_topics(&[&topic]).await.unwrap();
        let relay = Relay::new("svc", db.pool.clone(), second.clone(), &settings);
        assert_eq!(relay.replay_unsettled().await.unwrap(), 4);
        assert_eq!(relay.run_once().await.unwrap(), 4);
        let stop = CancellationToken::new();
        let consumer = Consumer::new("replay", db.pool.clone(), second, &[&topic])
            .spawn(Recorder::new("two"), stop.clone());
        memory.seal();
        assert_handled_exactly_once(&db.pool, 10).await;
        eventually("everything settled", DEADLINE, || async {
            relay.settle().await.unwrap();
            unsettled(&db).await == 0
        })
        .await;
        stop.cancel();
        consumer.await.unwrap();
        db.drop_database().await;
    }

    /// A topic nobody reads does not keep its messages: they age out like consumed ones.
    #[tokio::test]
    async fn old_messages_are_dropped_without_a_consumer_group() {
        let bus = MemoryTransport::with_retention(1, Duration::ZERO);
        let old: Vec<_> = (0..3).map(|seq| envelope("k", seq)).collect();
        for e in &old {
            bus.publish("unread", e).await.unwrap();
        }
        // A group that comes later finds only what is younger than the retention: nothing of
        // the old ones (with a zero retention, only what is published after it joined).
        let mut late = bus.subscribe(&group("late"), &["unread"]).await.unwrap();
        let fresh = envelope("k", 3);
        bus.publish("unread", &fresh).await.unwrap();
        let first = tokio::time::timeout(DEADLINE, late.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.envelope.id, fresh.id, "an old message was kept");
        assert_eq!(first.offset, 3, "offsets do not shift");
    }
}

/// `outbox::enqueue` refuses an envelope over the bus's limit, so its producer learns in the
/// transaction of its change; the transaction stays usable and nothing of the refused event is
/// written.
mod outbox_limits {
    use platform::{
        bus::{BusError, outbox},
        testing::TestDb,
    };

    use crate::support::*;

    #[tokio::test]
    async fn an_envelope_over_the_limit_is_refused_at_enqueue() {
        let db = TestDb::new("bus_limits", None).await;
        // The JSON around the padding: the envelope of `envelope_with` with an empty `pad`.
        let frame = serde_json::to_vec(&envelope_with("k", 0, serde_json::json!({ "pad": "" })))
            .unwrap()
            .len();
        let fits = envelope_with(
            "k",
            0,
            serde_json::json!({ "pad": "x".repeat(outbox::MAX_ENVELOPE_BYTES - frame) }),
        );
        assert_eq!(
            serde_json::to_vec(&fits).unwrap().len(),
            outbox::MAX_ENVELOPE_BYTES
        );
        let over = envelope_with(
            "k",
            1,
            serde_json::json!({ "pad": "x".repeat(outbox::MAX_ENVELOPE_BYTES - frame + 1) }),
        );
        let mut tx = db.pool.begin().await.unwrap();
        let err = outbox::enqueue_envelope(&mut tx, "topic", &over)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BusError::Refused { code: "too_large", reason } if reason.contains("bus_test.happened")),
            "{err}"
        );
        // The refusal wrote nothing and broke nothing: the rest of the transaction commits.
        outbox::enqueue_envelope(&mut tx, "topic", &fits)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM bus_outbox")
            .fetch_all(&db.pool)
            .await
            .unwrap();
        assert_eq!(ids, vec![fits.id]);
        let stored: i32 = sqlx::query_scalar("SELECT octet_length(envelope::text) FROM bus_outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert!(
            (outbox::MAX_ENVELOPE_BYTES - 1_000..=outbox::MAX_ENVELOPE_BYTES + 1_000)
                .contains(&usize::try_from(stored).unwrap()),
            "{stored}"
        );
        db.drop_database().await;
    }
}

/// A dead node does not stall the rest: pooled sessions carry a lock timeout, an idle-in-transaction
/// timeout, a statement timeout and TCP keepalives (`database.*`).
mod sessions {
    use std::time::Duration;

    use platform::{
        db::{self, DatabaseSettings},
        testing::{self, TestDb, eventually},
    };

    async fn database(settings: &DatabaseSettings) -> TestDb {
        let server_url = testing::database_url();
        let name = testing::database_name("bus_sessions");
        let pool = db::connect(settings, &server_url, &name, None)
            .await
            .unwrap();
        TestDb {
            pool,
            name,
            server_url,
        }
    }

    /// A session that took a lock and went quiet (a node that died mid-transaction) makes the
    /// others' lock waits fail fast (55P03), then the server ends it and the lock is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_transaction_neither_blocks_nor_lives_forever() {
        let db = database(&DatabaseSettings {
            lock_timeout_ms: 200,
            idle_in_transaction_timeout_ms: 2_000,
            ..DatabaseSettings::default()
        })
        .await;
        let mut stuck = db.pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(42)")
            .execute(&mut *stuck)
            .await
            .unwrap();

        let mut other = db.pool.begin().await.unwrap();
        let waited = tokio::time::timeout(
            Duration::from_secs(30),
            sqlx::query("SELECT pg_advisory_xact_lock(42)").execute(&mut *other),
        )
        .await
        .expect("a lock wait was not bounded");
        let code = match waited {
            Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            other => panic!("expected a lock timeout, got {other:?}"),
        };
        assert_eq!(code.as_deref(), Some("55P03"));
        other.rollback().await.unwrap();

        eventually(
            "the idle transaction is ended",
            Duration::from_secs(30),
            || async {
                let mut tx = db.pool.begin().await.unwrap();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(42)")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                got
            },
        )
        .await;
        assert!(
            sqlx::query("SELECT 1").execute(&mut *stuck).await.is_err(),
            "the stuck session survived"
        );
        drop(stuck);
        db.drop_database().await;
    }

    /// Every pooled session starts with the configured limits and keepalives.
    #[tokio::test]
    async fn pooled_sessions_carry_the_limits() {
        let db = database(&DatabaseSettings::default()).await;
        let show = |name: &'static str| {
            let pool = db.pool.clone();
            async move {
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("SHOW {name}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(show("idle_in_transaction_session_timeout").await, "1min");
        assert_eq!(show("lock_timeout").await, "10s");
        assert_eq!(show("statement_timeout").await, "30s");
        // Over TCP (the test server's URL is host:port), the server probes idle clients.
        assert_eq!(show("tcp_keepalives_idle").await, "30");
        assert_eq!(show("tcp_keepalives_interval").await, "10");
        assert_eq!(show("tcp_keepalives_count").await, "3");
        db.drop_database().await;
    }
}
