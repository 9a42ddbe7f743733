//! Login throttling, kept in UserDB so every replica sees the same counters. Failures are counted
//! per account (`email:<address>`) and per client address (`ip:<address>`); past the free
//! allowance each failure locks the key for an exponentially growing time. A locked key is
//! refused before the password is checked, so guessing during a lock learns nothing. A success
//! clears the account's counter, not the client's (an attacker cannot reset it by logging in to
//! an account of their own).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::ThrottleSettings;

/// The login throttle.
#[derive(Clone)]
pub struct Throttle {
    pool: PgPool,
    settings: ThrottleSettings,
}

/// The lock length after `failures` failures with `free` allowed: 0 within the allowance, then
/// `base`, `2·base`, `4·base`, ... capped at `max`.
pub fn lock_secs(failures: i32, free: i32, base: i64, max: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = u32::try_from(failures - free).unwrap_or(0).min(30);
    base.saturating_mul(1i64 << doublings).min(max)
}

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
        Ok(until.map(|u| {
            ((u - Utc::now()).num_milliseconds() + 999)
                .div_euclid(1000)
                .max(1)
        }))
    }

    /// Records a failed attempt for the account and the client.
    pub async fn failed(&self, account: &str, client: &str) -> Result<(), sqlx::Error> {
        let s = &self.settings;
        for (key, free) in [
            (account, s.account_free_failures),
            (client, s.client_free_failures),
        ] {
            let failures: i32 = sqlx::query_scalar(
                "INSERT INTO login_attempts (key, failures, last_failure_at) VALUES ($1, 1, now())
                 ON CONFLICT (key) DO UPDATE SET
                    failures = CASE
                        WHEN login_attempts.last_failure_at < now() - make_interval(secs => $2)
                        THEN 1 ELSE login_attempts.failures + 1 END,
                    last_failure_at = now()
                 RETURNING failures",
            )
            .bind(key)
            .bind(s.window_secs as f64)
            .fetch_one(&self.pool)
            .await?;
            let lock = lock_secs(failures, free, s.base_lock_secs, s.max_lock_secs);
            if lock > 0 {
                sqlx::query(
                    "UPDATE login_attempts SET locked_until = now() + make_interval(secs => $2)
                     WHERE key = $1",
                )
                .bind(key)
                .bind(lock as f64)
                .execute(&self.pool)
                .await?;
                tracing::warn!(
                    key_kind = key.split(':').next().unwrap_or(""),
                    failures,
                    lock_secs = lock,
                    "login attempts locked"
                );
            }
        }
        Ok(())
    }

    /// Forgets counters that are past their window and not locked; returns how many.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "DELETE FROM login_attempts
             WHERE last_failure_at < now() - make_interval(secs => $1)
               AND (locked_until IS NULL OR locked_until < now())",
        )
        .bind(self.settings.window_secs as f64)
        .execute(&self.pool)
        .await
        .map(|d| d.rows_affected())
    }

    /// Clears the account's counter after a successful login.
    pub async fn succeeded(&self, account: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_attempts WHERE key = $1")
            .bind(account)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_allowance_and_caps() {
        let l = |f| lock_secs(f, 5, 1, 900);
        assert_eq!((l(1), l(4)), (0, 0));
        assert_eq!((l(5), l(6), l(7), l(8)), (1, 2, 4, 8));
        assert_eq!(l(40), 900);
        assert_eq!(l(i32::MAX), 900);
    }
}
