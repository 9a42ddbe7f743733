//! The hold store: the write authority for seat and area states of every performance. One trait,
//! two implementations that pass one contract suite — [`memory::MemoryStore`] (standalone) and
//! [`redis::RedisStore`] (distributed; one Lua script per operation, all keys of a performance
//! under the hash tag `{perf_id}` so it lives on one Redis Cluster slot).
//!
//! Every mutation is atomic and all-or-nothing; each that changes a seat or an area count bumps
//! the performance's version by one and records a [`Change`] that readers apply in version order
//! (moving a hold into checkout changes no seat, so it records none). Expiry goes through the
//! same release path as a manual release, one hold at a time. Every path that sells (a hold, a
//! confirm of a lapsed hold) checks seats, area capacity and the buyer's limit; holds are
//! refused outside the sale window by the store's own clock, and expire by it too.
//!
//! The store is also the seat service's outbox ([`outbox`]): placing a hold and ending one
//! without a sale (release, expiry) record their domain event (`hold.placed`, `hold.ended`) in
//! the same atomic step, in a per-performance event log that is never trimmed, only emptied of
//! what a relay acknowledged ([`HoldStore::read_events`], [`HoldStore::ack_events`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{AreaCount, Change, SeatStatus, seq_or_empty};

pub mod book;
pub mod memory;
pub mod outbox;
pub mod redis;

pub use outbox::{EventReader, LoggedEvent, StoreEvent};

/// Inventory a performance is (re)installed with.
#[derive(Debug, Clone)]
pub struct StoreInventory {
    /// Performance.
    pub performance_id: Uuid,
    /// Catalog revision; an older or equal one is ignored.
    pub revision: i64,
    /// Every sellable seat.
    pub seat_ids: Vec<String>,
    /// General-admission areas: `(area_id, capacity)`.
    pub areas: Vec<(String, i64)>,
    /// Most tickets per buyer (held + sold); 0 = no limit.
    pub ticket_limit: i64,
    /// When holds may start, ms since the epoch (by the store's clock).
    pub sale_opens_at_ms: i64,
    /// When holds stop, ms since the epoch (by the store's clock).
    pub sale_closes_at_ms: i64,
}

/// How a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Seats held, not yet bought.
    Active,
    /// An order is paying for it: the buyer cannot release it, and it lapses only at its
    /// (longer) checkout deadline.
    Checkout,
    /// The buyer released it.
    Released,
    /// Its time ran out.
    Expired,
    /// Its order was confirmed: the seats are sold.
    Sold,
    /// Its order was cancelled or refunded after the sale: the seats are back on sale.
    Returned,
}

impl HoldStatus {
    /// Whether the hold still has its seats (active or in checkout).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Checkout)
    }

    /// The name the API and the Redis records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Checkout => "checkout",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Sold => "sold",
            Self::Returned => "returned",
        }
    }
}

/// A hold as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Hold id.
    pub hold_id: Uuid,
    /// Performance.
    pub performance_id: Uuid,
    /// Buyer (user id).
    pub buyer_id: Uuid,
    /// Seats.
    #[serde(default, deserialize_with = "seq_or_empty")]
    pub seat_ids: Vec<String>,
    /// General-admission quantities `(area_id, quantity)`.
    #[serde(default, deserialize_with = "seq_or_empty")]
    pub areas: Vec<(String, i64)>,
    /// Total price, KRW.
    pub amount_krw: i64,
    /// When it lapses (ms since the epoch); in checkout, the checkout deadline.
    pub expires_at_ms: i64,
    /// Where it stands.
    pub status: HoldStatus,
    /// A lower per-buyer limit this hold was placed under: the presale's, when it was placed
    /// before the general sale (absent: the performance's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presale_limit: Option<i64>,
}

impl Hold {
    /// Tickets the hold counts against the buyer's limit.
    pub fn tickets(&self) -> i64 {
        self.seat_ids.len() as i64 + self.areas.iter().map(|(_, q)| q).sum::<i64>()
    }

    /// Whether `other` names the same buyer, seats and places (in any order).
    pub fn same_goods(&self, other: &Hold) -> bool {
        fn areas(h: &Hold) -> BTreeMap<&str, i64> {
            let mut m = BTreeMap::new();
            for (a, q) in &h.areas {
                *m.entry(a.as_str()).or_default() += q;
            }
            m
        }
        fn seats(h: &Hold) -> BTreeSet<&String> {
            h.seat_ids.iter().collect()
        }
        self.buyer_id == other.buyer_id
            && self.seat_ids.len() == other.seat_ids.len()
            && seats(self) == seats(other)
            && areas(self) == areas(other)
    }
}

/// What the hold store refused, or why it failed. The refusals are the caller's answer (nothing
/// changed); [`StoreError::Transient`] and [`StoreError::Corrupt`] are the store's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Some seats (or area places) are taken or unknown; nothing changed.
    #[error("seats unavailable: {seat_ids:?} areas: {areas:?}")]
    Unavailable {
        /// Seats that are held, sold or unknown.
        seat_ids: Vec<String>,
        /// Areas without enough places.
        areas: Vec<String>,
    },
    /// The buyer would exceed the per-performance ticket limit.
    #[error("ticket limit {limit} exceeded ({current} already)")]
    LimitExceeded {
        /// The limit.
        limit: i64,
        /// Tickets the buyer already holds or bought.
        current: i64,
    },
    /// Outside the performance's sale window (by the store's clock).
    #[error("not on sale (window {opens_at_ms}..{closes_at_ms} ms)")]
    NotOnSale {
        /// When the sale opens, ms since the epoch.
        opens_at_ms: i64,
        /// When it closes, ms since the epoch.
        closes_at_ms: i64,
    },
    /// The hold is in checkout: only its sale or its checkout deadline ends it.
    #[error("the hold is in checkout")]
    InCheckout,
    /// The hold is over (released, expired, sold, returned).
    #[error("the hold is {}", .0.as_str())]
    HoldEnded(HoldStatus),
    /// A sale names other seats, places or buyer than its hold.
    #[error("the sale does not match its hold")]
    NotTheHold,
    /// The store knows no such hold.
    #[error("unknown hold")]
    UnknownHold,
    /// The store does not know the performance.
    #[error("unknown performance")]
    UnknownPerformance,
    /// The store could not be reached or timed out: try again.
    #[error("hold store unavailable: {0}")]
    Transient(String),
    /// The store answered something unreadable (a bug or damaged data).
    #[error("hold store reply unreadable: {0}")]
    Corrupt(String),
}

/// The name the hold path used before refusals and failures shared one type.
pub type HoldError = StoreError;

impl StoreError {
    /// Whether this is the store's own failure rather than a refusal.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Corrupt(_))
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                ::redis::ErrorKind::Server(
                    ::redis::ServerErrorKind::BusyLoading
                        | ::redis::ServerErrorKind::TryAgain
                        | ::redis::ServerErrorKind::ClusterDown
                        | ::redis::ServerErrorKind::MasterDown
                        | ::redis::ServerErrorKind::ReadOnly
                )
            )
        {
            Self::Transient(e.to_string())
        } else {
            Self::Corrupt(e.to_string())
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(format!("decoding: {e}"))
    }
}

/// What confirming a sale did. Refusals (seats taken, area full, limit, not the hold) are
/// [`StoreError`]s, and change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The seats are now sold (the change is recorded).
    Sold(Change),
    /// Already sold by this hold: nothing to do (redelivery).
    AlreadySold,
}

/// A consistent picture of a performance's dynamic state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Version the picture is at.
    #[serde(rename = "v")]
    pub version: u64,
    /// Catalog revision installed.
    #[serde(rename = "rev")]
    pub revision: i64,
    /// The epoch the version counts in: new each time the store installs the performance
    /// afresh (see [`crate::domain::Change`]).
    #[serde(rename = "e", default)]
    pub epoch: String,
    /// Seats not available, with their status.
    #[serde(rename = "s", default, deserialize_with = "seq_or_empty")]
    pub taken: Vec<(String, SeatStatus)>,
    /// Every area's counts.
    #[serde(rename = "a", default, deserialize_with = "seq_or_empty")]
    pub areas: Vec<AreaCount>,
}

/// The changes after a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The next changes in order (possibly none).
    Next(Vec<Change>),
    /// The log no longer reaches back that far: take a [`Snapshot`].
    Truncated,
}

/// The hold store. See the module docs for the guarantees every implementation keeps.
#[async_trait]
pub trait HoldStore: Send + Sync + 'static {
    /// Installs or updates a performance's inventory; `None` when `revision` is not newer.
    async fn install(&self, inventory: &StoreInventory) -> Result<Option<Change>, StoreError> {
        self.install_with_sales(inventory, Some(&[])).await
    }
    /// [`HoldStore::install_with_records`] without withheld seats.
    async fn install_with_sales(
        &self,
        inventory: &StoreInventory,
        sold: Option<&[Hold]>,
    ) -> Result<Option<Change>, StoreError> {
        self.install_with_records(inventory, sold, &[]).await
    }
    /// [`HoldStore::install`]; a store that does not have the performance yet (new, or lost:
    /// flushed, restarted empty) installs it in a new epoch together with `sold`, the sales
    /// SeatDB recorded, and `withheld`, the seats SeatDB has withheld from sale, in one atomic
    /// step, so no hold is ever placed on a seat already sold or withheld. `sold` and `withheld`
    /// are ignored when the store has the performance (its seats keep their states, withheld
    /// ones included); `None` (the caller did not read the sales) makes a store without it
    /// answer [`StoreError::UnknownPerformance`] and change nothing, so the caller reads them
    /// and installs again.
    async fn install_with_records(
        &self,
        inventory: &StoreInventory,
        sold: Option<&[Hold]>,
        withheld: &[String],
    ) -> Result<Option<Change>, StoreError>;
    /// How many holds of the performance are live (active or in checkout); 0 when unknown.
    async fn live_holds(&self, performance_id: Uuid) -> Result<u64, StoreError>;
    /// Holds every seat and area place of `hold` for its buyer, or nothing: refused outside the
    /// sale window (by the store's clock), when a seat or place is taken, or past the buyer's
    /// limit. Repeating a call with the same hold id changes nothing and answers an empty
    /// change (version 0).
    async fn hold(&self, hold: &Hold) -> Result<Change, StoreError>;
    /// Ends an active hold (`Released` or `Expired`); `None` when it is already over;
    /// [`StoreError::InCheckout`] for a hold in checkout.
    async fn release(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        reason: HoldStatus,
    ) -> Result<Option<(Hold, Change)>, StoreError>;
    /// Ends a live hold, in checkout or not, as released: the order paying for it gave up
    /// (expired or cancelled unpaid), so its seats go back on sale at once rather than at the
    /// checkout deadline; `None` when it is already over.
    async fn abandon(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError>;
    /// Moves an active hold into checkout: its deadline becomes at least `ttl_ms` from now (by
    /// the store's clock), the buyer can no longer release it. A hold already in checkout is
    /// answered as it is. A lapsed or ended hold: [`StoreError::HoldEnded`].
    async fn checkout(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        ttl_ms: i64,
    ) -> Result<Hold, StoreError>;
    /// Expires the one hold of the performance that lapsed first (active holds by their
    /// expiry, holds in checkout by their checkout deadline), if any lapsed by the store's
    /// clock, through the same path as [`HoldStore::release`].
    async fn expire_next(&self, performance_id: Uuid)
    -> Result<Option<(Hold, Change)>, StoreError>;
    /// Sells exactly the seats and places of the hold `sale` names (its buyer, seats and places
    /// must be the hold's, else [`StoreError::NotTheHold`]). A live hold sells what it holds; a
    /// lapsed one only while its seats are free, its areas have room and its buyer stays within
    /// the limit.
    async fn confirm(&self, sale: &Hold) -> Result<Confirmed, StoreError>;
    /// Withholds every seat of `seat_ids` from sale, or none: refused with
    /// [`StoreError::Unavailable`] naming the seats that are held, sold, not in the inventory or
    /// listed twice. Seats withheld already stay so; an empty change (version 0) when every seat
    /// was withheld already.
    async fn withhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError>;
    /// Puts the withheld seats of `seat_ids` back on sale, in one step; seats not withheld are
    /// left as they are (an empty change, version 0, when none was).
    async fn unwithhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError>;
    /// Records a sale SeatDB already made into a store that lost it (an empty store at start);
    /// `None` when the store has it already.
    async fn restore(&self, sale: &Hold) -> Result<Option<Change>, StoreError>;
    /// Puts the seats and places sold through a hold back on sale; `None` when already done.
    async fn unsell(&self, sale: &Hold) -> Result<Option<Change>, StoreError>;
    /// A hold by id, in whatever status.
    async fn find_hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError>;
    /// A hold of `performance_id` by id, in whatever status: for callers that know the
    /// performance, so that the lookup does not depend on the hold index (on a Redis Cluster the
    /// index lives in another slot, and a failover can lose an entry of it alone).
    async fn find_hold_in(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<Hold>, StoreError> {
        Ok(self
            .find_hold(hold_id)
            .await?
            .filter(|h| h.performance_id == performance_id))
    }
    /// The performance's current state; `None` when not installed.
    async fn snapshot(&self, performance_id: Uuid) -> Result<Option<Snapshot>, StoreError>;
    /// Changes after version `after`, waiting up to `wait` when there are none yet;
    /// [`Changes::Truncated`] when the log no longer reaches back to `after` or the store is
    /// behind it (the performance was installed afresh: read a snapshot);
    /// [`StoreError::UnknownPerformance`] when the store lost the performance.
    async fn changes_after(
        &self,
        performance_id: Uuid,
        after: u64,
        wait: Duration,
    ) -> Result<Changes, StoreError>;
    /// The oldest events of the performance's event log that no one acknowledged, in log
    /// order, at most `max`, for `reader`: nothing while another reader's lease on the log runs
    /// (so one reader at a time relays a performance, in order); with it, first what earlier
    /// readers read and did not acknowledge (a relay that died), then what is new.
    async fn read_events(
        &self,
        performance_id: Uuid,
        reader: &EventReader,
        max: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError>;
    /// Acknowledges events `ids` of the performance's log (they are in the PostgreSQL outbox):
    /// they are dropped from the log, never read again. Unknown ids are ignored.
    async fn ack_events(&self, performance_id: Uuid, ids: &[String]) -> Result<(), StoreError>;
}
