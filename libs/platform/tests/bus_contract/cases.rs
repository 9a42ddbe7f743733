//! The contract every transport must meet, written once and run per transport (see the macro in
//! `bus_contract.rs`). Each case gets a fresh topic, fresh group names and a fresh database.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
};

use platform::{
    bus::{
        Delivery, Subscription, Transport,
        consumer::Consumer,
        outbox,
        relay::{RELAY_LOCK, Relay},
    },
    testing::{TestDb, eventually},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::*;

/// Takes `n` deliveries from `sub`, each within the deadline.
async fn receive(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let d = tokio::time::timeout(DEADLINE, sub.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} deliveries", out.len()))
            .unwrap();
        out.push(d);
    }
    out
}

async fn publish_all(
    transport: &Arc<dyn Transport>,
    topic: &str,
    envelopes: &[contracts::Envelope],
) {
    for e in envelopes {
        transport.publish(topic, e).await.unwrap();
    }
}

/// Fresh database with the recording table.
async fn database(label: &str) -> TestDb {
    let db = TestDb::new(label, None).await;
    create_handled_table(&db.pool).await;
    db
}

/// a. Everything published arrives once, in order per key, on a stable partition per key.
pub async fn publish_then_consume(kind: Kind) {
    let (transport, topic) = transport(kind, 4).await;
    let sent = interleaved(5, 40);
    publish_all(&transport, &topic, &sent).await;

    let mut sub = transport.subscribe(&group("a"), &[&topic]).await.unwrap();
    let got = receive(&mut sub, sent.len()).await;

    let ids: HashSet<Uuid> = got.iter().map(|d| d.envelope.id).collect();
    assert_eq!(ids.len(), sent.len(), "a delivery repeated");
    assert_eq!(
        ids,
        sent.iter().map(|e| e.id).collect(),
        "a delivery missing"
    );
    let mut last_seq: HashMap<&str, i64> = HashMap::new();
    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    for d in &got {
        assert_eq!(d.topic, topic);
        let key = d.envelope.key.as_str();
        let seq = seq_of(&d.envelope);
        if let Some(prev) = last_seq.insert(key, seq) {
            assert!(seq > prev, "key {key}: {seq} after {prev}");
        }
        let p = *partition_of.entry(key).or_insert(d.partition);
        assert_eq!(p, d.partition, "key {key} moved partition");
        if let Some(prev) = last_offset.insert(d.partition, d.offset) {
            assert!(
                d.offset > prev,
                "partition {}: offset {} after {prev}",
                d.partition,
                d.offset
            );
        }
        sub.commit(d).await.unwrap();
    }
    assert!(
        partition_of.values().collect::<HashSet<_>>().len() > 1,
        "5 keys all on one partition"
    );
}

/// A group resumes after its last commit: what was delivered but not committed comes again;
/// another group starts from the beginning.
pub async fn resume_after_commit(kind: Kind) {
    let (transport, topic) = transport(kind, 2).await;
    let sent: Vec<_> = (0..10).map(|seq| envelope("one-key", seq)).collect();
    publish_all(&transport, &topic, &sent).await;
    let g = group("resume");

    let mut sub = transport.subscribe(&g, &[&topic]).await.unwrap();
    let got = receive(&mut sub, 10).await;
    sub.commit(&got[3]).await.unwrap();
    drop(sub);

    let mut sub = transport.subscribe(&g, &[&topic]).await.unwrap();
    let again = receive(&mut sub, 6).await;
    let seqs: Vec<i64> = again.iter().map(|d| seq_of(&d.envelope)).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7, 8, 9], "resumed after the commit");
    sub.commit(&again[5]).await.unwrap();
    drop(sub);

    let mut other = transport
        .subscribe(&group("other"), &[&topic])
        .await
        .unwrap();
    let first = receive(&mut other, 1).await;
    assert_eq!(
        first[0].envelope.id, sent[0].id,
        "a new group starts at the beginning"
    );
}

/// b. The relay dies mid-batch (after publishing, before marking) twice; a new relay finishes.
/// Some events reach the broker twice, every event is handled exactly once, in order per key.
pub async fn relay_crash_publishes_everything_once(kind: Kind) {
    let db = database("bus_relay").await;
    let (transport, topic) = transport(kind, 4).await;
    let sent = interleaved(5, 12);
    let n = sent.len();
    for e in &sent {
        let mut tx = db.pool.begin().await.unwrap();
        outbox::enqueue_envelope(&mut tx, &topic, e).await.unwrap();
        tx.commit().await.unwrap();
    }
    let unpublished = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bus_outbox WHERE published_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };

    // Crash 1: the task is killed while publishing row 11; its whole batch rolls back.
    let hanging = Faulty::new(
        transport.clone(),
        Faults {
            hang_publish_after: Some(10),
            ..Faults::default()
        },
    );
    let token = CancellationToken::new();
    let relay = Relay::new(
        "test",
        db.pool.clone(),
        hanging.clone(),
        &relay_settings(25),
    )
    .spawn(token.clone());
    eventually("11 publishes reached the broker", DEADLINE, || async {
        hanging.published.load(Ordering::SeqCst) >= 11
    })
    .await;
    relay.abort();
    assert!(relay.await.unwrap_err().is_cancelled());
    assert_eq!(
        unpublished().await,
        i64::try_from(n).unwrap(),
        "a killed batch marked rows"
    );
    eventually("the killed relay's lock is released", DEADLINE, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7305002 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
            == 0
    })
    .await;

    // Crash 2: publish 16 reaches the broker but reports failure; rows 1-15 stay marked.
    let flaky = Faulty::new(
        transport.clone(),
        Faults {
            fail_publish_after: Some(15),
            ..Faults::default()
        },
    );
    let relay = Relay::new("test", db.pool.clone(), flaky.clone(), &relay_settings(25));
    assert!(
        relay.run_once().await.is_err(),
        "a failed publish must surface"
    );
    assert_eq!(unpublished().await, i64::try_from(n - 15).unwrap());

    // Broker down: nothing reaches it, nothing is marked.
    let down = Faulty::new(
        transport.clone(),
        Faults {
            refuse_publish: true,
            ..Faults::default()
        },
    );
    let relay = Relay::new("test", db.pool.clone(), down, &relay_settings(25));
    assert!(
        relay.run_once().await.is_err(),
        "a refused publish must surface"
    );
    assert_eq!(
        unpublished().await,
        i64::try_from(n - 15).unwrap(),
        "an unpublished row was marked"
    );

    // A healthy relay and a consumer finish the job.
    let watched = Faulty::new(transport.clone(), Faults::default());
    let relay = Relay::new(
        "test",
        db.pool.clone(),
        transport.clone(),
        &relay_settings(25),
    )
    .spawn(token.clone());
    let consumer = Consumer::new(&group("relay"), db.pool.clone(), watched.clone(), &[&topic])
        .spawn(Recorder::new("r"), token.clone());
    assert_handled_exactly_once(&db.pool, i64::try_from(n).unwrap()).await;
    eventually("outbox drained", DEADLINE, || async {
        unpublished().await == 0
    })
    .await;
    let delivered = watched.delivered();
    assert!(
        delivered.len() > n,
        "expected duplicates on the bus, got {} deliveries",
        delivered.len()
    );
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), n);

    token.cancel();
    relay.await.unwrap();
    consumer.await.unwrap();
    db.drop_database().await;
}

/// c. The consumer is killed while a handler transaction is open; a restart with the same group
/// resumes and the interrupted event is applied once.
pub async fn consumer_killed_mid_handler_resumes(kind: Kind) {
    let db = database("bus_kill").await;
    let (transport, topic) = transport(kind, 4).await;
    let sent = interleaved(4, 10);
    publish_all(&transport, &topic, &sent).await;
    let name = group("kill");

    let mut recorder = Recorder::new("first");
    recorder.hang_on = Some(sent[21].id);
    let hanging = recorder.hanging.clone();
    let token = CancellationToken::new();
    let first = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .spawn(recorder, token.clone());
    eventually("the handler hangs", DEADLINE, || async {
        hanging.load(Ordering::SeqCst)
    })
    .await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM handled WHERE event_id = $1")
        .bind(sent[21].id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(seen, 0, "an uncommitted handler write leaked");
    assert!(handled(&db.pool).await.rows < i64::try_from(sent.len()).unwrap());

    let second = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .spawn(Recorder::new("second"), token.clone());
    assert_handled_exactly_once(&db.pool, i64::try_from(sent.len()).unwrap()).await;
    token.cancel();
    second.await.unwrap();
    db.drop_database().await;
}

/// c'. The consumer is killed after the handler's transaction committed but before the offset
/// commit: the event is delivered again after the restart and skipped by the inbox.
pub async fn consumer_killed_before_offset_commit_handles_once(kind: Kind) {
    let db = database("bus_offset").await;
    let (transport, topic) = transport(kind, 4).await;
    let sent = interleaved(3, 10);
    publish_all(&transport, &topic, &sent).await;
    let name = group("offset");

    let stuck = Faulty::new(
        transport.clone(),
        Faults {
            hang_commit_after: Some(10),
            ..Faults::default()
        },
    );
    let token = CancellationToken::new();
    let first = Consumer::new(&name, db.pool.clone(), stuck.clone(), &[&topic])
        .spawn(Recorder::new("first"), token.clone());
    eventually("an offset commit hangs", DEADLINE, || async {
        stuck.stuck_commit.lock().unwrap().is_some()
    })
    .await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let stuck_id = stuck.stuck_commit.lock().unwrap().unwrap();
    // The 11th offset commit hangs after its transaction committed; other partitions' lanes may
    // have applied more meanwhile, none of whose offsets were committed either.
    let before = handled(&db.pool).await.rows;
    assert!(
        before >= 11,
        "{before} transactions committed before the kill, not at least 11"
    );

    let watched = Faulty::new(transport.clone(), Faults::default());
    let second = Consumer::new(&name, db.pool.clone(), watched.clone(), &[&topic])
        .spawn(Recorder::new("second"), token.clone());
    // The first consumer's lanes may have applied every event before the kill, so the books can
    // balance before the second consumer has read anything: wait for the redelivery itself.
    eventually("the uncommitted event redelivered", DEADLINE, || async {
        watched.delivered().contains(&stuck_id)
    })
    .await;
    assert_handled_exactly_once(&db.pool, i64::try_from(sent.len()).unwrap()).await;
    assert!(
        watched.delivered().contains(&stuck_id),
        "the uncommitted event was not redelivered"
    );
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_inbox WHERE consumer = $1")
        .bind(&name)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(inbox, i64::try_from(sent.len()).unwrap());
    token.cancel();
    second.await.unwrap();
    db.drop_database().await;
}

/// d. The same envelope published several times is applied once.
pub async fn redelivered_envelope_is_applied_once(kind: Kind) {
    let db = database("bus_dup").await;
    let (transport, topic) = transport(kind, 4).await;
    let [a, b, c, last] = [0, 1, 2, 3].map(|seq| envelope("dup-key", seq));
    let stream = [&a, &b, &a, &c, &b, &a, &last];
    for e in stream {
        transport.publish(&topic, e).await.unwrap();
    }
    let watched = Faulty::new(transport.clone(), Faults::default());
    let token = CancellationToken::new();
    let consumer = Consumer::new(&group("dup"), db.pool.clone(), watched.clone(), &[&topic])
        .spawn(Recorder::new("r"), token.clone());
    assert_handled_exactly_once(&db.pool, 4).await;
    assert!(
        watched.delivered().len() >= stream.len(),
        "every copy was delivered"
    );
    token.cancel();
    consumer.await.unwrap();
    db.drop_database().await;
}

/// e. A rejected event is dead-lettered and later events go on; a retried event is applied once,
/// before the events behind it.
pub async fn reject_dead_letters_and_retry_applies_once(kind: Kind) {
    let db = database("bus_reject").await;
    let (transport, topic) = transport(kind, 4).await;
    let poison = envelope_with("k", 1, serde_json::json!({ "poison": true }));
    let flaky = envelope_with("k", 3, serde_json::json!({ "fail_times": 3 }));
    let sent = [
        envelope("k", 0),
        poison.clone(),
        envelope("k", 2),
        flaky.clone(),
        envelope("k", 4),
    ];
    publish_all(&transport, &topic, &sent).await;

    let recorder = Recorder::new("r");
    let token = CancellationToken::new();
    let name = group("reject");
    let consumer = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .spawn(recorder.clone(), token.clone());
    let last = sent[4].id;
    eventually("the last event handled", DEADLINE, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM handled WHERE event_id = $1")
            .bind(last)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            > 0
    })
    .await;
    // One key, one partition: everything before the last event has been dealt with too.
    let h = handled(&db.pool).await;
    assert_eq!(
        (h.rows, h.distinct),
        (4, 4),
        "handled rows / distinct events"
    );
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM handled ORDER BY n")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(seqs, vec![0, 2, 3, 4]);
    assert_eq!(recorder.attempts(flaky.id), 4, "3 failures then success");
    let dead = dead_letters(&db, &name).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, poison.id);
    assert_eq!(dead[0].reason, "poison", "the handler's own code");
    assert_eq!(dead[0].topic, topic);
    assert!(
        dead[0].error.contains("poison"),
        "error text kept: {}",
        dead[0].error
    );
    assert_eq!(dead[0].envelope, poison);
    assert_eq!(
        recorder.attempts(poison.id),
        1,
        "rejected at the first attempt"
    );
    token.cancel();
    consumer.await.unwrap();
    db.drop_database().await;
}

/// f. Two replicas of a consumer split the partitions: every event applied once, by one of them,
/// and both did some of the work once the group settled.
pub async fn group_members_split_partitions(kind: Kind) {
    let db = database("bus_split").await;
    let (transport, topic) = transport(kind, 4).await;
    let name = group("split");
    let token = CancellationToken::new();
    let a = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .spawn(Recorder::new("a"), token.clone());
    let b = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .spawn(Recorder::new("b"), token.clone());

    // Warm up until both replicas have handled something: the group has settled.
    let mut warmups = 0_i64;
    let mut polls = 0_u32;
    eventually("both replicas handle warm-up events", DEADLINE, || {
        polls += 1;
        let publish = polls % 10 == 1;
        if publish {
            warmups += 1;
        }
        let (transport, topic, pool, n) =
            (transport.clone(), topic.clone(), db.pool.clone(), warmups);
        async move {
            if publish {
                transport
                    .publish(&topic, &envelope(&format!("warm-{n}"), -1))
                    .await
                    .unwrap();
            }
            let replicas: i64 = sqlx::query_scalar("SELECT count(DISTINCT replica) FROM handled")
                .fetch_one(&pool)
                .await
                .unwrap();
            replicas == 2
        }
    })
    .await;
    eventually("warm-up drained", DEADLINE, || async {
        handled(&db.pool).await.distinct >= warmups
    })
    .await;

    let sent: Vec<_> = (0..60)
        .map(|i| envelope(&format!("order-{i}"), 0))
        .collect();
    publish_all(&transport, &topic, &sent).await;
    assert_handled_exactly_once(&db.pool, warmups + 60).await;
    let by_replica: Vec<(String, i64)> = sqlx::query_as(
        "SELECT replica, count(*) FROM handled WHERE seq = 0 GROUP BY replica ORDER BY replica",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        by_replica.len(),
        2,
        "one replica did all the work: {by_replica:?}"
    );
    token.cancel();
    a.await.unwrap();
    b.await.unwrap();
    db.drop_database().await;
}

/// Two relay replicas on one outbox: the advisory lock lets one publish at a time, so no row is
/// published twice and order per key holds.
pub async fn concurrent_relays_publish_each_row_once(kind: Kind) {
    let db = database("bus_relays").await;
    let (transport, topic) = transport(kind, 4).await;
    let sent = interleaved(4, 25);
    let n = sent.len();
    for e in &sent {
        let mut tx = db.pool.begin().await.unwrap();
        outbox::enqueue_envelope(&mut tx, &topic, e).await.unwrap();
        tx.commit().await.unwrap();
    }
    // Slow publishes keep each batch open long enough for the other replica to try.
    let slow = Faulty::new(
        transport.clone(),
        Faults {
            publish_delay: Some(std::time::Duration::from_millis(2)),
            ..Faults::default()
        },
    );
    let token = CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|_| {
            Relay::new("test", db.pool.clone(), slow.clone(), &relay_settings(10))
                .spawn(token.clone())
        })
        .collect();
    let consumer = Consumer::new(
        &group("relays"),
        db.pool.clone(),
        transport.clone(),
        &[&topic],
    )
    .spawn(Recorder::new("r"), token.clone());
    assert_handled_exactly_once(&db.pool, i64::try_from(n).unwrap()).await;
    assert_eq!(
        slow.published.load(Ordering::SeqCst),
        n,
        "a row was published twice"
    );
    token.cancel();
    for relay in relays {
        relay.await.unwrap();
    }
    consumer.await.unwrap();
    db.drop_database().await;
}

/// A row of `bus_dead_letters`.
struct DeadLetter {
    event_id: Uuid,
    topic: String,
    reason: String,
    error: String,
    attempts: i32,
    envelope: contracts::Envelope,
}

async fn dead_letters(db: &TestDb, consumer: &str) -> Vec<DeadLetter> {
    let rows: Vec<(
        Uuid,
        String,
        String,
        String,
        i32,
        sqlx::types::Json<contracts::Envelope>,
    )> = sqlx::query_as(
        "SELECT event_id, topic, reason, error, attempts, envelope FROM bus_dead_letters \
             WHERE consumer = $1 ORDER BY failed_at",
    )
    .bind(consumer)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(
            |(event_id, topic, reason, error, attempts, envelope)| DeadLetter {
                event_id,
                topic,
                reason,
                error,
                attempts,
                envelope: envelope.0,
            },
        )
        .collect()
}

async fn in_inbox(db: &TestDb, consumer: &str, id: Uuid) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bus_inbox WHERE consumer = $1 AND event_id = $2)",
    )
    .bind(consumer)
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn handled_seqs(db: &TestDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT seq FROM handled ORDER BY n")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Waits until the event `id` has been handled.
async fn wait_handled(db: &TestDb, id: Uuid) {
    eventually("the event handled", DEADLINE, || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM handled WHERE event_id = $1)")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    })
    .await;
}

/// g. A poison event (a handler write that breaks a CHECK constraint, returned with `?`) on a
/// topic other events share is dead-lettered at its first attempt, with its inbox row and none of
/// its writes, and the event behind it on the same key goes on. Delivered again, it is skipped:
/// neither applied nor dead-lettered twice.
pub async fn poison_event_does_not_delay_the_next(kind: Kind) {
    let db = database("bus_poison").await;
    let (transport, topic) = transport(kind, 4).await;
    let poison = envelope_with("shared", 1, serde_json::json!({ "violate": true }));
    let next = envelope("shared", 2);
    publish_all(
        &transport,
        &topic,
        &[envelope("shared", 0), poison.clone(), next.clone()],
    )
    .await;

    let recorder = Recorder::new("r");
    let token = CancellationToken::new();
    let name = group("poison");
    // Default caps: a poison retried as transient would hold the key for many seconds.
    let consumer = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .spawn(recorder.clone(), token.clone());
    wait_handled(&db, next.id).await;
    assert_eq!(recorder.attempts(poison.id), 1, "the poison was retried");
    assert_eq!(
        handled_seqs(&db).await,
        vec![0, 2],
        "the poison's own write was kept"
    );
    let dead = dead_letters(&db, &name).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id, dead[0].reason.as_str(), dead[0].attempts),
        (poison.id, "constraint", 1)
    );
    assert!(
        dead[0].error.contains("23514") || dead[0].error.contains("check"),
        "{}",
        dead[0].error
    );
    assert!(
        in_inbox(&db, &name, poison.id).await,
        "dead letter without its inbox row"
    );

    // Redelivered (a lost offset commit, a replay): skipped by the inbox.
    let after = envelope("shared", 3);
    publish_all(&transport, &topic, &[poison.clone(), after.clone()]).await;
    wait_handled(&db, after.id).await;
    assert_eq!(
        recorder.attempts(poison.id),
        1,
        "a dead-lettered event was tried again"
    );
    assert_eq!(dead_letters(&db, &name).await.len(), 1);
    assert_eq!(handled_seqs(&db).await, vec![0, 2, 3]);
    token.cancel();
    consumer.await.unwrap();
    db.drop_database().await;
}

/// h. An event that keeps failing transiently is tried `consumer_max_attempts` times, then
/// dead-lettered (`retries_exhausted`) with its inbox row; the key goes on.
pub async fn transient_failures_past_the_cap_are_dead_lettered(kind: Kind) {
    let db = database("bus_cap").await;
    let (transport, topic) = transport(kind, 2).await;
    let stuck = envelope_with("k", 1, serde_json::json!({ "fail_times": 1_000_000 }));
    let next = envelope("k", 2);
    publish_all(
        &transport,
        &topic,
        &[envelope("k", 0), stuck.clone(), next.clone()],
    )
    .await;
    let recorder = Recorder::new("r");
    let token = CancellationToken::new();
    let name = group("cap");
    let consumer = Consumer::new(&name, db.pool.clone(), transport.clone(), &[&topic])
        .with_settings(&consumer_settings(3))
        .spawn(recorder.clone(), token.clone());
    wait_handled(&db, next.id).await;
    assert_eq!(recorder.attempts(stuck.id), 3, "attempts before giving up");
    assert_eq!(handled_seqs(&db).await, vec![0, 2]);
    let dead = dead_letters(&db, &name).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id, dead[0].reason.as_str(), dead[0].attempts),
        (stuck.id, "retries_exhausted", 3)
    );
    assert!(
        dead[0].error.contains("attempt 3 fails"),
        "{}",
        dead[0].error
    );
    assert!(in_inbox(&db, &name, stuck.id).await);
    token.cancel();
    consumer.await.unwrap();
    db.drop_database().await;
}

/// i. Two transactions write an event of one key: the first to write commits last. The second
/// waits for the first (the outbox's per-key lock), so the relay publishes them in commit order.
pub async fn concurrent_writers_on_one_key_publish_in_commit_order(kind: Kind) {
    let db = database("bus_order").await;
    let (transport, topic) = transport(kind, 2).await;
    let first = envelope("race", 1);
    let second = envelope("race", 2);
    let commits: Arc<std::sync::Mutex<Vec<Uuid>>> = Arc::default();

    let mut tx = db.pool.begin().await.unwrap();
    outbox::enqueue_envelope(&mut tx, &topic, &first)
        .await
        .unwrap();
    let writer = {
        let (pool, topic, second, commits) = (
            db.pool.clone(),
            topic.clone(),
            second.clone(),
            commits.clone(),
        );
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            outbox::enqueue_envelope(&mut tx, &topic, &second)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            commits.lock().unwrap().push(second.id);
        })
    };
    // Either the second writer is waiting for the first one's lock, or (without the lock) it
    // has committed already.
    eventually(
        "the second writer waits or has committed",
        DEADLINE,
        || async {
            let waiting: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database())",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            waiting || !commits.lock().unwrap().is_empty()
        },
    )
    .await;
    tx.commit().await.unwrap();
    commits.lock().unwrap().push(first.id);
    writer.await.unwrap();
    let commit_order = commits.lock().unwrap().clone();

    let relay = Relay::new(
        "test",
        db.pool.clone(),
        transport.clone(),
        &relay_settings(10),
    );
    assert_eq!(relay.run_once().await.unwrap(), 2);
    let mut sub = transport
        .subscribe(&group("order"), &[&topic])
        .await
        .unwrap();
    let published: Vec<Uuid> = receive(&mut sub, 2)
        .await
        .iter()
        .map(|d| d.envelope.id)
        .collect();
    assert_eq!(published, commit_order, "published against commit order");
    assert_eq!(published, vec![first.id, second.id]);
    db.drop_database().await;
}

/// j. While the relay waits for the transport, it holds no transaction (nothing for a dead
/// broker to keep open: no snapshot, no row lock) but keeps its advisory lock, so a second relay
/// publishes nothing.
pub async fn relay_holds_no_transaction_while_publishing(kind: Kind) {
    let db = database("bus_notx").await;
    let (transport, topic) = transport(kind, 2).await;
    let sent = envelope("k", 0);
    let mut tx = db.pool.begin().await.unwrap();
    outbox::enqueue_envelope(&mut tx, &topic, &sent)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let gate = Gate::new(transport.clone());
    let relay = Arc::new(Relay::new(
        "test",
        db.pool.clone(),
        gate.clone(),
        &relay_settings(10),
    ));
    let entered = gate.entered.notified();
    let running = {
        let relay = relay.clone();
        tokio::spawn(async move { relay.run_once().await })
    };
    tokio::time::timeout(DEADLINE, entered).await.unwrap();

    let open_transactions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
         AND xact_start IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        open_transactions, 0,
        "a transaction is open while publishing"
    );
    let mut other = db.pool.begin().await.unwrap();
    let locked: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM bus_outbox WHERE id = $1 FOR UPDATE NOWAIT")
            .bind(sent.id)
            .fetch_all(&mut *other)
            .await
            .unwrap();
    assert_eq!(locked.len(), 1, "the row is lockable by another session");
    other.rollback().await.unwrap();
    let holders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objid::bigint = $1 \
         AND d.datname = current_database()",
    )
    .bind(RELAY_LOCK)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(holders, 1, "the publishing relay holds the relay lock");
    let second = Relay::new(
        "test",
        db.pool.clone(),
        transport.clone(),
        &relay_settings(10),
    );
    assert_eq!(
        second.run_once().await.unwrap(),
        0,
        "a second relay published"
    );

    gate.open();
    assert_eq!(running.await.unwrap().unwrap(), 1);
    let published: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT published_at FROM bus_outbox WHERE id = $1")
            .bind(sent.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(published.is_some(), "the row was not marked published");
    let mut sub = transport
        .subscribe(&group("notx"), &[&topic])
        .await
        .unwrap();
    assert_eq!(receive(&mut sub, 1).await[0].envelope.id, sent.id);
    db.drop_database().await;
}

/// A row the transport refuses for good (a record too large for the broker) is dead-lettered by
/// the relay, moved out of the outbox with why, and the rows after it on its key go out in order;
/// a transient failure dead-letters nothing and keeps the row for the next batch.
pub async fn refused_row_is_dead_lettered_and_its_key_goes_on(kind: Kind) {
    let db = database("bus_refused").await;
    let (transport, topic) = transport(kind, 4).await;
    let refused = envelope_with("k", 1, serde_json::json!({ "unpublishable": true }));
    let rows = [
        envelope("k", 0),
        refused.clone(),
        envelope("k", 2),
        envelope("other", 0),
    ];
    let mut tx = db.pool.begin().await.unwrap();
    for e in &rows {
        outbox::enqueue_envelope(&mut tx, &topic, e).await.unwrap();
    }
    tx.commit().await.unwrap();

    // The broker down first: nothing goes out, nothing is dead-lettered, every row waits.
    let down = Faulty::new(
        transport.clone(),
        Faults {
            refuse_publish: true,
            refuse_marked: true,
            ..Faults::default()
        },
    );
    let relay = Relay::new("svc", db.pool.clone(), down, &relay_settings(100));
    assert!(relay.run_once().await.is_err());
    assert!(outbox_dead_letters(&db.pool).await.is_empty());
    assert!(in_outbox(&db.pool, refused.id).await);

    let picky = Faulty::new(
        transport.clone(),
        Faults {
            refuse_marked: true,
            ..Faults::default()
        },
    );
    let relay = Relay::new("svc", db.pool.clone(), picky, &relay_settings(100));
    assert_eq!(relay.run_once().await.unwrap(), 3);
    let dead = outbox_dead_letters(&db.pool).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (
            dead[0].event_id,
            dead[0].key.as_str(),
            dead[0].reason.as_str()
        ),
        (refused.id, "k", "too_large")
    );
    assert_eq!(dead[0].topic, topic);
    assert!(dead[0].error.contains("never take it"), "{}", dead[0].error);
    assert!(!in_outbox(&db.pool, refused.id).await, "left in the outbox");
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bus_outbox WHERE published_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 0);
    // Nothing left to try: the next batch publishes nothing and dead-letters nothing more.
    assert_eq!(relay.run_once().await.unwrap(), 0);
    assert_eq!(outbox_dead_letters(&db.pool).await.len(), 1);

    // Consumers get the rest of the key, in order, without the refused row.
    let recorder = Recorder::new("r");
    let token = CancellationToken::new();
    let consumer = Consumer::new(&group("refused"), db.pool.clone(), transport, &[&topic])
        .spawn(recorder, token.clone());
    wait_handled(&db, rows[3].id).await;
    wait_handled(&db, rows[2].id).await;
    let seqs: Vec<(String, i64)> = sqlx::query_as("SELECT key, seq FROM handled ORDER BY n")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let of_k: Vec<i64> = seqs
        .iter()
        .filter(|(k, _)| k == "k")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(of_k, vec![0, 2]);
    token.cancel();
    consumer.await.unwrap();
    db.drop_database().await;
}

/// o. Partitions are applied in parallel: an event that keeps failing transiently holds back the
/// events behind it on its partition (per-key order) and nothing else — every event of the other
/// partitions is applied meanwhile.
pub async fn a_stuck_partition_holds_back_only_itself(kind: Kind) {
    let db = database("bus_lanes").await;
    let (transport, topic) = transport(kind, 4).await;
    let stuck = envelope_with("stuck", 0, serde_json::json!({ "fail_times": 1_000_000 }));
    let stuck_partition = transport.publish(&topic, &stuck).await.unwrap().partition;
    let behind = envelope("stuck", 1);
    transport.publish(&topic, &behind).await.unwrap();
    // Other keys, each on whichever partition the transport puts it.
    let mut elsewhere = Vec::new();
    let mut same_partition = Vec::new();
    for i in 0..24 {
        let e = envelope(&format!("k{i}"), 0);
        let receipt = transport.publish(&topic, &e).await.unwrap();
        if receipt.partition == stuck_partition {
            same_partition.push(e.id);
        } else {
            elsewhere.push(e.id);
        }
    }
    assert!(!elsewhere.is_empty(), "24 keys all on one partition of 4");

    let recorder = Recorder::new("r");
    let token = CancellationToken::new();
    let consumer = Consumer::new(
        &group("lanes"),
        db.pool.clone(),
        transport.clone(),
        &[&topic],
    )
    .with_settings(&consumer_settings(1_000_000))
    .spawn(recorder.clone(), token.clone());
    for id in &elsewhere {
        wait_handled(&db, *id).await;
    }
    assert!(
        recorder.attempts(stuck.id) >= 1,
        "the stuck event was tried"
    );
    // Its partition waits behind it, in order; the others did not.
    for id in std::iter::once(&behind.id).chain(&same_partition) {
        assert!(!in_handled(&db, *id).await, "applied past the stuck event");
    }
    let h = handled(&db.pool).await;
    assert_eq!(
        (h.rows, h.distinct),
        (elsewhere.len() as i64, elsewhere.len() as i64),
        "every other event once"
    );
    token.cancel();
    consumer.await.unwrap();
    db.drop_database().await;
}

async fn in_handled(db: &TestDb, id: Uuid) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM handled WHERE event_id = $1)")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}
