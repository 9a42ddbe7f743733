//! Sessions: a short-lived signed access token plus an opaque refresh token. Refresh tokens are
//! 32 random bytes (base64url), stored only as their SHA-256, and rotated on every use; each
//! sign-in starts a token family, and presenting an already spent token revokes the whole family
//! (someone else holds a copy).

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
#[derive(Serialize)]
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
struct RefreshRow {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    spent_at: Option<DateTime<Utc>>,
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

    /// Issues a token pair for `user` in `family` (a new family when `None`), on `conn`.
    pub async fn issue(
        &self,
        conn: &mut PgConnection,
        user: &User,
        family: Option<Uuid>,
    ) -> Result<TokenPair, TokenError> {
        let claims = Claims::new(user.id, user.roles(), self.access_ttl_secs);
        let access_token = self.keys.sign(&claims)?;
        let refresh_token = new_refresh_token();
        sqlx::query(
            "INSERT INTO refresh_tokens
                (id, token_hash, user_id, family_id, access_jti, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        )
        .bind(Uuid::now_v7())
        .bind(hash(&refresh_token))
        .bind(user.id)
        .bind(family.unwrap_or_else(Uuid::now_v7))
        .bind(claims.jti)
        .bind(self.refresh_ttl_secs as f64)
        .execute(conn)
        .await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.access_ttl_secs,
        })
    }

    /// Starts a new session for `user`.
    pub async fn sign_in(&self, user: &User) -> Result<TokenPair, TokenError> {
        let mut conn = self.pool.acquire().await?;
        self.issue(&mut conn, user, None).await
    }

    /// Spends `raw` and returns the next pair of its family (with the user's current roles).
    pub async fn refresh(&self, raw: &str) -> Result<TokenPair, TokenError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<RefreshRow> = sqlx::query_as(
            "SELECT user_id, family_id, expires_at, spent_at, revoked_at
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(hash(raw))
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or(TokenError::Invalid)?;
        if row.revoked_at.is_some() {
            return Err(TokenError::Invalid);
        }
        if row.spent_at.is_some() {
            revoke_family(&mut tx, row.family_id).await?;
            tx.commit().await?;
            tracing::warn!(
                user_id = %row.user_id,
                family_id = %row.family_id,
                "spent refresh token presented again; its family is revoked"
            );
            return Err(TokenError::Reused);
        }
        if row.expires_at <= Utc::now() {
            return Err(TokenError::Invalid);
        }
        sqlx::query("UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1")
            .bind(hash(raw))
            .execute(&mut *tx)
            .await?;
        let user = store::by_id(&self.pool, row.user_id)
            .await?
            .ok_or(TokenError::Invalid)?;
        let pair = self.issue(&mut tx, &user, Some(row.family_id)).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Ends the session `raw` belongs to. Unknown tokens are ignored (logout is idempotent).
    pub async fn logout(&self, raw: &str) -> Result<(), TokenError> {
        let mut conn = self.pool.acquire().await?;
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash(raw))
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(family) = family {
            revoke_family(&mut conn, family).await?;
        }
        Ok(())
    }

    /// Deletes refresh tokens expired for more than a day; returns how many.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'")
            .execute(&self.pool)
            .await
            .map(|d| d.rows_affected())
    }

    /// Revokes every session of `user` except the one whose access token has id `keep_jti`.
    pub async fn revoke_others(
        &self,
        conn: &mut PgConnection,
        user: Uuid,
        keep_jti: Uuid,
    ) -> Result<u64, TokenError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE user_id = $1 AND revoked_at IS NULL
               AND family_id NOT IN
                   (SELECT family_id FROM refresh_tokens WHERE access_jti = $2 AND user_id = $1)",
        )
        .bind(user)
        .bind(keep_jti)
        .execute(conn)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(conn)
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
