//! One contract suite for the `HoldStore` trait, run against the in-memory store and the Redis
//! store on one server and on the 3-master test Redis Cluster. Each case uses its own
//! performance id, so cases share the Redis server and the cluster safely.

use std::{sync::Arc, time::Duration};

use platform::testing;
use seat::{
    domain::SeatStatus,
    store::{Changes, Confirmed, Hold, HoldStatus, HoldStore, StoreError, StoreInventory},
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
        sale_opens_at_ms: 0,
        sale_closes_at_ms: FAR,
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
        presale_limit: None,
    }
}

async fn status_of(store: &dyn HoldStore, perf: Uuid, seat: &str) -> SeatStatus {
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    snap.taken
        .iter()
        .find(|(s, _)| s == seat)
        .map_or(SeatStatus::Available, |(_, st)| *st)
}

pub const FAR: i64 = i64::MAX / 4;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The next hold to expire by the store's clock, as soon as one lapses (within 10 s).
async fn expire_when_due(store: &dyn HoldStore, perf: Uuid) -> (Hold, seat::domain::Change) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(ended) = store.expire_next(perf).await.unwrap() {
            return ended;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no hold lapsed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
        Err(StoreError::Unavailable { seat_ids, .. }) => assert_eq!(seat_ids, vec!["S2"]),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(status_of(&*store, perf, "S3").await, SeatStatus::Available);
    let unknown = hold(perf, Uuid::now_v7(), &["S3", "NOPE"], FAR);
    assert!(matches!(
        store.hold(&unknown).await,
        Err(StoreError::Unavailable { .. })
    ));
    let elsewhere = hold(Uuid::now_v7(), Uuid::now_v7(), &["S1"], FAR);
    assert!(matches!(
        store.hold(&elsewhere).await,
        Err(StoreError::UnknownPerformance)
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
    assert!(store.expire_next(perf).await.unwrap().is_none());
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
    assert_eq!(
        store.find_hold(a.hold_id).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
}

async fn expiry_releases_one_hold_at_a_time(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 0)).await.unwrap();
    // Expiry goes by the store's clock: h1 and h2 lapsed before they were placed, h3 never does.
    let now = now_ms();
    let h1 = hold(perf, Uuid::now_v7(), &["S1"], now - 20_000);
    let h2 = hold(perf, Uuid::now_v7(), &["S2", "S3"], now - 10_000);
    let h3 = hold(perf, Uuid::now_v7(), &["S4"], FAR);
    store.hold(&h3).await.unwrap();
    assert!(store.expire_next(perf).await.unwrap().is_none());
    for h in [&h2, &h1] {
        store.hold(h).await.unwrap();
    }
    let (first, _) = store.expire_next(perf).await.unwrap().unwrap();
    assert_eq!(
        (first.hold_id, first.status),
        (h1.hold_id, HoldStatus::Expired)
    );
    let (second, change) = store.expire_next(perf).await.unwrap().unwrap();
    assert_eq!(second.hold_id, h2.hold_id);
    assert_eq!(change.seats.len(), 2);
    assert!(store.expire_next(perf).await.unwrap().is_none());
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
        Err(StoreError::LimitExceeded { limit, current }) => assert_eq!((limit, current), (4, 3)),
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
        Err(StoreError::LimitExceeded { .. })
    ));
    store.unsell(&a).await.unwrap().unwrap();
    store
        .hold(&hold(perf, buyer, &["S6", "S7", "S8", "S9"], FAR))
        .await
        .unwrap();
}

/// A presale's lower limit, carried by each hold placed in presale, counts the buyer's earlier
/// holds too: several holds in a row stay within it; without it the performance's limit rules.
async fn a_presale_limit_is_the_lower_across_holds(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 10, 4)).await.unwrap();
    let buyer = Uuid::now_v7();
    let presale = |seats: &[&str]| Hold {
        presale_limit: Some(2),
        ..hold(perf, buyer, seats, FAR)
    };
    store.hold(&presale(&["S1"])).await.unwrap();
    store.hold(&presale(&["S2"])).await.unwrap();
    match store.hold(&presale(&["S3"])).await {
        Err(StoreError::LimitExceeded { limit, current }) => assert_eq!((limit, current), (2, 2)),
        other => panic!("expected the presale limit, got {other:?}"),
    }
    // A cap above the performance's limit does not raise it.
    let loose = Hold {
        presale_limit: Some(10),
        ..hold(perf, buyer, &["S3", "S4", "S5"], FAR)
    };
    assert!(matches!(
        store.hold(&loose).await,
        Err(StoreError::LimitExceeded { limit: 4, .. })
    ));
    // In the general sale (no cap) the same buyer goes on to the performance's limit.
    store
        .hold(&hold(perf, buyer, &["S3", "S4"], FAR))
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
    // A sale through a hold the store never placed sells nothing.
    let b = hold(perf, Uuid::now_v7(), &["S2", "S3"], FAR);
    assert!(matches!(
        store.confirm(&b).await,
        Err(StoreError::UnknownHold)
    ));
    assert_eq!(status_of(&*store, perf, "S3").await, SeatStatus::Available);
    let back = store.unsell(&a).await.unwrap().unwrap();
    assert_eq!(back.seats.len(), 2);
    assert!(store.unsell(&a).await.unwrap().is_none());
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
    // A hold that lapsed can still be sold while its seats are free ...
    let c = hold(perf, Uuid::now_v7(), &["S4"], 10);
    store.hold(&c).await.unwrap();
    store.expire_next(perf).await.unwrap().unwrap();
    assert!(matches!(
        store.confirm(&c).await.unwrap(),
        Confirmed::Sold(_)
    ));
    // ... but not once someone else holds them.
    let d = hold(perf, Uuid::now_v7(), &["S5"], 10);
    store.hold(&d).await.unwrap();
    store.expire_next(perf).await.unwrap().unwrap();
    store
        .hold(&hold(perf, Uuid::now_v7(), &["S5"], FAR))
        .await
        .unwrap();
    match store.confirm(&d).await {
        Err(StoreError::Unavailable { seat_ids, areas }) => {
            assert_eq!((seat_ids, areas), (vec!["S5".to_owned()], Vec::new()));
        }
        other => panic!("expected the seat taken, got {other:?}"),
    }
    assert_eq!(status_of(&*store, perf, "S5").await, SeatStatus::Held);
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
        Err(StoreError::Unavailable { seat_ids, areas }) => {
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

async fn ga_confirm_of_a_lapsed_hold_checks_capacity(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 2, 0)).await.unwrap(); // GA: 5 places
    let mut late = hold(perf, Uuid::now_v7(), &[], 10);
    late.areas = vec![("GA".into(), 3)];
    store.hold(&late).await.unwrap();
    store.expire_next(perf).await.unwrap().unwrap();
    let mut full = hold(perf, Uuid::now_v7(), &[], FAR);
    full.areas = vec![("GA".into(), 5)];
    store.hold(&full).await.unwrap();
    assert!(matches!(
        store.confirm(&full).await.unwrap(),
        Confirmed::Sold(_)
    ));
    // The late payment finds the area sold out: refused, nothing changes.
    let before = store.snapshot(perf).await.unwrap().unwrap();
    match store.confirm(&late).await {
        Err(StoreError::Unavailable { seat_ids, areas }) => {
            assert_eq!((seat_ids, areas), (Vec::new(), vec!["GA".to_owned()]));
        }
        other => panic!("a lapsed hold sold past capacity: {other:?}"),
    }
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(snap, before);
    assert_eq!(snap.areas[0].3, 5);
    // Room left over is sold to a lapsed hold; other buyers' live holds keep theirs.
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 2, 0)).await.unwrap();
    let mut late = hold(perf, Uuid::now_v7(), &[], 10);
    late.areas = vec![("GA".into(), 2)];
    store.hold(&late).await.unwrap();
    store.expire_next(perf).await.unwrap().unwrap();
    let mut other = hold(perf, Uuid::now_v7(), &[], FAR);
    other.areas = vec![("GA".into(), 4)];
    store.hold(&other).await.unwrap();
    assert!(matches!(
        store.confirm(&late).await,
        Err(StoreError::Unavailable { .. })
    ));
    store
        .release(perf, other.hold_id, HoldStatus::Released)
        .await
        .unwrap()
        .unwrap();
    let Confirmed::Sold(change) = store.confirm(&late).await.unwrap() else {
        panic!("not sold")
    };
    assert_eq!(
        change.areas[0],
        seat::domain::AreaCount("GA".into(), 5, 0, 2)
    );
}

async fn confirm_counts_the_limit_for_a_lapsed_hold(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 10, 4)).await.unwrap();
    let buyer = Uuid::now_v7();
    // Hold 4, (order,) release, hold 4 more, pay both: only 4 are sold.
    let first = hold(perf, buyer, &["S1", "S2", "S3", "S4"], FAR);
    store.hold(&first).await.unwrap();
    store
        .release(perf, first.hold_id, HoldStatus::Released)
        .await
        .unwrap()
        .unwrap();
    let second = hold(perf, buyer, &["S5", "S6", "S7", "S8"], FAR);
    store.hold(&second).await.unwrap();
    assert!(matches!(
        store.confirm(&second).await.unwrap(),
        Confirmed::Sold(_)
    ));
    match store.confirm(&first).await {
        Err(StoreError::LimitExceeded { limit, current }) => assert_eq!((limit, current), (4, 4)),
        other => panic!("8 tickets sold to one buyer: {other:?}"),
    }
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(snap.taken.len(), 4);
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
    // Within the limit, a lapsed hold still sells (and counts).
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 10, 4)).await.unwrap();
    let lapsed = hold(perf, buyer, &["S1", "S2"], 10);
    store.hold(&lapsed).await.unwrap();
    store.expire_next(perf).await.unwrap().unwrap();
    store
        .hold(&hold(perf, buyer, &["S3", "S4"], FAR))
        .await
        .unwrap();
    assert!(matches!(
        store.confirm(&lapsed).await.unwrap(),
        Confirmed::Sold(_)
    ));
    assert!(matches!(
        store.hold(&hold(perf, buyer, &["S5"], FAR)).await,
        Err(StoreError::LimitExceeded {
            limit: 4,
            current: 4
        })
    ));
}

async fn a_sale_sells_exactly_its_hold(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 0)).await.unwrap();
    let buyer = Uuid::now_v7();
    let mut h = hold(perf, buyer, &["S1", "S2"], FAR);
    h.areas = vec![("GA".into(), 2)];
    store.hold(&h).await.unwrap();
    let before = store.snapshot(perf).await.unwrap().unwrap();
    let mut other_seats = h.clone();
    other_seats.seat_ids = vec!["S1".into(), "S3".into()];
    let mut fewer = h.clone();
    fewer.seat_ids = vec!["S1".into()];
    let mut more_places = h.clone();
    more_places.areas = vec![("GA".into(), 3)];
    let mut other_buyer = h.clone();
    other_buyer.buyer_id = Uuid::now_v7();
    for wrong in [&other_seats, &fewer, &more_places, &other_buyer] {
        let got = store.confirm(wrong).await;
        assert!(
            matches!(got, Err(StoreError::NotTheHold)),
            "{wrong:?}: {got:?}"
        );
    }
    assert_eq!(store.snapshot(perf).await.unwrap().unwrap(), before);
    // The same goods in another order are the hold's.
    let mut reordered = h.clone();
    reordered.seat_ids = vec!["S2".into(), "S1".into()];
    reordered.areas = vec![("GA".into(), 1), ("GA".into(), 1)];
    let Confirmed::Sold(change) = store.confirm(&reordered).await.unwrap() else {
        panic!("not sold")
    };
    assert_eq!(change.seats.len(), 2);
    assert_eq!(
        change.areas[0],
        seat::domain::AreaCount("GA".into(), 5, 0, 2)
    );
    assert_eq!(store.confirm(&h).await.unwrap(), Confirmed::AlreadySold);
    assert_eq!(
        store.find_hold(h.hold_id).await.unwrap().unwrap().seat_ids,
        h.seat_ids
    );
}

async fn checkout_protects_a_hold(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 0)).await.unwrap();
    // Expiry goes by the store's clock: `a` lapses in 1.5 s, in checkout 3 s from now; `b`
    // lapses in 0.5 s.
    let now = now_ms();
    let ttl = 3_000;
    let a = hold(perf, Uuid::now_v7(), &["S1"], now + 1_500);
    let b = hold(perf, Uuid::now_v7(), &["S2"], now + 500);
    store.hold(&a).await.unwrap();
    store.hold(&b).await.unwrap();
    let version = store.snapshot(perf).await.unwrap().unwrap().version;
    let checked = store.checkout(perf, a.hold_id, ttl).await.unwrap();
    assert_eq!(checked.status, HoldStatus::Checkout);
    assert!(checked.expires_at_ms >= now + ttl, "{checked:?}");
    assert!(
        checked.expires_at_ms < now_ms() + ttl + 5_000,
        "{checked:?}"
    );
    // Seats do not change: no version.
    assert_eq!(
        store.snapshot(perf).await.unwrap().unwrap().version,
        version
    );
    // Repeating it answers the same deadline.
    let again = store.checkout(perf, a.hold_id, ttl).await.unwrap();
    assert_eq!(again, checked);
    assert_eq!(store.find_hold(a.hold_id).await.unwrap().unwrap(), checked);
    // The buyer cannot release it.
    assert!(matches!(
        store.release(perf, a.hold_id, HoldStatus::Released).await,
        Err(StoreError::InCheckout)
    ));
    // Past its normal expiry, the sweeper takes the other hold, not this one ...
    let expired = expire_when_due(&*store, perf).await;
    assert_eq!(expired.0.hold_id, b.hold_id);
    testing::eventually("a's own expiry to pass", Duration::from_secs(5), || async {
        now_ms() > a.expires_at_ms + 100
    })
    .await;
    assert!(store.expire_next(perf).await.unwrap().is_none());
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Held);
    // ... until its checkout deadline.
    let (ended, change) = expire_when_due(&*store, perf).await;
    assert!(now_ms() >= checked.expires_at_ms);
    assert_eq!(
        (ended.hold_id, ended.status),
        (a.hold_id, HoldStatus::Expired)
    );
    assert_eq!(ended.expires_at_ms, checked.expires_at_ms);
    assert_eq!(change.seats, vec![("S1".into(), SeatStatus::Available)]);
    // Only an active, unlapsed hold goes into checkout.
    assert!(matches!(
        store.checkout(perf, b.hold_id, ttl).await,
        Err(StoreError::HoldEnded(HoldStatus::Expired))
    ));
    let lapsed = hold(perf, Uuid::now_v7(), &["S3"], now - 1);
    store.hold(&lapsed).await.unwrap();
    assert!(matches!(
        store.checkout(perf, lapsed.hold_id, ttl).await,
        Err(StoreError::HoldEnded(HoldStatus::Expired))
    ));
    assert!(matches!(
        store.checkout(perf, Uuid::now_v7(), ttl).await,
        Err(StoreError::UnknownHold)
    ));
    // A hold in checkout is sold like an active one.
    let c = hold(perf, Uuid::now_v7(), &["S4"], now + 5_000);
    store.hold(&c).await.unwrap();
    store.checkout(perf, c.hold_id, ttl).await.unwrap();
    assert!(matches!(
        store.confirm(&c).await.unwrap(),
        Confirmed::Sold(_)
    ));
    assert!(matches!(
        store.checkout(perf, c.hold_id, ttl).await,
        Err(StoreError::HoldEnded(HoldStatus::Sold))
    ));
    // Only the lapsed active hold is left to expire; the sold one never does.
    let (last, _) = store.expire_next(perf).await.unwrap().unwrap();
    assert_eq!(last.hold_id, lapsed.hold_id);
    assert!(store.expire_next(perf).await.unwrap().is_none());
    assert_eq!(status_of(&*store, perf, "S4").await, SeatStatus::Sold);
}

async fn holds_only_within_the_sale_window(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    let now = now_ms();
    let mut inv = inventory(perf, 1, 4, 0);
    inv.sale_opens_at_ms = now + 3_600_000;
    store.install(&inv).await.unwrap();
    let h = hold(perf, Uuid::now_v7(), &["S1"], FAR);
    match store.hold(&h).await {
        Err(StoreError::NotOnSale {
            opens_at_ms,
            closes_at_ms,
        }) => assert_eq!((opens_at_ms, closes_at_ms), (now + 3_600_000, FAR)),
        other => panic!("held before the sale opened: {other:?}"),
    }
    inv.revision = 2;
    inv.sale_opens_at_ms = now - 3_600_000;
    inv.sale_closes_at_ms = now - 60_000;
    store.install(&inv).await.unwrap();
    assert!(matches!(
        store.hold(&h).await,
        Err(StoreError::NotOnSale { .. })
    ));
    assert!(store.find_hold(h.hold_id).await.unwrap().is_none());
    assert!(
        store
            .snapshot(perf)
            .await
            .unwrap()
            .unwrap()
            .taken
            .is_empty()
    );
    inv.revision = 3;
    inv.sale_closes_at_ms = now + 3_600_000;
    store.install(&inv).await.unwrap();
    store.hold(&h).await.unwrap();
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Held);
}

async fn restore_records_what_seatdb_sold(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 3)).await.unwrap();
    let buyer = Uuid::now_v7();
    let mut sale = hold(perf, buyer, &["S1", "S2"], 0);
    sale.areas = vec![("GA".into(), 1)];
    sale.status = HoldStatus::Sold;
    let change = store.restore(&sale).await.unwrap().unwrap();
    assert_eq!(change.seats.len(), 2);
    assert_eq!(
        change.areas[0],
        seat::domain::AreaCount("GA".into(), 5, 0, 1)
    );
    assert!(store.restore(&sale).await.unwrap().is_none());
    assert_eq!(store.confirm(&sale).await.unwrap(), Confirmed::AlreadySold);
    assert_eq!(
        store.find_hold(sale.hold_id).await.unwrap().unwrap().status,
        HoldStatus::Sold
    );
    // Its tickets count against the buyer's limit; its seats are taken.
    assert!(matches!(
        store.hold(&hold(perf, buyer, &["S3"], FAR)).await,
        Err(StoreError::LimitExceeded {
            limit: 3,
            current: 3
        })
    ));
    assert!(matches!(
        store.hold(&hold(perf, Uuid::now_v7(), &["S1"], FAR)).await,
        Err(StoreError::Unavailable { .. })
    ));
    store.unsell(&sale).await.unwrap().unwrap();
    assert_eq!(status_of(&*store, perf, "S1").await, SeatStatus::Available);
}

async fn withholding_is_all_or_nothing_against_holds_and_sales(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    store.install(&inventory(perf, 1, 6, 0)).await.unwrap();
    let ids = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let held = hold(perf, Uuid::now_v7(), &["S1"], FAR);
    store.hold(&held).await.unwrap();
    let sold = hold(perf, Uuid::now_v7(), &["S2"], FAR);
    store.hold(&sold).await.unwrap();
    store.confirm(&sold).await.unwrap();
    let before = store.snapshot(perf).await.unwrap().unwrap();
    // A held, a sold, an unknown or a repeated seat refuses the lot, naming it.
    for (ask, named) in [
        (ids(&["S3", "S1"]), ids(&["S1"])),
        (ids(&["S2", "S4"]), ids(&["S2"])),
        (ids(&["S3", "S99"]), ids(&["S99"])),
        (ids(&["S3", "S3"]), ids(&["S3"])),
    ] {
        match store.withhold(perf, &ask).await {
            Err(StoreError::Unavailable { seat_ids, .. }) => assert_eq!(seat_ids, named, "{ask:?}"),
            other => panic!("{ask:?}: {other:?}"),
        }
    }
    assert_eq!(
        store.snapshot(perf).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );

    let change = store.withhold(perf, &ids(&["S3", "S4"])).await.unwrap();
    assert_eq!(change.version, before.version + 1);
    assert_eq!(
        change.seats,
        vec![
            ("S3".to_owned(), SeatStatus::Withheld),
            ("S4".to_owned(), SeatStatus::Withheld)
        ]
    );
    // Again: nothing new, no version.
    assert_eq!(
        store.withhold(perf, &ids(&["S3"])).await.unwrap().version,
        0
    );
    assert_eq!(status_of(&*store, perf, "S3").await, SeatStatus::Withheld);
    // No buyer holds a withheld seat, nor does a lapsed hold's sale take one.
    match store
        .hold(&hold(perf, Uuid::now_v7(), &["S3", "S5"], FAR))
        .await
    {
        Err(StoreError::Unavailable { seat_ids, .. }) => assert_eq!(seat_ids, ids(&["S3"])),
        other => panic!("{other:?}"),
    }
    assert_eq!(status_of(&*store, perf, "S5").await, SeatStatus::Available);
    let lapsed = hold(perf, Uuid::now_v7(), &["S5"], FAR);
    store.hold(&lapsed).await.unwrap();
    store
        .release(perf, lapsed.hold_id, HoldStatus::Released)
        .await
        .unwrap()
        .unwrap();
    store.withhold(perf, &ids(&["S5"])).await.unwrap();
    assert!(matches!(
        store.confirm(&lapsed).await,
        Err(StoreError::Unavailable { .. })
    ));
    // A release and an expiry of other holds never free a withheld seat.
    store
        .release(perf, held.hold_id, HoldStatus::Released)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status_of(&*store, perf, "S5").await, SeatStatus::Withheld);

    // Released: only withheld seats go back on sale, in one change.
    let v = store.snapshot(perf).await.unwrap().unwrap().version;
    let change = store
        .unwithhold(perf, &ids(&["S3", "S2", "S6"]))
        .await
        .unwrap();
    assert_eq!(change.version, v + 1);
    assert_eq!(change.seats, vec![("S3".to_owned(), SeatStatus::Available)]);
    assert_eq!(status_of(&*store, perf, "S2").await, SeatStatus::Sold);
    assert_eq!(
        store.unwithhold(perf, &ids(&["S3"])).await.unwrap().version,
        0
    );
    store
        .hold(&hold(perf, Uuid::now_v7(), &["S3"], FAR))
        .await
        .unwrap();
    // Every change is in the log, in order, for followers.
    let Changes::Next(log) = store.changes_after(perf, v, Duration::ZERO).await.unwrap() else {
        panic!("truncated");
    };
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].seats, vec![("S3".to_owned(), SeatStatus::Available)]);
    assert!(matches!(
        store.withhold(Uuid::now_v7(), &ids(&["S1"])).await,
        Err(StoreError::UnknownPerformance)
    ));
}

async fn a_fresh_install_brings_back_withheld_seats(store: Arc<dyn HoldStore>) {
    let perf = Uuid::now_v7();
    let ids = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let mut sale = hold(perf, Uuid::now_v7(), &["S1"], 0);
    sale.status = HoldStatus::Sold;
    // Afresh (a store that lost the performance): sales and withheld seats in the same step;
    // a withheld seat already sold, or not of the inventory, is left out.
    store
        .install_with_records(
            &inventory(perf, 1, 6, 0),
            Some(std::slice::from_ref(&sale)),
            &ids(&["S1", "S2", "S3", "S99"]),
        )
        .await
        .unwrap()
        .unwrap();
    let snap = store.snapshot(perf).await.unwrap().unwrap();
    assert_eq!(
        snap.taken,
        vec![
            ("S1".to_owned(), SeatStatus::Sold),
            ("S2".to_owned(), SeatStatus::Withheld),
            ("S3".to_owned(), SeatStatus::Withheld),
        ]
    );
    assert!(matches!(
        store.hold(&hold(perf, Uuid::now_v7(), &["S2"], FAR)).await,
        Err(StoreError::Unavailable { .. })
    ));
    // A re-publication keeps them withheld; a store that has the performance ignores the
    // withheld set it is given (its own is the authority).
    store
        .install_with_records(&inventory(perf, 2, 8, 0), Some(&[]), &ids(&["S4"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status_of(&*store, perf, "S2").await, SeatStatus::Withheld);
    assert_eq!(status_of(&*store, perf, "S4").await, SeatStatus::Available);
    assert!(matches!(
        store.hold(&hold(perf, Uuid::now_v7(), &["S3"], FAR)).await,
        Err(StoreError::Unavailable { .. })
    ));
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
        mod cluster {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::store(super::Backend::Cluster).await).await;
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
    a_presale_limit_is_the_lower_across_holds,
    confirm_and_unsell_are_idempotent,
    areas_hold_quantities,
    changes_come_in_version_order,
    ga_confirm_of_a_lapsed_hold_checks_capacity,
    confirm_counts_the_limit_for_a_lapsed_hold,
    a_sale_sells_exactly_its_hold,
    checkout_protects_a_hold,
    holds_only_within_the_sale_window,
    restore_records_what_seatdb_sold,
    withholding_is_all_or_nothing_against_holds_and_sales,
    a_fresh_install_brings_back_withheld_seats,
);
