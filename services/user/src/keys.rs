//! The keys that sign access tokens, kept in UserDB so restarts and replicas share them. A
//! rotation adds a new key that is published at once but signs only from its activation time
//! (`tokens.key_activation_delay_secs` later), so verifiers that cached the old key set pick it
//! up before they meet a token signed with it. The key it replaces retires at that moment and
//! stays published until every token it signed has expired, so nobody is logged out.
//!
//! A compromised key is *retired at once* ([`KeyRing::retire`]): never published or used again,
//! and when it was the one signing, another key signs from that moment. Replicas hear of rotations
//! and retirements through a PostgreSQL notification (and reload every `key_reload_secs` besides).
//! Seeds are sealed at rest under the key-encryption key when one is configured ([`Kek`]).

mod seal;

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use platform::{
    auth::{AuthError, Claims, SigningKey, Verifier},
    service::{Infra, Mode, StartError},
};
use rand::RngCore;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, postgres::PgListener};

pub use self::seal::{Kek, SealError};
use crate::config::TokenSettings;

/// The notification channel rotations and retirements are announced on.
const CHANNEL: &str = "user_signing_keys";

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

/// How a [`KeyRing`] keeps its keys.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// Access token lifetime: a retired key stays published this long plus a minute.
    pub access_ttl_secs: i64,
    /// How long a rotated-in key is published before it signs.
    pub activation_delay_secs: i64,
    /// The `max-age` of the published JWKS.
    pub jwks_max_age_secs: u64,
    /// Seals the seeds at rest; `None` stores them as they are.
    pub kek: Option<Kek>,
}

impl KeyOptions {
    /// The options the settings give.
    pub fn from_settings(tokens: &TokenSettings) -> Self {
        Self {
            access_ttl_secs: tokens.access_ttl_secs,
            activation_delay_secs: tokens.key_activation_delay_secs,
            jwks_max_age_secs: tokens.jwks_max_age_secs,
            kek: tokens.key_encryption_key.clone(),
        }
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
    jwks_max_age_secs: u64,
    kek: Option<Kek>,
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
    /// A seed cannot be sealed or opened: the key-encryption key is missing, another one, or
    /// the row was changed.
    #[error(transparent)]
    Sealed(#[from] SealError),
    /// No key has this id.
    #[error("no signing key `{0}`")]
    UnknownKey(String),
    /// The key was already retired at once.
    #[error("signing key `{0}` is already retired")]
    AlreadyRetired(String),
}

/// What [`KeyRing::retire`] did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Retired {
    /// The retired key: no longer published, trusted or used to sign.
    pub kid: String,
    /// When.
    pub retired_at: DateTime<Utc>,
    /// The key that signs from now on, when the retired one was signing.
    pub replaced_by: Option<String>,
    /// The key signing now.
    pub signing_kid: String,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    seed: Vec<u8>,
    seed_kek: Option<String>,
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

async fn lock_keys(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('user.signing_keys'))")
        .execute(conn)
        .await
        .map(drop)
}

impl KeyRing {
    /// Opens the key ring of the user service from its settings: seals the seeds under
    /// `user.tokens.key_encryption_key` (warning loudly in distributed mode without one),
    /// refusing to start when stored seeds need another key.
    pub async fn start(
        pool: &PgPool,
        tokens: &TokenSettings,
        infra: &Infra,
    ) -> Result<Self, StartError> {
        let options = KeyOptions::from_settings(tokens);
        match (&options.kek, infra.mode) {
            (Some(kek), _) => tracing::info!(kek = kek.id(), "signing-key seeds sealed at rest"),
            (None, Mode::Distributed) => tracing::warn!(
                "SIGNING-KEY SEEDS ARE STORED UNENCRYPTED: set user.tokens.key_encryption_key \
             (BOXOFFICE_USER__TOKENS__KEY_ENCRYPTION_KEY, 32 bytes in base64, e.g. `openssl \
             rand -base64 32`) so that a copy of UserDB cannot mint access tokens"
            ),
            (None, Mode::Standalone) => {
                tracing::info!("signing-key seeds stored unencrypted (no key-encryption key)");
            }
        }
        Self::open_with(pool.clone(), options)
            .await
            .map_err(|e| match e {
                KeyError::Sealed(why) => StartError::Config(format!(
                    "user.tokens.key_encryption_key: {why}; start with the key-encryption key the \
                 signing keys were sealed with (no new key is made in their place)"
                )),
                other => StartError::Other(format!("loading signing keys: {other}")),
            })
    }

    /// Loads the keys, creating the first one when UserDB has none; seeds stored as they are.
    pub async fn open(
        pool: PgPool,
        access_ttl_secs: i64,
        activation_delay_secs: i64,
    ) -> Result<Self, KeyError> {
        Self::open_with(
            pool,
            KeyOptions {
                access_ttl_secs,
                activation_delay_secs,
                jwks_max_age_secs: TokenSettings::default().jwks_max_age_secs,
                kek: None,
            },
        )
        .await
    }

    /// Loads the keys, creating the first one when UserDB has none. With a KEK, seeds stored
    /// unencrypted are sealed first; a seed sealed under another KEK (or without a KEK given)
    /// is a [`KeyError::Sealed`], never a reason to make a new key.
    pub async fn open_with(pool: PgPool, options: KeyOptions) -> Result<Self, KeyError> {
        let ring = Self {
            pool,
            publish_after_retire_secs: options.access_ttl_secs + 60,
            activation_delay_secs: options.activation_delay_secs,
            jwks_max_age_secs: options.jwks_max_age_secs,
            kek: options.kek,
            loaded: Arc::new(RwLock::new(None)),
            verifier: Verifier::from_jwks(Vec::new()),
        };
        // Two replicas starting together may both insert; the advisory lock makes one wait.
        let mut tx = ring.pool.begin().await?;
        lock_keys(&mut tx).await?;
        ring.seal_stored(&mut tx).await?;
        let any: Option<String> = sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL AND revoked_at IS NULL LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if any.is_none() {
            ring.insert(&mut tx, &new_kid(), 0).await?;
        }
        tx.commit().await?;
        ring.reload().await?;
        Ok(ring)
    }

    /// Checks every stored seed against the configured KEK and seals those stored unencrypted.
    async fn seal_stored(&self, conn: &mut PgConnection) -> Result<(), KeyError> {
        let rows: Vec<(String, Vec<u8>, Option<String>)> =
            sqlx::query_as("SELECT kid, seed, seed_kek FROM signing_keys ORDER BY created_at")
                .fetch_all(&mut *conn)
                .await?;
        let mut sealed = 0;
        for (kid, seed, seed_kek) in rows {
            match (&self.kek, seed_kek) {
                (None, None) => {}
                (None, Some(id)) => {
                    return Err(SealError::from(format!(
                        "signing key {kid} is sealed under key-encryption key {id}, and none is \
                         configured"
                    ))
                    .into());
                }
                (Some(kek), Some(id)) if id == kek.id() => {
                    kek.open(&kid, &seed)?;
                }
                (Some(kek), Some(id)) => {
                    return Err(SealError::from(format!(
                        "signing key {kid} is sealed under key-encryption key {id}, but the \
                         configured one is {}",
                        kek.id()
                    ))
                    .into());
                }
                (Some(kek), None) => {
                    sqlx::query("UPDATE signing_keys SET seed = $2, seed_kek = $3 WHERE kid = $1")
                        .bind(&kid)
                        .bind(kek.seal(&kid, &seed)?)
                        .bind(kek.id())
                        .execute(&mut *conn)
                        .await?;
                    sealed += 1;
                }
            }
        }
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed signing-key seeds that were stored unencrypted"
            );
        }
        Ok(())
    }

    /// Stores a fresh key `kid` that signs `delay_secs` from now; returns its activation time.
    async fn insert(
        &self,
        conn: &mut PgConnection,
        kid: &str,
        delay_secs: i64,
    ) -> Result<DateTime<Utc>, KeyError> {
        let seed = new_seed();
        let (stored, kek_id) = match &self.kek {
            Some(kek) => (kek.seal(kid, &seed)?, Some(kek.id())),
            None => (seed.to_vec(), None),
        };
        Ok(sqlx::query_scalar(
            "INSERT INTO signing_keys (kid, seed, seed_kek, activates_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             RETURNING activates_at",
        )
        .bind(kid)
        .bind(stored)
        .bind(kek_id)
        .bind(delay_secs as f64)
        .fetch_one(conn)
        .await?)
    }

    fn unseal(&self, row: KeyRow) -> Result<(DateTime<Utc>, SigningKey), KeyError> {
        let seed = match (&row.seed_kek, &self.kek) {
            (None, _) => row.seed,
            (Some(id), Some(kek)) if id == kek.id() => kek.open(&row.kid, &row.seed)?,
            (Some(id), _) => {
                return Err(SealError::from(format!(
                    "signing key {} is sealed under key-encryption key {id}, which this replica \
                     does not have",
                    row.kid
                ))
                .into());
            }
        };
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| AuthError::Key(format!("key {} has a bad seed", row.kid)))?;
        Ok((row.activates_at, SigningKey::from_seed(row.kid, &seed)))
    }

    /// Rereads the keys from UserDB (after a rotation here or on another replica).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, seed, seed_kek, activates_at FROM signing_keys
             WHERE revoked_at IS NULL
               AND (retired_at IS NULL OR retired_at > now() - make_interval(secs => $1))
             ORDER BY activates_at DESC, created_at DESC",
        )
        .bind(self.publish_after_retire_secs as f64)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = Vec::new();
        let mut published = Vec::new();
        for row in rows {
            let (from, key) = self.unseal(row)?;
            published.push(key.public_jwk()?);
            keys.push((from, key));
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
        lock_keys(&mut tx).await?;
        let from = self
            .insert(&mut tx, &kid, self.activation_delay_secs)
            .await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2
             WHERE retired_at IS NULL AND revoked_at IS NULL AND kid <> $1",
        )
        .bind(&kid)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, &kid).await?;
        tx.commit().await?;
        self.reload().await?;
        tracing::info!(%kid, activates_at = %from, "signing key rotated");
        Ok((kid, from))
    }

    /// Retires key `kid` at once (a compromise): it is no longer published, so no verifier
    /// trusts it after its next refetch, and no longer signs. When it was the key signing now,
    /// another takes over at this moment, with no activation delay: the key a rotation
    /// published and scheduled, or else a fresh one. When it was a rotated-in key not yet
    /// signing, the rotation is undone and the current key goes on signing.
    pub async fn retire(&self, kid: &str) -> Result<Retired, KeyError> {
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        let target: Option<(Option<DateTime<Utc>>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT revoked_at, activates_at FROM signing_keys WHERE kid = $1 FOR UPDATE",
        )
        .bind(kid)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((revoked_at, activates_at)) = target else {
            return Err(KeyError::UnknownKey(kid.to_owned()));
        };
        if revoked_at.is_some() {
            return Err(KeyError::AlreadyRetired(kid.to_owned()));
        }
        let signing = self.signing_kid(&mut tx).await?;
        let retired_at: DateTime<Utc> = sqlx::query_scalar(
            "UPDATE signing_keys
             SET revoked_at = now(), retired_at = LEAST(COALESCE(retired_at, now()), now())
             WHERE kid = $1 RETURNING revoked_at",
        )
        .bind(kid)
        .fetch_one(&mut *tx)
        .await?;
        let mut replaced_by = None;
        if signing.as_deref() == Some(kid) {
            // Bring a scheduled key forward (verifiers have had it since its rotation), or make
            // one; every other key retires now.
            let scheduled: Option<String> = sqlx::query_scalar(
                "UPDATE signing_keys SET activates_at = now()
                 WHERE kid = (SELECT kid FROM signing_keys
                              WHERE revoked_at IS NULL AND retired_at IS NULL
                                AND activates_at > now()
                              ORDER BY activates_at DESC, created_at DESC LIMIT 1)
                 RETURNING kid",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let next = match scheduled {
                Some(next) => next,
                None => {
                    let next = new_kid();
                    self.insert(&mut tx, &next, 0).await?;
                    next
                }
            };
            sqlx::query(
                "UPDATE signing_keys SET retired_at = now()
                 WHERE revoked_at IS NULL AND kid <> $1
                   AND (retired_at IS NULL OR retired_at > now())",
            )
            .bind(&next)
            .execute(&mut *tx)
            .await?;
            replaced_by = Some(next);
        } else if activates_at > Utc::now() {
            // A scheduled key: the key it would have replaced signs on and stays published.
            sqlx::query(
                "UPDATE signing_keys SET retired_at = NULL
                 WHERE revoked_at IS NULL AND retired_at > now()
                   AND NOT EXISTS (SELECT 1 FROM signing_keys
                                   WHERE revoked_at IS NULL AND retired_at IS NULL)",
            )
            .execute(&mut *tx)
            .await?;
        }
        let signing_kid = self
            .signing_kid(&mut tx)
            .await?
            .ok_or(KeyError::NoActiveKey)?;
        notify(&mut tx, kid).await?;
        tx.commit().await?;
        self.reload().await?;
        tracing::warn!(%kid, replaced_by = ?replaced_by, %signing_kid, "signing key retired at once");
        Ok(Retired {
            kid: kid.to_owned(),
            retired_at,
            replaced_by,
            signing_kid,
        })
    }

    /// The key that signs now, as [`Loaded::active`] would choose it from the table.
    async fn signing_kid(&self, conn: &mut PgConnection) -> Result<Option<String>, KeyError> {
        Ok(sqlx::query_scalar(
            "SELECT kid FROM signing_keys
             WHERE revoked_at IS NULL AND activates_at <= now()
               AND (retired_at IS NULL OR retired_at > now() - make_interval(secs => $1))
             ORDER BY activates_at DESC, created_at DESC LIMIT 1",
        )
        .bind(self.publish_after_retire_secs as f64)
        .fetch_optional(conn)
        .await?)
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

    /// The `Cache-Control` of the published keys: verifiers refetch them after this `max-age`
    /// (`user.tokens.jwks_max_age_secs`), so a retired key is dropped everywhere within it.
    pub fn jwks_cache_control(&self) -> String {
        format!("public, max-age={}", self.jwks_max_age_secs)
    }

    /// A verifier that trusts exactly the published keys.
    pub fn verifier(&self) -> Verifier {
        self.verifier.clone()
    }

    /// Reloads the keys when another replica announces a rotation or retirement, and every
    /// `every` besides, until `shutdown`.
    pub fn spawn_reload(
        &self,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        enum Wake {
            Stop,
            Tick,
            Notified,
            Lost(sqlx::Error),
        }
        let ring = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut listener: Option<PgListener> = None;
            loop {
                if listener.is_none() && !shutdown.is_cancelled() {
                    listener = ring.listen().await;
                    // What changed before we listened is read now: no announcement is missed.
                    if listener.is_some()
                        && let Err(e) = ring.reload().await
                    {
                        tracing::warn!(error = %e, "reloading signing keys failed");
                    }
                }
                let wake = tokio::select! {
                    () = shutdown.cancelled() => Wake::Stop,
                    _ = tick.tick() => Wake::Tick,
                    r = next_notification(&mut listener) => match r {
                        Ok(()) => Wake::Notified,
                        Err(e) => Wake::Lost(e),
                    },
                };
                match wake {
                    Wake::Stop => return,
                    Wake::Tick | Wake::Notified => {}
                    Wake::Lost(e) => {
                        tracing::warn!(error = %e, "signing-key notifications lost; reloading");
                        listener = None;
                    }
                }
                if let Err(e) = ring.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        })
    }

    async fn listen(&self) -> Option<PgListener> {
        let listening = async {
            let mut l = PgListener::connect_with(&self.pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match listening.await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for signing-key changes; polling only");
                None
            }
        }
    }
}

/// The next notification, or never without a listener.
async fn next_notification(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(drop),
        None => std::future::pending().await,
    }
}

/// Tells the other replicas (on commit) that the keys changed.
async fn notify(conn: &mut PgConnection, kid: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(kid)
        .execute(conn)
        .await
        .map(drop)
}
