//! A map with a size cap and a lifetime per entry, for the sandbox's codes and tokens: an entry
//! older than the lifetime is gone, and inserting into a full map evicts the oldest entry. Memory
//! stays bounded whatever a client sends.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

/// A capped map of `String` keys whose entries expire.
pub(crate) struct Bounded<V> {
    entries: HashMap<String, Entry<V>>,
    /// Insertion order: (sequence number, key). Entries removed early leave stale items here,
    /// skipped when met and compacted away when they pile up.
    order: VecDeque<(u64, String)>,
    next: u64,
    cap: usize,
    ttl: Duration,
}

struct Entry<V> {
    seq: u64,
    at: Instant,
    value: V,
}

impl<V> Bounded<V> {
    /// An empty map holding at most `cap` (at least 1) entries, each for `ttl`.
    pub(crate) fn new(cap: usize, ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
            ttl,
        }
    }

    /// Number of live entries (expired ones may still count until the next insert).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn live(&self, e: &Entry<V>) -> bool {
        e.at.elapsed() < self.ttl
    }

    /// Inserts, evicting expired entries and then the oldest ones while the map is full.
    pub(crate) fn insert(&mut self, key: String, value: V) {
        while let Some((seq, k)) = self.order.front() {
            let current = self.entries.get(k).is_some_and(|e| e.seq == *seq);
            let expired = self.entries.get(k).is_some_and(|e| !self.live(e));
            if !current {
                self.order.pop_front();
            } else if expired || self.entries.len() >= self.cap {
                let k = k.clone();
                self.entries.remove(&k);
                self.order.pop_front();
            } else {
                break;
            }
        }
        if self.order.len() > self.cap.saturating_mul(2) {
            let entries = &self.entries;
            self.order
                .retain(|(seq, k)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
        let seq = self.next;
        self.next += 1;
        self.order.push_back((seq, key.clone()));
        self.entries.insert(
            key,
            Entry {
                seq,
                at: Instant::now(),
                value,
            },
        );
    }

    /// Removes and returns the live entry of `key`.
    pub(crate) fn take(&mut self, key: &str) -> Option<V> {
        let e = self.entries.remove(key)?;
        self.live(&e).then_some(e.value)
    }

    /// The live entry of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|e| self.live(e))
            .map(|e| &e.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_evicts_its_oldest_entry() {
        let mut m = Bounded::new(3, Duration::from_secs(60));
        for i in 0..10 {
            m.insert(format!("k{i}"), i);
            assert!(m.len() <= 3);
        }
        assert_eq!(m.get("k6"), None);
        assert_eq!(m.get("k7"), Some(&7));
        assert_eq!(m.take("k9"), Some(9));
        assert_eq!(m.take("k9"), None, "taken once");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn expired_entries_are_gone() {
        let mut m = Bounded::new(10, Duration::ZERO);
        m.insert("a".into(), 1);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.take("a"), None);
        m.insert("b".into(), 2);
        m.insert("c".into(), 3);
        assert!(m.len() <= 1, "expired entries are dropped on insert");
    }

    #[test]
    fn entries_taken_early_do_not_pile_up_in_the_order() {
        let mut m = Bounded::new(4, Duration::from_secs(60));
        for i in 0..1000 {
            m.insert(format!("k{i}"), i);
            m.take(&format!("k{i}"));
        }
        assert!(m.order.len() <= 2 * 4 + 1, "{}", m.order.len());
        // Re-inserting a key keeps only its newest entry.
        m.insert("x".into(), 1);
        m.insert("x".into(), 2);
        assert_eq!(m.get("x"), Some(&2));
        assert_eq!(m.len(), 1);
    }
}
