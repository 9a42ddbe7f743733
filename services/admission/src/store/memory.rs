//! The in-memory queue store (standalone: one process). Each queue keeps its waiting fans by
//! slot (the order they were given places in) with a Fenwick tree over the slots, so a fan's
//! position is found in O(log n) however long the queue, and admission pops the lowest slots.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Mutex,
};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Admitted, Counts, Entry, Found, Joined, Ms, Place, QueueStore, StoreError};

/// Counts per slot, with prefix sums in O(log n); grows as slots are added.
#[derive(Debug, Default)]
struct Fenwick {
    tree: Vec<i64>,
}

impl Fenwick {
    /// The sum of the first `k` slots.
    fn prefix(&self, mut k: usize) -> i64 {
        let mut sum = 0;
        while k > 0 {
            sum += self.tree[k - 1];
            k &= k - 1;
        }
        sum
    }

    /// Appends slots (value 0) until there are `len`.
    fn grow(&mut self, len: usize) {
        while self.tree.len() < len {
            let i = self.tree.len() + 1;
            let low = i & i.wrapping_neg();
            let node = self.prefix(i - 1) - self.prefix(i - low);
            self.tree.push(node);
        }
    }

    /// Adds `delta` to slot `slot` (0-based), growing as needed.
    fn add(&mut self, slot: usize, delta: i64) {
        self.grow(slot + 1);
        let mut i = slot + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] += delta;
            i += i & i.wrapping_neg();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Draw {
    /// Joins enter the pre-queue.
    #[default]
    Open,
    /// Closed with this many members; joins get slots after theirs.
    Closed,
    /// Committed: admission can start.
    Done,
}

#[derive(Debug, Default)]
struct Queue {
    draw: Draw,
    /// The next slot a join gets.
    next_slot: u64,
    /// Waiting accounts by slot, and the slot of each.
    by_slot: BTreeMap<u64, Uuid>,
    slot_of: HashMap<Uuid, u64>,
    counts: Fenwick,
    pre: HashSet<Uuid>,
    /// Token → account, and each account's current token.
    tokens: HashMap<String, Uuid>,
    current: HashMap<Uuid, String>,
    /// Admitted accounts and when their passes expire.
    active: HashMap<Uuid, Ms>,
    rate: f64,
    leader: Option<(String, Ms)>,
    /// Nobody is admitted while set.
    paused: bool,
}

impl Queue {
    fn place(&self, account: Uuid, now_ms: Ms) -> Option<Place> {
        if let Some(&exp) = self.active.get(&account)
            && exp > now_ms
        {
            return Some(Place::Admitted { expires_ms: exp });
        }
        if let Some(&slot) = self.slot_of.get(&account) {
            let before = self.counts.prefix(slot as usize).max(0) as u64;
            // While a closed draw is not committed, its members will all be in front.
            let pending = if self.draw == Draw::Closed {
                self.pre.len() as u64
            } else {
                0
            };
            return Some(Place::Waiting {
                ahead: before + pending,
            });
        }
        self.pre.contains(&account).then_some(Place::PreQueue {
            size: self.pre.len() as u64,
        })
    }

    fn enqueue(&mut self, account: Uuid, slot: u64) {
        self.by_slot.insert(slot, account);
        self.slot_of.insert(account, slot);
        self.counts.add(slot as usize, 1);
    }

    fn dequeue(&mut self, account: Uuid) -> bool {
        match self.slot_of.remove(&account) {
            Some(slot) => {
                self.by_slot.remove(&slot);
                self.counts.add(slot as usize, -1);
                true
            }
            None => false,
        }
    }
}

/// The queue store in this process's memory.
/// Rate-limit windows: key → (window start, hits). Windows that ended are swept at most once
/// per window length, so a call costs O(1) however many keys are counted (a sweep on every
/// call once the map was large — 100,000 fans in a queue — held the store's lock for a
/// millisecond per request).
#[derive(Debug, Default)]
struct Hits {
    windows: HashMap<String, (Ms, u64)>,
    next_sweep: Ms,
}

impl Hits {
    fn hit(&mut self, key: &str, window_ms: u64, limit: u64, now: Ms) -> bool {
        let window = Ms::try_from(window_ms).unwrap_or(Ms::MAX);
        if now >= self.next_sweep {
            self.windows.retain(|_, (start, _)| now - *start < window);
            self.next_sweep = now.saturating_add(window);
        }
        if !self.windows.contains_key(key) {
            self.windows.insert(key.to_owned(), (now, 0));
        }
        let Some(entry) = self.windows.get_mut(key) else {
            return true;
        };
        if now - entry.0 >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }
}

#[derive(Debug, Default)]
pub struct MemoryQueueStore {
    queues: Mutex<HashMap<Uuid, Queue>>,
    /// Rate-limit windows.
    hits: Mutex<Hits>,
}

impl MemoryQueueStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, perf: Uuid, f: impl FnOnce(&mut Queue) -> T) -> T {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        f(queues.entry(perf).or_default())
    }

    /// Like [`Self::with`] on a queue that exists; `absent` otherwise (reads and leaves make no
    /// queue: `order.confirmed` of every performance leaves through here).
    fn existing<T>(&self, perf: Uuid, absent: T, f: impl FnOnce(&mut Queue) -> T) -> T {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        match queues.get_mut(&perf) {
            Some(q) => f(q),
            None => absent,
        }
    }
}

fn now_ms() -> Ms {
    chrono::Utc::now().timestamp_millis()
}

#[async_trait]
impl QueueStore for MemoryQueueStore {
    async fn join(
        &self,
        perf: Uuid,
        account: Uuid,
        token: &str,
        now_ms: Ms,
    ) -> Result<Joined, StoreError> {
        Ok(self.with(perf, |q| {
            if let Some(current) = q.current.get(&account).cloned()
                && let Some(place) = q.place(account, now_ms)
            {
                return Joined {
                    token: current,
                    place,
                    rejoined: true,
                    rate: q.rate,
                };
            }
            q.active.remove(&account);
            q.tokens.insert(token.to_owned(), account);
            q.current.insert(account, token.to_owned());
            if q.draw == Draw::Open {
                q.pre.insert(account);
            } else {
                let slot = q.next_slot;
                q.next_slot += 1;
                q.enqueue(account, slot);
            }
            Joined {
                token: token.to_owned(),
                place: q.place(account, now_ms).unwrap_or(Place::Expired),
                rejoined: false,
                rate: q.rate,
            }
        }))
    }

    async fn status(
        &self,
        perf: Uuid,
        token: &str,
        now_ms: Ms,
    ) -> Result<Option<Found>, StoreError> {
        Ok(self.existing(perf, None, |q| {
            let account = *q.tokens.get(token)?;
            let place = if q.current.get(&account).map(String::as_str) == Some(token) {
                q.place(account, now_ms).unwrap_or(Place::Expired)
            } else {
                Place::Expired
            };
            Some(Found {
                account,
                place,
                rate: q.rate,
            })
        }))
    }

    async fn leave(&self, perf: Uuid, account: Uuid) -> Result<bool, StoreError> {
        Ok(self.existing(perf, false, |q| {
            let queued = q.dequeue(account);
            let active = q.active.remove(&account).is_some();
            let pre = match q.draw {
                Draw::Open => q.pre.remove(&account),
                // A closed pre-queue is frozen while the draw orders it (a moment): leaving
                // takes effect once it is committed.
                Draw::Closed | Draw::Done => false,
            };
            queued || pre || active
        }))
    }

    async fn close_prequeue(&self, perf: Uuid) -> Result<Option<Vec<Entry>>, StoreError> {
        Ok(self.with(perf, |q| {
            match q.draw {
                Draw::Done => return None,
                Draw::Open => {
                    q.draw = Draw::Closed;
                    q.next_slot = q.pre.len() as u64;
                }
                Draw::Closed => {}
            }
            Some(
                q.pre
                    .iter()
                    .filter_map(|a| {
                        q.current.get(a).map(|t| Entry {
                            account: *a,
                            token: t.clone(),
                        })
                    })
                    .collect(),
            )
        }))
    }

    async fn commit_draw(&self, perf: Uuid, order: &[Uuid]) -> Result<(), StoreError> {
        self.with(perf, |q| {
            if q.draw != Draw::Closed {
                return;
            }
            let mut slot = 0u64;
            for account in order {
                if q.pre.remove(account) {
                    q.enqueue(*account, slot);
                    slot += 1;
                }
            }
            q.pre.clear();
            q.draw = Draw::Done;
        });
        Ok(())
    }

    async fn drawn(&self, perf: Uuid) -> Result<bool, StoreError> {
        Ok(self.existing(perf, false, |q| q.draw == Draw::Done))
    }

    async fn set_paused(&self, perf: Uuid, paused: bool) -> Result<(), StoreError> {
        self.with(perf, |q| q.paused = paused);
        Ok(())
    }

    async fn admit(
        &self,
        perf: Uuid,
        n: u64,
        max_active: Option<u64>,
        now_ms: Ms,
        pass_ttl_ms: Ms,
    ) -> Result<Admitted, StoreError> {
        Ok(self.with(perf, |q| {
            q.active.retain(|_, exp| *exp > now_ms);
            let active = q.active.len() as u64;
            if q.draw != Draw::Done || q.paused {
                return Admitted {
                    admitted: 0,
                    waiting: q.slot_of.len() as u64,
                    active,
                };
            }
            let room = match max_active {
                Some(cap) => n.min(cap.saturating_sub(active)),
                None => n,
            };
            let mut admitted = 0;
            while admitted < room {
                let Some((_, account)) = q.by_slot.first_key_value().map(|(s, a)| (*s, *a)) else {
                    break;
                };
                q.dequeue(account);
                q.active.insert(account, now_ms + pass_ttl_ms);
                admitted += 1;
            }
            Admitted {
                admitted,
                waiting: q.slot_of.len() as u64,
                active: active + admitted,
            }
        }))
    }

    async fn counts(&self, perf: Uuid, now_ms: Ms) -> Result<Counts, StoreError> {
        Ok(self.existing(perf, Counts::default(), |q| Counts {
            waiting: q.slot_of.len() as u64,
            prequeue: q.pre.len() as u64,
            active: q.active.values().filter(|e| **e > now_ms).count() as u64,
            rate: q.rate,
        }))
    }

    async fn set_rate(&self, perf: Uuid, rate: f64) -> Result<(), StoreError> {
        self.with(perf, |q| q.rate = rate);
        Ok(())
    }

    async fn lead(&self, perf: Uuid, who: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let now = now_ms();
        Ok(self.with(perf, |q| match &q.leader {
            Some((holder, until)) if holder != who && *until > now => false,
            _ => {
                q.leader = Some((who.to_owned(), now + ttl_ms as Ms));
                true
            }
        }))
    }

    async fn hit(&self, key: &str, window_ms: u64, limit: u64) -> Result<bool, StoreError> {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        Ok(hits.hit(key, window_ms, limit, now_ms()))
    }

    async fn forget(&self, perf: Uuid) -> Result<(), StoreError> {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&perf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Fenwick, Hits};

    #[test]
    fn rate_windows_count_reset_and_are_swept_once_ended() {
        let mut hits = Hits::default();
        // Limit 2 in a 1,000 ms window.
        assert!(hits.hit("a", 1_000, 2, 10_000));
        assert!(hits.hit("a", 1_000, 2, 10_500));
        assert!(!hits.hit("a", 1_000, 2, 10_999), "third hit in the window");
        assert!(hits.hit("b", 1_000, 2, 10_999), "keys are counted apart");
        // The window of `a` ended: it counts afresh.
        assert!(hits.hit("a", 1_000, 2, 11_000));
        assert_eq!(hits.windows.len(), 2);
        // Long after: the next call sweeps every ended window, keeping only its own.
        assert!(hits.hit("c", 1_000, 2, 20_000));
        assert_eq!(hits.windows.len(), 1, "{:?}", hits.windows);
        // Within the next window nothing is swept (the sweep is at most once per window).
        for i in 0..100 {
            hits.hit(&format!("k{i}"), 1_000, 2, 20_100);
        }
        assert_eq!(hits.windows.len(), 101);
        assert_eq!(hits.next_sweep, 21_000);
    }

    #[test]
    fn fenwick_prefix_sums_follow_every_change() {
        let mut f = Fenwick::default();
        let mut plain = vec![0i64; 0];
        for (slot, delta) in [
            (0, 1),
            (5, 1),
            (3, 1),
            (5, -1),
            (17, 1),
            (2, 1),
            (0, -1),
            (40, 1),
        ] {
            f.add(slot, delta);
            if plain.len() <= slot {
                plain.resize(slot + 1, 0);
            }
            plain[slot] += delta;
            for k in 0..=plain.len() {
                assert_eq!(f.prefix(k), plain[..k].iter().sum::<i64>(), "prefix {k}");
            }
        }
    }
}
