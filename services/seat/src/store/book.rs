//! One performance's hold-store state as plain data with the store's rules: the in-memory store
//! keeps one [`Book`] per performance behind a lock; the Redis scripts implement the same rules.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use uuid::Uuid;

use super::{Changes, Confirmed, Hold, HoldError, HoldStatus, Snapshot, StoreInventory};
use crate::domain::{AreaCount, Change, SeatStatus};

/// How many changes a book keeps for readers that fall behind.
pub const LOG_CAPACITY: usize = 10_000;

/// Who has a seat that is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Held(Uuid),
    Sold(Uuid),
}

/// One performance's state.
#[derive(Debug, Default)]
pub struct Book {
    revision: i64,
    limit: i64,
    version: u64,
    inventory: HashSet<String>,
    seats: HashMap<String, Owner>,
    areas: BTreeMap<String, (i64, i64, i64)>,
    buyers: HashMap<Uuid, i64>,
    holds: HashMap<Uuid, Hold>,
    expiries: BTreeSet<(i64, Uuid)>,
    log: VecDeque<Change>,
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
        if self.version > 0 && inv.revision <= self.revision {
            return None;
        }
        self.revision = inv.revision;
        self.limit = inv.ticket_limit;
        self.inventory = inv.seat_ids.iter().cloned().collect();
        for (area, cap) in &inv.areas {
            self.areas.entry(area.clone()).or_insert((0, 0, 0)).0 = *cap;
        }
        let areas = inv.areas.iter().map(|(a, _)| a.clone()).collect();
        Some(self.record(Vec::new(), areas, true))
    }

    /// See [`super::HoldStore::hold`].
    pub fn hold(&mut self, hold: &Hold) -> Result<Change, HoldError> {
        if self.holds.contains_key(&hold.hold_id) {
            return Ok(Change::default()); // a repeated call changes nothing
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
            return Err(HoldError::Unavailable {
                seat_ids,
                areas: short,
            });
        }
        let current = self.buyers.get(&hold.buyer_id).copied().unwrap_or(0);
        if self.limit > 0 && current + hold.tickets() > self.limit {
            return Err(HoldError::LimitExceeded {
                limit: self.limit,
                current,
            });
        }
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

    /// See [`super::HoldStore::release`].
    pub fn release(&mut self, hold_id: Uuid, reason: HoldStatus) -> Option<(Hold, Change)> {
        let hold = self.holds.get(&hold_id)?.clone();
        if hold.status != HoldStatus::Active {
            return None;
        }
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

    /// See [`super::HoldStore::expire_next`].
    pub fn expire_next(&mut self, now_ms: i64) -> Option<(Hold, Change)> {
        let &(at, hold_id) = self.expiries.first()?;
        if at > now_ms {
            return None;
        }
        self.release(hold_id, HoldStatus::Expired)
    }

    /// See [`super::HoldStore::confirm`].
    pub fn confirm(&mut self, sale: &Hold) -> Confirmed {
        let id = sale.hold_id;
        let existing = self.holds.get(&id).cloned();
        if existing
            .as_ref()
            .is_some_and(|h| h.status == HoldStatus::Sold)
        {
            return Confirmed::AlreadySold;
        }
        let conflicts: Vec<String> = sale
            .seat_ids
            .iter()
            .filter(|s| match self.seats.get(*s) {
                None => !self.inventory.contains(*s),
                Some(Owner::Held(h) | Owner::Sold(h)) => *h != id,
            })
            .cloned()
            .collect();
        if !conflicts.is_empty() {
            return Confirmed::Conflict(conflicts);
        }
        let active = existing
            .as_ref()
            .is_some_and(|h| h.status == HoldStatus::Active);
        if let Some(h) = &existing
            && active
        {
            self.expiries.remove(&(h.expires_at_ms, id));
        }
        for s in &sale.seat_ids {
            self.seats.insert(s.clone(), Owner::Sold(id));
        }
        for (a, q) in &sale.areas {
            if let Some(c) = self.areas.get_mut(a) {
                if active {
                    c.1 = (c.1 - q).max(0);
                }
                c.2 += q;
            }
        }
        if !active {
            *self.buyers.entry(sale.buyer_id).or_default() += sale.tickets();
        }
        let mut record = existing.unwrap_or_else(|| sale.clone());
        record.status = HoldStatus::Sold;
        record.seat_ids = sale.seat_ids.clone();
        record.areas = sale.areas.clone();
        self.holds.insert(id, record);
        let seats = sale
            .seat_ids
            .iter()
            .map(|s| (s.clone(), SeatStatus::Sold))
            .collect();
        Confirmed::Sold(self.record(
            seats,
            sale.areas.iter().map(|(a, _)| a.clone()).collect(),
            false,
        ))
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
                };
                (s.clone(), status)
            })
            .collect();
        taken.sort();
        Snapshot {
            version: self.version,
            revision: self.revision,
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
        if after >= self.version {
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
