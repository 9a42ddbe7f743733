//! One performance's hold-store state as plain data with the store's rules: the in-memory store
//! keeps one [`Book`] per performance behind a lock; the Redis scripts implement the same rules.
//! A book is its performance's outbox too: placing a hold and ending one record their
//! [`StoreEvent`] in the book's event log in the same step, kept until a relay acknowledges it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use uuid::Uuid;

use super::{
    Changes, Confirmed, Hold, HoldStatus, Snapshot, StoreError, StoreInventory,
    outbox::{EventKind, LoggedEvent, StoreEvent},
};
use crate::domain::{AreaCount, Change, SeatStatus};

/// How many changes a book keeps for readers that fall behind.
pub const LOG_CAPACITY: usize = 10_000;

/// Who has a seat that is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Held(Uuid),
    Sold(Uuid),
    /// Held back from sale by the organizer.
    Withheld,
}

/// One performance's state.
#[derive(Debug, Default)]
pub struct Book {
    revision: i64,
    /// The epoch versions count in (set when the book is first installed).
    epoch: String,
    limit: i64,
    /// The sale window, ms since the epoch.
    window: (i64, i64),
    version: u64,
    inventory: HashSet<String>,
    seats: HashMap<String, Owner>,
    areas: BTreeMap<String, (i64, i64, i64)>,
    buyers: HashMap<Uuid, i64>,
    holds: HashMap<Uuid, Hold>,
    expiries: BTreeSet<(i64, Uuid)>,
    log: VecDeque<Change>,
    /// Events not yet acknowledged, by sequence number (never trimmed).
    events: VecDeque<(u64, StoreEvent)>,
    /// The last event's sequence number.
    event_seq: u64,
}

impl Book {
    /// The version after the last change.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn record(
        &mut self,
        seats: Vec<(String, SeatStatus)>,
        areas: Vec<String>,
        reload: bool,
    ) -> Change {
        self.version += 1;
        let areas = areas
            .into_iter()
            .filter_map(|a| self.area_count(&a))
            .collect();
        let change = Change {
            version: self.version,
            seats,
            areas,
            reload,
            epoch: self.epoch.clone(),
        };
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(change.clone());
        change
    }

    fn area_count(&self, area: &str) -> Option<AreaCount> {
        self.areas
            .get(area)
            .map(|&(cap, held, sold)| AreaCount(area.to_owned(), cap, held, sold))
    }

    /// See [`super::HoldStore::install`].
    pub fn install(&mut self, inv: &StoreInventory) -> Option<Change> {
        self.install_with_records(inv, Some(&[]), &[], "")
            .ok()
            .flatten()
    }

    /// See [`super::HoldStore::install_with_records`]; `epoch` names the new epoch of a first
    /// install. A sale that does not fit (a seat sold twice, or not in the inventory) is left
    /// out: SeatDB's own guards make that impossible; so is a withheld seat that is sold or not
    /// in the inventory.
    pub fn install_with_records(
        &mut self,
        inv: &StoreInventory,
        sold: Option<&[Hold]>,
        withheld: &[String],
        epoch: &str,
    ) -> Result<Option<Change>, StoreError> {
        if self.version > 0 && inv.revision <= self.revision {
            return Ok(None);
        }
        let fresh = self.version == 0;
        let sold = match sold {
            Some(sold) => sold,
            None if fresh => return Err(StoreError::UnknownPerformance),
            None => &[],
        };
        if fresh {
            epoch.clone_into(&mut self.epoch);
        }
        self.revision = inv.revision;
        self.limit = inv.ticket_limit;
        self.window = (inv.sale_opens_at_ms, inv.sale_closes_at_ms);
        self.inventory = inv.seat_ids.iter().cloned().collect();
        for (area, cap) in &inv.areas {
            self.areas.entry(area.clone()).or_insert((0, 0, 0)).0 = *cap;
        }
        if fresh {
            for sale in sold {
                self.restore_quietly(sale);
            }
            for seat in withheld {
                if self.inventory.contains(seat) && !self.seats.contains_key(seat) {
                    self.seats.insert(seat.clone(), Owner::Withheld);
                }
            }
        }
        let areas = inv.areas.iter().map(|(a, _)| a.clone()).collect();
        Ok(Some(self.record(Vec::new(), areas, true)))
    }

    /// Records a sale SeatDB made without a change of its own (the install's change, a reload,
    /// covers it).
    fn restore_quietly(&mut self, sale: &Hold) {
        let id = sale.hold_id;
        if !self.taken_by_others(sale).is_empty() || self.holds.contains_key(&id) {
            return;
        }
        for s in &sale.seat_ids {
            self.seats.insert(s.clone(), Owner::Sold(id));
        }
        for (a, q) in &sale.areas {
            if let Some(c) = self.areas.get_mut(a) {
                c.2 += q;
            }
        }
        *self.buyers.entry(sale.buyer_id).or_default() += sale.tickets();
        let mut record = sale.clone();
        record.status = HoldStatus::Sold;
        self.holds.insert(id, record);
    }

    /// Holds still live (active or in checkout).
    pub fn live_holds(&self) -> u64 {
        self.expiries.len() as u64
    }

    /// See [`super::HoldStore::hold`]; `now_ms` is the store's clock.
    pub fn hold(&mut self, hold: &Hold, now_ms: i64) -> Result<Change, StoreError> {
        if self.holds.contains_key(&hold.hold_id) {
            return Ok(Change::default()); // a repeated call changes nothing
        }
        let (opens_at_ms, closes_at_ms) = self.window;
        if now_ms < opens_at_ms || now_ms >= closes_at_ms {
            return Err(StoreError::NotOnSale {
                opens_at_ms,
                closes_at_ms,
            });
        }
        let taken: Vec<String> = hold
            .seat_ids
            .iter()
            .filter(|s| !self.inventory.contains(*s) || self.seats.contains_key(*s))
            .cloned()
            .collect();
        let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
        for (a, q) in &hold.areas {
            *wanted.entry(a).or_default() += q;
        }
        let short: Vec<String> = wanted
            .iter()
            .filter(|(a, q)| {
                self.areas
                    .get(**a)
                    .is_none_or(|&(cap, held, sold)| **q <= 0 || cap - held - sold < **q)
            })
            .map(|(a, _)| (*a).to_owned())
            .collect();
        let mut unique = hold.seat_ids.clone();
        unique.sort();
        unique.dedup();
        let duplicated: Vec<String> = if unique.len() == hold.seat_ids.len() {
            Vec::new()
        } else {
            unique.clone()
        };
        if !taken.is_empty() || !short.is_empty() || !duplicated.is_empty() {
            let mut seat_ids = taken;
            seat_ids.extend(duplicated);
            seat_ids.sort();
            seat_ids.dedup();
            return Err(StoreError::Unavailable {
                seat_ids,
                areas: short,
            });
        }
        self.within_limit(hold, hold.presale_limit)?;
        for s in &hold.seat_ids {
            self.seats.insert(s.clone(), Owner::Held(hold.hold_id));
        }
        for (a, q) in &hold.areas {
            if let Some(c) = self.areas.get_mut(a) {
                c.1 += q;
            }
        }
        *self.buyers.entry(hold.buyer_id).or_default() += hold.tickets();
        let mut record = hold.clone();
        record.status = HoldStatus::Active;
        self.holds.insert(hold.hold_id, record);
        self.expiries.insert((hold.expires_at_ms, hold.hold_id));
        self.emit(StoreEvent::new(EventKind::Placed, hold, now_ms));
        let seats = hold
            .seat_ids
            .iter()
            .map(|s| (s.clone(), SeatStatus::Held))
            .collect();
        Ok(self.record(
            seats,
            hold.areas.iter().map(|(a, _)| a.clone()).collect(),
            false,
        ))
    }

    /// The buyer's tickets plus `hold`'s, against the limit, or `cap` (a presale's) when lower.
    fn within_limit(&self, hold: &Hold, cap: Option<i64>) -> Result<(), StoreError> {
        let current = self.buyers.get(&hold.buyer_id).copied().unwrap_or(0);
        let limit = match cap {
            Some(c) if c > 0 && (self.limit == 0 || c < self.limit) => c,
            _ => self.limit,
        };
        if limit > 0 && current + hold.tickets() > limit {
            return Err(StoreError::LimitExceeded { limit, current });
        }
        Ok(())
    }

    /// See [`super::HoldStore::release`]; `now_ms` is the store's clock.
    pub fn release(
        &mut self,
        hold_id: Uuid,
        reason: HoldStatus,
        now_ms: i64,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        match self.holds.get(&hold_id).map(|h| h.status) {
            Some(HoldStatus::Checkout) => Err(StoreError::InCheckout),
            _ => Ok(self.end(hold_id, reason, now_ms)),
        }
    }

    /// See [`super::HoldStore::abandon`].
    pub fn abandon(&mut self, hold_id: Uuid, now_ms: i64) -> Option<(Hold, Change)> {
        self.end(hold_id, HoldStatus::Released, now_ms)
    }

    /// The one way a live hold ends without a sale: release and expiry both come here, each
    /// with its `hold.ended`.
    fn end(&mut self, hold_id: Uuid, reason: HoldStatus, now_ms: i64) -> Option<(Hold, Change)> {
        let hold = self.holds.get(&hold_id)?.clone();
        if !hold.status.is_live() {
            return None;
        }
        let kind = if reason == HoldStatus::Expired {
            EventKind::Expired
        } else {
            EventKind::Released
        };
        self.emit(StoreEvent::new(kind, &hold, now_ms));
        self.expiries.remove(&(hold.expires_at_ms, hold_id));
        let mut freed = Vec::new();
        for s in &hold.seat_ids {
            if self.seats.get(s) == Some(&Owner::Held(hold_id)) {
                self.seats.remove(s);
                freed.push((s.clone(), SeatStatus::Available));
            }
        }
        for (a, q) in &hold.areas {
            if let Some(c) = self.areas.get_mut(a) {
                c.1 = (c.1 - q).max(0);
            }
        }
        self.debit(hold.buyer_id, hold.tickets());
        let mut ended = hold.clone();
        ended.status = reason;
        self.holds.insert(hold_id, ended.clone());
        let change = self.record(
            freed,
            hold.areas.iter().map(|(a, _)| a.clone()).collect(),
            false,
        );
        Some((ended, change))
    }

    fn debit(&mut self, buyer: Uuid, n: i64) {
        if let Some(c) = self.buyers.get_mut(&buyer) {
            *c = (*c - n).max(0);
        }
    }

    /// See [`super::HoldStore::checkout`]; `now_ms` is the store's clock.
    pub fn checkout(
        &mut self,
        hold_id: Uuid,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Hold, StoreError> {
        let hold = self
            .holds
            .get_mut(&hold_id)
            .ok_or(StoreError::UnknownHold)?;
        match hold.status {
            HoldStatus::Checkout => return Ok(hold.clone()),
            HoldStatus::Active if hold.expires_at_ms > now_ms => {}
            HoldStatus::Active => return Err(StoreError::HoldEnded(HoldStatus::Expired)),
            other => return Err(StoreError::HoldEnded(other)),
        }
        let until = hold.expires_at_ms.max(now_ms.saturating_add(ttl_ms));
        self.expiries.remove(&(hold.expires_at_ms, hold_id));
        self.expiries.insert((until, hold_id));
        hold.expires_at_ms = until;
        hold.status = HoldStatus::Checkout;
        Ok(hold.clone())
    }

    /// See [`super::HoldStore::withhold`].
    pub fn withhold(&mut self, seat_ids: &[String]) -> Result<Change, StoreError> {
        let mut seen = HashSet::new();
        let mut taken: Vec<String> = seat_ids
            .iter()
            .filter(|s| {
                !seen.insert(s.as_str())
                    || !self.inventory.contains(*s)
                    || matches!(self.seats.get(*s), Some(Owner::Held(_) | Owner::Sold(_)))
            })
            .cloned()
            .collect();
        if !taken.is_empty() {
            taken.sort();
            taken.dedup();
            return Err(StoreError::Unavailable {
                seat_ids: taken,
                areas: Vec::new(),
            });
        }
        let mut changed = Vec::new();
        for s in seat_ids {
            if !self.seats.contains_key(s) {
                self.seats.insert(s.clone(), Owner::Withheld);
                changed.push((s.clone(), SeatStatus::Withheld));
            }
        }
        if changed.is_empty() {
            return Ok(Change::default()); // all withheld already
        }
        Ok(self.record(changed, Vec::new(), false))
    }

    /// See [`super::HoldStore::unwithhold`].
    pub fn unwithhold(&mut self, seat_ids: &[String]) -> Change {
        let mut freed = Vec::new();
        for s in seat_ids {
            if self.seats.get(s) == Some(&Owner::Withheld) {
                self.seats.remove(s);
                freed.push((s.clone(), SeatStatus::Available));
            }
        }
        if freed.is_empty() {
            return Change::default();
        }
        self.record(freed, Vec::new(), false)
    }

    /// See [`super::HoldStore::expire_next`]; `now_ms` is the store's clock.
    pub fn expire_next(&mut self, now_ms: i64) -> Option<(Hold, Change)> {
        let &(at, hold_id) = self.expiries.first()?;
        if at > now_ms {
            return None;
        }
        self.end(hold_id, HoldStatus::Expired, now_ms)
    }

    fn emit(&mut self, event: StoreEvent) {
        self.event_seq += 1;
        self.events.push_back((self.event_seq, event));
    }

    /// The oldest `max` events not acknowledged (see [`super::HoldStore::read_events`]).
    pub fn events(&self, max: usize) -> Vec<LoggedEvent> {
        self.events
            .iter()
            .take(max)
            .map(|(seq, event)| LoggedEvent {
                id: seq.to_string(),
                event: Ok(event.clone()),
            })
            .collect()
    }

    /// Drops the events `ids` names (see [`super::HoldStore::ack_events`]).
    pub fn ack_events(&mut self, ids: &[String]) {
        let acked: HashSet<u64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
        self.events.retain(|(seq, _)| !acked.contains(seq));
    }

    /// Seats of `sale` held or sold by another hold, or not in the inventory.
    fn taken_by_others(&self, sale: &Hold) -> Vec<String> {
        sale.seat_ids
            .iter()
            .filter(|s| match self.seats.get(*s) {
                None => !self.inventory.contains(*s),
                Some(Owner::Held(h) | Owner::Sold(h)) => *h != sale.hold_id,
                Some(Owner::Withheld) => true,
            })
            .cloned()
            .collect()
    }

    /// See [`super::HoldStore::confirm`].
    pub fn confirm(&mut self, sale: &Hold) -> Result<Confirmed, StoreError> {
        let hold = self
            .holds
            .get(&sale.hold_id)
            .cloned()
            .ok_or(StoreError::UnknownHold)?;
        // The goods first: "already sold" answers a redelivery of the same sale only, never an
        // order that names other seats through a sold hold.
        if !hold.same_goods(sale) {
            return Err(StoreError::NotTheHold);
        }
        if hold.status == HoldStatus::Sold {
            return Ok(Confirmed::AlreadySold);
        }
        let taken = self.taken_by_others(&hold);
        if !taken.is_empty() {
            return Err(StoreError::Unavailable {
                seat_ids: taken,
                areas: Vec::new(),
            });
        }
        let live = hold.status.is_live();
        if !live {
            // A lapsed hold's places and tickets are no longer counted: sell only what is free.
            let short: Vec<String> = aggregate(&hold.areas)
                .into_iter()
                .filter(|(a, q)| {
                    self.areas
                        .get(*a)
                        .is_none_or(|&(cap, held, sold)| cap - held - sold < *q)
                })
                .map(|(a, _)| a.to_owned())
                .collect();
            if !short.is_empty() {
                return Err(StoreError::Unavailable {
                    seat_ids: Vec::new(),
                    areas: short,
                });
            }
            self.within_limit(&hold, None)?;
        }
        Ok(Confirmed::Sold(self.sell(&hold, live)))
    }

    /// See [`super::HoldStore::restore`].
    pub fn restore(&mut self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        if self
            .holds
            .get(&sale.hold_id)
            .is_some_and(|h| h.status == HoldStatus::Sold)
        {
            return Ok(None);
        }
        let taken = self.taken_by_others(sale);
        if !taken.is_empty() {
            return Err(StoreError::Unavailable {
                seat_ids: taken,
                areas: Vec::new(),
            });
        }
        let live = self
            .holds
            .get(&sale.hold_id)
            .is_some_and(|h| h.status.is_live());
        Ok(Some(self.sell(sale, live)))
    }

    /// Marks `hold`'s seats and places sold; a live hold's places move from held to sold and
    /// its tickets are already counted.
    fn sell(&mut self, hold: &Hold, live: bool) -> Change {
        let id = hold.hold_id;
        if live && let Some(h) = self.holds.get(&id) {
            self.expiries.remove(&(h.expires_at_ms, id));
        }
        for s in &hold.seat_ids {
            self.seats.insert(s.clone(), Owner::Sold(id));
        }
        for (a, q) in &hold.areas {
            if let Some(c) = self.areas.get_mut(a) {
                if live {
                    c.1 = (c.1 - q).max(0);
                }
                c.2 += q;
            }
        }
        if !live {
            *self.buyers.entry(hold.buyer_id).or_default() += hold.tickets();
        }
        let mut record = hold.clone();
        record.status = HoldStatus::Sold;
        self.holds.insert(id, record);
        let seats = hold
            .seat_ids
            .iter()
            .map(|s| (s.clone(), SeatStatus::Sold))
            .collect();
        self.record(
            seats,
            hold.areas.iter().map(|(a, _)| a.clone()).collect(),
            false,
        )
    }

    /// See [`super::HoldStore::unsell`].
    pub fn unsell(&mut self, sale: &Hold) -> Option<Change> {
        let id = sale.hold_id;
        let hold = self.holds.get(&id)?.clone();
        if hold.status != HoldStatus::Sold {
            return None;
        }
        let mut freed = Vec::new();
        for s in &hold.seat_ids {
            if self.seats.get(s) == Some(&Owner::Sold(id)) {
                self.seats.remove(s);
                freed.push((s.clone(), SeatStatus::Available));
            }
        }
        for (a, q) in &hold.areas {
            if let Some(c) = self.areas.get_mut(a) {
                c.2 = (c.2 - q).max(0);
            }
        }
        self.debit(hold.buyer_id, hold.tickets());
        let mut returned = hold.clone();
        returned.status = HoldStatus::Returned;
        self.holds.insert(id, returned);
        Some(self.record(
            freed,
            hold.areas.iter().map(|(a, _)| a.clone()).collect(),
            false,
        ))
    }

    /// A hold by id.
    pub fn find(&self, hold_id: Uuid) -> Option<Hold> {
        self.holds.get(&hold_id).cloned()
    }

    /// See [`super::HoldStore::snapshot`].
    pub fn snapshot(&self) -> Snapshot {
        let mut taken: Vec<(String, SeatStatus)> = self
            .seats
            .iter()
            .map(|(s, o)| {
                let status = match o {
                    Owner::Held(_) => SeatStatus::Held,
                    Owner::Sold(_) => SeatStatus::Sold,
                    Owner::Withheld => SeatStatus::Withheld,
                };
                (s.clone(), status)
            })
            .collect();
        taken.sort();
        Snapshot {
            version: self.version,
            revision: self.revision,
            epoch: self.epoch.clone(),
            taken,
            areas: self
                .areas
                .keys()
                .filter_map(|a| self.area_count(a))
                .collect(),
        }
    }

    /// See [`super::HoldStore::changes_after`] (without waiting).
    pub fn changes_after(&self, after: u64) -> Changes {
        if after > self.version {
            return Changes::Truncated; // the reader is ahead of this book: another epoch
        }
        if after == self.version {
            return Changes::Next(Vec::new());
        }
        match self.log.front() {
            Some(first) if first.version <= after + 1 => {
                let skip = (after + 1 - first.version) as usize;
                Changes::Next(self.log.iter().skip(skip).take(1000).cloned().collect())
            }
            _ => Changes::Truncated,
        }
    }
}

/// Quantities per area, summed.
fn aggregate(areas: &[(String, i64)]) -> BTreeMap<&str, i64> {
    let mut m = BTreeMap::new();
    for (a, q) in areas {
        *m.entry(a.as_str()).or_default() += q;
    }
    m
}
