//! The service's settings (`payment.*`, env `BOXOFFICE_PAYMENT__...`) and which PG they select.
//!
//! The PG is **configured** when `payment.pg.secret_key` is set to a key other than the
//! sandbox's (`payment.pg.base_url` defaults to the real Toss Payments API), **sandboxed** when
//! sandbox mode is on and it is not configured (the fake PG at the platform's `fake-pg` address,
//! with the sandbox's key), and **off** otherwise: confirms answer 503 `pg_not_configured`. A
//! sandbox is never used silently: outside sandbox mode the sandbox's key is refused at start.

use serde::Deserialize;

use crate::gateway::toss::TOSS_API;

/// The secret key the fake PG accepts in sandbox mode; refused outside it.
pub const SANDBOX_SECRET_KEY: &str = "test_sk_boxoffice_sandbox";

/// Settings (`payment.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The PG (`payment.pg.*`).
    pub pg: PgSettings,
    /// Reconciliation of unknown outcomes and refunds (`payment.settle.*`).
    pub settle: SettleSettings,
    /// At most one PG lookup per payment this often for the PG's (unsigned) webhooks, ms;
    /// further notices of the payment meanwhile are answered 200 and dropped (env
    /// `BOXOFFICE_PAYMENT__WEBHOOK_MIN_INTERVAL_MS`).
    pub webhook_min_interval_ms: u64,
    /// At most this many webhook lookups at the PG at once per replica; more are answered 503
    /// `webhooks_busy` (the PG delivers again later) (env
    /// `BOXOFFICE_PAYMENT__WEBHOOK_MAX_IN_FLIGHT`).
    pub webhook_max_in_flight: usize,
    /// Sandbox mode: an unconfigured PG is the fake (not a `payment.*` setting: the launcher
    /// sets it from the top-level `sandbox`, on by default in standalone).
    #[serde(skip)]
    pub sandbox: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pg: PgSettings::default(),
            settle: SettleSettings::default(),
            webhook_min_interval_ms: 5_000,
            webhook_max_in_flight: 16,
            sandbox: false,
        }
    }
}

/// The PG's address, key, timeouts and protection (`payment.pg.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgSettings {
    /// The API's base URL (env `BOXOFFICE_PAYMENT__PG__BASE_URL`); default the real Toss
    /// Payments API when a secret key is set, the fake PG in sandbox mode otherwise.
    pub base_url: Option<String>,
    /// The secret key, `test_sk_…` or `live_sk_…` (env `BOXOFFICE_PAYMENT__PG__SECRET_KEY`).
    pub secret_key: Option<String>,
    /// Longest wait to connect, ms (env `BOXOFFICE_PAYMENT__PG__CONNECT_TIMEOUT_MS`).
    pub connect_timeout_ms: u64,
    /// Longest wait for a call's answer, ms (env `BOXOFFICE_PAYMENT__PG__TIMEOUT_MS`): past it
    /// the outcome is unknown and the reconciler finds it out. Keep it below
    /// `http.request_timeout_ms`.
    pub timeout_ms: u64,
    /// Most PG calls in flight at once; more answer 503 `pg_unavailable` at once (env
    /// `BOXOFFICE_PAYMENT__PG__MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// Consecutive failures (timeouts, 5xx, lost connections) that open the circuit (env
    /// `BOXOFFICE_PAYMENT__PG__BREAKER_FAILURES`).
    pub breaker_failures: u32,
    /// How long an open circuit fails calls fast before one trial call, ms (env
    /// `BOXOFFICE_PAYMENT__PG__BREAKER_OPEN_MS`).
    pub breaker_open_ms: u64,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            secret_key: None,
            connect_timeout_ms: 2_000,
            timeout_ms: 8_000,
            max_in_flight: 1_024,
            breaker_failures: 5,
            breaker_open_ms: 5_000,
        }
    }
}

/// The reconciler and refund worker (`payment.settle.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettleSettings {
    /// Pause between passes when there is nothing to do, ms (env
    /// `BOXOFFICE_PAYMENT__SETTLE__INTERVAL_MS`).
    pub interval_ms: u64,
    /// First wait before asking the PG about an unknown outcome, and before retrying a refund,
    /// ms; it doubles per attempt (env `BOXOFFICE_PAYMENT__SETTLE__FIRST_BACKOFF_MS`).
    pub first_backoff_ms: u64,
    /// Longest wait between two attempts, ms (env `BOXOFFICE_PAYMENT__SETTLE__MAX_BACKOFF_MS`).
    pub max_backoff_ms: u64,
    /// Attempts before an outcome the PG still leaves undecided is settled as failed (the PG
    /// expires unconfirmed payments; a charge found later is refunded), and before a refund is
    /// given up and left for an operator (env `BOXOFFICE_PAYMENT__SETTLE__MAX_ATTEMPTS`).
    pub max_attempts: i32,
    /// Attempts of a refund the PG keeps failing (timeouts, 5xx, a refused key) before it is
    /// given up: unless the PG's record shows the money back, it ends `failed` with
    /// `payment.refund_failed` and an operator takes over (env
    /// `BOXOFFICE_PAYMENT__SETTLE__REFUND_MAX_ATTEMPTS`).
    pub refund_max_attempts: i32,
}

impl Default for SettleSettings {
    fn default() -> Self {
        Self {
            interval_ms: 500,
            first_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            max_attempts: 10,
            refund_max_attempts: 50,
        }
    }
}

/// Where the PG is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTarget {
    /// A real PG (or whatever the operator pointed the settings at).
    Configured {
        /// Base URL.
        base_url: String,
        /// Secret key.
        secret_key: String,
    },
    /// The fake PG (sandbox mode).
    Sandbox {
        /// Its address for server-to-server calls.
        base_url: String,
    },
    /// No PG: confirms are refused.
    Off,
}

impl PgTarget {
    /// Resolves the PG from the settings; `fake_pg` is the fake's address when the platform runs
    /// one. `Err` names the setting that cannot be used.
    pub fn resolve(config: &Config, fake_pg: Option<&str>) -> Result<Self, String> {
        let pg = &config.pg;
        let secret = pg.secret_key.as_deref().filter(|s| !s.is_empty());
        if let Some(url) = &pg.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "payment.pg.base_url (env BOXOFFICE_PAYMENT__PG__BASE_URL) `{url}` is not an \
                 http(s) URL"
            ));
        }
        match secret {
            Some(key) if key != SANDBOX_SECRET_KEY => Ok(Self::Configured {
                base_url: pg.base_url.clone().unwrap_or_else(|| TOSS_API.to_owned()),
                secret_key: key.to_owned(),
            }),
            Some(_) if !config.sandbox => Err(format!(
                "payment.pg.secret_key (env BOXOFFICE_PAYMENT__PG__SECRET_KEY) is the sandbox's \
                 key `{SANDBOX_SECRET_KEY}`, refused outside sandbox mode: set the key the PG \
                 issued, or turn sandbox mode on (sandbox = true)"
            )),
            None if !config.sandbox => match &pg.base_url {
                Some(_) => Err("payment.pg.base_url is set but payment.pg.secret_key (env \
                     BOXOFFICE_PAYMENT__PG__SECRET_KEY) is not: set both to use that PG"
                    .to_owned()),
                None => Ok(Self::Off),
            },
            // Sandbox mode, not configured for real.
            _ => match pg.base_url.as_deref().or(fake_pg) {
                Some(url) => Ok(Self::Sandbox {
                    base_url: url.trim_end_matches('/').to_owned(),
                }),
                None => Err("sandbox mode is on but there is no fake PG to use: set \
                     payment.pg.base_url to the fake PG's address (or services.fake-pg), or \
                     configure a real PG (payment.pg.secret_key)"
                    .to_owned()),
            },
        }
    }

    /// The base URL and key to call, if any.
    pub fn endpoint(&self) -> Option<(&str, &str)> {
        match self {
            Self::Configured {
                base_url,
                secret_key,
            } => Some((base_url, secret_key)),
            Self::Sandbox { base_url } => Some((base_url, SANDBOX_SECRET_KEY)),
            Self::Off => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(sandbox: bool, base_url: Option<&str>, key: Option<&str>) -> Config {
        let mut c = Config {
            sandbox,
            ..Config::default()
        };
        c.pg.base_url = base_url.map(str::to_owned);
        c.pg.secret_key = key.map(str::to_owned);
        c
    }

    #[test]
    fn a_real_key_is_used_for_real_even_in_sandbox_mode() {
        for sandbox in [false, true] {
            let t = PgTarget::resolve(&config(sandbox, None, Some("live_sk_x")), Some("http://f"))
                .unwrap();
            assert_eq!(
                t,
                PgTarget::Configured {
                    base_url: TOSS_API.into(),
                    secret_key: "live_sk_x".into()
                }
            );
        }
    }

    #[test]
    fn sandbox_mode_uses_the_fake_and_only_then() {
        let t = PgTarget::resolve(&config(true, None, None), Some("http://fake/")).unwrap();
        assert_eq!(t.endpoint(), Some(("http://fake", SANDBOX_SECRET_KEY)));
        assert_eq!(
            PgTarget::resolve(&config(false, None, None), Some("http://fake")).unwrap(),
            PgTarget::Off
        );
        assert!(PgTarget::resolve(&config(true, None, None), None).is_err());
    }

    #[test]
    fn the_sandbox_key_and_half_a_configuration_are_refused_outside_sandbox_mode() {
        let e =
            PgTarget::resolve(&config(false, None, Some(SANDBOX_SECRET_KEY)), None).unwrap_err();
        assert!(e.contains("refused outside sandbox mode"), "{e}");
        let e = PgTarget::resolve(&config(false, Some("https://pg"), None), None).unwrap_err();
        assert!(e.contains("secret_key"), "{e}");
        let e = PgTarget::resolve(&config(false, Some("ftp://pg"), Some("live_sk_x")), None)
            .unwrap_err();
        assert!(e.contains("not an http(s) URL"), "{e}");
    }
}
