//! The admission pass: what the admission service gives a fan it lets through a waiting room,
//! and what the seat service checks before showing seats or taking holds of a guarded
//! performance.
//!
//! A pass is a compact JWT signed with EdDSA (Ed25519); its header names the key (`kid`), and the
//! admission service publishes its public keys at `<admission>/.well-known/jwks.json`. Clients
//! send it in the [`HEADER`] header. Verifiers require `iss` = [`ISSUER`], an unexpired `exp`,
//! and `performance_id` equal to the performance asked about; `sub` is the admitted user.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The issuer every admission pass names.
pub const ISSUER: &str = "boxoffice-admission";

/// The request header that carries a pass.
pub const HEADER: &str = "x-admission-pass";

/// The claims of an admission pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionClaims {
    /// The admitted user's id.
    pub sub: Uuid,
    /// The performance the pass admits to.
    pub performance_id: Uuid,
    /// Expires at (seconds since the epoch): the end of the shopping window.
    pub exp: i64,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Always [`ISSUER`].
    pub iss: String,
}

impl AdmissionClaims {
    /// Claims admitting `user` to `performance` for `ttl_secs` from `now` (seconds).
    pub fn new(user: Uuid, performance: Uuid, now: i64, ttl_secs: i64) -> Self {
        Self {
            sub: user,
            performance_id: performance,
            exp: now + ttl_secs,
            iat: now,
            iss: ISSUER.to_owned(),
        }
    }
}
