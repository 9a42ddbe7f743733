//! The queue store: where a waiting room's places live. One queue per performance; two
//! implementations pass one contract suite (`tests/store_contract.rs`): [`redis::RedisQueueStore`]
//! (distributed mode: every key of a performance under one hash tag, so one queue is one Redis
//! Cluster slot, and every operation is one atomic Lua script) and [`memory::MemoryQueueStore`]
//! (standalone: one process, a mutex per store).
//!
//! The rules both keep:
//! - **One place per account and performance.** Joining again while waiting, in the pre-queue or
//!   admitted answers the place already held, with its token (`rejoined`). Only once that place
//!   is gone (the pass expired, the fan left or bought) does a join make a new place, at the back,
//!   with a new token; the old token then reports `expired`.
//! - **Pre-queue, then first come first served.** Until the draw runs (at the opening) every join
//!   enters the pre-queue, an unordered set. The draw closes it ([`QueueStore::close_prequeue`]:
//!   from then on joins go to the back of the queue, behind every place the draw will hand out),
//!   the service orders its members with the published seed ([`crate::draw`]) and commits that
//!   order ([`QueueStore::commit_draw`]): the pre-queue's members take the front places in it.
//!   Both steps can be repeated after a crash and come to the same queue.
//! - **Admission** pops the front of the queue into the active set, each with its pass's expiry;
//!   it admits nobody before the draw is committed, and never more than the active cap allows.
//!   An admitted account counts as active until its pass expires, it leaves, or it buys.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use uuid::Uuid;

/// Milliseconds since the epoch.
pub type Ms = i64;

/// Where an account stands in one queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// In the pre-queue: the draw at the opening decides the order. `size` fans are in it.
    PreQueue {
        /// How many fans the pre-queue holds.
        size: u64,
    },
    /// Waiting with `ahead` fans in front.
    Waiting {
        /// Fans in front of this one.
        ahead: u64,
    },
    /// Admitted: the pass is good until `expires_ms`.
    Admitted {
        /// When the pass expires (ms since the epoch).
        expires_ms: Ms,
    },
    /// This token's place is gone: the pass expired, the fan left or bought, or a newer join of
    /// the same account replaced it.
    Expired,
}

/// What a join did.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The place's token: the one given, or, on a rejoin, the one the place already had.
    pub token: String,
    /// Where the account stands now.
    pub place: Place,
    /// The account already held this place (the token is the earlier one).
    pub rejoined: bool,
    /// The admission rate the admitter measured last (fans per second; 0 before it measured).
    pub rate: f64,
}

/// What a token stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The account the token belongs to.
    pub account: Uuid,
    /// Where that account's place stands.
    pub place: Place,
    /// The admission rate measured last (fans per second).
    pub rate: f64,
}

/// What one admission step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Admitted {
    /// Fans admitted now.
    pub admitted: u64,
    /// Fans still waiting in the queue.
    pub waiting: u64,
    /// Active buyers (unexpired passes) after the step.
    pub active: u64,
}

/// The sizes of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    /// Fans waiting in the queue.
    pub waiting: u64,
    /// Fans in the pre-queue.
    pub prequeue: u64,
    /// Active buyers (unexpired passes).
    pub active: u64,
    /// The admission rate measured last (fans per second).
    pub rate: f64,
}

/// A pre-queue member, with the token its place has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The account.
    pub account: Uuid,
    /// Its place's token.
    pub token: String,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed or is unreachable.
    #[error("queue store: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A reply the store did not expect (a bug, or keys written by something else).
    #[error("queue store reply: {0}")]
    Corrupt(String),
}

/// A rate limit counted with a read: one hit of `key` in a fixed window of `window_ms`, at
/// most `limit` hits.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    /// The counter's name (within the queue).
    pub key: &'a str,
    /// The window, in ms.
    pub window_ms: u64,
    /// Hits allowed per window.
    pub limit: u64,
}

/// A status read that counts against a limit.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    /// Over the limit: nothing was read.
    Limited,
    /// Within it: what [`QueueStore::status`] answers.
    Read(Option<Found>),
}

/// A waiting room's places (see the module docs for the rules).
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Joins `account` to the queue of `perf` with the fresh `token`, or answers the place it
    /// holds already.
    async fn join(
        &self,
        perf: Uuid,
        account: Uuid,
        token: &str,
        now_ms: Ms,
    ) -> Result<Joined, StoreError>;

    /// The account and place of `token`, or `None` for a token this queue never gave.
    async fn status(
        &self,
        perf: Uuid,
        token: &str,
        now_ms: Ms,
    ) -> Result<Option<Found>, StoreError>;

    /// [`QueueStore::status`] after one hit of `limit`, a counter of the queue of `perf`
    /// (kept with it: on a Redis Cluster in its slot), in one round trip where the store can.
    async fn status_counted(
        &self,
        perf: Uuid,
        token: &str,
        now_ms: Ms,
        limit: Limit<'_>,
    ) -> Result<Counted, StoreError> {
        let key = format!("{perf}:{}", limit.key);
        if !self.hit(&key, limit.window_ms, limit.limit).await? {
            return Ok(Counted::Limited);
        }
        Ok(Counted::Read(self.status(perf, token, now_ms).await?))
    }

    /// Takes `account` out of the queue, the pre-queue and the active buyers (it left, or it
    /// bought). Whether it was in any of them.
    async fn leave(&self, perf: Uuid, account: Uuid) -> Result<bool, StoreError>;

    /// Closes the pre-queue (later joins go to the back of the queue) and answers its members,
    /// in no particular order; the same members again when it was closed but the draw is not
    /// committed yet. `None` once the draw is committed.
    async fn close_prequeue(&self, perf: Uuid) -> Result<Option<Vec<Entry>>, StoreError>;

    /// Gives the pre-queue's members the front places in the order given (the draw's); accounts
    /// that are not pre-queue members are ignored. Repeating it changes nothing.
    async fn commit_draw(&self, perf: Uuid, order: &[Uuid]) -> Result<(), StoreError>;

    /// Whether the draw is committed (admission can start).
    async fn drawn(&self, perf: Uuid) -> Result<bool, StoreError>;

    /// Admits up to `n` fans from the front, keeping at most `max_active` active buyers (when
    /// given); each admitted pass lasts `pass_ttl_ms` from `now_ms`. Admits nobody before the
    /// draw is committed, and nobody while paused ([`QueueStore::set_paused`]).
    async fn admit(
        &self,
        perf: Uuid,
        n: u64,
        max_active: Option<u64>,
        now_ms: Ms,
        pass_ttl_ms: Ms,
    ) -> Result<Admitted, StoreError>;

    /// Stops (`true`) or lets again (`false`) every admission of `perf` in the store itself:
    /// while set, [`QueueStore::admit`] admits nobody, whatever its caller read of the room. The
    /// room's `paused` setting in the database is what the admitter reads each tick; this closes
    /// the gap of a tick that read the room just before a pause and admits just after it.
    async fn set_paused(&self, perf: Uuid, paused: bool) -> Result<(), StoreError>;

    /// The sizes of the queue of `perf`.
    async fn counts(&self, perf: Uuid, now_ms: Ms) -> Result<Counts, StoreError>;

    /// Records the admission rate the admitter measured (fans per second), for ETAs.
    async fn set_rate(&self, perf: Uuid, rate: f64) -> Result<(), StoreError>;

    /// Takes or renews the lease on running the admission of `perf` for `ttl_ms`: true while
    /// `who` holds it. One replica admits for a queue at a time.
    async fn lead(&self, perf: Uuid, who: &str, ttl_ms: u64) -> Result<bool, StoreError>;

    /// Counts one hit of the rate-limit `key` in a fixed window of `window_ms`: whether it is
    /// within `limit` hits.
    async fn hit(&self, key: &str, window_ms: u64, limit: u64) -> Result<bool, StoreError>;

    /// Forgets everything of the queue of `perf` (its sale is long over).
    async fn forget(&self, perf: Uuid) -> Result<(), StoreError>;
}
