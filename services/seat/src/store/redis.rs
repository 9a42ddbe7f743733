//! The Redis hold store (distributed mode), on one server or a Redis Cluster
//! ([`RedisStore::connect_to`]). Each operation is one Lua script over the keys of one
//! performance, all under the hash tag `{perf_id}` (see `lua/common.lua` for the key layout), so
//! it is atomic and lives on one Redis Cluster slot. Changes go to a per-performance stream whose
//! entry ids are the versions, so every replica can tail it and resume after any version; the
//! domain events of those changes go to another, `events`, the outbox the relays read through a
//! consumer group (`lua/relay_read.lua`) and empty as they acknowledge (`lua/relay_ack.lua`).
//!
//! The one key outside a performance's slot is the hold index, `seat:hold-index:<hold_id>` →
//! performance id, for the calls that name only a hold ([`HoldStore::find_hold`]). It lives in
//! the slot of its own name and is never written in the same command or script as a
//! performance's keys: it is set before the hold script runs (so a granted hold is always
//! findable; a crash in between leaves an entry that points at no hold, which reads as not
//! found and expires with [`INDEX_TTL_SECS`]), dropped after a refusal, and made permanent after
//! a sale. On one server the index write and the hold script still go in one pipeline (one round
//! trip, in that order); on a cluster they are two calls, to two slots.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use platform::service::{RedisConn, RedisTarget, RedisTimeouts};
use redis::{ErrorKind, Script, ServerErrorKind};
use serde::Deserialize;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{
    Changes, Confirmed, EventReader, Hold, HoldStatus, HoldStore, LoggedEvent, Snapshot,
    StoreError, StoreInventory, outbox,
};
use crate::domain::{Change, seq_or_empty};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("lua/common.lua"), include_str!($file)))
    };
}

/// Multiplexed connections per store.
const CONNECTIONS: usize = 4;

/// How long a hold's index entry lives until its hold is sold (longer than any hold, and than an
/// ended hold's record, `ENDED_TTL` in the scripts), seconds.
pub const INDEX_TTL_SECS: u64 = 86_400 * 2;

/// Index entries written at once when a performance is installed with its sales on a cluster
/// (each is its own call there, to its own slot).
const INDEX_WRITES_IN_FLIGHT: usize = 64;

/// The hold store on Redis.
pub struct RedisStore {
    target: RedisTarget,
    conns: Vec<RedisConn>,
    next: AtomicUsize,
    blocking: Mutex<Vec<RedisConn>>,
    hold: Script,
    release: Script,
    abandon: Script,
    expire: Script,
    confirm: Script,
    restore: Script,
    checkout: Script,
    unsell: Script,
    withhold: Script,
    unwithhold: Script,
    install: Script,
    snapshot: Script,
    relay_read: Script,
    relay_ack: Script,
}

/// The key prefix of one performance: its hash tag keeps all its keys on one slot.
pub fn prefix(perf: Uuid) -> String {
    format!("seat:{{{perf}}}:")
}

/// The hold index entry of `hold_id` (its value: the performance id); in the slot of its own
/// name, never touched together with a performance's keys.
pub fn index_key(hold_id: Uuid) -> String {
    format!("seat:hold-index:{hold_id}")
}

#[derive(Deserialize)]
struct HoldReply {
    ok: Option<Change>,
    #[serde(default)]
    dup: bool,
    err: Option<String>,
    #[serde(default, deserialize_with = "seq_or_empty")]
    seat_ids: Vec<String>,
    #[serde(default, deserialize_with = "seq_or_empty")]
    areas: Vec<String>,
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    current: i64,
    #[serde(default)]
    opens: i64,
    #[serde(default)]
    closes: i64,
    st: Option<HoldStatus>,
}

impl HoldReply {
    /// The refusal an `err` reply names.
    fn refusal(self, text: &str) -> StoreError {
        match self.err.as_deref() {
            Some("unavailable") => StoreError::Unavailable {
                seat_ids: self.seat_ids,
                areas: self.areas,
            },
            Some("limit") => StoreError::LimitExceeded {
                limit: self.limit,
                current: self.current,
            },
            Some("not_on_sale") => StoreError::NotOnSale {
                opens_at_ms: self.opens,
                closes_at_ms: self.closes,
            },
            Some("in_checkout") => StoreError::InCheckout,
            Some("ended") => StoreError::HoldEnded(self.st.unwrap_or(HoldStatus::Expired)),
            Some("not_the_hold") => StoreError::NotTheHold,
            Some("unknown_hold") => StoreError::UnknownHold,
            Some("unknown_performance") => StoreError::UnknownPerformance,
            _ => StoreError::Corrupt(format!("unexpected reply: {text}")),
        }
    }
}

#[derive(Deserialize)]
struct EndReply {
    ok: Option<Change>,
    hold: Option<Hold>,
    st: Option<HoldStatus>,
    /// A checkout deadline that replaced the hold's expiry.
    x: Option<i64>,
    #[serde(default)]
    skip: bool,
    err: Option<String>,
}

#[derive(Deserialize)]
struct SaleReply {
    ok: Option<Change>,
    #[serde(default)]
    already: bool,
    err: Option<String>,
}

impl RedisStore {
    /// Connects to the one server at `url` (`redis://host:port`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_to(&RedisTarget::Single(url.to_owned())).await
    }

    /// Connects to one server or a Redis Cluster (`redis.url`, `redis.cluster`).
    pub async fn connect_to(target: &RedisTarget) -> Result<Self, StoreError> {
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(3),
            // Generous: under a sale-opening burst, replies queue behind thousands of calls; the
            // HTTP layer's own timeout bounds a request anyway.
            response: Duration::from_secs(30),
        };
        // A few multiplexed connections: the client's reading and parsing spreads over cores.
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            conns.push(target.connect(timeouts).await?);
        }
        Ok(Self {
            target: target.clone(),
            conns,
            next: AtomicUsize::new(0),
            blocking: Mutex::new(Vec::new()),
            hold: script!("lua/hold.lua"),
            release: script!("lua/release.lua"),
            abandon: script!("lua/abandon.lua"),
            expire: script!("lua/expire.lua"),
            confirm: script!("lua/confirm.lua"),
            restore: script!("lua/restore.lua"),
            checkout: script!("lua/checkout.lua"),
            unsell: script!("lua/unsell.lua"),
            withhold: script!("lua/withhold.lua"),
            unwithhold: script!("lua/unwithhold.lua"),
            install: script!("lua/install.lua"),
            snapshot: script!("lua/snapshot.lua"),
            relay_read: script!("lua/relay_read.lua"),
            relay_ack: script!("lua/relay_ack.lua"),
        })
    }

    /// Whether the store is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.target.is_cluster()
    }

    /// The next shared connection (round robin).
    fn conn(&self) -> RedisConn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len().max(1);
        self.conns[i].clone()
    }

    /// Runs `script` for `perf` with `args`, retrying twice when the connection broke (every
    /// script is safe to repeat: a repeated hold answers `dup`, the others find nothing to do).
    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        perf: Uuid,
        args: &[String],
    ) -> Result<T, StoreError> {
        let key = prefix(perf);
        let mut attempt = 0u64;
        loop {
            let mut call = script.key(&key);
            for a in args {
                call.arg(a);
            }
            match call.invoke_async(&mut self.conn()).await {
                Err(e) if attempt < 2 && (e.is_io_error() || e.is_connection_dropped()) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "hold store call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    async fn ended(reply: Option<String>) -> Result<Option<(Hold, Change)>, StoreError> {
        let Some(text) = reply else { return Ok(None) };
        let reply: EndReply = serde_json::from_str(&text)?;
        if reply.skip {
            return Ok(None);
        }
        if reply.err.is_some() {
            return Err(serde_json::from_str::<HoldReply>(&text)?.refusal(&text));
        }
        match (reply.hold, reply.ok, reply.st) {
            (Some(mut hold), Some(change), Some(st)) => {
                hold.status = st;
                if let Some(x) = reply.x {
                    hold.expires_at_ms = x;
                }
                Ok(Some((hold, change)))
            }
            _ => Err(StoreError::Corrupt(format!("release reply: {text}"))),
        }
    }

    /// A connection of its own for blocking reads, so they never stall the shared one.
    async fn blocking_conn(&self, wait: Duration) -> Result<RedisConn, StoreError> {
        if let Some(c) = self.blocking.lock().await.pop() {
            return Ok(c);
        }
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(3),
            response: wait + Duration::from_secs(5),
        };
        Ok(self.target.dedicated(timeouts).await?)
    }

    /// Points `hold_id`'s index entry at `perf`, for `ttl` seconds (`None`: for good), alone
    /// (its own slot), retried like a script when the connection broke.
    async fn set_index(
        &self,
        hold_id: Uuid,
        perf: Uuid,
        ttl: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut attempt = 0u64;
        loop {
            let mut cmd = redis::cmd("SET");
            cmd.arg(index_key(hold_id)).arg(perf.to_string());
            if let Some(ttl) = ttl {
                cmd.arg("EX").arg(ttl);
            }
            match cmd.query_async::<()>(&mut self.conn()).await {
                Err(e) if attempt < 2 && (e.is_io_error() || e.is_connection_dropped()) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "hold store call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    /// One server: the index entry and the hold script in one pipeline (one round trip, the
    /// index first); the script's reply.
    async fn hold_pipelined(
        &self,
        hold: &Hold,
        key: &str,
        json: &str,
    ) -> Result<String, StoreError> {
        let mut attempt = 0u64;
        loop {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(index_key(hold.hold_id))
                .arg(hold.performance_id.to_string())
                .arg("EX")
                .arg(INDEX_TTL_SECS)
                .ignore()
                .cmd("EVALSHA")
                .arg(self.hold.get_hash())
                .arg(1)
                .arg(key)
                .arg(json);
            let mut conn = self.conn();
            match pipe.query_async::<(String,)>(&mut conn).await {
                Ok((text,)) => return Ok(text),
                Err(e)
                    if attempt < 3
                        && matches!(e.kind(), ErrorKind::Server(ServerErrorKind::NoScript)) =>
                {
                    attempt += 1;
                    self.hold
                        .load_async(&mut conn)
                        .await
                        .map_err(StoreError::from)?;
                }
                Err(e) if attempt < 2 && (e.is_io_error() || e.is_connection_dropped()) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "hold store call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(StoreError::from(e)),
            }
        }
    }

    fn parse_entries(entries: Vec<(String, Vec<String>)>) -> Result<Vec<Change>, StoreError> {
        entries
            .into_iter()
            .map(|(_, fields)| {
                let data = fields
                    .chunks(2)
                    .find(|kv| kv.first().is_some_and(|k| k == "d"))
                    .and_then(|kv| kv.get(1))
                    .ok_or_else(|| StoreError::Corrupt("change entry without data".into()))?;
                Ok(serde_json::from_str(data)?)
            })
            .collect()
    }

    /// The changes read after `after`, or `Truncated` when they do not follow it or the store
    /// is at another version than the reader with nothing to read (behind it: the performance
    /// was installed afresh).
    fn in_order(after: u64, changes: Vec<Change>, current: Option<u64>) -> Changes {
        match changes.first() {
            Some(first) if first.version != after + 1 => Changes::Truncated,
            None if current.is_some_and(|v| v != after) => Changes::Truncated,
            _ => Changes::Next(changes),
        }
    }
}

#[async_trait]
impl HoldStore for RedisStore {
    async fn install_with_records(
        &self,
        inv: &StoreInventory,
        sold: Option<&[Hold]>,
        withheld: &[String],
    ) -> Result<Option<Change>, StoreError> {
        let areas: Vec<(&str, i64)> = inv.areas.iter().map(|(a, c)| (a.as_str(), *c)).collect();
        let args = [
            inv.revision.to_string(),
            inv.ticket_limit.to_string(),
            serde_json::to_string(&inv.seat_ids)?,
            serde_json::to_string(&areas)?,
            inv.sale_opens_at_ms.to_string(),
            inv.sale_closes_at_ms.to_string(),
            sold.map_or(Ok(String::new()), serde_json::to_string)?,
            serde_json::to_string(withheld)?,
        ];
        let reply: Option<String> = self.eval(&self.install, inv.performance_id, &args).await?;
        if reply.as_deref() == Some(r#"{"err":"unknown_performance"}"#) {
            return Err(StoreError::UnknownPerformance); // afresh, and no sales given
        }
        let change: Option<Change> = reply
            .map(|t| serde_json::from_str(&t).map_err(StoreError::from))
            .transpose()?;
        let sold = sold.unwrap_or_default();
        if change.is_some() && !sold.is_empty() {
            // The sales are findable by hold id again (the index lives outside the hash tag):
            // one pipeline on one server; on a cluster each entry is in a slot of its own.
            if self.is_cluster() {
                let perf = inv.performance_id;
                let ids: Vec<Uuid> = sold.iter().map(|sale| sale.hold_id).collect();
                futures::stream::iter(ids)
                    .map(|id| self.set_index(id, perf, None))
                    .buffer_unordered(INDEX_WRITES_IN_FLIGHT)
                    .try_collect::<Vec<()>>()
                    .await?;
            } else {
                let mut pipe = redis::pipe();
                for sale in sold {
                    pipe.cmd("SET")
                        .arg(index_key(sale.hold_id))
                        .arg(inv.performance_id.to_string())
                        .ignore();
                }
                let _: () = pipe.query_async(&mut self.conn()).await?;
            }
        }
        Ok(change)
    }

    async fn live_holds(&self, performance_id: Uuid) -> Result<u64, StoreError> {
        Ok(redis::cmd("ZCARD")
            .arg(format!("{}expiries", prefix(performance_id)))
            .query_async(&mut self.conn())
            .await?)
    }

    async fn hold(&self, hold: &Hold) -> Result<Change, StoreError> {
        let json = serde_json::to_string(hold).map_err(StoreError::from)?;
        let key = prefix(hold.performance_id);
        // The index first, so a granted hold is always findable (it lives outside the hash tag,
        // the script cannot write it). On a cluster: two calls, as two slots are involved.
        let text: String = if self.is_cluster() {
            self.set_index(hold.hold_id, hold.performance_id, Some(INDEX_TTL_SECS))
                .await?;
            self.eval(&self.hold, hold.performance_id, &[json]).await?
        } else {
            self.hold_pipelined(hold, &key, &json).await?
        };
        let mut reply: HoldReply = serde_json::from_str(&text)?;
        if reply.dup {
            return Ok(Change::default());
        }
        match reply.ok.take() {
            Some(change) => Ok(change),
            None => {
                // Refused: no hold has this id (a repeat would have answered `dup`), so the
                // index entry goes too. A hold id is placed by one caller, attempt after
                // attempt, never concurrently, so no other attempt can have been granted since.
                let dropped: Result<(), _> = redis::cmd("DEL")
                    .arg(index_key(hold.hold_id))
                    .query_async(&mut self.conn())
                    .await;
                if let Err(e) = dropped {
                    tracing::warn!(error = %e, hold_id = %hold.hold_id,
                        "a refused hold's index entry stays until it expires");
                }
                Err(reply.refusal(&text))
            }
        }
    }

    async fn release(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        reason: HoldStatus,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        let reason = match reason {
            HoldStatus::Expired => "expired",
            _ => "released",
        };
        let args = [hold_id.to_string(), reason.to_owned()];
        let reply: Option<String> = self.eval(&self.release, performance_id, &args).await?;
        Self::ended(reply).await
    }

    async fn abandon(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        let args = [hold_id.to_string()];
        let reply: Option<String> = self.eval(&self.abandon, performance_id, &args).await?;
        Self::ended(reply).await
    }

    async fn expire_next(
        &self,
        performance_id: Uuid,
    ) -> Result<Option<(Hold, Change)>, StoreError> {
        let reply: Option<String> = self.eval(&self.expire, performance_id, &[]).await?;
        Self::ended(reply).await
    }

    async fn checkout(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
        ttl_ms: i64,
    ) -> Result<Hold, StoreError> {
        let args = [hold_id.to_string(), ttl_ms.max(0).to_string()];
        let text: String = self.eval(&self.checkout, performance_id, &args).await?;
        let reply: EndReply = serde_json::from_str(&text)?;
        if reply.err.is_some() {
            return Err(serde_json::from_str::<HoldReply>(&text)?.refusal(&text));
        }
        match (reply.hold, reply.x) {
            (Some(mut hold), Some(x)) => {
                hold.status = HoldStatus::Checkout;
                hold.expires_at_ms = x;
                Ok(hold)
            }
            _ => Err(StoreError::Corrupt(format!("checkout reply: {text}"))),
        }
    }

    async fn confirm(&self, sale: &Hold) -> Result<Confirmed, StoreError> {
        let args = [serde_json::to_string(sale)?];
        let text: String = self.eval(&self.confirm, sale.performance_id, &args).await?;
        match self.sold(sale, &text).await? {
            Some(change) => Ok(Confirmed::Sold(change)),
            None => Ok(Confirmed::AlreadySold),
        }
    }

    async fn restore(&self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        let args = [serde_json::to_string(sale)?];
        let text: String = self.eval(&self.restore, sale.performance_id, &args).await?;
        self.sold(sale, &text).await
    }

    async fn withhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError> {
        let args = [serde_json::to_string(seat_ids)?];
        let text: String = self.eval(&self.withhold, performance_id, &args).await?;
        Self::seat_change(&text)
    }

    async fn unwithhold(
        &self,
        performance_id: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, StoreError> {
        let args = [serde_json::to_string(seat_ids)?];
        let text: String = self.eval(&self.unwithhold, performance_id, &args).await?;
        Self::seat_change(&text)
    }

    async fn unsell(&self, sale: &Hold) -> Result<Option<Change>, StoreError> {
        let args = [sale.hold_id.to_string()];
        let reply: Option<String> = self.eval(&self.unsell, sale.performance_id, &args).await?;
        reply
            .map(|t| serde_json::from_str(&t).map_err(StoreError::from))
            .transpose()
    }

    async fn find_hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        let mut conn = self.conn();
        let perf: Option<String> = redis::cmd("GET")
            .arg(index_key(hold_id))
            .query_async(&mut conn)
            .await?;
        let Some(perf) = perf.and_then(|p| Uuid::parse_str(&p).ok()) else {
            return Ok(None);
        };
        self.find_hold_in(perf, hold_id).await
    }

    async fn find_hold_in(
        &self,
        performance_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<Hold>, StoreError> {
        let mut conn = self.conn();
        let (json, status, deadline): (Option<String>, Option<String>, Option<i64>) =
            redis::cmd("HMGET")
                .arg(format!("{}hold:{hold_id}", prefix(performance_id)))
                .arg("j")
                .arg("st")
                .arg("x")
                .query_async(&mut conn)
                .await?;
        let (Some(json), Some(status)) = (json, status) else {
            return Ok(None);
        };
        let mut hold: Hold = serde_json::from_str(&json)?;
        hold.status = serde_json::from_value(serde_json::Value::String(status))?;
        if let Some(x) = deadline {
            hold.expires_at_ms = x;
        }
        Ok(Some(hold))
    }

    async fn snapshot(&self, performance_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        let reply: Option<String> = self.eval(&self.snapshot, performance_id, &[]).await?;
        let Some(text) = reply else { return Ok(None) };
        let mut snap: Snapshot = serde_json::from_str(&text)?;
        snap.taken.sort();
        snap.areas.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(snap))
    }

    async fn changes_after(
        &self,
        performance_id: Uuid,
        after: u64,
        wait: Duration,
    ) -> Result<Changes, StoreError> {
        let key = format!("{}changes", prefix(performance_id));
        let mut conn = self.conn();
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("({after}-1"))
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        let changes = Self::parse_entries(entries)?;
        if !changes.is_empty() {
            return Ok(Self::in_order(after, changes, None));
        }
        let current = self
            .current_version(performance_id)
            .await?
            .ok_or(StoreError::UnknownPerformance)?;
        if wait.is_zero() || current < after {
            return Ok(Self::in_order(after, changes, Some(current)));
        }
        if current > after {
            // A change landed between the two reads: read the log again rather than give up.
            return self
                .changes_after(performance_id, after, Duration::ZERO)
                .await;
        }
        let mut blocking = self.blocking_conn(wait).await?;
        type XRead = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;
        let read: Result<XRead, _> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&key)
            .arg(format!("{after}-1"))
            .query_async(&mut blocking)
            .await;
        let read = read?;
        self.blocking.lock().await.push(blocking);
        let entries = read
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .collect();
        Ok(Self::in_order(after, Self::parse_entries(entries)?, None))
    }

    async fn read_events(
        &self,
        performance_id: Uuid,
        reader: &EventReader,
        max: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let args = [
            reader.name.clone(),
            reader.lease_ms.max(1).to_string(),
            max.max(1).to_string(),
        ];
        let flat: Vec<String> = self.eval(&self.relay_read, performance_id, &args).await?;
        let mut events = Vec::with_capacity(flat.len() / 2);
        let mut entries = flat.into_iter();
        while let (Some(id), Some(raw)) = (entries.next(), entries.next()) {
            events.push(LoggedEvent {
                id,
                event: outbox::decode(&raw),
            });
        }
        Ok(events)
    }

    async fn ack_events(&self, performance_id: Uuid, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: i64 = self.eval(&self.relay_ack, performance_id, ids).await?;
        Ok(())
    }
}

impl RedisStore {
    /// Reads a `confirm` or `restore` reply: the change, `None` when already sold, or the
    /// refusal. A sale keeps its index entry for as long as the sale stands.
    async fn sold(&self, sale: &Hold, text: &str) -> Result<Option<Change>, StoreError> {
        let reply: SaleReply = serde_json::from_str(text)?;
        if reply.err.is_some() {
            return Err(serde_json::from_str::<HoldReply>(text)?.refusal(text));
        }
        self.set_index(sale.hold_id, sale.performance_id, None)
            .await?;
        match (reply.ok, reply.already) {
            (Some(change), _) => Ok(Some(change)),
            (None, true) => Ok(None),
            (None, false) => Err(StoreError::Corrupt(format!("sale reply: {text}"))),
        }
    }

    /// Reads a `withhold` / `unwithhold` reply: the change, an empty one when nothing changed
    /// (`dup`), or the refusal.
    fn seat_change(text: &str) -> Result<Change, StoreError> {
        let mut reply: HoldReply = serde_json::from_str(text)?;
        if reply.dup {
            return Ok(Change::default());
        }
        match reply.ok.take() {
            Some(change) => Ok(change),
            None => Err(reply.refusal(text)),
        }
    }

    async fn current_version(&self, perf: Uuid) -> Result<Option<u64>, StoreError> {
        let v: Option<u64> = redis::cmd("HGET")
            .arg(format!("{}meta", prefix(perf)))
            .arg("v")
            .query_async(&mut self.conn())
            .await?;
        Ok(v)
    }
}
