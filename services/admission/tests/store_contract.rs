//! The queue store contract: every rule of `admission::store`, run against both implementations
//! (the Redis one against the real test Redis and the 3-master test Redis Cluster, each test
//! under its own key namespace and performance id), and a check that every key of one queue is
//! in one cluster slot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashSet, sync::Arc};

use admission::{
    draw,
    store::{Place, QueueStore, memory::MemoryQueueStore, redis::RedisQueueStore},
};
use uuid::Uuid;

const TTL: i64 = 600_000;

async fn memory() -> Arc<dyn QueueStore> {
    Arc::new(MemoryQueueStore::new())
}

async fn redis() -> Arc<dyn QueueStore> {
    let ns = format!("test-{}:", Uuid::new_v4().simple());
    Arc::new(
        RedisQueueStore::connect_in(&platform::testing::redis_url(), &ns)
            .await
            .expect("the test Redis (BOXOFFICE_TEST_REDIS_URL)"),
    )
}

async fn cluster() -> Arc<dyn QueueStore> {
    let ns = format!("test-{}:", Uuid::new_v4().simple());
    let target = platform::service::RedisSettings::cluster(platform::testing::redis_cluster())
        .target()
        .unwrap()
        .unwrap();
    Arc::new(
        RedisQueueStore::connect_to_in(&target, &ns)
            .await
            .expect("the test Redis Cluster (BOXOFFICE_TEST_REDIS_CLUSTER)"),
    )
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(#[tokio::test] async fn $name() { super::$name(super::memory().await).await })*
        }
        mod on_redis {
            $(#[tokio::test] async fn $name() { super::$name(super::redis().await).await })*
        }
        mod on_cluster {
            $(#[tokio::test] async fn $name() { super::$name(super::cluster().await).await })*
        }
    };
}

contract!(
    joining_again_keeps_the_place_and_its_token,
    five_hundred_concurrent_joins_are_served_first_come_first_served,
    the_draw_orders_the_prequeue_as_a_permutation_in_front_of_later_joins,
    the_draw_can_be_repeated_after_a_crash_part_way,
    admission_obeys_the_count_and_the_active_cap,
    passes_expire_and_a_new_join_goes_to_the_back,
    leaving_gives_up_the_place,
    unknown_tokens_are_not_found,
    one_replica_leads_a_queue_at_a_time,
    rate_limit_windows_count_hits,
    status_reads_count_against_their_limit,
    forgetting_a_queue_drops_it,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn token() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Opens the queue: closes the (empty or not) pre-queue and commits it in the order given by
/// a fresh seed; answers the accounts in draw order.
async fn open(store: &dyn QueueStore, perf: Uuid) -> Vec<Uuid> {
    let entries = store.close_prequeue(perf).await.unwrap().unwrap();
    let refs: Vec<draw::Digest32> = entries.iter().map(|e| draw::reference(&e.token)).collect();
    let seed = draw::new_seed();
    let order: Vec<Uuid> = draw::order(&seed, &refs)
        .into_iter()
        .map(|i| entries[i].account)
        .collect();
    store.commit_draw(perf, &order).await.unwrap();
    assert!(store.drawn(perf).await.unwrap());
    order
}

async fn ahead(store: &dyn QueueStore, perf: Uuid, token: &str) -> u64 {
    match store
        .status(perf, token, now())
        .await
        .unwrap()
        .unwrap()
        .place
    {
        Place::Waiting { ahead } => ahead,
        other => panic!("expected waiting, got {other:?}"),
    }
}

async fn joining_again_keeps_the_place_and_its_token(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let first = store.join(perf, a, &token(), now()).await.unwrap();
    assert!(!first.rejoined);
    assert_eq!(first.place, Place::Waiting { ahead: 0 });
    let second = store.join(perf, b, &token(), now()).await.unwrap();
    assert_eq!(second.place, Place::Waiting { ahead: 1 });
    // Another tab of the same account: the same place and token, no second place.
    let again = store.join(perf, a, &token(), now()).await.unwrap();
    assert!(again.rejoined);
    assert_eq!(again.token, first.token);
    assert_eq!(again.place, Place::Waiting { ahead: 0 });
    assert_eq!(store.counts(perf, now()).await.unwrap().waiting, 2);
    let found = store
        .status(perf, &first.token, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.account, a);
    // Another performance's queue knows nothing of it.
    assert!(
        store
            .status(Uuid::now_v7(), &first.token, now())
            .await
            .unwrap()
            .is_none()
    );
}

async fn five_hundred_concurrent_joins_are_served_first_come_first_served(
    store: Arc<dyn QueueStore>,
) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let joins = (0..500).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let account = Uuid::new_v4();
            let joined = store.join(perf, account, &token(), now()).await.unwrap();
            let Place::Waiting { ahead } = joined.place else {
                panic!("expected waiting, got {:?}", joined.place)
            };
            (ahead, account, joined.token)
        })
    });
    let mut placed: Vec<(u64, Uuid, String)> = futures::future::join_all(joins)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    placed.sort();
    // Each join saw a distinct place: exactly 0..500 people ahead, in arrival order.
    assert_eq!(
        placed.iter().map(|p| p.0).collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    // Positions read back agree, and admission takes them front first.
    for (i, (_, _, t)) in placed.iter().enumerate().step_by(50) {
        assert_eq!(ahead(&*store, perf, t).await, i as u64);
    }
    let step = store.admit(perf, 100, None, now(), TTL).await.unwrap();
    assert_eq!((step.admitted, step.waiting, step.active), (100, 400, 100));
    for (i, (_, _, t)) in placed.iter().enumerate() {
        let place = store.status(perf, t, now()).await.unwrap().unwrap().place;
        if i < 100 {
            assert!(matches!(place, Place::Admitted { .. }), "{i}: {place:?}");
        } else {
            assert_eq!(
                place,
                Place::Waiting {
                    ahead: i as u64 - 100
                },
                "{i}"
            );
        }
    }
}

async fn the_draw_orders_the_prequeue_as_a_permutation_in_front_of_later_joins(
    store: Arc<dyn QueueStore>,
) {
    let perf = Uuid::now_v7();
    let mut early = Vec::new();
    for _ in 0..300 {
        let account = Uuid::new_v4();
        let joined = store.join(perf, account, &token(), now()).await.unwrap();
        assert!(
            matches!(joined.place, Place::PreQueue { .. }),
            "{:?}",
            joined.place
        );
        early.push((account, joined.token));
    }
    // Refreshing early gives nothing: the same pre-queue place.
    let again = store.join(perf, early[0].0, &token(), now()).await.unwrap();
    assert!(again.rejoined && again.token == early[0].1);
    // Nobody is admitted before the draw.
    assert_eq!(
        store
            .admit(perf, 10, None, now(), TTL)
            .await
            .unwrap()
            .admitted,
        0
    );
    let entries = store.close_prequeue(perf).await.unwrap().unwrap();
    assert_eq!(entries.len(), 300);
    // Joins after the close go behind every pre-queue member, even before the commit.
    let late = Uuid::new_v4();
    let late_join = store.join(perf, late, &token(), now()).await.unwrap();
    assert_eq!(late_join.place, Place::Waiting { ahead: 300 });
    let refs: Vec<draw::Digest32> = entries.iter().map(|e| draw::reference(&e.token)).collect();
    let seed = draw::new_seed();
    let order: Vec<Uuid> = draw::order(&seed, &refs)
        .into_iter()
        .map(|i| entries[i].account)
        .collect();
    store.commit_draw(perf, &order).await.unwrap();
    // A permutation: everyone once, nobody lost or added.
    let drawn: HashSet<Uuid> = order.iter().copied().collect();
    let joined: HashSet<Uuid> = early.iter().map(|e| e.0).collect();
    assert_eq!(drawn, joined);
    assert_eq!(order.len(), 300);
    // Each member stands where the draw put it; the late joiner after them all.
    let token_of: std::collections::HashMap<Uuid, String> = early.iter().cloned().collect();
    for (i, account) in order.iter().enumerate().step_by(23) {
        assert_eq!(ahead(&*store, perf, &token_of[account]).await, i as u64);
    }
    assert_eq!(ahead(&*store, perf, &late_join.token).await, 300);
    let c = store.counts(perf, now()).await.unwrap();
    assert_eq!((c.waiting, c.prequeue), (301, 0));
    // Admission follows the draw.
    store.admit(perf, 1, None, now(), TTL).await.unwrap();
    let first = store
        .status(perf, &token_of[&order[0]], now())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first.place, Place::Admitted { .. }));
    assert_eq!(ahead(&*store, perf, &token_of[&order[1]]).await, 0);
    // The draw is done once.
    assert!(store.close_prequeue(perf).await.unwrap().is_none());
}

async fn the_draw_can_be_repeated_after_a_crash_part_way(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    for _ in 0..50 {
        store
            .join(perf, Uuid::new_v4(), &token(), now())
            .await
            .unwrap();
    }
    let first = store.close_prequeue(perf).await.unwrap().unwrap();
    // The admitter died here; another closes again: the same members.
    let mut second = store.close_prequeue(perf).await.unwrap().unwrap();
    let mut sorted = first.clone();
    sorted.sort_by_key(|e| e.account);
    second.sort_by_key(|e| e.account);
    assert_eq!(sorted, second);
    let order: Vec<Uuid> = first.iter().map(|e| e.account).collect();
    store.commit_draw(perf, &order).await.unwrap();
    store.commit_draw(perf, &order).await.unwrap();
    let c = store.counts(perf, now()).await.unwrap();
    assert_eq!((c.waiting, c.prequeue), (50, 0));
    let step = store.admit(perf, 100, None, now(), TTL).await.unwrap();
    assert_eq!(step.admitted, 50);
}

async fn admission_obeys_the_count_and_the_active_cap(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(
            store
                .join(perf, Uuid::new_v4(), &token(), now())
                .await
                .unwrap()
                .token,
        );
    }
    let step = store.admit(perf, 3, Some(5), now(), TTL).await.unwrap();
    assert_eq!((step.admitted, step.waiting, step.active), (3, 17, 3));
    // The cap: 5 active at most, whatever was asked.
    let step = store.admit(perf, 10, Some(5), now(), TTL).await.unwrap();
    assert_eq!((step.admitted, step.active), (2, 5));
    assert_eq!(
        store
            .admit(perf, 10, Some(5), now(), TTL)
            .await
            .unwrap()
            .admitted,
        0
    );
    // A buyer who buys (or leaves) frees a place for the next fan.
    let buyer = store
        .status(perf, &tokens[0], now())
        .await
        .unwrap()
        .unwrap()
        .account;
    assert!(store.leave(perf, buyer).await.unwrap());
    assert_eq!(store.counts(perf, now()).await.unwrap().active, 4);
    let step = store.admit(perf, 10, Some(5), now(), TTL).await.unwrap();
    assert_eq!((step.admitted, step.active), (1, 5));
    // Without a cap, the count alone.
    assert_eq!(
        store
            .admit(perf, 4, None, now(), TTL)
            .await
            .unwrap()
            .admitted,
        4
    );
    let c = store.counts(perf, now()).await.unwrap();
    assert_eq!((c.waiting, c.active), (10, 9));
}

async fn passes_expire_and_a_new_join_goes_to_the_back(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let a = Uuid::new_v4();
    let first = store.join(perf, a, &token(), now()).await.unwrap();
    for _ in 0..3 {
        store
            .join(perf, Uuid::new_v4(), &token(), now())
            .await
            .unwrap();
    }
    let t0 = now();
    store.admit(perf, 1, None, t0, 60_000).await.unwrap();
    let admitted = store.status(perf, &first.token, t0).await.unwrap().unwrap();
    assert_eq!(
        admitted.place,
        Place::Admitted {
            expires_ms: t0 + 60_000
        }
    );
    // Joining again while admitted answers the admission.
    let again = store.join(perf, a, &token(), t0).await.unwrap();
    assert!(again.rejoined);
    assert_eq!(
        again.place,
        Place::Admitted {
            expires_ms: t0 + 60_000
        }
    );
    // A minute later the pass has expired: the place is gone, and the active count drops.
    let later = t0 + 60_001;
    assert_eq!(
        store
            .status(perf, &first.token, later)
            .await
            .unwrap()
            .unwrap()
            .place,
        Place::Expired
    );
    assert_eq!(store.counts(perf, later).await.unwrap().active, 0);
    // A new join makes a new place at the back, with a new token; the old one stays expired.
    let new = store.join(perf, a, &token(), later).await.unwrap();
    assert!(!new.rejoined);
    assert_ne!(new.token, first.token);
    assert_eq!(new.place, Place::Waiting { ahead: 3 });
    assert_eq!(
        store
            .status(perf, &first.token, later)
            .await
            .unwrap()
            .unwrap()
            .place,
        Place::Expired
    );
}

async fn leaving_gives_up_the_place(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let ta = store.join(perf, a, &token(), now()).await.unwrap().token;
    store.join(perf, b, &token(), now()).await.unwrap();
    let tc = store.join(perf, c, &token(), now()).await.unwrap().token;
    assert!(store.leave(perf, b).await.unwrap());
    assert!(
        !store.leave(perf, b).await.unwrap(),
        "leaving twice finds nothing"
    );
    assert_eq!(ahead(&*store, perf, &tc).await, 1);
    assert_eq!(ahead(&*store, perf, &ta).await, 0);
    assert_eq!(store.counts(perf, now()).await.unwrap().waiting, 2);
}

async fn unknown_tokens_are_not_found(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    store
        .join(perf, Uuid::new_v4(), &token(), now())
        .await
        .unwrap();
    assert!(store.status(perf, &token(), now()).await.unwrap().is_none());
}

async fn one_replica_leads_a_queue_at_a_time(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    assert!(store.lead(perf, "a", 60_000).await.unwrap());
    assert!(store.lead(perf, "a", 60_000).await.unwrap(), "renewed");
    assert!(!store.lead(perf, "b", 60_000).await.unwrap());
    // Another queue has its own lease.
    assert!(store.lead(Uuid::now_v7(), "b", 60_000).await.unwrap());
    // A lease that ran out is taken over.
    let short = Uuid::now_v7();
    assert!(store.lead(short, "a", 30).await.unwrap());
    platform::testing::eventually(
        "the lease to run out",
        std::time::Duration::from_secs(5),
        || {
            let store = store.clone();
            async move { store.lead(short, "b", 60_000).await.unwrap() }
        },
    )
    .await;
    assert!(!store.lead(short, "a", 60_000).await.unwrap());
}

async fn rate_limit_windows_count_hits(store: Arc<dyn QueueStore>) {
    let key = format!("k:{}", Uuid::new_v4());
    for _ in 0..3 {
        assert!(store.hit(&key, 60_000, 3).await.unwrap());
    }
    assert!(!store.hit(&key, 60_000, 3).await.unwrap());
    assert!(store.hit(&format!("{key}-other"), 60_000, 3).await.unwrap());
}

async fn status_reads_count_against_their_limit(store: Arc<dyn QueueStore>) {
    use admission::store::{Counted, Limit};
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let fan = Uuid::now_v7();
    let t = token();
    store.join(perf, fan, &t, now()).await.unwrap();
    let key = format!("status:{fan}");
    let limit = Limit {
        key: &key,
        window_ms: 60_000,
        limit: 2,
    };
    for _ in 0..2 {
        match store.status_counted(perf, &t, now(), limit).await.unwrap() {
            Counted::Read(Some(found)) => {
                assert_eq!(found.account, fan);
                assert_eq!(found.place, Place::Waiting { ahead: 0 });
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        store.status_counted(perf, &t, now(), limit).await.unwrap(),
        Counted::Limited
    );
    // An unknown token counts too, and reads as unknown; another counter is apart.
    let other = format!("status:{}", Uuid::now_v7());
    let other = Limit {
        key: &other,
        ..limit
    };
    assert_eq!(
        store
            .status_counted(perf, "nope", now(), other)
            .await
            .unwrap(),
        Counted::Read(None)
    );
    // Counters of one key in two queues are apart.
    let perf2 = Uuid::now_v7();
    open(&*store, perf2).await;
    assert_eq!(
        store.status_counted(perf2, &t, now(), limit).await.unwrap(),
        Counted::Read(None)
    );
}

async fn forgetting_a_queue_drops_it(store: Arc<dyn QueueStore>) {
    let perf = Uuid::now_v7();
    open(&*store, perf).await;
    let t = store
        .join(perf, Uuid::new_v4(), &token(), now())
        .await
        .unwrap()
        .token;
    store.forget(perf).await.unwrap();
    assert!(store.status(perf, &t, now()).await.unwrap().is_none());
    assert_eq!(store.counts(perf, now()).await.unwrap().waiting, 0);
}

/// The cluster slot of `key`.
fn slot(key: &str) -> u16 {
    platform::testing::redis_cluster_slot(key)
}

/// Every key one queue has, through a whole life (pre-queue, draw, admission, lead, rate), is
/// in the slot of its performance's id; read back from one server, where nothing would refuse
/// a stray key.
#[tokio::test]
async fn every_key_of_a_queue_is_in_its_slot() {
    let ns = format!("test-{}:", Uuid::new_v4().simple());
    let store = RedisQueueStore::connect_in(&platform::testing::redis_url(), &ns)
        .await
        .unwrap();
    let perf = Uuid::now_v7();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    store.join(perf, a, &token(), now()).await.unwrap();
    assert!(store.lead(perf, "replica-1", 60_000).await.unwrap());
    let entries = store.close_prequeue(perf).await.unwrap().unwrap();
    store
        .commit_draw(perf, &entries.iter().map(|e| e.account).collect::<Vec<_>>())
        .await
        .unwrap();
    store.join(perf, b, &token(), now()).await.unwrap();
    store.set_rate(perf, 1.5).await.unwrap();
    store.admit(perf, 1, None, now(), TTL).await.unwrap();
    let client = redis::Client::open(platform::testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = platform::testing::scan_keys(&mut conn, &format!("{ns}*")).await;
    let want = slot(&perf.to_string());
    let mut suffixes: Vec<&str> = keys
        .iter()
        .map(|k| {
            assert_eq!(slot(k), want, "{k} is not in the queue's slot");
            k.rsplit(':').next().unwrap_or(k)
        })
        .collect();
    suffixes.sort();
    assert_eq!(suffixes, ["act", "cur", "lead", "meta", "q", "tok"]);
}

/// A namespace with a brace would move every queue's hash tag: refused.
#[tokio::test]
async fn a_namespace_cannot_hold_a_brace() {
    assert!(
        RedisQueueStore::connect_in(&platform::testing::redis_url(), "ns{x}:")
            .await
            .is_err()
    );
}
