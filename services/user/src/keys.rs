//! The keys that sign access tokens, kept in UserDB so restarts and replicas share them. A
//! rotation adds a new key that is published at once but signs only from its activation time
//! (`tokens.key_activation_delay_secs` later), so verifiers that cached the old key set pick it
//! up before they meet a token signed with it. The key it replaces retires at that moment and
//! stays published until every token it signed has expired, so nobody is logged out.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use platform::auth::{AuthError, Claims, SigningKey, Verifier};
use rand::RngCore;
use sqlx::PgPool;

/// The keys in force: the one that signs and every one still published.
#[derive(Debug, Clone)]
struct Loaded {
    /// Published keys with their activation time, newest first.
    keys: Vec<(DateTime<Utc>, SigningKey)>,
    published: Vec<Jwk>,
}

impl Loaded {
    /// The key that signs now: the newest one already active.
    fn active(&self) -> Result<&SigningKey, KeyError> {
        let now = Utc::now();
        self.keys
            .iter()
            .find(|(from, _)| *from <= now)
            .map(|(_, k)| k)
            .ok_or(KeyError::NoActiveKey)
    }
}

/// The signing keys of this service, cached from UserDB.
#[derive(Clone)]
pub struct KeyRing {
    pool: PgPool,
    /// How long after retirement a key stays published: the access token lifetime plus leeway.
    publish_after_retire_secs: i64,
    /// How long a new key is published before it signs.
    activation_delay_secs: i64,
    loaded: Arc<RwLock<Option<Loaded>>>,
    /// This service's own verifier, kept in step with the published keys.
    verifier: Verifier,
}

/// Why the keys could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// UserDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored key is unusable.
    #[error(transparent)]
    Key(#[from] AuthError),
    /// The key table holds no active key (a concurrent rotation; retry).
    #[error("no active signing key")]
    NoActiveKey,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    seed: Vec<u8>,
    activates_at: DateTime<Utc>,
}

fn new_kid() -> String {
    format!(
        "k{}-{:08x}",
        Utc::now().format("%Y%m%d%H%M%S"),
        rand::rng().next_u32()
    )
}

fn new_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    seed
}

impl KeyRing {
    /// Loads the keys, creating the first one when UserDB has none.
    pub async fn open(
        pool: PgPool,
        access_ttl_secs: i64,
        activation_delay_secs: i64,
    ) -> Result<Self, KeyError> {
        let ring = Self {
            pool,
            publish_after_retire_secs: access_ttl_secs + 60,
            activation_delay_secs,
            loaded: Arc::new(RwLock::new(None)),
            verifier: Verifier::from_jwks(Vec::new()),
        };
        // Two replicas starting together may both insert; the advisory lock makes one wait.
        let mut tx = ring.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('user.signing_keys'))")
            .execute(&mut *tx)
            .await?;
        let any: Option<String> =
            sqlx::query_scalar("SELECT kid FROM signing_keys WHERE retired_at IS NULL LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if any.is_none() {
            sqlx::query("INSERT INTO signing_keys (kid, seed) VALUES ($1, $2)")
                .bind(new_kid())
                .bind(new_seed().as_slice())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        ring.reload().await?;
        Ok(ring)
    }

    /// Rereads the keys from UserDB (after a rotation here or on another replica).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, seed, activates_at FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
             ORDER BY activates_at DESC, created_at DESC",
        )
        .bind(self.publish_after_retire_secs as f64)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = Vec::new();
        let mut published = Vec::new();
        for row in rows {
            let seed: [u8; 32] = row
                .seed
                .as_slice()
                .try_into()
                .map_err(|_| AuthError::Key(format!("key {} has a bad seed", row.kid)))?;
            let key = SigningKey::from_seed(row.kid, &seed);
            published.push(key.public_jwk()?);
            keys.push((row.activates_at, key));
        }
        let loaded = Loaded { keys, published };
        loaded.active()?;
        self.verifier.set_keys(&loaded.published);
        let mut slot = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        *slot = Some(loaded);
        Ok(())
    }

    /// Publishes a new signing key that takes over after the activation delay (retiring the
    /// current one then); returns the new key id and when it starts signing.
    pub async fn rotate(&self) -> Result<(String, DateTime<Utc>), KeyError> {
        let kid = new_kid();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('user.signing_keys'))")
            .execute(&mut *tx)
            .await?;
        let from: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO signing_keys (kid, seed, activates_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))
             RETURNING activates_at",
        )
        .bind(&kid)
        .bind(new_seed().as_slice())
        .bind(self.activation_delay_secs as f64)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE retired_at IS NULL AND kid <> $1",
        )
        .bind(&kid)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.reload().await?;
        tracing::info!(%kid, activates_at = %from, "signing key rotated");
        Ok((kid, from))
    }

    fn loaded(&self) -> Result<Loaded, KeyError> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(KeyError::NoActiveKey)
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        Ok(self.loaded()?.active()?.sign(claims)?)
    }

    /// The id of the active key.
    pub fn active_kid(&self) -> Result<String, KeyError> {
        Ok(self.loaded()?.active()?.kid.clone())
    }

    /// The published public keys.
    pub fn jwks(&self) -> Result<JwkSet, KeyError> {
        Ok(JwkSet {
            keys: self.loaded()?.published,
        })
    }

    /// A verifier that trusts exactly the published keys.
    pub fn verifier(&self) -> Verifier {
        self.verifier.clone()
    }

    /// Reloads the keys every `every` until `shutdown`, so rotations on other replicas arrive.
    pub fn spawn_reload(
        &self,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let ring = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = ring.reload().await {
                            tracing::warn!(error = %e, "reloading signing keys failed");
                        }
                    }
                }
            }
        })
    }
}
