//! The hold store: the write authority for seat and area states of every performance. One trait,
//! two implementations that pass one contract suite — [`memory::MemoryStore`] (standalone) and
//! [`redis::RedisStore`] (distributed; one Lua script per operation, all keys of a performance
//! under the hash tag `{perf_id}` so it lives on one Redis Cluster slot).
//!
//! Every mutation is atomic and all-or-nothing, bumps the performance's version by one and
//! records a [`Change`] that readers apply in version order. Expiry goes through the same release
//! path as a manual release, one hold at a time.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{AreaCount, Change, SeatStatus, seq_or_empty};

pub mod book;
pub mod memory;
pub mod redis;

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
}

/// How a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Seats held, not yet bought.
    Active,
    /// The buyer released it.
    Released,
    /// Its time ran out.
    Expired,
    /// Its order was confirmed: the seats are sold.
    Sold,
    /// Its order was cancelled or refunded after the sale: the seats are back on sale.
    Returned,
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
    /// When it lapses (ms since the epoch).
    pub expires_at_ms: i64,
    /// Where it stands.
    pub status: HoldStatus,
}

impl Hold {
    /// Tickets the hold counts against the buyer's limit.
    pub fn tickets(&self) -> i64 {
        self.seat_ids.len() as i64 + self.areas.iter().map(|(_, q)| q).sum::<i64>()
    }
}

/// Why a hold was refused.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// Some seats (or area places) are taken; nothing was held.
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
    /// The store does not know the performance.
    #[error("unknown performance")]
    UnknownPerformance,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store failed (connection, script, corrupt data).
#[derive(Debug, thiserror::Error)]
#[error("hold store: {0}")]
pub struct StoreError(pub String);

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        Self(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self(format!("decoding: {e}"))
    }
}

/// What confirming a sale did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The seats are now sold (the change is recorded).
    Sold(Change),
    /// Already sold by this hold: nothing to do (redelivery).
    AlreadySold,
    /// Seats held or sold by someone else: nothing changed.
    Conflict(Vec<String>),
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
    async fn install(&self, inventory: &StoreInventory) -> Result<Option<Change>, StoreError>;
    /// Holds every seat and area place of `hold` for its buyer, or nothing. Repeating a call
    /// with the same hold id changes nothing and answers an empty change (version 0).
    async fn hold(&self, hold: &Hold) -> Result<Change, HoldError>;
    /// Ends an active hold (`Released` or `Expired`); `None` when it is not active.
    async fn release(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        reason: HoldStatus,
    ) -> Result<Option<(Hold, Change)>, StoreError>;
    /// Expires the one hold of the performance that lapsed first, if any lapsed by `now_ms`,
    /// through the same path as [`HoldStore::release`].
    async fn expire_next(
        &self,
        performance_id: Uuid,
        now_ms: i64,
    ) -> Result<Option<(Hold, Change)>, StoreError>;
    /// Marks the seats and places of a hold sold (even when the hold lapsed, if still free).
    async fn confirm(&self, sale: &Hold) -> Result<Confirmed, StoreError>;
    /// Puts the seats and places sold through a hold back on sale; `None` when already done.
    async fn unsell(&self, sale: &Hold) -> Result<Option<Change>, StoreError>;
    /// A hold by id, in whatever status.
    async fn find_hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError>;
    /// The performance's current state; `None` when not installed.
    async fn snapshot(&self, performance_id: Uuid) -> Result<Option<Snapshot>, StoreError>;
    /// Changes after version `after`, waiting up to `wait` when there are none yet.
    async fn changes_after(
        &self,
        performance_id: Uuid,
        after: u64,
        wait: Duration,
    ) -> Result<Changes, StoreError>;
}
