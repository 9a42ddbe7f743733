//! Sessions: a short-lived signed access token plus an opaque refresh token. Refresh tokens are
//! 32 random bytes (base64url), stored only as their SHA-256, and rotated on every use; each
//! sign-in starts a token family, and presenting an already spent token revokes the whole family
//! (someone else holds a copy).
//!
//! Concurrency: every operation that adds a token to a family (refresh) or revokes it (logout,
//! reuse, password or role change) first locks the family's `refresh_families` row, and a refresh
//! refuses a revoked family. So a revocation either waits for a refresh under way and then
//! revokes the token it created, or makes that refresh fail; it never misses a token. A refresh
//! does all of its work on the one connection of its transaction.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use platform::auth::Claims;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    keys::{KeyError, KeyRing},
    store::{self, User},
};

/// What a client gets when it signs in or refreshes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// The signed access token (JWT).
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown, expired or revoked refresh token.
    #[error("invalid refresh token")]
    Invalid,
    /// A spent refresh token was presented again; its family is now revoked.
    #[error("refresh token reused")]
    Reused,
    /// UserDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Issues, rotates and revokes sessions.
#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    keys: KeyRing,
    access_ttl_secs: i64,
    refresh_ttl_secs: i64,
}

fn hash(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    expires_at: DateTime<Utc>,
    spent_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct FamilyRow {
    user_id: Uuid,
    revoked_at: Option<DateTime<Utc>>,
}

impl Sessions {
    /// Sessions signed by `keys` with these lifetimes.
    pub fn new(pool: PgPool, keys: KeyRing, access_ttl_secs: i64, refresh_ttl_secs: i64) -> Self {
        Self {
            pool,
            keys,
            access_ttl_secs,
            refresh_ttl_secs,
        }
    }

    /// Issues a token pair for `user` in `family` on `conn`: a new family (a sign-in) when
    /// `None`, else the next token of `family`, whose row the caller has locked. Run it inside a
    /// transaction: a new family is two rows.
    pub async fn issue(
        &self,
        conn: &mut PgConnection,
        user: &User,
        family: Option<Uuid>,
    ) -> Result<TokenPair, TokenError> {
        let claims = Claims::new(user.id, user.roles(), self.access_ttl_secs);
        let access_token = self.keys.sign(&claims)?;
        let refresh_token = new_refresh_token();
        let ttl = self.refresh_ttl_secs as f64;
        let family = match family {
            Some(family) => {
                sqlx::query(
                    "UPDATE refresh_families SET expires_at = now() + make_interval(secs => $2)
                     WHERE id = $1",
                )
                .bind(family)
                .bind(ttl)
                .execute(&mut *conn)
                .await?;
                family
            }
            None => {
                let family = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO refresh_families (id, user_id, expires_at)
                     VALUES ($1, $2, now() + make_interval(secs => $3))",
                )
                .bind(family)
                .bind(user.id)
                .bind(ttl)
                .execute(&mut *conn)
                .await?;
                family
            }
        };
        sqlx::query(
            "INSERT INTO refresh_tokens
                (id, token_hash, user_id, family_id, access_jti, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        )
        .bind(Uuid::now_v7())
        .bind(hash(&refresh_token))
        .bind(user.id)
        .bind(family)
        .bind(claims.jti)
        .bind(ttl)
        .execute(&mut *conn)
        .await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.access_ttl_secs,
        })
    }

    /// Starts a new session for `user` (a social sign-in).
    pub async fn sign_in(&self, user: &User) -> Result<TokenPair, TokenError> {
        let mut tx = self.pool.begin().await?;
        let pair = self.issue(&mut tx, user, None).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Starts a new session for `user` after its password was verified against
    /// `user.password_hash`; `None` when the password changed in the meantime (a concurrent
    /// password change then revokes nothing this sign-in would have created). The account row is
    /// held `FOR SHARE` until the session exists, so a password or role change waits for it and
    /// then revokes it.
    pub async fn sign_in_with_password(
        &self,
        user: &User,
    ) -> Result<Option<TokenPair>, TokenError> {
        let mut tx = self.pool.begin().await?;
        let unchanged: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM users WHERE id = $1 AND password_hash IS NOT DISTINCT FROM $2 FOR SHARE",
        )
        .bind(user.id)
        .bind(user.password_hash.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        if unchanged.is_none() {
            return Ok(None);
        }
        let pair = self.issue(&mut tx, user, None).await?;
        tx.commit().await?;
        Ok(Some(pair))
    }

    /// Spends `raw` and returns the next pair of its family (with the user's current roles).
    /// Uses one connection throughout.
    pub async fn refresh(&self, raw: &str) -> Result<TokenPair, TokenError> {
        let token_hash = hash(raw);
        let mut tx = self.pool.begin().await?;
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(&token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let family_id = family.ok_or(TokenError::Invalid)?;
        // The family first, then its tokens: the order every revocation takes too.
        let family: Option<FamilyRow> = sqlx::query_as(
            "SELECT user_id, revoked_at FROM refresh_families WHERE id = $1 FOR UPDATE",
        )
        .bind(family_id)
        .fetch_optional(&mut *tx)
        .await?;
        let family = family.ok_or(TokenError::Invalid)?;
        if family.revoked_at.is_some() {
            return Err(TokenError::Invalid);
        }
        // Read again under the family's lock: a concurrent refresh of the same token has
        // committed or not started.
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT expires_at, spent_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(&token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or(TokenError::Invalid)?;
        if row.revoked_at.is_some() {
            return Err(TokenError::Invalid);
        }
        if row.spent_at.is_some() {
            revoke_family(&mut tx, family_id).await?;
            tx.commit().await?;
            tracing::warn!(
                user_id = %family.user_id,
                family_id = %family_id,
                "spent refresh token presented again; its family is revoked"
            );
            return Err(TokenError::Reused);
        }
        if row.expires_at <= Utc::now() {
            return Err(TokenError::Invalid);
        }
        sqlx::query("UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1")
            .bind(&token_hash)
            .execute(&mut *tx)
            .await?;
        let user = store::by_id(&mut *tx, family.user_id)
            .await?
            .ok_or(TokenError::Invalid)?;
        let pair = self.issue(&mut tx, &user, Some(family_id)).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Ends the session `raw` belongs to. Unknown tokens are ignored (logout is idempotent).
    pub async fn logout(&self, raw: &str) -> Result<(), TokenError> {
        let mut tx = self.pool.begin().await?;
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash(raw))
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(family) = family {
            revoke_family(&mut tx, family).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When the session that access token `jti` of `user` belongs to was signed in to (by
    /// password or provider), unless it was revoked: the proof of a recent login.
    pub async fn signed_in_at(
        &self,
        user: Uuid,
        jti: Uuid,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT f.created_at
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
             WHERE t.access_jti = $1 AND t.user_id = $2 AND f.revoked_at IS NULL",
        )
        .bind(jti)
        .bind(user)
        .fetch_optional(&self.pool)
        .await
    }

    /// Deletes refresh tokens (and sign-ins) expired for more than a day, and OAuth sign-ins
    /// under way that expired (through `oauth_states_expires`); returns how many refresh tokens.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let tokens =
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'")
                .execute(&self.pool)
                .await?
                .rows_affected();
        let families =
            sqlx::query("DELETE FROM refresh_families WHERE expires_at < now() - interval '1 day'")
                .execute(&self.pool)
                .await?
                .rows_affected();
        let states = sqlx::query("DELETE FROM oauth_states WHERE expires_at < now()")
            .execute(&self.pool)
            .await?
            .rows_affected();
        tracing::debug!(tokens, families, states, "swept expired sessions");
        Ok(tokens)
    }

    /// Revokes every session of `user` except the one whose access token has id `keep_jti`.
    pub async fn revoke_others(
        &self,
        conn: &mut PgConnection,
        user: Uuid,
        keep_jti: Uuid,
    ) -> Result<u64, TokenError> {
        let keep: Option<Uuid> = sqlx::query_scalar(
            "SELECT family_id FROM refresh_tokens WHERE access_jti = $1 AND user_id = $2",
        )
        .bind(keep_jti)
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(revoke_user(conn, user, keep).await?)
    }
}

/// Revokes every session (refresh-token family) of `user`, except `keep`; returns how many. Locks
/// the families first, so a refresh under way either finishes first (and its new token is revoked
/// here) or finds its family revoked. Used by password and role changes, and at start when the
/// configured administrator is promoted.
pub async fn revoke_user(
    conn: &mut PgConnection,
    user: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, sqlx::Error> {
    let families = sqlx::query(
        "UPDATE refresh_families SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user)
    .bind(keep)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    // A new statement, so it sees the tokens of refreshes that committed while it waited.
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND family_id IS DISTINCT FROM $2",
    )
    .bind(user)
    .bind(keep)
    .execute(&mut *conn)
    .await?;
    Ok(families)
}

async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
    )
    .bind(family)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_32_random_bytes() {
        let a = new_refresh_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, new_refresh_token());
        assert_eq!(hash(&a).len(), 32);
    }
}
