//! The hold store's outbox: the domain event each change emits, recorded by the store in the
//! same atomic step as the change (a Lua script appends it to the performance's `events` stream;
//! the in-memory [`super::book::Book`] to its event log), so no change is ever without its event
//! whatever crashes. [`crate::store_relay`] moves the events to the PostgreSQL outbox.
//!
//! An event's id is a function of what it describes (UUID v5 of the hold id and the event type,
//! see [`event_id`]): every copy of one event, however often it is relayed, carries the same id,
//! so the outbox keeps one row of it and consumers' inboxes (which deduplicate on the envelope's
//! id) apply it once. A hold is placed once and ends without a sale at most once, so the pair
//! names one event.

use chrono::DateTime;
use contracts::{
    Envelope, Event,
    events::{HoldEndReason, HoldEnded, HoldPlaced},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Hold;

/// The namespace of seat events' v5 ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d0e_59a4_4b7e_9c1d_3e8a_b5f2_0c47);

/// What a recorded event says happened to its hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Placed: `hold.placed`.
    Placed,
    /// Released by its buyer: `hold.ended` (released).
    Released,
    /// Lapsed: `hold.ended` (expired).
    Expired,
}

/// One domain event as the store records it: enough to build its envelope, always the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEvent {
    /// What happened.
    #[serde(rename = "t")]
    pub kind: EventKind,
    /// When, ms since the epoch by the store's clock.
    #[serde(rename = "at")]
    pub at_ms: i64,
    /// The hold as it was placed.
    #[serde(rename = "h")]
    pub hold: Hold,
}

/// An event in a performance's event log, not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its position in the log (the stream entry id; the book's sequence number): what
    /// [`super::HoldStore::ack_events`] takes.
    pub id: String,
    /// The event, or the raw entry when it cannot be read (a bug or damaged data).
    pub event: Result<StoreEvent, Unreadable>,
}

/// A log entry that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The entry as stored.
    pub raw: String,
    /// Why it does not decode.
    pub error: String,
}

/// Who reads a store's event logs: one relay of one replica.
#[derive(Debug, Clone)]
pub struct EventReader {
    /// Its name in the logs' consumer group: unique per relay instance.
    pub name: String,
    /// How long it keeps a performance's log to itself after a read (renewed with every read
    /// that finds work): within it, another reader reads nothing of that performance; past it,
    /// another takes the log over with everything this one read and did not acknowledge.
    pub lease_ms: u64,
}

/// The deterministic id of the event of `kind` for hold `hold_id`.
pub fn event_id(hold_id: Uuid, kind: EventKind) -> Uuid {
    let event_type = match kind {
        EventKind::Placed => HoldPlaced::TYPE,
        EventKind::Released | EventKind::Expired => HoldEnded::TYPE,
    };
    Uuid::new_v5(&NAMESPACE, format!("{hold_id}/{event_type}").as_bytes())
}

impl StoreEvent {
    /// The event of `kind` for `hold`, at `at_ms` by the store's clock.
    pub fn new(kind: EventKind, hold: &Hold, at_ms: i64) -> Self {
        Self {
            kind,
            at_ms,
            hold: hold.clone(),
        }
    }

    /// Its id (see [`event_id`]).
    pub fn id(&self) -> Uuid {
        event_id(self.hold.hold_id, self.kind)
    }

    /// The envelope the outbox gets, and its topic: the same for every copy of this event.
    pub fn envelope(&self) -> Result<(&'static str, Envelope), serde_json::Error> {
        let h = &self.hold;
        match self.kind {
            EventKind::Placed => self.wrap(&HoldPlaced {
                hold_id: h.hold_id,
                performance_id: h.performance_id,
                buyer_id: h.buyer_id,
                seat_ids: h.seat_ids.clone(),
                areas: h
                    .areas
                    .iter()
                    .map(|(a, q)| (a.clone(), i32::try_from(*q).unwrap_or(i32::MAX)))
                    .collect(),
                amount_krw: h.amount_krw,
                expires_at: DateTime::from_timestamp_millis(h.expires_at_ms).unwrap_or_default(),
            }),
            EventKind::Released | EventKind::Expired => self.wrap(&HoldEnded {
                hold_id: h.hold_id,
                performance_id: h.performance_id,
                seat_ids: h.seat_ids.clone(),
                reason: if self.kind == EventKind::Expired {
                    HoldEndReason::Expired
                } else {
                    HoldEndReason::Released
                },
            }),
        }
    }

    fn wrap<E: Event>(&self, event: &E) -> Result<(&'static str, Envelope), serde_json::Error> {
        Ok((
            E::TOPIC,
            Envelope {
                id: self.id(),
                event_type: E::TYPE.to_owned(),
                version: E::VERSION,
                occurred_at: DateTime::from_timestamp_millis(self.at_ms).unwrap_or_default(),
                key: event.key(),
                payload: serde_json::to_value(event)?,
            },
        ))
    }
}

/// Reads a stored entry.
pub fn decode(raw: &str) -> Result<StoreEvent, Unreadable> {
    serde_json::from_str(raw).map_err(|e| Unreadable {
        raw: raw.to_owned(),
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::HoldStatus;

    fn hold() -> Hold {
        Hold {
            hold_id: Uuid::now_v7(),
            performance_id: Uuid::now_v7(),
            buyer_id: Uuid::now_v7(),
            seat_ids: vec!["A1".into()],
            areas: vec![("GA".into(), 2)],
            amount_krw: 3000,
            expires_at_ms: 1_700_000_000_000,
            status: HoldStatus::Active,
            presale_limit: None,
        }
    }

    #[test]
    fn every_copy_of_an_event_has_the_same_envelope() {
        let h = hold();
        let placed = StoreEvent::new(EventKind::Placed, &h, 1_700_000_000_123);
        let again: StoreEvent = decode(&serde_json::to_string(&placed).unwrap()).unwrap();
        assert_eq!(placed.envelope().unwrap(), again.envelope().unwrap());
        let (topic, env) = placed.envelope().unwrap();
        assert_eq!(topic, contracts::topics::SEATS);
        assert_eq!(env.key, h.performance_id.to_string());
        assert_eq!(env.occurred_at.timestamp_millis(), 1_700_000_000_123);
        let p: HoldPlaced = env.decode().unwrap();
        assert_eq!((p.hold_id, p.areas), (h.hold_id, vec![("GA".into(), 2)]));
    }

    #[test]
    fn ids_differ_by_hold_and_type_not_by_reason() {
        let h = hold();
        let placed = event_id(h.hold_id, EventKind::Placed);
        let released = event_id(h.hold_id, EventKind::Released);
        assert_ne!(placed, released);
        // A hold ends once: released and expired are one event, whichever happened.
        assert_eq!(released, event_id(h.hold_id, EventKind::Expired));
        assert_ne!(placed, event_id(Uuid::now_v7(), EventKind::Placed));
        assert_eq!(placed.get_version_num(), 5);
    }

    #[test]
    fn a_damaged_entry_is_reported_with_its_text() {
        let bad = decode("{\"t\":\"placed\"").unwrap_err();
        assert_eq!(bad.raw, "{\"t\":\"placed\"");
        assert!(!bad.error.is_empty());
    }
}
