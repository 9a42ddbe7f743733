//! The PG's memory: payments (by paymentKey, and the latest per orderId) and the stored answers
//! of idempotent requests. Both are capped — the oldest entry goes when a new one would not
//! fit — and idempotency keys also expire, so a flood of checkouts or keys cannot grow memory
//! without limit.

use std::collections::{HashMap, VecDeque};

use axum::{body::Bytes, http::StatusCode};
use chrono::{DateTime, Utc};

use super::model::{Payment, Status};

/// The payments, at most `cap`.
pub struct Payments {
    by_key: HashMap<String, Payment>,
    by_order: HashMap<String, String>,
    /// paymentKeys in insertion order (keys are random and never removed but by eviction).
    order: VecDeque<String>,
    cap: usize,
}

impl Payments {
    pub fn new(cap: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            by_order: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Stores a new payment, which becomes its order's latest.
    pub fn insert(&mut self, payment: Payment) {
        while self.by_key.len() >= self.cap {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.by_key.remove(&oldest)
                && self.by_order.get(&p.order_id) == Some(&oldest)
            {
                self.by_order.remove(&p.order_id);
            }
        }
        self.order.push_back(payment.payment_key.clone());
        self.by_order
            .insert(payment.order_id.clone(), payment.payment_key.clone());
        self.by_key.insert(payment.payment_key.clone(), payment);
    }

    pub fn get_mut(&mut self, payment_key: &str) -> Option<&mut Payment> {
        self.by_key.get_mut(payment_key)
    }

    /// The latest payment of `order_id`.
    pub fn by_order_mut(&mut self, order_id: &str) -> Option<&mut Payment> {
        let key = self.by_order.get(order_id)?;
        self.by_key.get_mut(key)
    }

    /// Whether `order_id` has been paid (approved at some point) before.
    pub fn order_paid(&self, order_id: &str) -> bool {
        self.by_order
            .get(order_id)
            .and_then(|k| self.by_key.get(k))
            .is_some_and(|p| {
                matches!(
                    p.status,
                    Status::Done | Status::Canceled | Status::PartialCanceled
                )
            })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: StatusCode,
    pub body: Bytes,
}

enum Slot {
    InFlight,
    Done(Stored),
}

struct Entry {
    seq: u64,
    at: DateTime<Utc>,
    fingerprint: [u8; 32],
    slot: Slot,
}

/// What a request with an idempotency key finds.
pub enum Begin {
    /// The key is new: go on, then [`Idempotency::finish`] with `seq`.
    Fresh(u64),
    /// The first request's answer.
    Replay(Stored),
    /// The first request is still being processed.
    InFlight,
    /// The key was used with another request.
    Mismatch,
}

/// (secret key, idempotency key) → the request's fingerprint and its answer.
pub struct Idempotency {
    entries: HashMap<(String, String), Entry>,
    order: VecDeque<(u64, (String, String))>,
    next: u64,
    cap: usize,
    ttl: chrono::Duration,
}

impl Idempotency {
    pub fn new(cap: usize, ttl: std::time::Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
        }
    }

    fn live(&self, e: &Entry, now: DateTime<Utc>) -> bool {
        now - e.at < self.ttl
    }

    /// Looks the key up, and claims it (in flight) when it is new or expired.
    pub fn begin(
        &mut self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        now: DateTime<Utc>,
    ) -> Begin {
        let id = (scope.to_owned(), key.to_owned());
        if let Some(e) = self.entries.get(&id)
            && self.live(e, now)
        {
            if e.fingerprint != fingerprint {
                return Begin::Mismatch;
            }
            return match &e.slot {
                Slot::InFlight => Begin::InFlight,
                Slot::Done(stored) => Begin::Replay(stored.clone()),
            };
        }
        self.evict(now);
        let seq = self.next;
        self.next += 1;
        self.order.push_back((seq, id.clone()));
        self.entries.insert(
            id,
            Entry {
                seq,
                at: now,
                fingerprint,
                slot: Slot::InFlight,
            },
        );
        Begin::Fresh(seq)
    }

    /// Ends the request that claimed the key: its answer is stored, or (`None`, an answer that
    /// a retry should not get again, such as a 500) the key is released.
    pub fn finish(&mut self, scope: &str, key: &str, seq: u64, answer: Option<Stored>) {
        let id = (scope.to_owned(), key.to_owned());
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.seq != seq || !matches!(e.slot, Slot::InFlight) {
            return;
        }
        match answer {
            Some(stored) => e.slot = Slot::Done(stored),
            None => {
                self.entries.remove(&id);
            }
        }
    }

    /// Drops expired entries, then the oldest while full.
    fn evict(&mut self, now: DateTime<Utc>) {
        while let Some((seq, id)) = self.order.front() {
            let entry = self.entries.get(id).filter(|e| e.seq == *seq);
            match entry {
                None => {
                    self.order.pop_front();
                }
                Some(e) if !self.live(e, now) || self.entries.len() >= self.cap => {
                    let id = id.clone();
                    self.entries.remove(&id);
                    self.order.pop_front();
                }
                Some(_) => break,
            }
        }
        if self.order.len() > self.cap.saturating_mul(2) {
            let entries = &self.entries;
            self.order
                .retain(|(seq, id)| entries.get(id).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Keys whose first request is still being processed.
    pub fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.slot, Slot::InFlight))
            .count()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::model::Method;

    fn payment(key: &str, order: &str) -> Payment {
        Payment::ready(
            key.into(),
            order.into(),
            "n".into(),
            1000,
            Method::Card,
            Utc::now(),
        )
    }

    #[test]
    fn payments_are_capped_and_the_order_index_follows() {
        let mut p = Payments::new(2);
        p.insert(payment("k1", "o1"));
        p.insert(payment("k2", "o2"));
        p.insert(payment("k3", "o1"));
        assert_eq!(p.len(), 2);
        assert!(p.get_mut("k1").is_none(), "the oldest went");
        assert_eq!(p.by_order_mut("o1").unwrap().payment_key, "k3");
        p.insert(payment("k4", "o4"));
        assert!(p.by_order_mut("o2").is_none(), "its payment went");
        assert_eq!(p.by_order_mut("o1").unwrap().payment_key, "k3");
    }

    #[test]
    fn a_key_replays_its_answer_refuses_another_request_and_expires() {
        let now = Utc::now();
        let mut s = Idempotency::new(10, std::time::Duration::from_secs(60));
        let Begin::Fresh(seq) = s.begin("sk", "k", [1; 32], now) else {
            panic!("new key");
        };
        assert!(matches!(s.begin("sk", "k", [1; 32], now), Begin::InFlight));
        assert!(matches!(s.begin("sk", "k", [2; 32], now), Begin::Mismatch));
        assert!(
            matches!(s.begin("other", "k", [2; 32], now), Begin::Fresh(_)),
            "per secret key"
        );
        let answer = Stored {
            status: StatusCode::OK,
            body: Bytes::from_static(b"{}"),
        };
        s.finish("sk", "k", seq, Some(answer));
        assert!(
            matches!(s.begin("sk", "k", [1; 32], now), Begin::Replay(r) if r.status == StatusCode::OK)
        );
        let later = now + chrono::Duration::seconds(61);
        assert!(
            matches!(s.begin("sk", "k", [2; 32], later), Begin::Fresh(_)),
            "expired"
        );
    }

    #[test]
    fn a_released_key_can_be_retried_and_the_store_stays_bounded() {
        let now = Utc::now();
        let mut s = Idempotency::new(3, std::time::Duration::from_secs(60));
        let Begin::Fresh(seq) = s.begin("sk", "k", [1; 32], now) else {
            panic!("new key");
        };
        s.finish("sk", "k", seq, None);
        assert!(matches!(s.begin("sk", "k", [1; 32], now), Begin::Fresh(_)));
        for i in 0..100 {
            s.begin("sk", &format!("k{i}"), [1; 32], now);
            assert!(s.len() <= 3);
        }
        assert!(s.order.len() <= 7);
    }
}
