//! One contract suite for the `HoldStore` trait, run against the in-memory and Redis stores.
//! Each case uses its own performance id, so cases share the Redis server safely.

use std::{sync::Arc, time::Duration};

use seat::{
    domain::SeatStatus,
    store::{Changes, Confirmed, Hold, HoldError, HoldStatus, HoldStore, StoreInventory},
};
use uuid::Uuid;

use crate::helpers::{Backend, store};

pub fn inventory(perf: Uuid, revision: i64, seats: usize, limit: i64) -> StoreInventory {
    StoreInventory {
        performance_id: perf,
        revision,
        seat_ids: (1..=seats).map(|i| format!("S{i}")).collect(),
        areas: vec![("GA".into(), 5)],
        ticket_limit: limit,
    }
}

pub fn hold(perf: Uuid, buyer: Uuid, seats: &[&str], expires_at_ms: i64) -> Hold {
    Hold {
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        buyer_id: buyer,
        seat_ids: seats.iter().map(|s| (*s).to_owned()).collect(),
        areas: Vec::new(),
        amount_krw: 1000 * seats.len() as i64,
        expires_at_ms,
        status: HoldStatus::Active,
    }
}

async fn status_of(store: &dyn HoldStore, perf: Uuid, seat: &str) -> SeatStatus {
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    snap.taken
        .iter()
        .find(|(s, _)| s == seat)
        .map_or(SeatStatus::Available, |(_, st)| *st)
}

const FAR: i64 = i64::MAX / 4;

async fn install_is_idempotent_by_revision(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    assert!(store.snapshot(perf).await.unwrap().is_none());
    let first = store
        .install(&inventory(perf, 1, 4, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.version, 1);
    assert!(first.reload);
    assert!(
        store
            .install(&inventory(perf, 1, 4, 0))
            .await
            .unwrap()
            .is_none()
    );
    let second = store
        .install(&inventory(perf, 2, 6, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.version, 2);
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!((snap.version, snap.revision), (2, 2));
    assert!(snap.taken.is_empty());
    assert_eq!(snap.areas[0].1, 5);
    // The new seat S6 is sellable.
    let h = hold(perf, Uuid::now_v7(), &["S6"], FAR);
    store.hold(&h).await.unwrap();
}

async fn holds_are_all_or_nothing(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 5, 0)).await.unwrap();
    let a = hold(perf, Uuid::now_v7(), &["S1", "S2"], FAR);
    let change = store.hold(&a).await.unwrap();
    assert_eq!(change.version, 2);
    assert_eq!(
        change.seats,
        vec![
            ("S1".into(), SeatStatus::Held),
            ("S2".into(), SeatStatus::Held)
        ]
    );
    // A repeated call (a retry after a lost reply) changes nothing.
    assert_eq!(store.hold(&a).await.unwrap().version, 0);
    let b = hold(perf, Uuid::now_v7(), &["S2", "S3"], FAR);
    match store.hold(&b).await {
        Err(HoldError::Unavailable { seat_ids, .. }) => assert_eq!(seat_ids, vec!["S2"]),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(status_of(&*store, perf, "S3").await, SeatStatus::Available);
    let unknown = hold(perf, Uuid::now_v7(), &["S3", "NOPE"], FAR);
    assert!(matches!(
        store.hold(&unknown).await,
        Err(HoldError::Unavailable { .. })
    ));
    let elsewhere = hold(Uuid::now_v7(), Uuid::now_v7(), &["S1"], FAR);
    assert!(matches!(
        store.hold(&elsewhere).await,
        Err(HoldError::UnknownPerformance)
    ));
    assert_eq!(store.snapshot(perf).await.unwrap().unwrap().version, 2);
    let found = store.find_hold(a.hold_id).await.unwrap().unwrap();
    assert_eq!(found, a);
    assert!(store.find_hold(b.hold_id).await.unwrap().is_none());
}

async fn release_frees_once(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 5, 0)).await.unwrap();
    let a = hold(perf, Uuid::now_v7(), &["S1", "S2"], FAR);
    store.hold(&a).await.unwrap();
    let (ended, change) = store
        .release(perf, a.hold_id, HoldStatus::Released)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, HoldStatus::Released);
    assert_eq!(ended.seat_ids, a.seat_ids);
    assert_eq!(
        change.seats,
        vec![
            ("S1".into(), SeatStatus::Available),
            ("S2".into(), SeatStatus::Available)
        ]
    );
    assert!(
        store
            .release(perf, a.hold_id, HoldStatus::Released)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.expire_next(perf, FAR * 2).await.unwrap().is_none());
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
    assert_eq!(
        store.find_hold(a.hold_id).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
}

async fn expiry_releases_one_hold_at_a_time(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 0)).await.unwrap();
    let h1 = hold(perf, Uuid::now_v7(), &["S1"], 100);
    let h2 = hold(perf, Uuid::now_v7(), &["S2", "S3"], 200);
    let h3 = hold(perf, Uuid::now_v7(), &["S4"], 300);
    for h in [&h2, &h1, &h3] {
        store.hold(h).await.unwrap();
    }
    assert!(store.expire_next(perf, 99).await.unwrap().is_none());
    let (first, _) = store.expire_next(perf, 250).await.unwrap().unwrap();
    assert_eq!(
        (first.hold_id, first.status),
        (h1.hold_id, HoldStatus::Expired)
    );
    let (second, change) = store.expire_next(perf, 250).await.unwrap().unwrap();
    assert_eq!(second.hold_id, h2.hold_id);
    assert_eq!(change.seats.len(), 2);
    assert!(store.expire_next(perf, 250).await.unwrap().is_none());
    // Expired holds cannot be released again; the seats are back on sale.
    assert!(
        store
            .release(perf, h1.hold_id, HoldStatus::Released)
            .await
            .unwrap()
            .is_none()
    );
    let again = hold(perf, Uuid::now_v7(), &["S1", "S2", "S3"], FAR);
    store.hold(&again).await.unwrap();
    assert_eq!(status_of(&*store, perf, "S4").await, SeatStatus::Held);
}

async fn buyer_limit_counts_held_and_sold(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 10, 4)).await.unwrap();
    let buyer = Uuid::now_v7();
    let a = hold(perf, buyer, &["S1", "S2", "S3"], FAR);
    store.hold(&a).await.unwrap();
    match store.hold(&hold(perf, buyer, &["S4", "S5"], FAR)).await {
        Err(HoldError::LimitExceeded { limit, current }) => assert_eq!((limit, current), (4, 3)),
        other => panic!("expected limit, got {other:?}"),
    }
    // Another buyer is not affected.
    store
        .hold(&hold(perf, Uuid::now_v7(), &["S4", "S5"], FAR))
        .await
        .unwrap();
    // Sold seats still count; returned ones do not.
    assert!(matches!(
        store.confirm(&a).await.unwrap(),
        Confirmed::Sold(_)
    ));
    assert!(matches!(
        store.hold(&hold(perf, buyer, &["S6", "S7"], FAR)).await,
        Err(HoldError::LimitExceeded { .. })
    ));
    store.unsell(&a).await.unwrap().unwrap();
    store
        .hold(&hold(perf, buyer, &["S6", "S7", "S8", "S9"], FAR))
        .await
        .unwrap();
}

async fn confirm_and_unsell_are_idempotent(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 0)).await.unwrap();
    let a = hold(perf, Uuid::now_v7(), &["S1", "S2"], FAR);
    store.hold(&a).await.unwrap();
    let Confirmed::Sold(change) = store.confirm(&a).await.unwrap() else {
        panic!("not sold")
    };
    assert_eq!(
        change.seats,
        vec![
            ("S1".into(), SeatStatus::Sold),
            ("S2".into(), SeatStatus::Sold)
        ]
    );
    assert_eq!(store.confirm(&a).await.unwrap(), Confirmed::AlreadySold);
    assert!(
        store
            .release(perf, a.hold_id, HoldStatus::Released)
            .await
            .unwrap()
            .is_none()
    );
    // Another sale of a sold seat conflicts.
    let b = hold(perf, Uuid::now_v7(), &["S2", "S3"], FAR);
    assert_eq!(
        store.confirm(&b).await.unwrap(),
        Confirmed::Conflict(vec!["S2".into()])
    );
    assert_eq!(status_of(&*store, perf, "S3").await, SeatStatus::Available);
    let back = store.unsell(&a).await.unwrap().unwrap();
    assert_eq!(back.seats.len(), 2);
    assert!(store.unsell(&a).await.unwrap().is_none());
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
    // A hold that lapsed can still be sold while its seats are free ...
    let c = hold(perf, Uuid::now_v7(), &["S4"], 10);
    store.hold(&c).await.unwrap();
    store.expire_next(perf, 20).await.unwrap().unwrap();
    assert!(matches!(
        store.confirm(&c).await.unwrap(),
        Confirmed::Sold(_)
    ));
    // ... but not once someone else holds them.
    let d = hold(perf, Uuid::now_v7(), &["S5"], 10);
    store.hold(&d).await.unwrap();
    store.expire_next(perf, 20).await.unwrap().unwrap();
    store
        .hold(&hold(perf, Uuid::now_v7(), &["S5"], FAR))
        .await
        .unwrap();
    assert_eq!(
        store.confirm(&d).await.unwrap(),
        Confirmed::Conflict(vec!["S5".into()])
    );
}

async fn areas_hold_quantities(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 2, 0)).await.unwrap();
    let mut a = hold(perf, Uuid::now_v7(), &[], FAR);
    a.areas = vec![("GA".into(), 3)];
    let change = store.hold(&a).await.unwrap();
    assert_eq!(change.areas[0].2, 3);
    let mut b = hold(perf, Uuid::now_v7(), &["S1"], FAR);
    b.areas = vec![("GA".into(), 3)];
    match store.hold(&b).await {
        Err(HoldError::Unavailable { seat_ids, areas }) => {
            assert!(seat_ids.is_empty());
            assert_eq!(areas, vec!["GA"]);
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
    let Confirmed::Sold(change) = store.confirm(&a).await.unwrap() else {
        panic!("not sold")
    };
    assert_eq!((change.areas[0].2, change.areas[0].3), (0, 3));
    b.areas = vec![("GA".into(), 2)];
    store.hold(&b).await.unwrap();
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(snap.areas[0].available(), 0);
}

async fn changes_come_in_version_order(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 5, 0)).await.unwrap();
    let a = hold(perf, Uuid::now_v7(), &["S1"], FAR);
    store.hold(&a).await.unwrap();
    store
        .release(perf, a.hold_id, HoldStatus::Released)
        .await
        .unwrap();
    let Changes::Next(all) = store.changes_after(perf, 0, Duration::ZERO).await.unwrap() else {
        panic!("truncated")
    };
    assert_eq!(
        all.iter().map(|c| c.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let Changes::Next(tail) = store.changes_after(perf, 2, Duration::ZERO).await.unwrap() else {
        panic!("truncated")
    };
    assert_eq!(tail, all[2..].to_vec());
    // A reader waiting at the head wakes up when the next change lands.
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.changes_after(perf, 3, Duration::from_secs(5)).await })
    };
    let b = hold(perf, Uuid::now_v7(), &["S2"], FAR);
    let change = store.hold(&b).await.unwrap();
    let Changes::Next(woke) = waiter.await.unwrap().unwrap() else {
        panic!("truncated")
    };
    assert_eq!(woke, vec![change]);
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::store(super::Backend::Memory).await).await;
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::store(super::Backend::Redis).await).await;
            })*
        }
    };
}

contract!(
    install_is_idempotent_by_revision,
    holds_are_all_or_nothing,
    release_frees_once,
    expiry_releases_one_hold_at_a_time,
    buyer_limit_counts_held_and_sold,
    confirm_and_unsell_are_idempotent,
    areas_hold_quantities,
    changes_come_in_version_order,
);
