//! Checks admission passes (see `contracts::admission`) locally with the platform's token
//! verifier: the signature against the admission service's JWKS (fetched when a pass names an
//! unknown key, at most every 10 s), the issuer `boxoffice-admission`, the expiry, and then the
//! performance and the user.

use contracts::admission::{AdmissionClaims, ISSUER};
use jsonwebtoken::jwk::Jwk;
use platform::auth::{SigningKey, Verifier};
use uuid::Uuid;

/// Why a pass was refused.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Malformed, forged, expired, from an unknown key, or for another performance or user.
    #[error("invalid admission pass: {0}")]
    Invalid(String),
}

/// Signs a pass with `key` (the admission service's job; tests and the load simulation too).
pub fn sign(key: &SigningKey, claims: &AdmissionClaims) -> Result<String, PassError> {
    key.sign(claims)
        .map_err(|e| PassError::Invalid(e.to_string()))
}

/// Verifies admission passes against the admission service's public keys.
#[derive(Clone, Debug)]
pub struct PassVerifier {
    inner: Verifier,
}

impl PassVerifier {
    /// Trusts a fixed set of keys (tests; or none, refusing every pass).
    pub fn from_jwks(jwks: &[Jwk]) -> Self {
        Self {
            inner: Verifier::from_jwks(jwks.to_vec()).with_issuer(ISSUER),
        }
    }

    /// Trusts the JWKS document at `url`.
    pub fn remote(url: impl Into<String>) -> Self {
        Self {
            inner: Verifier::remote(url).with_issuer(ISSUER),
        }
    }

    /// Verifies `pass` for `performance` (and for `user`, when the caller is known).
    pub async fn verify(
        &self,
        pass: &str,
        performance: Uuid,
        user: Option<Uuid>,
    ) -> Result<AdmissionClaims, PassError> {
        let claims: AdmissionClaims = self
            .inner
            .verify_as_async(pass)
            .await
            .map_err(|e| PassError::Invalid(e.to_string()))?;
        if claims.performance_id != performance {
            return Err(PassError::Invalid("pass is for another performance".into()));
        }
        if user.is_some_and(|u| u != claims.sub) {
            return Err(PassError::Invalid("pass is for another user".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_verify_for_their_performance_and_user_only() {
        let key = SigningKey::generate("adm-1");
        let v = PassVerifier::from_jwks(&[key.public_jwk().unwrap()]);
        let (user, perf) = (Uuid::now_v7(), Uuid::now_v7());
        let now = chrono::Utc::now().timestamp();
        let pass = sign(&key, &AdmissionClaims::new(user, perf, now, 600)).unwrap();
        assert!(v.verify(&pass, perf, Some(user)).await.is_ok());
        assert!(v.verify(&pass, perf, None).await.is_ok());
        assert!(v.verify(&pass, Uuid::now_v7(), None).await.is_err());
        assert!(v.verify(&pass, perf, Some(Uuid::now_v7())).await.is_err());
        let expired = sign(&key, &AdmissionClaims::new(user, perf, now - 900, 60)).unwrap();
        assert!(v.verify(&expired, perf, None).await.is_err());
        let other = SigningKey::generate("adm-1");
        let forged = sign(&other, &AdmissionClaims::new(user, perf, now, 600)).unwrap();
        assert!(v.verify(&forged, perf, None).await.is_err());
        // An access token (issuer `boxoffice`) from the same key is not a pass.
        let token = key
            .sign(&platform::auth::Claims::new(user, vec![], 600))
            .unwrap();
        assert!(v.verify(&token, perf, None).await.is_err());
        assert!(v.verify("garbage", perf, None).await.is_err());
    }
}
