//! `platform::wakeups` against the real PostgreSQL: a wait ends at the commit that notifies its
//! key, never at a rollback or another key's, and a wait nobody notifies runs to its timeout.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use platform::{
    testing::TestDb,
    wakeups::{Wakeups, notify},
};
use tokio_util::sync::CancellationToken;

/// Longer than any of these tests needs; a wait that should end never waits this long.
const LONG: Duration = Duration::from_secs(20);

async fn listening(db: &TestDb) -> (Wakeups, CancellationToken) {
    let shutdown = CancellationToken::new();
    let (wakeups, _task) = Wakeups::spawn(db.pool.clone(), "test_wakeups", shutdown.clone());
    // The listener is up once a notification sent now reaches a waiter.
    let mut probe = wakeups.subscribe("probe");
    loop {
        let mut tx = db.pool.begin().await.unwrap();
        notify(&mut tx, "test_wakeups", "probe").await.unwrap();
        tx.commit().await.unwrap();
        if probe.wait(Duration::from_millis(200)).await {
            break;
        }
    }
    (wakeups, shutdown)
}

#[tokio::test]
async fn a_wait_ends_at_the_commit_of_its_key_only() {
    let db = TestDb::new("wakeups", None).await;
    let (wakeups, shutdown) = listening(&db).await;
    let mut mine = wakeups.subscribe("order-1");
    let mut other = wakeups.subscribe("order-2");
    assert_eq!(wakeups.waiting(), 2);

    // Rolled back: nothing is sent.
    let mut tx = db.pool.begin().await.unwrap();
    notify(&mut tx, "test_wakeups", "order-1").await.unwrap();
    tx.rollback().await.unwrap();
    // Committed: only its key's waiter wakes.
    let mut tx = db.pool.begin().await.unwrap();
    notify(&mut tx, "test_wakeups", "order-1").await.unwrap();
    tx.commit().await.unwrap();
    assert!(mine.wait(LONG).await, "woken by the commit");
    assert!(!other.wait(Duration::from_millis(300)).await, "another key");
    // A woken subscription is spent; dropping the others leaves nothing registered.
    drop(mine);
    drop(other);
    assert_eq!(wakeups.waiting(), 0);
    shutdown.cancel();
    db.drop_database().await;
}

#[tokio::test]
async fn a_wait_nobody_notifies_runs_to_its_timeout_and_leaves_nothing_behind() {
    let db = TestDb::new("wakeups", None).await;
    let (wakeups, shutdown) = listening(&db).await;
    for _ in 0..100 {
        let mut w = wakeups.subscribe("never");
        assert!(!w.wait(Duration::from_millis(1)).await);
    }
    assert_eq!(wakeups.waiting(), 0);
    shutdown.cancel();
    db.drop_database().await;
}
