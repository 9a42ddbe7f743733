//! The presale gate (선예매): before a performance's general sale, only its presale audience
//! may hold — members of the group the catalog published, or accounts holding one of its access
//! codes. A code is bound in SeatDB to the first account that uses it; wrong codes are counted
//! per account and performance, and past [`MAX_FAILURES`] in [`FAILURE_WINDOW_SECS`] the account
//! may try no more codes there. Codes are compared as hashes, in constant time over every hash.

use contracts::tickets::{PresaleRules, presale_code_hash, same_hash};
use sqlx::PgPool;
use uuid::Uuid;

/// Wrong codes an account may try on one performance within [`FAILURE_WINDOW_SECS`].
pub const MAX_FAILURES: i32 = 10;
/// The window wrong codes are counted in, seconds.
pub const FAILURE_WINDOW_SECS: i64 = 3600;

/// Why a buyer may not hold in presale.
#[derive(Debug, thiserror::Error)]
pub enum PresaleError {
    /// Not a member, no code, and no code used before.
    #[error("only the presale's audience may hold before the general sale")]
    NotInAudience,
    /// The code is none of the performance's.
    #[error("no such access code")]
    CodeInvalid,
    /// Another account used the code first.
    #[error("the access code was used by another account")]
    CodeUsed,
    /// Too many wrong codes.
    #[error("too many wrong access codes")]
    TooManyAttempts,
    /// SeatDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whether `buyer` is let into `perf`'s presale, with `code` if given.
pub async fn admit(
    pool: &PgPool,
    rules: &PresaleRules,
    perf: Uuid,
    buyer: Uuid,
    code: Option<&str>,
) -> Result<(), PresaleError> {
    if rules.group_id.is_some() && rules.members.contains(&buyer) {
        return Ok(());
    }
    if !rules.codes {
        return Err(PresaleError::NotInAudience);
    }
    // A code this account used already lets it in again, without the code.
    let bound: Option<String> = sqlx::query_scalar(
        "SELECT code_hash FROM presale_redemptions WHERE performance_id = $1 AND account_id = $2
         LIMIT 1",
    )
    .bind(perf)
    .bind(buyer)
    .fetch_optional(pool)
    .await?;
    if bound.is_some_and(|h| known(rules, &h)) {
        return Ok(());
    }
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Err(PresaleError::NotInAudience);
    };
    let failures: Option<i32> = sqlx::query_scalar(
        "SELECT failures FROM presale_code_failures WHERE performance_id = $1 AND account_id = $2
         AND since > now() - make_interval(secs => ($3::bigint)::float8)",
    )
    .bind(perf)
    .bind(buyer)
    .bind(FAILURE_WINDOW_SECS)
    .fetch_optional(pool)
    .await?;
    if failures.is_some_and(|f| f >= MAX_FAILURES) {
        return Err(PresaleError::TooManyAttempts);
    }
    // Bounded before hashing: a code is 19 characters.
    let hash = presale_code_hash(perf, &code.chars().take(64).collect::<String>());
    if !known(rules, &hash) {
        sqlx::query(
            "INSERT INTO presale_code_failures (performance_id, account_id, failures)
             VALUES ($1, $2, 1) ON CONFLICT (performance_id, account_id) DO UPDATE SET
             failures = CASE WHEN presale_code_failures.since > now() - make_interval(secs => ($3::bigint)::float8)
                             THEN presale_code_failures.failures + 1 ELSE 1 END,
             since = CASE WHEN presale_code_failures.since > now() - make_interval(secs => ($3::bigint)::float8)
                          THEN presale_code_failures.since ELSE now() END",
        )
        .bind(perf)
        .bind(buyer)
        .bind(FAILURE_WINDOW_SECS)
        .execute(pool)
        .await?;
        return Err(PresaleError::CodeInvalid);
    }
    // The first account to use a code keeps it: the primary key decides between two at once,
    // and the owner is read in a statement of its own (which sees the winner's commit).
    sqlx::query(
        "INSERT INTO presale_redemptions (performance_id, code_hash, account_id)
         VALUES ($1, $2, $3) ON CONFLICT (performance_id, code_hash) DO NOTHING",
    )
    .bind(perf)
    .bind(&hash)
    .bind(buyer)
    .execute(pool)
    .await?;
    let owner: Uuid = sqlx::query_scalar(
        "SELECT account_id FROM presale_redemptions WHERE performance_id = $1 AND code_hash = $2",
    )
    .bind(perf)
    .bind(&hash)
    .fetch_one(pool)
    .await?;
    if owner == buyer {
        Ok(())
    } else {
        Err(PresaleError::CodeUsed)
    }
}

/// Whether `hash` is one of the performance's codes: every hash is compared, in constant time.
fn known(rules: &PresaleRules, hash: &str) -> bool {
    rules
        .code_hashes
        .iter()
        .fold(false, |found, h| same_hash(h, hash) | found)
}
