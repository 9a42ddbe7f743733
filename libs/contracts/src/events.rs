//! Every event the platform emits, with its topic and key. Adding a field with a default is a
//! compatible change; anything else bumps the event's `VERSION`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use sha2::{Digest, Sha256};

use crate::{
    Envelope, Event,
    policy::CancellationPolicy,
    tickets::{PresaleRules, TicketType, TicketTypePrice},
    topics,
};

macro_rules! event {
    ($ty:ty, $name:literal, $version:literal, $topic:expr, |$s:ident| $key:expr) => {
        impl Event for $ty {
            const TYPE: &'static str = $name;
            const VERSION: u16 = $version;
            const TOPIC: &'static str = $topic;
            fn key(&self) -> String {
                let $s = self;
                $key.to_string()
            }
        }
    };
}

// ---------------------------------------------------------------- user

/// A new account was created (sign-up or first social login).
///
/// The notification service also reads, when present, the optional payload fields `locale`
/// (`ko`, `en`, or a BCP 47 tag), `marketing_opt_in` (consent to marketing; absent: none) and
/// `verification_url` (the link its welcome mail carries), which the user service does not send
/// yet; adding them here with `#[serde(default)]` is a compatible change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// The new user's id.
    pub user_id: Uuid,
    /// Normalized email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// The phone number given at sign-up, in E.164 (`+821012345678`); absent when none was
    /// given (older events lack it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}
event!(UserRegistered, "user.registered", 1, topics::USERS, |e| e
    .user_id);

// ---------------------------------------------------------------- catalog

/// One sellable seat of a published performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSpec {
    /// Stable seat id within the venue (e.g. `A12-3-15`).
    pub seat_id: String,
    /// Section (area) id.
    pub section: String,
    /// Row label.
    pub row: String,
    /// Seat number within the row (used for adjacency).
    pub number: i32,
    /// Grade (zone) code, e.g. `blue`.
    pub grade: String,
    /// Distance rank from the field or stage: lower is better.
    #[serde(default)]
    pub rank: i32,
    /// Wheelchair-accessible seat.
    #[serde(default)]
    pub wheelchair: bool,
    /// The table (테이블석) this seat belongs to: the id of the table's first seat. Seats of one
    /// table are sold together, never one without the others (absent: not a table seat, and in
    /// publications from before tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// On a companion seat (동반석): the id of the wheelchair seat it accompanies; it is sold
    /// only with that seat (absent: not a companion seat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companion_of: Option<String>,
}

/// A general-admission area: sold by quantity, not by seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaSpec {
    /// Area id.
    pub area_id: String,
    /// Grade code.
    pub grade: String,
    /// How many places the area holds.
    pub capacity: i32,
}

/// Price of one grade, in KRW.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSpec {
    /// Grade code.
    pub grade: String,
    /// Human-readable grade name.
    pub name: String,
    /// Price per ticket, integer KRW: the grade's standard type (`adult`).
    pub price_krw: i64,
    /// Prices of the grade's other ticket types (absent in publications before them: the grade
    /// sells only its standard type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticket_types: Vec<TicketTypePrice>,
}

impl PriceSpec {
    /// The price of `ticket_type` at this grade; `None` when the grade does not sell it.
    pub fn price_of(&self, ticket_type: TicketType) -> Option<i64> {
        if ticket_type == TicketType::STANDARD {
            return Some(self.price_krw);
        }
        self.ticket_types
            .iter()
            .find(|t| TicketType::parse(&t.ticket_type) == Some(ticket_type))
            .map(|t| t.price_krw)
    }
}

/// A performance's whole inventory as the catalog publishes it: metadata, every reserved seat,
/// every general-admission area, every price. Not an event: a stadium's is 2.5–2.8 MB of JSON,
/// over a Kafka broker's 1 MB message limit, so it travels as [`PerformanceSeats`] chunks of at
/// most [`PerformanceSeats::MAX_SEAT_BYTES`] of seats followed by a [`PerformancePublished`]
/// header ([`PerformanceSpec::split`]), all keyed by the performance id, and the seat service
/// puts it back together ([`PerformanceSpec::assemble`]). Its JSON is the payload of
/// `performance.published` version 1, which carried it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformanceSpec {
    /// Performance id.
    pub performance_id: Uuid,
    /// Event the performance belongs to.
    pub event_id: Uuid,
    /// Venue id.
    pub venue_id: Uuid,
    /// When the performance starts (UTC).
    pub starts_at: DateTime<Utc>,
    /// Most tickets one buyer may hold and buy for this performance.
    pub ticket_limit: i32,
    /// Whether a waiting room guards the opening.
    pub waiting_room: bool,
    /// When general sale opens (UTC).
    pub sale_opens_at: DateTime<Utc>,
    /// When sale closes (UTC).
    pub sale_closes_at: DateTime<Utc>,
    /// Reserved seats.
    pub seats: Vec<SeatSpec>,
    /// General-admission areas.
    pub areas: Vec<AreaSpec>,
    /// Prices by grade.
    pub prices: Vec<PriceSpec>,
    /// Increases on every re-publication; consumers ignore older revisions.
    pub revision: i64,
    /// Who may hold before the general sale (absent: anyone, in every window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presale: Option<PresaleRules>,
}

/// One chunk of a publication's seats. A revision's chunks go out, in order, before its
/// [`PerformancePublished`] header, on the same key (so on one partition, in order); a consumer
/// keeps them until the header and every chunk of the revision are there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformanceSeats {
    /// Performance id.
    pub performance_id: Uuid,
    /// The publication's revision (that of its header).
    pub revision: i64,
    /// This chunk's place among the revision's chunks, from 0.
    pub chunk: u32,
    /// How many chunks the revision has.
    pub chunks: u32,
    /// The seats of this chunk, in publication order.
    pub seats: Vec<SeatSpec>,
}
event!(
    PerformanceSeats,
    "performance.seats",
    1,
    topics::CATALOG,
    |e| e.performance_id
);

impl PerformanceSeats {
    /// Most bytes of seat JSON in one chunk: with the envelope around it a chunk stays under
    /// 256 KiB, a quarter of a broker's default message limit.
    pub const MAX_SEAT_BYTES: usize = 192 * 1024;
}

/// A performance went on the market: everything the seat service needs to build its inventory,
/// but the seats, which its [`PerformanceSeats`] chunks carry (see [`PerformanceSpec`]).
/// Version 2; version 1 carried the seats itself (a [`PerformanceSpec`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformancePublished {
    /// Performance id.
    pub performance_id: Uuid,
    /// Event the performance belongs to.
    pub event_id: Uuid,
    /// Venue id.
    pub venue_id: Uuid,
    /// When the performance starts (UTC).
    pub starts_at: DateTime<Utc>,
    /// Most tickets one buyer may hold and buy for this performance.
    pub ticket_limit: i32,
    /// Whether a waiting room guards the opening.
    pub waiting_room: bool,
    /// When general sale opens (UTC).
    pub sale_opens_at: DateTime<Utc>,
    /// When sale closes (UTC).
    pub sale_closes_at: DateTime<Utc>,
    /// General-admission areas.
    pub areas: Vec<AreaSpec>,
    /// Prices by grade.
    pub prices: Vec<PriceSpec>,
    /// Increases on every re-publication; consumers ignore older revisions.
    pub revision: i64,
    /// How many `performance.seats` chunks of this revision carry its seats (0: none).
    pub seat_chunks: u32,
    /// How many seats they carry in all.
    pub seat_count: u32,
    /// [`seat_digest`] of the seats, in chunk order.
    pub seat_digest: String,
    /// The event's own cancellation schedule; absent (publications before it existed, or an
    /// event without one): the order service's platform default. [`PerformanceSpec::split`]
    /// leaves it out (the seat service does not use it); the catalog sets it on the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_policy: Option<CancellationPolicy>,
    /// The organizer account that owns the event (absent: an event only administrators manage,
    /// such as the seeded ones, or a publication from before the field existed). Services that
    /// let organizers operate a performance (its waiting room, its gate keys) let this account
    /// and administrators only. [`PerformanceSpec::split`] leaves it out; the catalog sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_id: Option<Uuid>,
    /// Who may hold before the general sale (absent: anyone, in every window, as before the
    /// field existed). [`PerformanceSpec::split`] copies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presale: Option<PresaleRules>,
}
event!(
    PerformancePublished,
    "performance.published",
    2,
    topics::CATALOG,
    |e| e.performance_id
);

/// SHA-256 (lower-case hex) over the seats in order, one JSON array line per seat of the fields
/// `[seat_id, section, row, number, grade, rank, wheelchair]`. Fields added to [`SeatSpec`]
/// later stay out of it, so a consumer that does not know them computes the same digest.
pub fn seat_digest(seats: &[SeatSpec]) -> String {
    let mut hasher = Sha256::new();
    for seat in seats {
        hasher.update(digest_line(seat).as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One seat's line of [`seat_digest`].
fn digest_line(s: &SeatSpec) -> String {
    let fields = serde_json::json!([
        s.seat_id,
        s.section,
        s.row,
        s.number,
        s.grade,
        s.rank,
        s.wheelchair
    ]);
    format!("{fields}\n")
}

/// Why chunks and a header do not make a publication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    /// Some chunks of the revision have not arrived (yet).
    #[error("{have} of {want} seat chunks")]
    Incomplete {
        /// Distinct chunks at hand.
        have: u32,
        /// Chunks the header announces.
        want: u32,
    },
    /// A chunk belongs to another performance or revision, or disagrees with the header or with
    /// another copy of itself.
    #[error("chunk {chunk} does not belong: {why}")]
    Foreign {
        /// The chunk's index.
        chunk: u32,
        /// What is wrong with it.
        why: String,
    },
    /// The seats put together are not those the header describes.
    #[error("seats do not match the header: {why}")]
    Mismatch {
        /// Count or digest, expected and found.
        why: String,
    },
}

impl PerformanceSpec {
    /// The events that publish it, in the order they must go out: its seats in chunks of at most
    /// [`PerformanceSeats::MAX_SEAT_BYTES`] of JSON (a seat larger than that alone in its
    /// chunk), then the header that names them.
    pub fn split(
        &self,
    ) -> Result<(Vec<PerformanceSeats>, PerformancePublished), serde_json::Error> {
        let mut groups: Vec<Vec<SeatSpec>> = Vec::new();
        let mut current: Vec<SeatSpec> = Vec::new();
        let mut bytes = 0;
        for seat in &self.seats {
            // Its JSON and the comma after it.
            let size = serde_json::to_vec(seat)?.len() + 1;
            if !current.is_empty() && bytes + size > PerformanceSeats::MAX_SEAT_BYTES {
                groups.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push(seat.clone());
        }
        if !current.is_empty() {
            groups.push(current);
        }
        let chunks = u32::try_from(groups.len()).unwrap_or(u32::MAX);
        let chunks: Vec<PerformanceSeats> = groups
            .into_iter()
            .enumerate()
            .map(|(i, seats)| PerformanceSeats {
                performance_id: self.performance_id,
                revision: self.revision,
                chunk: u32::try_from(i).unwrap_or(u32::MAX),
                chunks,
                seats,
            })
            .collect();
        let header = PerformancePublished {
            performance_id: self.performance_id,
            event_id: self.event_id,
            venue_id: self.venue_id,
            starts_at: self.starts_at,
            ticket_limit: self.ticket_limit,
            waiting_room: self.waiting_room,
            sale_opens_at: self.sale_opens_at,
            sale_closes_at: self.sale_closes_at,
            areas: self.areas.clone(),
            prices: self.prices.clone(),
            revision: self.revision,
            seat_chunks: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
            seat_count: u32::try_from(self.seats.len()).unwrap_or(u32::MAX),
            seat_digest: seat_digest(&self.seats),
            cancellation_policy: None,
            organizer_id: None,
            presale: self.presale.clone(),
        };
        Ok((chunks, header))
    }

    /// The envelopes of [`PerformanceSpec::split`], in order (all on [`topics::CATALOG`]).
    pub fn envelopes(&self) -> Result<Vec<Envelope>, serde_json::Error> {
        let (chunks, header) = self.split()?;
        let mut out = Vec::with_capacity(chunks.len() + 1);
        for chunk in &chunks {
            out.push(Envelope::new(chunk)?);
        }
        out.push(Envelope::new(&header)?);
        Ok(out)
    }

    /// The publication `header` announces, from its chunks (in any order; a chunk given twice
    /// counts once when both copies agree). Every chunk must be of the header's performance and
    /// revision, agree on the chunk count, and the seats put together must match the header's
    /// count and digest.
    pub fn assemble(
        header: &PerformancePublished,
        chunks: &[PerformanceSeats],
    ) -> Result<Self, AssemblyError> {
        let want = header.seat_chunks;
        let mut slots: Vec<Option<&PerformanceSeats>> =
            vec![None; usize::try_from(want).unwrap_or(0)];
        for c in chunks {
            let foreign = |why: String| AssemblyError::Foreign {
                chunk: c.chunk,
                why,
            };
            if c.performance_id != header.performance_id || c.revision != header.revision {
                return Err(foreign(format!(
                    "of performance {} revision {}, not {} revision {}",
                    c.performance_id, c.revision, header.performance_id, header.revision
                )));
            }
            if c.chunks != want {
                return Err(foreign(format!(
                    "one of {} chunks, the header says {want}",
                    c.chunks
                )));
            }
            let slot = usize::try_from(c.chunk)
                .ok()
                .and_then(|i| slots.get_mut(i))
                .ok_or_else(|| foreign(format!("index past the {want} chunks")))?;
            match slot {
                Some(seen) if *seen != c => {
                    return Err(foreign("two different copies".to_owned()));
                }
                _ => *slot = Some(c),
            }
        }
        let have = slots.iter().filter(|s| s.is_some()).count();
        if have < slots.len() {
            return Err(AssemblyError::Incomplete {
                have: u32::try_from(have).unwrap_or(u32::MAX),
                want,
            });
        }
        let seats: Vec<SeatSpec> = slots
            .into_iter()
            .flatten()
            .flat_map(|c| c.seats.iter().cloned())
            .collect();
        if u32::try_from(seats.len()).ok() != Some(header.seat_count) {
            return Err(AssemblyError::Mismatch {
                why: format!(
                    "{} seats, the header says {}",
                    seats.len(),
                    header.seat_count
                ),
            });
        }
        let digest = seat_digest(&seats);
        if digest != header.seat_digest {
            return Err(AssemblyError::Mismatch {
                why: format!("digest {digest}, the header says {}", header.seat_digest),
            });
        }
        Ok(Self {
            performance_id: header.performance_id,
            event_id: header.event_id,
            venue_id: header.venue_id,
            starts_at: header.starts_at,
            ticket_limit: header.ticket_limit,
            waiting_room: header.waiting_room,
            sale_opens_at: header.sale_opens_at,
            sale_closes_at: header.sale_closes_at,
            seats,
            areas: header.areas.clone(),
            prices: header.prices.clone(),
            revision: header.revision,
            presale: header.presale.clone(),
        })
    }
}

/// A published performance was cancelled (e.g. a rain-out): its orders are refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformanceCancelled {
    /// Performance id.
    pub performance_id: Uuid,
    /// Why, shown to buyers.
    pub reason: String,
}
event!(
    PerformanceCancelled,
    "performance.cancelled",
    1,
    topics::CATALOG,
    |e| e.performance_id
);

// ---------------------------------------------------------------- seat

/// Seats were put on hold for a buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlaced {
    /// Hold id.
    pub hold_id: Uuid,
    /// Performance id.
    pub performance_id: Uuid,
    /// Buyer (user id).
    pub buyer_id: Uuid,
    /// Seats held.
    pub seat_ids: Vec<String>,
    /// General-admission quantities held, by area.
    #[serde(default)]
    pub areas: Vec<(String, i32)>,
    /// Total price in KRW.
    pub amount_krw: i64,
    /// When the hold lapses.
    pub expires_at: DateTime<Utc>,
}
event!(HoldPlaced, "hold.placed", 1, topics::SEATS, |e| e
    .performance_id);

/// Why a hold ended without a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldEndReason {
    /// The buyer let it go.
    Released,
    /// Its time ran out.
    Expired,
}

/// A hold ended and its seats went back on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldEnded {
    /// Hold id.
    pub hold_id: Uuid,
    /// Performance id.
    pub performance_id: Uuid,
    /// Seats released.
    pub seat_ids: Vec<String>,
    /// Why it ended.
    pub reason: HoldEndReason,
}
event!(HoldEnded, "hold.ended", 1, topics::SEATS, |e| e
    .performance_id);

/// Why the seat service could not honour a confirmed order's sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleRejectReason {
    /// A seat of the sale is held or sold by someone else (its hold lapsed first).
    SeatsTaken,
    /// A general-admission area has no room left for the sale's places.
    SoldOut,
    /// The buyer would own more tickets of the performance than its limit.
    LimitExceeded,
    /// The order names other seats, places or buyer than its hold.
    NotTheHold,
    /// The hold was sold to another order already.
    HoldUsed,
    /// The seat service knows no such hold (never placed, or its record is gone).
    UnknownHold,
    /// The seat service knows no such performance.
    UnknownPerformance,
}

/// A confirmed order's sale could not be honoured: nothing was sold, the order side refunds.
/// Keyed by the order id, like the order events it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRejected {
    /// The order whose sale was refused.
    pub order_id: Uuid,
    /// The hold it named.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Why.
    pub reason: SaleRejectReason,
    /// What exactly was in the way (seats, areas, counts), for people.
    #[serde(default)]
    pub detail: String,
}
event!(SaleRejected, "sale.rejected", 1, topics::SEATS, |e| e
    .order_id);

/// What is left of a performance, by grade: the seat service sends one when the counts of a
/// performance it follows changed, at most every few seconds per replica
/// (`seat.availability_interval_ms`), so the catalog can say "sold out" while it is true. Several
/// replicas may each send the same state; `(epoch, version)` orders them: a reader keeps the
/// highest and ignores the rest (versions count within an epoch, and a later epoch, which the
/// store names by its clock in µs, is newer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformanceAvailability {
    /// Performance id.
    pub performance_id: Uuid,
    /// The hold store's epoch of the performance (its clock in µs when it installed it).
    pub epoch: i64,
    /// The inventory version the counts are at, within `epoch`.
    pub version: u64,
    /// Seats and places on sale now (neither held nor sold), by grade code.
    pub available: std::collections::BTreeMap<String, i64>,
    /// Seats and places in holds now, all grades (they come back if their holds lapse).
    pub held: i64,
    /// Seats and places sold, all grades.
    pub sold: i64,
    /// When the counts were read.
    pub at: DateTime<Utc>,
}
event!(
    PerformanceAvailability,
    "performance.availability",
    1,
    topics::SEATS,
    |e| e.performance_id
);

impl PerformanceAvailability {
    /// Seats and places on sale now, all grades.
    pub fn available_total(&self) -> i64 {
        self.available.values().sum()
    }
}

// ---------------------------------------------------------------- order

/// An order was created from a hold and awaits payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    /// Order id.
    pub order_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Hold the order was made from.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Amount due in KRW.
    pub amount_krw: i64,
    /// When an unpaid order lapses.
    pub expires_at: DateTime<Utc>,
}
event!(OrderCreated, "order.created", 1, topics::ORDERS, |e| e
    .order_id);

/// An order was paid: its seats are sold and its tickets issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// Order id.
    pub order_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Hold the order was made from.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Seats sold.
    pub seat_ids: Vec<String>,
    /// General-admission quantities sold, by area.
    #[serde(default)]
    pub areas: Vec<(String, i32)>,
    /// Amount paid in KRW.
    pub amount_krw: i64,
    /// Issued ticket ids.
    pub ticket_ids: Vec<Uuid>,
}
event!(OrderConfirmed, "order.confirmed", 1, topics::ORDERS, |e| e
    .order_id);

/// An order ended without a sale, or a sale was undone: its seats go back on sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// Order id.
    pub order_id: Uuid,
    /// Buyer.
    pub buyer_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Seats released.
    pub seat_ids: Vec<String>,
    /// General-admission quantities released, by area.
    #[serde(default)]
    pub areas: Vec<(String, i32)>,
    /// Refunded amount in KRW (0 when nothing was paid).
    pub refund_krw: i64,
    /// Why: `buyer_cancelled`, `payment_failed`, `expired`, `performance_cancelled`, ...
    pub reason: String,
    /// The hold the order was made from: an order that ends unpaid gives its hold (in
    /// checkout) back at once. Absent in events from before the field existed.
    #[serde(default)]
    pub hold_id: Option<Uuid>,
}
event!(OrderCancelled, "order.cancelled", 1, topics::ORDERS, |e| e
    .order_id);

// ---------------------------------------------------------------- payment

/// Money is to go back to the buyer (a cancellation, a sale the seat service refused, a payment
/// that arrived after its order lapsed): the order service asks, the payment service refunds at
/// the PG and answers `payment.refunded`. Keyed by the order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequested {
    /// The refund's id: the same id asked twice is refunded once (the PG's idempotency key
    /// derives from it).
    pub refund_id: Uuid,
    /// Order id.
    pub order_id: Uuid,
    /// How much, in KRW; `None`: everything not yet refunded (a full refund).
    #[serde(default)]
    pub amount_krw: Option<i64>,
    /// Why, shown to the buyer: `buyer_cancelled`, `sale_rejected`, `paid_after_expiry`, ...
    pub reason: String,
}
event!(
    RefundRequested,
    "refund.requested",
    1,
    topics::ORDERS,
    |e| e.order_id
);

/// The PG confirmed a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentApproved {
    /// Order id.
    pub order_id: Uuid,
    /// The PG's payment key.
    pub payment_key: String,
    /// Amount in KRW.
    pub amount_krw: i64,
    /// When the PG approved it.
    pub approved_at: DateTime<Utc>,
}
event!(
    PaymentApproved,
    "payment.approved",
    1,
    topics::PAYMENTS,
    |e| e.order_id
);

/// A payment attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// Order id.
    pub order_id: Uuid,
    /// The PG's error code.
    pub code: String,
    /// The PG's message.
    pub message: String,
}
event!(PaymentFailed, "payment.failed", 1, topics::PAYMENTS, |e| e
    .order_id);

/// Money went back to the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// Order id.
    pub order_id: Uuid,
    /// The PG's payment key.
    pub payment_key: String,
    /// Refunded amount in KRW.
    pub amount_krw: i64,
    /// Why.
    pub reason: String,
}
event!(
    PaymentRefunded,
    "payment.refunded",
    1,
    topics::PAYMENTS,
    |e| e.order_id
);

/// A refund will not be made by itself: the PG refused it for good (e.g.
/// `NOT_CANCELABLE_PAYMENT`), it was more than what is left, or it kept failing for
/// `payment.settle.refund_max_attempts` attempts. The money question is an operator's; the order
/// service marks the order `refund_failed`. A `payment.refunded` of the same order afterwards (an
/// operator's retry went through) still wins. Keyed by the order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefundFailed {
    /// Order id.
    pub order_id: Uuid,
    /// The refund: `refund.requested`'s `refund_id`, or `late-<order_id>` for a charge the
    /// payment service refunds on its own (one the order service never heard of).
    pub refund_key: String,
    /// What was to go back, in KRW (`None`: everything left).
    #[serde(default)]
    pub amount_krw: Option<i64>,
    /// The PG's code (`NOT_CANCELABLE_PAYMENT`, ...) or ours (`OVER_BALANCE`, `REFUND_GAVE_UP`).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}
event!(
    PaymentRefundFailed,
    "payment.refund_failed",
    1,
    topics::PAYMENTS,
    |e| e.order_id
);

/// The type of every event above, for code that must say what it does with each (a consumer's
/// `Handler::wants` list in platform is tested against it). A test keeps it complete.
pub const ALL_TYPES: &[&str] = &[
    UserRegistered::TYPE,
    PerformanceSeats::TYPE,
    PerformancePublished::TYPE,
    PerformanceCancelled::TYPE,
    HoldPlaced::TYPE,
    HoldEnded::TYPE,
    SaleRejected::TYPE,
    PerformanceAvailability::TYPE,
    OrderCreated::TYPE,
    OrderConfirmed::TYPE,
    OrderCancelled::TYPE,
    RefundRequested::TYPE,
    PaymentApproved::TYPE,
    PaymentFailed::TYPE,
    PaymentRefunded::TYPE,
    PaymentRefundFailed::TYPE,
];

#[cfg(test)]
mod tests {
    #[test]
    fn all_types_lists_every_event_declared_here() {
        // The name literal that follows each `event!(Type,` in this file.
        let source = include_str!("events.rs");
        let mut declared: Vec<&str> = source
            .split("\nevent!(")
            .skip(1)
            .filter_map(|decl| decl.split('"').nth(1))
            .collect();
        declared.sort_unstable();
        let mut listed = ALL_TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(declared.len(), 16, "{declared:?}");
        assert_eq!(listed, declared);
    }

    use super::*;
    use crate::Envelope;

    #[test]
    fn key_is_the_aggregate_id() {
        let id = Uuid::now_v7();
        let e = PerformanceCancelled {
            performance_id: id,
            reason: "rain".into(),
        };
        let env = Envelope::new(&e).unwrap();
        assert_eq!(env.key, id.to_string());
        assert_eq!(env.event_type, "performance.cancelled");
    }

    #[test]
    fn decode_refuses_other_types_and_newer_versions() {
        let e = PerformanceCancelled {
            performance_id: Uuid::nil(),
            reason: "rain".into(),
        };
        let mut env = Envelope::new(&e).unwrap();
        assert!(matches!(
            env.decode::<UserRegistered>(),
            Err(crate::DecodeError::WrongType { .. })
        ));
        env.version = 2;
        assert!(matches!(
            env.decode::<PerformanceCancelled>(),
            Err(crate::DecodeError::UnsupportedVersion { .. })
        ));
    }

    fn seat(i: usize) -> SeatSpec {
        SeatSpec {
            seat_id: format!("{}-{}-{}", 100 + i / 1000, i / 20 % 50, i % 20),
            section: format!("{}", 100 + i / 1000),
            row: format!("{}", i / 20 % 50),
            number: i32::try_from(i % 20).unwrap(),
            grade: ["blue", "orange", "red", "navy", "green"][i % 5].into(),
            rank: i32::try_from(i / 1000).unwrap(),
            wheelchair: i.is_multiple_of(97),
            table: None,
            companion_of: None,
        }
    }

    /// A stadium-sized publication: `seats` seats, two standing areas, five prices.
    fn spec(seats: usize) -> PerformanceSpec {
        let now = Utc::now();
        PerformanceSpec {
            performance_id: Uuid::now_v7(),
            event_id: Uuid::now_v7(),
            venue_id: Uuid::now_v7(),
            starts_at: now,
            ticket_limit: 4,
            waiting_room: true,
            sale_opens_at: now,
            sale_closes_at: now,
            seats: (0..seats).map(seat).collect(),
            areas: vec![AreaSpec {
                area_id: "lawn".into(),
                grade: "green".into(),
                capacity: 3_000,
            }],
            prices: ["blue", "orange", "red", "navy", "green"]
                .iter()
                .map(|g| PriceSpec {
                    grade: (*g).into(),
                    name: g.to_uppercase(),
                    price_krw: 20_000,
                    ticket_types: vec![],
                })
                .collect(),
            revision: 3,
            presale: None,
        }
    }

    #[test]
    fn a_stadium_splits_into_events_under_256_kib_that_assemble_back() {
        let spec = spec(25_000);
        let whole = serde_json::to_vec(&spec).unwrap().len();
        assert!(whole > 2_000_000, "a stadium is {whole} bytes whole");
        let envelopes = spec.envelopes().unwrap();
        for e in &envelopes {
            let bytes = serde_json::to_vec(e).unwrap().len();
            assert!(bytes <= 256 * 1024, "{} of {bytes} bytes", e.event_type);
            assert_eq!(e.key, spec.performance_id.to_string());
        }
        let (chunks, header) = spec.split().unwrap();
        assert!(chunks.len() > 8, "{} chunks", chunks.len());
        assert_eq!(envelopes.len(), chunks.len() + 1);
        assert_eq!(
            envelopes.last().unwrap().event_type,
            "performance.published"
        );
        assert!(
            envelopes[..chunks.len()]
                .iter()
                .all(|e| e.is::<PerformanceSeats>())
        );
        assert_eq!(header.seat_chunks as usize, chunks.len());
        assert_eq!(header.seat_count, 25_000);
        assert!(chunks.iter().enumerate().all(|(i, c)| c.chunk as usize == i
            && c.chunks as usize == chunks.len()
            && c.revision == 3));
        assert_eq!(PerformanceSpec::assemble(&header, &chunks).unwrap(), spec);

        // Reordered, and with a chunk delivered twice.
        let mut shuffled = chunks.clone();
        shuffled.reverse();
        shuffled.push(chunks[1].clone());
        assert_eq!(PerformanceSpec::assemble(&header, &shuffled).unwrap(), spec);
    }

    #[test]
    fn assembly_refuses_what_is_missing_foreign_or_altered() {
        let spec = spec(5_000);
        let (chunks, header) = spec.split().unwrap();
        assert!(chunks.len() >= 2);
        let missing = &chunks[1..];
        assert_eq!(
            PerformanceSpec::assemble(&header, missing),
            Err(AssemblyError::Incomplete {
                have: header.seat_chunks - 1,
                want: header.seat_chunks
            })
        );
        // A chunk of an older revision in the set.
        let mut old = chunks.clone();
        old[0].revision = 2;
        assert!(matches!(
            PerformanceSpec::assemble(&header, &old),
            Err(AssemblyError::Foreign { chunk: 0, .. })
        ));
        // A chunk of a publication with another number of chunks (fewer seats).
        let mut other = chunks.clone();
        other[0].chunks += 1;
        assert!(matches!(
            PerformanceSpec::assemble(&header, &other),
            Err(AssemblyError::Foreign { .. })
        ));
        // Two copies of one chunk that differ.
        let mut twice = chunks.clone();
        let mut changed = chunks[0].clone();
        changed.seats[0].grade = "gold".into();
        twice.push(changed.clone());
        assert!(matches!(
            PerformanceSpec::assemble(&header, &twice),
            Err(AssemblyError::Foreign { chunk: 0, .. })
        ));
        // A seat altered: the digest says so.
        let mut altered = chunks.clone();
        altered[0] = changed;
        assert!(matches!(
            PerformanceSpec::assemble(&header, &altered),
            Err(AssemblyError::Mismatch { .. })
        ));
        // A seat lost from a chunk: the count says so.
        let mut short = chunks.clone();
        short[1].seats.pop();
        assert!(matches!(
            PerformanceSpec::assemble(&header, &short),
            Err(AssemblyError::Mismatch { .. })
        ));
        // An index past the count.
        let mut past = chunks;
        past[0].chunk = header.seat_chunks;
        assert!(matches!(
            PerformanceSpec::assemble(&header, &past),
            Err(AssemblyError::Foreign { .. })
        ));
    }

    #[test]
    fn general_admission_only_needs_no_chunk_and_a_huge_seat_goes_alone() {
        let mut ga = spec(0);
        let (chunks, header) = ga.split().unwrap();
        assert!(chunks.is_empty());
        assert_eq!((header.seat_chunks, header.seat_count), (0, 0));
        assert_eq!(PerformanceSpec::assemble(&header, &[]).unwrap(), ga);

        ga.seats = vec![seat(1), seat(2), seat(3)];
        ga.seats[1].seat_id = "x".repeat(PerformanceSeats::MAX_SEAT_BYTES);
        let (chunks, header) = ga.split().unwrap();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.seats.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert_eq!(PerformanceSpec::assemble(&header, &chunks).unwrap(), ga);
    }

    #[test]
    fn the_seat_digest_is_pinned() {
        // Producer and consumer may be built from different commits: the digest's definition
        // must not drift. This is `sha256sum` of the two lines
        // `["100-0-0","100","0",0,"blue",0,true]` and `["101-11-14","101","11",14,"green",1,false]`.
        let seats = vec![seat(0), seat(1_234)];
        assert_eq!(
            seat_digest(&seats),
            "550074511112b6044ac50471963c70ab81e6b50d5ebfc55475fc0d21e4f31967"
        );
        assert_ne!(seat_digest(&seats[..1]), seat_digest(&seats));
        let mut swapped = seats.clone();
        swapped.reverse();
        assert_ne!(seat_digest(&swapped), seat_digest(&seats), "order counts");
    }

    #[test]
    fn tables_and_companions_are_optional_and_left_out_of_the_digest() {
        // A seat from before the fields reads as neither; one without them writes neither.
        let old: SeatSpec = serde_json::from_value(serde_json::json!({
            "seat_id": "a-1-1", "section": "a", "row": "1", "number": 1, "grade": "g"
        }))
        .unwrap();
        assert_eq!((old.table, old.companion_of), (None, None));
        let plain = serde_json::to_value(seat(0)).unwrap();
        assert!(plain.get("table").is_none() && plain.get("companion_of").is_none());
        let mut grouped = vec![seat(0), seat(1_234)];
        let before = seat_digest(&grouped);
        grouped[0].table = Some("100-0-0".into());
        grouped[1].companion_of = Some("100-0-0".into());
        let back: Vec<SeatSpec> =
            serde_json::from_value(serde_json::to_value(&grouped).unwrap()).unwrap();
        assert_eq!(back, grouped);
        assert_eq!(seat_digest(&grouped), before, "the digest keeps its fields");
    }

    #[test]
    fn version_1_payloads_are_whole_specs_and_version_2_headers_are_not() {
        let spec = spec(3);
        let v1 = Envelope {
            version: 1,
            ..Envelope::new(&spec.split().unwrap().1).unwrap()
        };
        let v1 = Envelope {
            payload: serde_json::to_value(&spec).unwrap(),
            ..v1
        };
        // A v1 payload is not a v2 header (the seat service reads it as a spec instead)...
        assert!(matches!(
            v1.decode::<PerformancePublished>(),
            Err(crate::DecodeError::Payload { .. })
        ));
        let back: PerformanceSpec = serde_json::from_value(v1.payload.clone()).unwrap();
        assert_eq!(back, spec);
        // ...and a later version is refused.
        let v3 = Envelope { version: 3, ..v1 };
        assert!(matches!(
            v3.decode::<PerformancePublished>(),
            Err(crate::DecodeError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn a_header_without_a_cancellation_policy_still_parses_and_one_with_it_round_trips() {
        let (_, mut header) = spec(3).split().unwrap();
        assert_eq!(header.cancellation_policy, None);
        // Without one, the wire is what it was before the field existed.
        let old = serde_json::to_value(&header).unwrap();
        assert!(old.get("cancellation_policy").is_none());
        let back: PerformancePublished = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(back, header);
        // A null one is none.
        let mut null = old;
        null["cancellation_policy"] = serde_json::Value::Null;
        let back: PerformancePublished = serde_json::from_value(null).unwrap();
        assert_eq!(back.cancellation_policy, None);

        header.cancellation_policy = Some(CancellationPolicy::standard(2_000));
        let env = Envelope::new(&header).unwrap();
        assert_eq!(env.payload["cancellation_policy"]["flat_fee_krw"], 2_000);
        let back: PerformancePublished = env.decode().unwrap();
        assert_eq!(back, header);
        // A policy with a field this build does not know is refused, not half-applied.
        let mut alien = env.payload.clone();
        alien["cancellation_policy"]["refund_everything"] = true.into();
        assert!(serde_json::from_value::<PerformancePublished>(alien).is_err());
    }

    #[test]
    fn envelope_json_uses_type_field() {
        let e = UserRegistered {
            user_id: Uuid::nil(),
            email: "a@b.c".into(),
            name: "n".into(),
            phone: None,
        };
        let json = serde_json::to_value(Envelope::new(&e).unwrap()).unwrap();
        assert_eq!(json["type"], "user.registered");
        assert_eq!(json["version"], 1);
    }
}
