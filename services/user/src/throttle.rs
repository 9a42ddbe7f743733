//! Login throttling and per-client rate limits, kept in UserDB so every replica sees the same
//! counters.
//!
//! Logins (and password changes) are counted per account (`email:<address>`) and per client
//! address (`ip:<address>`). An attempt is *reserved* before the password is checked: one
//! statement per key counts it as a failure and, when that count reaches the free allowance,
//! locks the key for an exponentially growing time — or refuses it when the key is locked. So
//! however many attempts run in parallel, at most the allowance reach the password check before
//! the lock. A right password then takes its reservation back: the account's counter is cleared,
//! the client's loses that one count (an attacker cannot reset the client counter by logging in
//! to an account of their own). Failures are forgotten once `window_secs` has passed since both
//! the last failure and the end of the last lock, so the window always outlasts the longest lock.
//!
//! Sign-up and starting a social sign-in are limited per client address with fixed windows
//! (`rate_limits`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::ThrottleSettings;

/// The login throttle and the per-client rate limits.
#[derive(Clone)]
pub struct Throttle {
    pool: PgPool,
    settings: ThrottleSettings,
}

/// A reserved attempt: already counted as a failure of its keys. Hand it back with
/// [`Throttle::succeeded`] when the password was right; drop it otherwise.
#[derive(Debug)]
#[must_use = "a successful attempt must be handed back to Throttle::succeeded"]
pub struct Attempt {
    account: String,
    client: String,
}

/// Whole seconds until `until`, at least 1.
fn secs_until(until: DateTime<Utc>) -> i64 {
    ((until - Utc::now()).num_milliseconds() + 999)
        .div_euclid(1000)
        .max(1)
}

/// Reserves one attempt of `key`: `$1` key, `$2` free failures, `$3` base lock, `$4` longest lock,
/// `$5` window (seconds). Returns the count and the lock it set, or no row when `key` is locked.
const RESERVE: &str = "
INSERT INTO login_attempts AS a (key, failures, last_failure_at, locked_until)
VALUES ($1, 1, now(), CASE WHEN 1 >= $2
    THEN now() + make_interval(secs => least($4, $3 * power(2, least(1 - $2, 30)))) END)
ON CONFLICT (key) DO UPDATE SET (failures, last_failure_at, locked_until) = (
    SELECT n, now(), CASE WHEN n >= $2
        THEN now() + make_interval(secs => least($4, $3 * power(2, least(n - $2, 30)))) END
    FROM (SELECT CASE
        WHEN greatest(a.last_failure_at, coalesce(a.locked_until, a.last_failure_at))
             < now() - make_interval(secs => $5)
        THEN 1 ELSE least(a.failures, 1000000) + 1 END AS n) AS next)
WHERE a.locked_until IS NULL OR a.locked_until <= now()
RETURNING a.failures, a.locked_until";

impl Throttle {
    /// A throttle with `settings`.
    pub fn new(pool: PgPool, settings: ThrottleSettings) -> Self {
        Self { pool, settings }
    }

    /// Seconds to wait before `keys` may try again, or `None` when none is locked.
    pub async fn retry_after(&self, keys: &[String]) -> Result<Option<i64>, sqlx::Error> {
        let until: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT max(locked_until) FROM login_attempts
             WHERE key = ANY($1) AND locked_until > now()",
        )
        .bind(keys)
        .fetch_one(&self.pool)
        .await?;
        Ok(until.map(secs_until))
    }

    /// Reserves an attempt for the account and the client before the password is checked:
    /// `Err(seconds)` to wait when either is locked.
    pub async fn reserve(
        &self,
        account: &str,
        client: &str,
    ) -> Result<Result<Attempt, i64>, sqlx::Error> {
        let keys = [account.to_owned(), client.to_owned()];
        // Most refusals end here, without touching the other key's counter.
        if let Some(secs) = self.retry_after(&keys).await? {
            return Ok(Err(secs));
        }
        let s = &self.settings;
        let mut reserved: Vec<(&str, i32)> = Vec::new();
        for (key, free) in [
            (account, s.account_free_failures),
            (client, s.client_free_failures),
        ] {
            let row: Option<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(RESERVE)
                .bind(key)
                .bind(free)
                .bind(s.base_lock_secs as f64)
                .bind(s.max_lock_secs as f64)
                .bind(s.window_secs as f64)
                .fetch_optional(&self.pool)
                .await?;
            match row {
                Some((failures, locked_until)) => {
                    if let Some(until) = locked_until {
                        tracing::warn!(
                            key_kind = key.split(':').next().unwrap_or(""),
                            failures,
                            lock_secs = secs_until(until),
                            "login attempts locked"
                        );
                    }
                    reserved.push((key, free));
                }
                None => {
                    // Locked by a parallel attempt since the check: give back what was taken.
                    for (key, free) in reserved {
                        self.give_back(key, free).await?;
                    }
                    let secs = self.retry_after(&keys).await?.unwrap_or(1);
                    return Ok(Err(secs));
                }
            }
        }
        Ok(Ok(Attempt {
            account: account.to_owned(),
            client: client.to_owned(),
        }))
    }

    /// Takes back the count of `key` an attempt reserved, and the lock it set.
    async fn give_back(&self, key: &str, free: i32) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE login_attempts SET
                failures = greatest(failures - 1, 0),
                locked_until = CASE WHEN failures - 1 < $2 THEN NULL ELSE locked_until END
             WHERE key = $1",
        )
        .bind(key)
        .bind(free)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// The password was right: clears the account's counter and gives the client's count back.
    pub async fn succeeded(&self, attempt: Attempt) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_attempts WHERE key = $1")
            .bind(&attempt.account)
            .execute(&self.pool)
            .await?;
        self.give_back(&attempt.client, self.settings.client_free_failures)
            .await
    }

    /// Counts one request of `key`, allowing `limit` per fixed window of `window_secs`: `Some`
    /// seconds until the window ends when this one is over the limit.
    pub async fn hit(
        &self,
        key: &str,
        limit: i32,
        window_secs: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let (hits, ends): (i32, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO rate_limits AS r (key, hits, window_ends_at)
             VALUES ($1, 1, now() + make_interval(secs => $2))
             ON CONFLICT (key) DO UPDATE SET
                hits = CASE WHEN r.window_ends_at <= now() THEN 1
                            ELSE least(r.hits, $3) + 1 END,
                window_ends_at = CASE WHEN r.window_ends_at <= now()
                                      THEN now() + make_interval(secs => $2)
                                      ELSE r.window_ends_at END
             RETURNING hits, window_ends_at",
        )
        .bind(key)
        .bind(window_secs as f64)
        .bind(limit)
        .fetch_one(&self.pool)
        .await?;
        Ok((hits > limit).then(|| secs_until(ends)))
    }

    /// Counts a sign-up from `client`; `Some` seconds to wait when over the limit.
    pub async fn sign_up(&self, client: &str) -> Result<Option<i64>, sqlx::Error> {
        let s = &self.settings;
        self.hit(
            &format!("signup:{client}"),
            s.signup_per_client,
            s.signup_window_secs,
        )
        .await
    }

    /// Counts a social sign-in started from `client`; `Some` seconds to wait when over the limit.
    pub async fn authorize(&self, client: &str) -> Result<Option<i64>, sqlx::Error> {
        let s = &self.settings;
        self.hit(
            &format!("authorize:{client}"),
            s.authorize_per_client,
            s.authorize_window_secs,
        )
        .await
    }

    /// Forgets login counters past their window (counted from the last failure and the end of
    /// the last lock) and rate-limit windows that ended; returns how many login counters.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let counters = sqlx::query(
            "DELETE FROM login_attempts
             WHERE greatest(last_failure_at, coalesce(locked_until, last_failure_at))
                   < now() - make_interval(secs => $1)",
        )
        .bind(self.settings.window_secs as f64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM rate_limits WHERE window_ends_at < now()")
            .execute(&self.pool)
            .await?;
        Ok(counters)
    }
}
