//! Property test: random hold / checkout / release / expire / confirm / cancel / withhold /
//! unwithhold sequences against
//! a simple model of what the store must do, on both stores. After every step the store's answer
//! and its seat states match the model's, and no seat ever has two owners.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use proptest::prelude::*;
use seat::{
    domain::SeatStatus,
    store::{Confirmed, Hold, HoldStatus, HoldStore, StoreError, StoreInventory},
};
use uuid::Uuid;

use crate::helpers::{Backend, store};

const SEATS: usize = 8;
const BUYERS: usize = 3;
const LIMIT: i64 = 4;
/// Checkout deadlines lie a month ahead, so a hold in checkout never lapses here.
const CHECKOUT_TTL_MS: i64 = 30 * 86_400_000;

#[derive(Debug, Clone)]
enum Op {
    Hold {
        buyer: usize,
        seats: BTreeSet<usize>,
        /// Placed already lapsed (by the store's clock), or lapsing a day from now.
        lapsed: bool,
    },
    Release(usize),
    Checkout(usize),
    Expire,
    Confirm(usize),
    Cancel(usize),
    /// The organizer withholds these seats from sale (all or none).
    Withhold(BTreeSet<usize>),
    /// ... and puts these back on sale.
    Unwithhold(BTreeSet<usize>),
}

/// The owner of a withheld seat in the model: no hold.
const WITHHELD: usize = usize::MAX;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..BUYERS, prop::collection::btree_set(0..SEATS, 1..=3), any::<bool>())
            .prop_map(|(buyer, seats, lapsed)| Op::Hold { buyer, seats, lapsed }),
        2 => (0..16usize).prop_map(Op::Release),
        1 => (0..16usize).prop_map(Op::Checkout),
        2 => Just(Op::Expire),
        2 => (0..16usize).prop_map(Op::Confirm),
        1 => (0..16usize).prop_map(Op::Cancel),
        1 => prop::collection::btree_set(0..SEATS, 1..=3).prop_map(Op::Withhold),
        1 => prop::collection::btree_set(0..SEATS, 1..=3).prop_map(Op::Unwithhold),
    ]
}

/// The model: who has each seat, and each hold's status.
#[derive(Default)]
struct Model {
    owner: BTreeMap<usize, (usize, SeatStatus)>,
    holds: Vec<(Hold, BTreeSet<usize>)>,
}

impl Model {
    fn tickets(&self, buyer: Uuid) -> i64 {
        self.holds
            .iter()
            .filter(|(h, _)| {
                h.buyer_id == buyer
                    && matches!(
                        h.status,
                        HoldStatus::Active | HoldStatus::Checkout | HoldStatus::Sold
                    )
            })
            .map(|(_, s)| s.len() as i64)
            .sum()
    }

    fn end(&mut self, i: usize, status: HoldStatus) {
        let seats = self.holds[i].1.clone();
        for s in seats {
            if self.owner.get(&s).is_some_and(|(h, _)| *h == i) {
                self.owner.remove(&s);
            }
        }
        self.holds[i].0.status = status;
    }
}

fn seat(i: usize) -> String {
    format!("S{i}")
}

async fn run(store: Arc<dyn HoldStore>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let perf = Uuid::now_v7();
    // Expiry goes by the store's clock: a hold placed lapsed expires before `now`, in placing
    // order; any other a day from now, never within a run.
    let now = chrono::Utc::now().timestamp_millis();
    let base = now + 86_400_000;
    let lapsed_at = |idx: usize| now - 3_600_000 + idx as i64;
    let buyers: Vec<Uuid> = (0..BUYERS).map(|_| Uuid::now_v7()).collect();
    store
        .install(&StoreInventory {
            performance_id: perf,
            revision: 1,
            seat_ids: (0..SEATS).map(seat).collect(),
            areas: Vec::new(),
            ticket_limit: LIMIT,
            sale_opens_at_ms: 0,
            sale_closes_at_ms: i64::MAX / 4,
        })
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Hold {
                buyer,
                seats,
                lapsed,
            } => {
                let idx = m.holds.len();
                let hold = Hold {
                    hold_id: Uuid::now_v7(),
                    performance_id: perf,
                    buyer_id: buyers[buyer],
                    seat_ids: seats.iter().copied().map(seat).collect(),
                    areas: Vec::new(),
                    amount_krw: 0,
                    expires_at_ms: if lapsed {
                        lapsed_at(idx)
                    } else {
                        base + idx as i64
                    },
                    status: HoldStatus::Active,
                    presale_limit: None,
                };
                let taken: BTreeSet<String> = seats
                    .iter()
                    .filter(|s| m.owner.contains_key(s))
                    .copied()
                    .map(seat)
                    .collect();
                let got = store.hold(&hold).await;
                if !taken.is_empty() {
                    let Err(StoreError::Unavailable { seat_ids, .. }) = got else {
                        return Err(TestCaseError::fail(format!(
                            "expected unavailable, got {got:?}"
                        )));
                    };
                    prop_assert_eq!(seat_ids.into_iter().collect::<BTreeSet<_>>(), taken);
                } else if m.tickets(hold.buyer_id) + seats.len() as i64 > LIMIT {
                    prop_assert!(
                        matches!(got, Err(StoreError::LimitExceeded { .. })),
                        "{:?}",
                        got
                    );
                } else {
                    prop_assert!(got.is_ok(), "{:?}", got);
                    for &s in &seats {
                        m.owner.insert(s, (idx, SeatStatus::Held));
                    }
                    m.holds.push((hold, seats));
                }
            }
            Op::Release(i) if !m.holds.is_empty() => {
                let i = i % m.holds.len();
                let got = store
                    .release(perf, m.holds[i].0.hold_id, HoldStatus::Released)
                    .await;
                match m.holds[i].0.status {
                    HoldStatus::Checkout => {
                        prop_assert!(matches!(got, Err(StoreError::InCheckout)), "{:?}", got);
                    }
                    HoldStatus::Active => {
                        prop_assert!(matches!(got, Ok(Some(_))), "{:?}", got);
                        m.end(i, HoldStatus::Released);
                    }
                    _ => prop_assert!(matches!(got, Ok(None)), "{:?}", got),
                }
            }
            Op::Checkout(i) if !m.holds.is_empty() => {
                let i = i % m.holds.len();
                let got = store
                    .checkout(perf, m.holds[i].0.hold_id, CHECKOUT_TTL_MS)
                    .await;
                let hold = &m.holds[i].0;
                match hold.status {
                    // An active hold past its expiry no longer goes into checkout (it stays
                    // active until the sweeper ends it).
                    HoldStatus::Active if hold.expires_at_ms < now => {
                        prop_assert!(
                            matches!(got, Err(StoreError::HoldEnded(HoldStatus::Expired))),
                            "{:?}",
                            got
                        );
                    }
                    HoldStatus::Active | HoldStatus::Checkout => {
                        let Ok(hold) = got else {
                            return Err(TestCaseError::fail(format!("no checkout: {got:?}")));
                        };
                        prop_assert_eq!(hold.status, HoldStatus::Checkout);
                        prop_assert!(hold.expires_at_ms > base + 1_000_000);
                        m.holds[i].0.status = HoldStatus::Checkout;
                        m.holds[i].0.expires_at_ms = hold.expires_at_ms;
                    }
                    ended => {
                        prop_assert!(
                            matches!(got, Err(StoreError::HoldEnded(s)) if s == ended),
                            "{:?}",
                            got
                        );
                    }
                }
            }
            Op::Expire => {
                let due = m
                    .holds
                    .iter()
                    .enumerate()
                    .filter(|(_, (h, _))| h.status == HoldStatus::Active && h.expires_at_ms < now)
                    .min_by_key(|(_, (h, _))| h.expires_at_ms)
                    .map(|(i, _)| i);
                let got = store
                    .expire_next(perf)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(
                    got.as_ref().map(|(h, _)| h.hold_id),
                    due.map(|i| m.holds[i].0.hold_id)
                );
                if let Some(i) = due {
                    m.end(i, HoldStatus::Expired);
                }
            }
            Op::Confirm(i) if !m.holds.is_empty() => {
                let i = i % m.holds.len();
                let (hold, seats) = m.holds[i].clone();
                let got = store.confirm(&hold).await;
                let others: BTreeSet<String> = seats
                    .iter()
                    .filter(|s| m.owner.get(s).is_some_and(|(h, _)| *h != i))
                    .copied()
                    .map(seat)
                    .collect();
                let live = hold.status.is_live();
                if hold.status == HoldStatus::Sold {
                    prop_assert!(matches!(got, Ok(Confirmed::AlreadySold)), "{:?}", got);
                } else if !others.is_empty() {
                    let Err(StoreError::Unavailable { seat_ids, .. }) = got else {
                        return Err(TestCaseError::fail(format!(
                            "expected the seats taken, got {got:?}"
                        )));
                    };
                    prop_assert_eq!(seat_ids.into_iter().collect::<BTreeSet<_>>(), others);
                } else if !live && m.tickets(hold.buyer_id) + seats.len() as i64 > LIMIT {
                    prop_assert!(
                        matches!(got, Err(StoreError::LimitExceeded { .. })),
                        "{:?}",
                        got
                    );
                } else {
                    prop_assert!(matches!(got, Ok(Confirmed::Sold(_))), "{:?}", got);
                    for &s in &seats {
                        m.owner.insert(s, (i, SeatStatus::Sold));
                    }
                    m.holds[i].0.status = HoldStatus::Sold;
                }
            }
            Op::Cancel(i) if !m.holds.is_empty() => {
                let i = i % m.holds.len();
                let got = store
                    .unsell(&m.holds[i].0)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let sold = m.holds[i].0.status == HoldStatus::Sold;
                prop_assert_eq!(got.is_some(), sold);
                if sold {
                    m.end(i, HoldStatus::Returned);
                }
            }
            Op::Withhold(seats) => {
                let ids: Vec<String> = seats.iter().copied().map(seat).collect();
                let got = store.withhold(perf, &ids).await;
                let taken: BTreeSet<String> = seats
                    .iter()
                    .filter(|s| m.owner.get(s).is_some_and(|(h, _)| *h != WITHHELD))
                    .copied()
                    .map(seat)
                    .collect();
                if taken.is_empty() {
                    let Ok(change) = got else {
                        return Err(TestCaseError::fail(format!("not withheld: {got:?}")));
                    };
                    let new: Vec<String> = seats
                        .iter()
                        .filter(|s| !m.owner.contains_key(s))
                        .copied()
                        .map(seat)
                        .collect();
                    prop_assert_eq!(change.version > 0, !new.is_empty());
                    let changed: Vec<String> = change.seats.into_iter().map(|(s, _)| s).collect();
                    prop_assert_eq!(changed, new);
                    for &s in &seats {
                        m.owner.insert(s, (WITHHELD, SeatStatus::Withheld));
                    }
                } else {
                    let Err(StoreError::Unavailable { seat_ids, .. }) = got else {
                        return Err(TestCaseError::fail(format!(
                            "expected the seats taken, got {got:?}"
                        )));
                    };
                    prop_assert_eq!(seat_ids.into_iter().collect::<BTreeSet<_>>(), taken);
                }
            }
            Op::Unwithhold(seats) => {
                let ids: Vec<String> = seats.iter().copied().map(seat).collect();
                let change = store
                    .unwithhold(perf, &ids)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let freed: Vec<String> = seats
                    .iter()
                    .filter(|s| m.owner.get(s).is_some_and(|(h, _)| *h == WITHHELD))
                    .copied()
                    .map(seat)
                    .collect();
                let changed: Vec<String> = change.seats.into_iter().map(|(s, _)| s).collect();
                prop_assert_eq!(changed, freed);
                m.owner
                    .retain(|s, (h, _)| *h != WITHHELD || !seats.contains(s));
            }
            _ => {}
        }
        let snap = store
            .snapshot(perf)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("no snapshot"))?;
        let expected: Vec<(String, SeatStatus)> = m
            .owner
            .iter()
            .map(|(s, (_, st))| (seat(*s), *st))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        prop_assert_eq!(snap.taken, expected);
    }
    Ok(())
}

fn check(backend: Backend, cases: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(store(backend));
    let config = ProptestConfig {
        cases,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..40))| {
        rt.block_on(run(store.clone(), ops))?;
    });
}

#[test]
fn memory_store_matches_the_model() {
    check(Backend::Memory, 256);
}

#[test]
fn redis_store_matches_the_model() {
    check(Backend::Redis, 64);
}

#[test]
fn cluster_store_matches_the_model() {
    check(Backend::Cluster, 32);
}
