//! Access tokens: EdDSA-signed JWTs whose public keys are published as a JWKS, so every service
//! (and the gateway) verifies a token locally without calling the user service. The user service
//! owns the signing keys; everyone else holds a [`Verifier`] and extracts an [`AuthUser`].
//!
//! ```
//! use platform::auth::{Claims, Role, SigningKey, Verifier};
//! let key = SigningKey::generate("k1");
//! let claims = Claims::new(uuid::Uuid::now_v7(), vec![Role::Buyer], 900);
//! let token = key.sign(&claims).unwrap();
//! let verifier = Verifier::from_jwks(vec![key.public_jwk().unwrap()]);
//! assert_eq!(verifier.verify(&token).unwrap().sub, claims.sub);
//! ```
//!
//! A verifier built with [`Verifier::remote`] fetches the JWKS and refetches it when the
//! `Cache-Control: max-age` it came with has passed (bounded, see [`JwksRefresh`]) and when a
//! token names a key id it does not know (at most once every 10 s), so a key the issuer stops
//! publishing stops verifying within that max-age everywhere.

mod remote;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Instant,
};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    jwk::Jwk,
};
use rand::RngCore;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use self::remote::Remote;
pub use self::remote::{JwksRefresh, max_age};
use crate::problem::ApiError;

/// The issuer every Boxoffice token names.
pub const ISSUER: &str = "boxoffice";

/// What a user may do. Buyers buy; organizers manage their events; admins manage everything.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Default role.
    Buyer,
    /// Creates venues, events and performances.
    Organizer,
    /// Everything, including granting roles.
    Admin,
}

impl Role {
    /// Parses `buyer`, `organizer` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "buyer" => Some(Self::Buyer),
            "organizer" => Some(Self::Organizer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Organizer => "organizer",
            Self::Admin => "admin",
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Issuer: always [`ISSUER`].
    pub iss: String,
    /// Token id.
    pub jti: Uuid,
}

impl Claims {
    /// Claims for `sub` with `roles`, valid for `ttl_secs` from now.
    pub fn new(sub: Uuid, roles: Vec<Role>, ttl_secs: i64) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub,
            roles,
            iat: now,
            exp: now + ttl_secs,
            iss: ISSUER.to_owned(),
            jti: Uuid::now_v7(),
        }
    }

    /// Whether the user has `role` (admins have every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }
}

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable bearer token.
    #[error("missing bearer token")]
    Missing,
    /// The token is malformed, forged, expired or signed by an unknown key.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key material is unusable.
    #[error("key error: {0}")]
    Key(String),
    /// The keys could not be refreshed for longer than the verifier trusts its last copy
    /// ([`JwksRefresh::stale_grace`]): every token is refused until a fetch succeeds.
    #[error("verification keys unavailable: {0}")]
    Unavailable(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::unauthorized("a bearer access token is required"),
            AuthError::Invalid(_) => {
                ApiError::unauthorized("the access token is invalid or expired")
            }
            AuthError::Key(k) => ApiError::internal(k),
            AuthError::Unavailable(why) => {
                tracing::error!(reason = %why, "refusing tokens: verification keys unavailable");
                ApiError::unavailable("tokens cannot be verified right now; try again shortly")
            }
        }
    }
}

/// The fixed PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 signing key with its key id.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id, carried in every token's header.
    pub kid: String,
    der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(kid: impl Into<String>) -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(kid, &seed)
    }

    /// The key with this 32-byte seed.
    pub fn from_seed(kid: impl Into<String>, seed: &[u8; 32]) -> Self {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(seed);
        Self {
            kid: kid.into(),
            der,
        }
    }

    /// The 32-byte seed (to store the key).
    pub fn seed(&self) -> &[u8] {
        &self.der[ED25519_PKCS8_PREFIX.len()..]
    }

    /// The public half as a JWK (with `kid`, `alg` and `use`).
    pub fn public_jwk(&self) -> Result<Jwk, AuthError> {
        let key = EncodingKey::from_ed_der(&self.der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)
            .map_err(|e| AuthError::Key(e.to_string()))?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(jwk)
    }

    /// Signs `claims` (access-token [`Claims`], or any other claim set such as an admission pass)
    /// into a compact JWT.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &EncodingKey::from_ed_der(&self.der))
            .map_err(|e| AuthError::Key(e.to_string()))
    }
}

/// Where a [`Verifier`] gets its keys.
enum KeySource {
    Fixed,
    Remote(Remote),
}

/// The keys a verifier trusts, and for how long (remote verifiers only).
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    /// Refetch once this has passed; `None` until the first fetch succeeds.
    fresh_until: Option<Instant>,
    /// Refuse every token once this has passed (the last fetch is too old to trust); `None`:
    /// no limit (fixed keys, or nothing fetched yet, so nothing to trust anyway).
    trusted_until: Option<Instant>,
}

impl KeySet {
    fn fixed(jwks: &[Jwk]) -> Self {
        Self {
            keys: key_map(jwks),
            fresh_until: None,
            trusted_until: None,
        }
    }

    /// Whether a refetch is due (never fetched, or past its max-age) and whether `kid` is known.
    fn stale_and_known(&self, kid: &str, now: Instant) -> (bool, bool) {
        (
            self.fresh_until.is_none_or(|t| now >= t),
            self.keys.contains_key(kid),
        )
    }
}

/// Verifies access tokens against a JWKS: a fixed set, or one fetched from a URL and refreshed
/// when its max-age has passed and when a token names a key it has not seen (rotation), at most
/// once every 10 s for unknown keys ([`JwksRefresh`]).
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<RwLock<KeySet>>,
    source: Arc<KeySource>,
    issuer: Arc<str>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

fn key_map(jwks: &[Jwk]) -> HashMap<String, DecodingKey> {
    jwks.iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|k| (kid, k))
        })
        .collect()
}

impl Verifier {
    /// A verifier for a fixed set of public keys.
    pub fn from_jwks(jwks: Vec<Jwk>) -> Self {
        Self {
            keys: Arc::new(RwLock::new(KeySet::fixed(&jwks))),
            source: Arc::new(KeySource::Fixed),
            issuer: Arc::from(ISSUER),
        }
    }

    /// A verifier that fetches `url` (a JWKS document) when it first meets a token, refetches it
    /// when the document's `max-age` has passed or a token names an unknown key id, with the
    /// default [`JwksRefresh`].
    pub fn remote(url: impl Into<String>) -> Self {
        Self::remote_with(url, JwksRefresh::default())
    }

    /// [`Self::remote`] with another refresh policy (tests use short ones).
    pub fn remote_with(url: impl Into<String>, refresh: JwksRefresh) -> Self {
        Self {
            keys: Arc::new(RwLock::new(KeySet::fixed(&[]))),
            source: Arc::new(KeySource::Remote(Remote::new(url.into(), refresh))),
            issuer: Arc::from(ISSUER),
        }
    }

    /// The same keys, accepting tokens from `issuer` instead of [`ISSUER`] (e.g. admission
    /// passes).
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.issuer = Arc::from(issuer);
        self
    }

    /// Replaces the known keys (e.g. after a rotation in the issuing process).
    pub fn set_keys(&self, jwks: &[Jwk]) {
        let map = key_map(jwks);
        self.write_keys(|set| set.keys = map);
    }

    fn write_keys(&self, change: impl FnOnce(&mut KeySet)) {
        match self.keys.write() {
            Ok(mut keys) => change(&mut keys),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }

    fn verify_known<C: DeserializeOwned>(&self, token: &str, kid: &str) -> Result<C, AuthError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        if keys.trusted_until.is_some_and(|t| Instant::now() >= t) {
            return Err(AuthError::Unavailable(
                "the JWKS could not be refetched within its grace period".into(),
            ));
        }
        let key = keys
            .keys
            .get(kid)
            .ok_or_else(|| AuthError::Invalid(format!("unknown key id `{kid}`")))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&*self.issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        decode::<C>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies an access token and returns its claims, with the keys known now (no fetch).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_as(token)
    }

    /// Verifies an access token, refetching the JWKS first when it is due (see [`Self::remote`]).
    pub async fn verify_async(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_as_async(token).await
    }

    /// Verifies a token with any claim set `C` (signature, issuer, `exp`, `sub`), with the keys
    /// known now (no fetch).
    pub fn verify_as<C: DeserializeOwned>(&self, token: &str) -> Result<C, AuthError> {
        let kid = token_kid(token)?;
        self.verify_known(token, &kid)
    }

    /// [`Self::verify_as`], refetching the JWKS first when its max-age has passed or the key id
    /// is unknown. Concurrent verifications share one fetch.
    pub async fn verify_as_async<C: DeserializeOwned>(&self, token: &str) -> Result<C, AuthError> {
        let kid = token_kid(token)?;
        if let KeySource::Remote(remote) = &*self.source {
            remote.refresh_if_due(&self.keys, &kid).await;
        }
        self.verify_known(token, &kid)
    }
}

fn token_kid(token: &str) -> Result<String, AuthError> {
    let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
    header
        .kid
        .ok_or_else(|| AuthError::Invalid("token has no key id".into()))
}

/// The authenticated caller, extracted from `Authorization: Bearer <token>`. Handlers that take
/// it answer 401 problem+json without a valid token. The state must provide a [`Verifier`].
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl AuthUser {
    /// The user id.
    pub fn id(&self) -> Uuid {
        self.0.sub
    }

    /// 403 `forbidden` unless the user has `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.has(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the `{}` role",
                role.as_str()
            )))
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl<S> FromRequestParts<S> for AuthUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(AuthError::Missing)?;
        let verifier = Verifier::from_ref(state);
        Ok(Self(verifier.verify_async(token).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_right_key() {
        let a = SigningKey::generate("a");
        let b = SigningKey::generate("b");
        let claims = Claims::new(Uuid::now_v7(), vec![Role::Organizer], 60);
        let token = a.sign(&claims).unwrap();
        let both = Verifier::from_jwks(vec![a.public_jwk().unwrap(), b.public_jwk().unwrap()]);
        assert_eq!(both.verify(&token).unwrap(), claims);
        let only_b = Verifier::from_jwks(vec![b.public_jwk().unwrap()]);
        assert!(only_b.verify(&token).is_err());
        // A token re-signed by b but claiming kid a does not pass.
        let mut forged = b.clone();
        forged.kid = "a".into();
        assert!(both.verify(&forged.sign(&claims).unwrap()).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let k = SigningKey::generate("k");
        let claims = Claims::new(Uuid::now_v7(), vec![Role::Buyer], -60);
        let v = Verifier::from_jwks(vec![k.public_jwk().unwrap()]);
        assert!(matches!(
            v.verify(&k.sign(&claims).unwrap()),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn seed_round_trips() {
        let k = SigningKey::generate("k");
        let again = SigningKey::from_seed("k", k.seed().try_into().unwrap());
        let claims = Claims::new(Uuid::now_v7(), vec![Role::Buyer], 60);
        let v = Verifier::from_jwks(vec![k.public_jwk().unwrap()]);
        assert!(v.verify(&again.sign(&claims).unwrap()).is_ok());
    }

    #[test]
    fn other_claim_sets_verify_with_their_issuer() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Pass {
            sub: Uuid,
            exp: i64,
            iss: String,
        }
        let k = SigningKey::generate("adm");
        let pass = Pass {
            sub: Uuid::now_v7(),
            exp: chrono::Utc::now().timestamp() + 60,
            iss: "boxoffice-admission".into(),
        };
        let token = k.sign(&pass).unwrap();
        let jwks = vec![k.public_jwk().unwrap()];
        let passes = Verifier::from_jwks(jwks.clone()).with_issuer("boxoffice-admission");
        assert_eq!(passes.verify_as::<Pass>(&token).unwrap(), pass);
        // An access-token verifier refuses it: wrong issuer.
        assert!(Verifier::from_jwks(jwks).verify_as::<Pass>(&token).is_err());
    }

    #[test]
    fn admin_has_every_role() {
        let c = Claims::new(Uuid::nil(), vec![Role::Admin], 60);
        assert!(c.has(Role::Organizer) && c.has(Role::Buyer));
        let b = Claims::new(Uuid::nil(), vec![Role::Buyer], 60);
        assert!(!b.has(Role::Organizer));
    }
}
