//! Social login with the OAuth2 authorization code flow, PKCE (S256) and a single-use `state`
//! (kept hashed in UserDB for 10 minutes, bound to its provider and to the browser that started
//! it through a random value in an HttpOnly cookie), plus an OIDC `nonce` checked in the id
//! token. [`OAuth::begin`] makes the provider URL to send the browser to and the browser's
//! binding; [`OAuth::complete`] exchanges the code and says who signed in.

pub mod providers;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

pub use providers::{Provider, ProviderKind, ProviderMode, ProviderUser};
use uuid::Uuid;

use crate::config::Config;

/// How long a sign-in may take between `begin` and `complete`.
const STATE_TTL_SECS: f64 = 600.0;

/// Why a social sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The `state` is unknown, spent, expired or for another provider.
    #[error("invalid state")]
    InvalidState,
    /// The callback came without the cookie of the browser that started the sign-in, or with
    /// another one's.
    #[error("state of another browser")]
    BrowserMismatch,
    /// The provider refused (code, PKCE, client) or answered something unusable.
    #[error("provider: {0}")]
    Provider(String),
    /// UserDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The social login flows.
#[derive(Clone)]
pub struct OAuth {
    pool: PgPool,
    providers: Vec<Provider>,
    secure_cookie: bool,
    client: reqwest::Client,
}

/// A sign-in under way: where to send the browser, and the value its cookie must carry back.
#[derive(Debug)]
pub struct Begun {
    /// The provider's authorize URL.
    pub url: String,
    /// The browser binding for the HttpOnly cookie (only its hash is stored).
    pub binding: String,
}

/// A finished sign-in at the provider.
#[derive(Debug)]
pub struct Completed {
    /// Who signed in there.
    pub who: ProviderUser,
    /// The logged-in user who asked to link this provider, if the flow came from the profile.
    pub link_user: Option<Uuid>,
}

/// The cookie that binds a sign-in to its browser.
pub fn cookie_name(kind: ProviderKind) -> String {
    format!("boxoffice_oauth_{}", kind.as_str())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
}

fn provider_error(what: &str) -> impl Fn(reqwest::Error) -> OAuthError + '_ {
    move |e| OAuthError::Provider(format!("{what}: {e}"))
}

impl OAuth {
    /// The flows of every enabled provider in `config`; `internal_sandbox` is the sandbox's
    /// server-to-server address. `Err` names a setting that cannot be used.
    pub fn new(
        pool: PgPool,
        config: &Config,
        internal_sandbox: Option<&str>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let mut providers = Vec::new();
        for kind in providers::ALL {
            if let Some(p) = Provider::resolve(kind, config, internal_sandbox)? {
                providers.push(p);
            }
        }
        Ok(Self {
            pool,
            providers,
            secure_cookie: providers::redirect_base(config).starts_with("https://"),
            client,
        })
    }

    /// `kind`'s resolved settings, `None` when it is off.
    pub fn provider(&self, kind: ProviderKind) -> Option<&Provider> {
        self.providers.iter().find(|p| p.kind == kind)
    }

    /// The enabled providers.
    pub fn enabled(&self) -> &[Provider] {
        &self.providers
    }

    /// Whether the binding cookie carries `Secure` (the callback is served over https).
    pub fn secure_cookie(&self) -> bool {
        self.secure_cookie
    }

    /// Records a new sign-in with enabled provider `p` (for `link_user`'s profile when set) and
    /// returns the provider URL to send the browser to, with the browser's binding.
    pub async fn begin(&self, p: &Provider, link_user: Option<Uuid>) -> Result<Begun, OAuthError> {
        let kind = p.kind;
        let (state, verifier, nonce) = (random_token(), random_token(), random_token());
        let binding = random_token();
        sqlx::query(
            "INSERT INTO oauth_states
                 (state_hash, provider, code_verifier, nonce, expires_at, browser_hash, link_user_id)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7)",
        )
        .bind(sha256(&state))
        .bind(kind.as_str())
        .bind(&verifier)
        .bind(&nonce)
        .bind(STATE_TTL_SECS)
        .bind(sha256(&binding))
        .bind(link_user)
        .execute(&self.pool)
        .await?;
        // Abandoned sign-ins are pruned by the sweeper (through the `expires_at` index).
        let mut url = reqwest::Url::parse(&p.authorize_url)
            .map_err(|e| OAuthError::Provider(format!("authorize_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &p.client_id)
            .append_pair("redirect_uri", &p.redirect_uri)
            .append_pair("scope", &p.scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("nonce", &nonce);
        Ok(Begun {
            url: url.into(),
            binding,
        })
    }

    /// Spends `state` (checking `binding`, the value of the browser's cookie), exchanges `code`
    /// with enabled provider `p` and returns the provider's account.
    pub async fn complete(
        &self,
        p: &Provider,
        code: &str,
        state: &str,
        binding: Option<&str>,
    ) -> Result<Completed, OAuthError> {
        let kind = p.kind;
        type Row = (String, String, String, Option<Vec<u8>>, Option<Uuid>);
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > now()
             RETURNING provider, code_verifier, nonce, browser_hash, link_user_id",
        )
        .bind(sha256(state))
        .fetch_optional(&self.pool)
        .await?;
        let (provider, verifier, nonce, browser_hash, link_user) =
            row.ok_or(OAuthError::InvalidState)?;
        if provider != kind.as_str() {
            return Err(OAuthError::InvalidState);
        }
        // Spent either way: a login-CSRF attempt leaves nothing to retry.
        match (browser_hash, binding) {
            (Some(stored), Some(binding)) if stored == sha256(binding) => {}
            _ => return Err(OAuthError::BrowserMismatch),
        }
        let tokens: TokenResponse = self
            .client
            .post(&p.token_url)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &p.redirect_uri),
                ("client_id", &p.client_id),
                ("client_secret", &p.client_secret),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(provider_error("token exchange"))?
            .json()
            .await
            .map_err(provider_error("token response"))?;
        let who = match kind {
            ProviderKind::Google => {
                let claims = self.id_claims(p, &tokens, &nonce).await?;
                ProviderUser::from_google(claims)
            }
            ProviderKind::Kakao => {
                let claims = self.id_claims(p, &tokens, &nonce).await?;
                let me = self.userinfo(p, &tokens.access_token).await?;
                ProviderUser::from_kakao(&claims.sub, me)
                    .ok_or_else(|| OAuthError::Provider("user info names another account".into()))?
            }
            ProviderKind::Naver => {
                let me = self.userinfo(p, &tokens.access_token).await?;
                ProviderUser::from_naver(me)
                    .ok_or_else(|| OAuthError::Provider("user info refused".into()))?
            }
        };
        Ok(Completed { who, link_user })
    }

    async fn userinfo<T: serde::de::DeserializeOwned>(
        &self,
        p: &Provider,
        access_token: &str,
    ) -> Result<T, OAuthError> {
        self.client
            .get(&p.userinfo_url)
            .bearer_auth(access_token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(provider_error("user info"))?
            .json()
            .await
            .map_err(provider_error("user info response"))
    }

    /// Verifies the id token: signature by the provider's JWKS, issuer, audience, expiry, nonce.
    async fn id_claims(
        &self,
        p: &Provider,
        tokens: &TokenResponse,
        nonce: &str,
    ) -> Result<providers::IdClaims, OAuthError> {
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| OAuthError::Provider("no id token".into()))?;
        let header =
            decode_header(id_token).map_err(|e| OAuthError::Provider(format!("id token: {e}")))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(OAuthError::Provider(
                "id token algorithm not accepted".into(),
            ));
        }
        let jwks: JwkSet = self
            .client
            .get(&p.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(provider_error("jwks"))?
            .json()
            .await
            .map_err(provider_error("jwks document"))?;
        let jwk = match header.kid.as_deref() {
            Some(kid) => jwks.find(kid),
            None => jwks.keys.first(),
        }
        .ok_or_else(|| OAuthError::Provider("id token signed by an unknown key".into()))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| OAuthError::Provider(format!("provider key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&p.issuer]);
        validation.set_audience(&[&p.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<providers::IdClaims>(id_token, &key, &validation)
            .map_err(|e| OAuthError::Provider(format!("id token refused: {e}")))?
            .claims;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(OAuthError::Provider("id token nonce mismatch".into()));
        }
        Ok(claims)
    }
}
