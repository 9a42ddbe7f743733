//! The Redis queue store (distributed mode), on one server or a Redis Cluster
//! ([`RedisQueueStore::connect_to_in`]). Every key of one performance's queue starts with
//! `<namespace>adm:{<performance id>}:`, so the hash tag keeps the whole queue on one Redis
//! Cluster slot (a namespace never holds a `{`, which would move the tag), and every operation
//! is one Lua script over them, or one command on one of them (atomic: 500 concurrent joins are
//! 500 scripts run one after the other). No key is shared between queues. The keys:
//!
//! - `q`: sorted set, account → slot (the queue; the lowest slot is at the front);
//! - `pre`: set of accounts (the pre-queue);
//! - `tok`: hash, token → account; `cur`: hash, account → its current token;
//! - `act`: sorted set, account → pass expiry in ms (the active buyers);
//! - `meta`: hash: `draw` (absent/`0` open, `1` closed, `2` committed), `seq` (last slot given),
//!   `moved` (pre-queue members placed so far by a commit under way), `rate` (measured fans/s),
//!   `paused` (`1`: admit admits nobody);
//! - `lead`: the admitter's lease (the replica's name, with a TTL).
//!
//! Rate-limit windows are `<namespace>adm:rl:<key>` (a counter with the window as its TTL), each
//! alone in its script, so each in whatever slot its name falls in — except those counted with a
//! status read, `<queue prefix>rl:<key>`, in the queue's slot, so the read and its count are one
//! script.

use std::time::Duration;

use async_trait::async_trait;
use platform::service::{RedisConn, RedisTarget, RedisTimeouts};
use redis::Script;
use uuid::Uuid;

use super::{
    Admitted, Counted, Counts, Entry, Found, Joined, Limit, Ms, Place, QueueStore, StoreError,
};

/// What the scripts share: `place(p, acct, now)` → `{kind, n}` or nil.
const COMMON: &str = r#"
local function place(p, a, now)
  local exp = redis.call('ZSCORE', p..'act', a)
  if exp and tonumber(exp) > now then return {'admitted', tostring(exp)} end
  if redis.call('ZSCORE', p..'q', a) then
    local rank = redis.call('ZRANK', p..'q', a)
    local pending = 0
    if redis.call('HGET', p..'meta', 'draw') == '1' then
      pending = redis.call('SCARD', p..'pre') - tonumber(redis.call('HGET', p..'meta', 'moved') or '0')
    end
    return {'waiting', tostring(rank + pending)}
  end
  if redis.call('SISMEMBER', p..'pre', a) == 1 then
    return {'pre', tostring(redis.call('SCARD', p..'pre'))}
  end
  return nil
end
local function rate(p) return redis.call('HGET', p..'meta', 'rate') or '0' end
"#;

const JOIN: &str = r#"
local p, acct, token, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local cur = redis.call('HGET', p..'cur', acct)
if cur then
  local pl = place(p, acct, now)
  if pl then return {cur, pl[1], pl[2], '1', rate(p)} end
end
redis.call('ZREM', p..'act', acct)
redis.call('HSET', p..'tok', token, acct)
redis.call('HSET', p..'cur', acct, token)
local draw = redis.call('HGET', p..'meta', 'draw')
if not draw or draw == '0' then
  redis.call('SADD', p..'pre', acct)
else
  redis.call('ZADD', p..'q', redis.call('HINCRBY', p..'meta', 'seq', 1), acct)
end
local pl = place(p, acct, now)
return {token, pl[1], pl[2], '0', rate(p)}
"#;

const STATUS: &str = r#"
local p, token, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local acct = redis.call('HGET', p..'tok', token)
if not acct then return false end
if redis.call('HGET', p..'cur', acct) ~= token then return {acct, 'expired', '0', rate(p)} end
local pl = place(p, acct, now)
if not pl then return {acct, 'expired', '0', rate(p)} end
return {acct, pl[1], pl[2], rate(p)}
"#;

/// STATUS after a hit of the rate-limit counter KEYS[2] (in the queue's slot): ARGV[3] the
/// window in ms, ARGV[4] the hits allowed; `{'limited'}` over it.
const STATUS_COUNTED: &str = r#"
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
if n > tonumber(ARGV[4]) then return {'limited'} end
local p, token, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local acct = redis.call('HGET', p..'tok', token)
if not acct then return false end
if redis.call('HGET', p..'cur', acct) ~= token then return {acct, 'expired', '0', rate(p)} end
local pl = place(p, acct, now)
if not pl then return {acct, 'expired', '0', rate(p)} end
return {acct, pl[1], pl[2], rate(p)}
"#;

const LEAVE: &str = r#"
local p, acct = KEYS[1], ARGV[1]
local n = redis.call('ZREM', p..'q', acct) + redis.call('ZREM', p..'act', acct)
local draw = redis.call('HGET', p..'meta', 'draw')
if not draw or draw == '0' then n = n + redis.call('SREM', p..'pre', acct) end
return n
"#;

const CLOSE: &str = r#"
local p = KEYS[1]
local draw = redis.call('HGET', p..'meta', 'draw')
if draw == '2' then return false end
if not draw or draw == '0' then
  redis.call('HSET', p..'meta', 'draw', '1', 'seq', tostring(redis.call('SCARD', p..'pre') - 1), 'moved', '0')
end
local out = {}
for _, a in ipairs(redis.call('SMEMBERS', p..'pre')) do
  out[#out + 1] = a
  out[#out + 1] = redis.call('HGET', p..'cur', a) or ''
end
return out
"#;

/// ARGV: first slot, then accounts in draw order; places the pre-queue members among them.
const COMMIT: &str = r#"
local p = KEYS[1]
if redis.call('HGET', p..'meta', 'draw') ~= '1' then return 0 end
local slot = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV do
  if redis.call('SISMEMBER', p..'pre', ARGV[i]) == 1 then
    added = added + redis.call('ZADD', p..'q', slot, ARGV[i])
    slot = slot + 1
  end
end
redis.call('HINCRBY', p..'meta', 'moved', added)
return slot
"#;

const FINISH: &str = r#"
local p = KEYS[1]
if redis.call('HGET', p..'meta', 'draw') ~= '1' then return 0 end
redis.call('DEL', p..'pre')
redis.call('HSET', p..'meta', 'draw', '2')
redis.call('HDEL', p..'meta', 'moved')
return 1
"#;

const ADMIT: &str = r#"
local p, n, cap, now, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', p..'act', '-inf', now)
local act = redis.call('ZCARD', p..'act')
if redis.call('HGET', p..'meta', 'draw') ~= '2' or redis.call('HGET', p..'meta', 'paused') == '1' then
  return {0, redis.call('ZCARD', p..'q'), act}
end
if cap >= 0 then n = math.min(n, cap - act) end
local admitted = 0
if n > 0 then
  local popped = redis.call('ZPOPMIN', p..'q', n)
  for i = 1, #popped, 2 do
    redis.call('ZADD', p..'act', now + ttl, popped[i])
    admitted = admitted + 1
  end
end
return {admitted, redis.call('ZCARD', p..'q'), act + admitted}
"#;

const COUNTS: &str = r#"
local p, now = KEYS[1], ARGV[1]
return {tostring(redis.call('ZCARD', p..'q')), tostring(redis.call('SCARD', p..'pre')),
        tostring(redis.call('ZCOUNT', p..'act', '(' .. now, '+inf')), rate(p)}
"#;

const LEAD: &str = r#"
local k, who, ttl = KEYS[1] .. 'lead', ARGV[1], ARGV[2]
if redis.call('SET', k, who, 'NX', 'PX', ttl) then return 1 end
if redis.call('GET', k) == who then redis.call('PEXPIRE', k, ttl) return 1 end
return 0
"#;

const HIT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

const FORGET: &str = r#"
local p = KEYS[1]
for _, k in ipairs({'q', 'pre', 'tok', 'cur', 'act', 'meta', 'lead'}) do redis.call('DEL', p..k) end
return 1
"#;

/// Accounts per commit call, so a 100,000-fan draw never blocks Redis for long.
const COMMIT_BATCH: usize = 5_000;

/// The queue store on Redis.
pub struct RedisQueueStore {
    conn: RedisConn,
    namespace: String,
    join: Script,
    status: Script,
    status_counted: Script,
    leave: Script,
    close: Script,
    commit: Script,
    finish: Script,
    admit: Script,
    counts: Script,
    lead: Script,
    hit: Script,
    forget: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}{body}"))
}

fn parse_num(s: &str) -> Result<u64, StoreError> {
    s.parse::<f64>()
        .map(|f| f.max(0.0) as u64)
        .map_err(|_| StoreError::Corrupt(format!("not a number: {s}")))
}

fn parse_place(kind: &str, n: &str) -> Result<Place, StoreError> {
    Ok(match kind {
        "admitted" => Place::Admitted {
            expires_ms: parse_num(n)? as Ms,
        },
        "waiting" => Place::Waiting {
            ahead: parse_num(n)?,
        },
        "pre" => Place::PreQueue {
            size: parse_num(n)?,
        },
        "expired" => Place::Expired,
        other => return Err(StoreError::Corrupt(format!("unknown place `{other}`"))),
    })
}

fn parse_account(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("not an account id: {s}")))
}

impl RedisQueueStore {
    /// Connects to the one server at `url` (`redis://host:port`), keys without a namespace.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in(url, "").await
    }

    /// Connects to one server or a Redis Cluster (`redis.url`, `redis.cluster`), keys without a
    /// namespace.
    pub async fn connect_to(target: &RedisTarget) -> Result<Self, StoreError> {
        Self::connect_to_in(target, "").await
    }

    /// Connects to the one server at `url` with every key under `namespace` (tests and
    /// benchmarks keep apart that way).
    pub async fn connect_in(url: &str, namespace: &str) -> Result<Self, StoreError> {
        Self::connect_to_in(&RedisTarget::Single(url.to_owned()), namespace).await
    }

    /// [`RedisQueueStore::connect_to`] with every key under `namespace`, which must not hold a
    /// brace (it would take the hash tag's place).
    pub async fn connect_to_in(target: &RedisTarget, namespace: &str) -> Result<Self, StoreError> {
        if namespace.contains(['{', '}']) {
            return Err(StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the queue store's namespace holds a brace (it would move the queues' hash tag)",
            ))));
        }
        let timeouts = RedisTimeouts {
            connect: Duration::from_secs(3),
            response: Duration::from_secs(10),
        };
        let conn = target.connect(timeouts).await?;
        Ok(Self {
            conn,
            namespace: namespace.to_owned(),
            join: script(JOIN),
            status: script(STATUS),
            status_counted: script(STATUS_COUNTED),
            leave: script(LEAVE),
            close: script(CLOSE),
            commit: script(COMMIT),
            finish: script(FINISH),
            admit: script(ADMIT),
            counts: script(COUNTS),
            lead: script(LEAD),
            hit: script(HIT),
            forget: script(FORGET),
        })
    }

    fn prefix(&self, perf: Uuid) -> String {
        format!("{}adm:{{{perf}}}:", self.namespace)
    }

    /// Runs `script` on key `key` with `args`, retrying twice when the connection broke (every
    /// script is safe to repeat, except that a repeated hit counts twice).
    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let mut attempt = 0u64;
        loop {
            let mut call = script.key(key);
            for a in args {
                call.arg(*a);
            }
            match call.invoke_async(&mut self.conn.clone()).await {
                Err(e) if attempt < 2 && (e.is_io_error() || e.is_connection_dropped()) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "queue store call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    /// The used memory Redis reports (bytes), for the benchmark.
    pub async fn used_memory(&self) -> Result<u64, StoreError> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn.clone())
            .await?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Corrupt("INFO memory without used_memory".into()))
    }
}

#[async_trait]
impl QueueStore for RedisQueueStore {
    async fn join(
        &self,
        perf: Uuid,
        account: Uuid,
        token: &str,
        now_ms: Ms,
    ) -> Result<Joined, StoreError> {
        let (acct, now) = (account.to_string(), now_ms.to_string());
        let r: Vec<String> = self
            .eval(&self.join, &self.prefix(perf), &[&acct, token, &now])
            .await?;
        match r.as_slice() {
            [token, kind, n, rejoined, rate] => Ok(Joined {
                token: token.clone(),
                place: parse_place(kind, n)?,
                rejoined: rejoined == "1",
                rate: rate.parse().unwrap_or(0.0),
            }),
            other => Err(StoreError::Corrupt(format!("join reply: {other:?}"))),
        }
    }

    async fn status(
        &self,
        perf: Uuid,
        token: &str,
        now_ms: Ms,
    ) -> Result<Option<Found>, StoreError> {
        let now = now_ms.to_string();
        let r: Option<Vec<String>> = self
            .eval(&self.status, &self.prefix(perf), &[token, &now])
            .await?;
        match r.as_deref() {
            None => Ok(None),
            Some([acct, kind, n, rate]) => Ok(Some(Found {
                account: parse_account(acct)?,
                place: parse_place(kind, n)?,
                rate: rate.parse().unwrap_or(0.0),
            })),
            Some(other) => Err(StoreError::Corrupt(format!("status reply: {other:?}"))),
        }
    }

    async fn status_counted(
        &self,
        perf: Uuid,
        token: &str,
        now_ms: Ms,
        limit: Limit<'_>,
    ) -> Result<Counted, StoreError> {
        let prefix = self.prefix(perf);
        let counter = format!("{prefix}rl:{}", limit.key);
        let (now, window, allowed) = (
            now_ms.to_string(),
            limit.window_ms.max(1).to_string(),
            limit.limit.to_string(),
        );
        // Not retried: a repeated call would count twice (the caller answers 503).
        let mut call = self.status_counted.key(&prefix);
        call.key(&counter)
            .arg(token)
            .arg(&now)
            .arg(&window)
            .arg(&allowed);
        let r: Option<Vec<String>> = call.invoke_async(&mut self.conn.clone()).await?;
        match r.as_deref() {
            None => Ok(Counted::Read(None)),
            Some([limited]) if limited == "limited" => Ok(Counted::Limited),
            Some([acct, kind, n, rate]) => Ok(Counted::Read(Some(Found {
                account: parse_account(acct)?,
                place: parse_place(kind, n)?,
                rate: rate.parse().unwrap_or(0.0),
            }))),
            Some(other) => Err(StoreError::Corrupt(format!("status reply: {other:?}"))),
        }
    }

    async fn leave(&self, perf: Uuid, account: Uuid) -> Result<bool, StoreError> {
        let acct = account.to_string();
        let n: i64 = self.eval(&self.leave, &self.prefix(perf), &[&acct]).await?;
        Ok(n > 0)
    }

    async fn close_prequeue(&self, perf: Uuid) -> Result<Option<Vec<Entry>>, StoreError> {
        let r: Option<Vec<String>> = self.eval(&self.close, &self.prefix(perf), &[]).await?;
        let Some(flat) = r else { return Ok(None) };
        flat.chunks(2)
            .map(|pair| match pair {
                [a, t] => Ok(Entry {
                    account: parse_account(a)?,
                    token: t.clone(),
                }),
                other => Err(StoreError::Corrupt(format!("close reply: {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn commit_draw(&self, perf: Uuid, order: &[Uuid]) -> Result<(), StoreError> {
        let key = self.prefix(perf);
        let mut slot: i64 = 0;
        for batch in order.chunks(COMMIT_BATCH) {
            let mut args: Vec<String> = Vec::with_capacity(batch.len() + 1);
            args.push(slot.to_string());
            args.extend(batch.iter().map(Uuid::to_string));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let next: i64 = self.eval(&self.commit, &key, &refs).await?;
            if next == 0 && slot == 0 && !batch.is_empty() {
                // Not closed (already committed, or never closed): nothing to do.
                return Ok(());
            }
            slot = next.max(slot);
        }
        let _: i64 = self.eval(&self.finish, &key, &[]).await?;
        Ok(())
    }

    async fn drawn(&self, perf: Uuid) -> Result<bool, StoreError> {
        let draw: Option<String> = redis::cmd("HGET")
            .arg(format!("{}meta", self.prefix(perf)))
            .arg("draw")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(draw.as_deref() == Some("2"))
    }

    async fn admit(
        &self,
        perf: Uuid,
        n: u64,
        max_active: Option<u64>,
        now_ms: Ms,
        pass_ttl_ms: Ms,
    ) -> Result<Admitted, StoreError> {
        let cap = max_active.map_or(-1, |c| c as i64).to_string();
        let (n, now, ttl) = (n.to_string(), now_ms.to_string(), pass_ttl_ms.to_string());
        let r: Vec<u64> = self
            .eval(&self.admit, &self.prefix(perf), &[&n, &cap, &now, &ttl])
            .await?;
        match r.as_slice() {
            [admitted, waiting, active] => Ok(Admitted {
                admitted: *admitted,
                waiting: *waiting,
                active: *active,
            }),
            other => Err(StoreError::Corrupt(format!("admit reply: {other:?}"))),
        }
    }

    async fn counts(&self, perf: Uuid, now_ms: Ms) -> Result<Counts, StoreError> {
        let now = now_ms.to_string();
        let r: Vec<String> = self.eval(&self.counts, &self.prefix(perf), &[&now]).await?;
        match r.as_slice() {
            [waiting, prequeue, active, rate] => Ok(Counts {
                waiting: parse_num(waiting)?,
                prequeue: parse_num(prequeue)?,
                active: parse_num(active)?,
                rate: rate.parse().unwrap_or(0.0),
            }),
            other => Err(StoreError::Corrupt(format!("counts reply: {other:?}"))),
        }
    }

    async fn set_paused(&self, perf: Uuid, paused: bool) -> Result<(), StoreError> {
        let meta = format!("{}meta", self.prefix(perf));
        let _: i64 = if paused {
            redis::cmd("HSET")
                .arg(&meta)
                .arg("paused")
                .arg("1")
                .query_async(&mut self.conn.clone())
                .await?
        } else {
            redis::cmd("HDEL")
                .arg(&meta)
                .arg("paused")
                .query_async(&mut self.conn.clone())
                .await?
        };
        Ok(())
    }

    async fn set_rate(&self, perf: Uuid, rate: f64) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("HSET")
            .arg(format!("{}meta", self.prefix(perf)))
            .arg("rate")
            .arg(format!("{rate:.3}"))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn lead(&self, perf: Uuid, who: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let ttl = ttl_ms.max(1).to_string();
        let r: i64 = self
            .eval(&self.lead, &self.prefix(perf), &[who, &ttl])
            .await?;
        Ok(r == 1)
    }

    async fn hit(&self, key: &str, window_ms: u64, limit: u64) -> Result<bool, StoreError> {
        let key = format!("{}adm:rl:{key}", self.namespace);
        let window = window_ms.max(1).to_string();
        let n: u64 = self.eval(&self.hit, &key, &[&window]).await?;
        Ok(n <= limit)
    }

    async fn forget(&self, perf: Uuid) -> Result<(), StoreError> {
        let _: i64 = self.eval(&self.forget, &self.prefix(perf), &[]).await?;
        Ok(())
    }
}
