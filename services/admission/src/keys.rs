//! The key that signs admission passes, kept in AdmissionDB so every replica (and a restarted
//! one) signs with the same key and the seat service's cached JWKS stays right. The first
//! replica to start makes it (an advisory lock makes a second one starting at the same moment
//! wait and read it); the oldest key signs.

use jsonwebtoken::jwk::JwkSet;
use platform::auth::SigningKey;
use rand::RngCore;
use sqlx::PgPool;

/// The pass-signing key and its published JWKS.
#[derive(Clone)]
pub struct PassKeys {
    key: SigningKey,
    jwks: JwkSet,
}

impl std::fmt::Debug for PassKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassKeys")
            .field("kid", &self.key.kid)
            .finish_non_exhaustive()
    }
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// AdmissionDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored key is unusable.
    #[error("pass signing key: {0}")]
    Key(String),
}

impl PassKeys {
    /// Loads the signing key from AdmissionDB, making it when there is none.
    pub async fn load_or_create(pool: &PgPool) -> Result<Self, KeyError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('admission.signing_keys'))")
            .execute(&mut *tx)
            .await?;
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kid, seed FROM signing_keys ORDER BY created_at, kid LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (kid, seed) = match row {
            Some(row) => row,
            None => {
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                let kid = format!(
                    "adm-{}-{:08x}",
                    chrono::Utc::now().format("%Y%m%d%H%M%S"),
                    rand::rng().next_u32()
                );
                sqlx::query("INSERT INTO signing_keys (kid, seed) VALUES ($1, $2)")
                    .bind(&kid)
                    .bind(seed.to_vec())
                    .execute(&mut *tx)
                    .await?;
                (kid, seed.to_vec())
            }
        };
        tx.commit().await?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Key(format!("key {kid} has a bad seed")))?;
        Self::from_key(SigningKey::from_seed(kid, &seed))
    }

    /// Uses `key` (tests).
    pub fn from_key(key: SigningKey) -> Result<Self, KeyError> {
        let jwk = key.public_jwk().map_err(|e| KeyError::Key(e.to_string()))?;
        Ok(Self {
            key,
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The published public keys.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}
