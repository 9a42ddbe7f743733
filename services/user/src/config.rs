//! The service's settings (`user.*`, env `BOXOFFICE_USER__...`). Every setting has a default that
//! works in standalone mode; docs/services/user.md lists them all.

use serde::Deserialize;

/// Settings (`user.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Administrator account created (or reset) at start (env `BOXOFFICE_USER__ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// Its password (env `BOXOFFICE_USER__ADMIN_PASSWORD`).
    pub admin_password: Option<String>,
    /// Token lifetimes (`user.tokens.*`).
    pub tokens: TokenSettings,
    /// Password hashing cost (`user.argon2.*`).
    pub argon2: Argon2Settings,
    /// Login throttling (`user.throttle.*`).
    pub throttle: ThrottleSettings,
    /// Social login (`user.oauth.*`).
    pub oauth: OAuthSettings,
}

/// Token lifetimes (`user.tokens.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Access token lifetime in seconds (env `BOXOFFICE_USER__TOKENS__ACCESS_TTL_SECS`).
    pub access_ttl_secs: i64,
    /// Refresh token lifetime in seconds (env `BOXOFFICE_USER__TOKENS__REFRESH_TTL_SECS`).
    pub refresh_ttl_secs: i64,
    /// How often a replica reloads the signing keys from UserDB, in seconds (env
    /// `BOXOFFICE_USER__TOKENS__KEY_RELOAD_SECS`).
    pub key_reload_secs: u64,
    /// How long a rotated-in key is published before it signs, in seconds: longer than a
    /// verifier's JWKS refetch interval (10 s) and `key_reload_secs` (env
    /// `BOXOFFICE_USER__TOKENS__KEY_ACTIVATION_DELAY_SECS`).
    pub key_activation_delay_secs: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 14 * 24 * 3600,
            key_reload_secs: 30,
            key_activation_delay_secs: 45,
        }
    }
}

/// argon2id cost parameters (`user.argon2.*`). The defaults are OWASP's first recommendation
/// (m = 19 MiB, t = 2, p = 1). Existing hashes keep the parameters they were made with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Settings {
    /// Memory in KiB (env `BOXOFFICE_USER__ARGON2__MEMORY_KIB`).
    pub memory_kib: u32,
    /// Passes (env `BOXOFFICE_USER__ARGON2__ITERATIONS`).
    pub iterations: u32,
    /// Lanes (env `BOXOFFICE_USER__ARGON2__PARALLELISM`).
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Login throttling (`user.throttle.*`): counting failures within `window_secs`, the
/// `*_free_failures`-th failure and each after it lock the account (or client address) for
/// `base_lock_secs * 2^(failures - free_failures)`, at most `max_lock_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Failures per account that start the locks (env `BOXOFFICE_USER__THROTTLE__ACCOUNT_FREE_FAILURES`).
    pub account_free_failures: i32,
    /// Failures per client address that start the locks (env
    /// `BOXOFFICE_USER__THROTTLE__CLIENT_FREE_FAILURES`).
    pub client_free_failures: i32,
    /// First lock in seconds (env `BOXOFFICE_USER__THROTTLE__BASE_LOCK_SECS`).
    pub base_lock_secs: i64,
    /// Longest lock in seconds (env `BOXOFFICE_USER__THROTTLE__MAX_LOCK_SECS`).
    pub max_lock_secs: i64,
    /// Failures older than this are forgotten (env `BOXOFFICE_USER__THROTTLE__WINDOW_SECS`).
    pub window_secs: i64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            client_free_failures: 20,
            base_lock_secs: 1,
            max_lock_secs: 15 * 60,
            window_secs: 15 * 60,
        }
    }
}

/// Social login (`user.oauth.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// Public base URL the providers redirect back to; the callback is
    /// `<base>/api/v1/auth/oauth/<provider>/callback` (env `BOXOFFICE_USER__OAUTH__REDIRECT_BASE`).
    pub redirect_base: String,
    /// Public base URL of the sandbox provider, used for every provider URL not set explicitly
    /// (env `BOXOFFICE_USER__OAUTH__SANDBOX_URL`).
    pub sandbox_url: String,
    /// Kakao (`user.oauth.kakao.*`).
    pub kakao: ProviderSettings,
    /// Naver (`user.oauth.naver.*`).
    pub naver: ProviderSettings,
    /// Google (`user.oauth.google.*`).
    pub google: ProviderSettings,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            redirect_base: "http://localhost:8080".into(),
            sandbox_url: "http://localhost:8080/sandbox/oauth".into(),
            kakao: ProviderSettings::default(),
            naver: ProviderSettings::default(),
            google: ProviderSettings::default(),
        }
    }
}

/// One provider's client registration and endpoints (`user.oauth.<provider>.*`, env
/// `BOXOFFICE_USER__OAUTH__<PROVIDER>__<SETTING>`). Unset values default to the sandbox.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// Client id (`CLIENT_ID`); sandbox default `boxoffice-<provider>`.
    pub client_id: Option<String>,
    /// Client secret (`CLIENT_SECRET`); sandbox default `sandbox-<provider>-secret`.
    pub client_secret: Option<String>,
    /// Authorization page the browser is sent to (`AUTHORIZE_URL`).
    pub authorize_url: Option<String>,
    /// Token endpoint (`TOKEN_URL`).
    pub token_url: Option<String>,
    /// User info endpoint (`USERINFO_URL`).
    pub userinfo_url: Option<String>,
    /// JWKS that signs id tokens (`JWKS_URL`; Kakao and Google).
    pub jwks_url: Option<String>,
    /// Expected `iss` of id tokens (`ISSUER`; Kakao and Google).
    pub issuer: Option<String>,
    /// Requested scopes, space-separated (`SCOPE`).
    pub scope: Option<String>,
}
