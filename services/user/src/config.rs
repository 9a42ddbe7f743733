//! The service's settings (`user.*`, env `BOXOFFICE_USER__...`). Every setting has a default that
//! works in standalone mode; docs/services/user.md lists them all.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

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
    /// Peers whose `X-Forwarded-For` is believed: IP addresses or CIDR blocks, as a list or one
    /// comma-separated string (env `BOXOFFICE_USER__TRUSTED_PROXIES`, e.g. `10.0.0.0/8, ::1`).
    /// Default: loopback (`127.0.0.0/8, ::1`), where the gateway runs in standalone. The client
    /// address of a request from another peer is that peer.
    pub trusted_proxies: TrustedProxies,
    /// Sandbox mode: providers not configured for real use the fakes (not a `user.*` setting: the
    /// launcher sets it from the top-level `sandbox` setting, on by default in standalone).
    #[serde(skip)]
    pub sandbox: bool,
    /// The platform's public base URL as browsers reach it (not a `user.*` setting: the launcher
    /// sets it from the top-level `public_url`, or the port standalone runs on); redirect URIs and
    /// links are built from it. Unset: `http://localhost:8080`.
    #[serde(skip)]
    pub public_url: Option<String>,
}

/// Token lifetimes (`user.tokens.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// The `Cache-Control: max-age` of `/.well-known/jwks.json`, in seconds: verifiers refetch
    /// the keys after it (within 5 s .. 10 min), so a retired key stops verifying everywhere
    /// within it (env `BOXOFFICE_USER__TOKENS__JWKS_MAX_AGE_SECS`).
    pub jwks_max_age_secs: u64,
    /// The key that encrypts signing-key seeds in UserDB: 32 bytes in base64, e.g. from
    /// `openssl rand -base64 32` (env `BOXOFFICE_USER__TOKENS__KEY_ENCRYPTION_KEY`). Unset:
    /// seeds are stored unencrypted, with a loud warning in distributed mode; standalone makes
    /// one in its data folder. Seeds sealed under another key stop the service at start.
    pub key_encryption_key: Option<crate::keys::Kek>,
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
    /// How recent a sign-in must be to prove it when a social-only account sets its first
    /// password, in seconds (env `BOXOFFICE_USER__TOKENS__FRESH_LOGIN_SECS`).
    pub fresh_login_secs: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            jwks_max_age_secs: 60,
            key_encryption_key: None,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 14 * 24 * 3600,
            key_reload_secs: 30,
            key_activation_delay_secs: 45,
            fresh_login_secs: 600,
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
    /// Failures are forgotten once this long has passed since the last failure *and* since the
    /// end of the last lock, so the window always outlasts the longest lock (env
    /// `BOXOFFICE_USER__THROTTLE__WINDOW_SECS`).
    pub window_secs: i64,
    /// Sign-ups allowed per client address per `signup_window_secs` (env
    /// `BOXOFFICE_USER__THROTTLE__SIGNUP_PER_CLIENT`).
    pub signup_per_client: i32,
    /// The sign-up window in seconds (env `BOXOFFICE_USER__THROTTLE__SIGNUP_WINDOW_SECS`).
    pub signup_window_secs: i64,
    /// Social sign-ins started (`/authorize`) per client address per `authorize_window_secs`
    /// (env `BOXOFFICE_USER__THROTTLE__AUTHORIZE_PER_CLIENT`).
    pub authorize_per_client: i32,
    /// The authorize window in seconds (env `BOXOFFICE_USER__THROTTLE__AUTHORIZE_WINDOW_SECS`).
    pub authorize_window_secs: i64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            client_free_failures: 20,
            base_lock_secs: 1,
            max_lock_secs: 15 * 60,
            window_secs: 15 * 60,
            signup_per_client: 20,
            signup_window_secs: 3600,
            authorize_per_client: 60,
            authorize_window_secs: 600,
        }
    }
}

/// Social login (`user.oauth.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// Public base URL the providers redirect back to; the callback is
    /// `<base>/api/v1/auth/oauth/<provider>/callback` (env `BOXOFFICE_USER__OAUTH__REDIRECT_BASE`).
    /// Unset: the public URL.
    pub redirect_base: Option<String>,
    /// Public base URL of the sandbox provider, used in sandbox mode for every provider URL not
    /// set explicitly (env `BOXOFFICE_USER__OAUTH__SANDBOX_URL`). Unset: `<public URL>/sandbox/oauth`.
    pub sandbox_url: Option<String>,
    /// Kakao (`user.oauth.kakao.*`).
    pub kakao: ProviderSettings,
    /// Naver (`user.oauth.naver.*`).
    pub naver: ProviderSettings,
    /// Google (`user.oauth.google.*`).
    pub google: ProviderSettings,
}

/// One provider's client registration and endpoints (`user.oauth.<provider>.*`, env
/// `BOXOFFICE_USER__OAUTH__<PROVIDER>__<SETTING>`). A provider with a client id and secret is
/// configured (unset URLs default to the real provider's); without them it is sandboxed in
/// sandbox mode (unset values default to the sandbox) and off otherwise.
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

/// IP addresses and CIDR blocks of trusted proxies (`user.trusted_proxies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl Default for TrustedProxies {
    fn default() -> Self {
        Self(vec![
            (IpAddr::from([127, 0, 0, 0]), 8),
            (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
        ])
    }
}

impl TrustedProxies {
    /// No proxy is trusted: every client address is the connection's peer.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Whether `ip` is one of them (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses and `address/prefix` blocks; empty trusts nobody.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (addr, len) = match entry.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (entry, None),
            };
            let bad = || format!("`{entry}` is not an IP address or CIDR block");
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(bad)?,
                None => max,
            };
            nets.push((addr, len));
        }
        Ok(Self(nets))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            One(String),
        }
        let joined = match Raw::deserialize(d)? {
            Raw::List(list) => list.join(","),
            Raw::One(one) => one,
        };
        joined.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_match_addresses_and_blocks() {
        let t = TrustedProxies::default();
        assert!(t.contains(ip("127.0.0.1")) && t.contains(ip("127.9.9.9")));
        assert!(t.contains(ip("::1")) && t.contains(ip("::ffff:127.0.0.1")));
        assert!(!t.contains(ip("10.0.0.1")) && !t.contains(ip("::2")));
        let t: TrustedProxies = "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32".parse().unwrap();
        assert!(t.contains(ip("10.200.0.1")) && t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")) && !t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("2001:db8::1")) && !t.contains(ip("2001:db9::1")));
        let all: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::none()
        );
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.1/x", "::1/129"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_deserialize_from_a_list_or_a_string() {
        let from_list: TrustedProxies =
            serde_json::from_value(serde_json::json!(["10.0.0.1", "::1"])).unwrap();
        let from_str: TrustedProxies =
            serde_json::from_value(serde_json::json!("10.0.0.1, ::1")).unwrap();
        assert_eq!(from_list, from_str);
        assert!(serde_json::from_value::<TrustedProxies>(serde_json::json!(["nope"])).is_err());
    }
}
