//! The service's settings (`notification.*`, env `BOXOFFICE_NOTIFICATION__...`).

use serde::Deserialize;

use crate::domain::Locale;

/// Settings (`notification.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Language of a recipient who chose none (env `BOXOFFICE_NOTIFICATION__DEFAULT_LOCALE`,
    /// `ko` or `en`; default `ko`).
    pub default_locale: Locale,
    /// The web UI's address, for links in messages (env `BOXOFFICE_NOTIFICATION__PUBLIC_URL`).
    pub public_url: String,
    /// Email over SMTP (`notification.smtp.*`).
    pub smtp: SmtpConfig,
    /// SMS through the provider's HTTP API (`notification.sms.*`).
    pub sms: SmsConfig,
    /// Retries of temporary failures (`notification.retry.*`).
    pub retry: RetryConfig,
    /// Pause between two looks for due deliveries when none was due, ms (env
    /// `BOXOFFICE_NOTIFICATION__POLL_INTERVAL_MS`; default 500, min 10).
    pub poll_interval_ms: u64,
    /// Deliveries taken per look (env `BOXOFFICE_NOTIFICATION__BATCH`; default 20).
    pub batch: i64,
    /// How long a delivery being sent is reserved for its sender before another may take it
    /// again (a sender that died), ms (env `BOXOFFICE_NOTIFICATION__LEASE_MS`; default 60000).
    pub lease_ms: u64,
    /// The reminder before a performance (`notification.reminder.*`).
    pub reminder: ReminderConfig,
    /// A folder with replacement templates, `<ko|en>/<kind>.j2` (env
    /// `BOXOFFICE_NOTIFICATION__TEMPLATES_DIR`; unset: the built-in ones).
    pub templates_dir: Option<std::path::PathBuf>,
    /// Days a `sent` or `skipped` delivery (and a parked payment notice) is kept (env
    /// `BOXOFFICE_NOTIFICATION__RETENTION_DAYS`; default 90; 0 keeps everything). Dead letters
    /// are kept.
    pub retention_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_locale: Locale::Ko,
            public_url: "http://localhost:8080".into(),
            smtp: SmtpConfig::default(),
            sms: SmsConfig::default(),
            retry: RetryConfig::default(),
            poll_interval_ms: 500,
            batch: 20,
            lease_ms: 60_000,
            reminder: ReminderConfig::default(),
            templates_dir: None,
            retention_days: 90,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (the sandbox's catcher, a relay on loopback).
    #[default]
    None,
    /// Plain connection upgraded with `STARTTLS`, required (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// `notification.smtp.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host (env `BOXOFFICE_NOTIFICATION__SMTP__HOST`; default `127.0.0.1`).
    pub host: String,
    /// Server port (env `BOXOFFICE_NOTIFICATION__SMTP__PORT`; default 1025, the catcher's).
    pub port: u16,
    /// `none`, `starttls` or `tls` (env `BOXOFFICE_NOTIFICATION__SMTP__TLS`; default `none`).
    pub tls: SmtpTls,
    /// Login, if the server asks for one (env `BOXOFFICE_NOTIFICATION__SMTP__USERNAME`).
    pub username: Option<String>,
    /// Its password (env `BOXOFFICE_NOTIFICATION__SMTP__PASSWORD`).
    pub password: Option<String>,
    /// The sender's address (env `BOXOFFICE_NOTIFICATION__SMTP__FROM_ADDRESS`).
    pub from_address: String,
    /// The sender's display name (env `BOXOFFICE_NOTIFICATION__SMTP__FROM_NAME`).
    pub from_name: String,
    /// The name given in `EHLO` (env `BOXOFFICE_NOTIFICATION__SMTP__HELO_NAME`).
    pub helo_name: String,
    /// Longest wait for the server, ms (env `BOXOFFICE_NOTIFICATION__SMTP__TIMEOUT_MS`).
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1025,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from_address: "no-reply@boxoffice.invalid".into(),
            from_name: "Boxoffice".into(),
            helo_name: "boxoffice.invalid".into(),
            timeout_ms: 10_000,
        }
    }
}

/// `notification.sms.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// Whether SMS is sent at all (env `BOXOFFICE_NOTIFICATION__SMS__ENABLED`; default true).
    pub enabled: bool,
    /// The provider's API base, Solapi's shape (env `BOXOFFICE_NOTIFICATION__SMS__URL`; unset:
    /// no provider, SMS deliveries are dead-lettered; standalone's sandbox mode and
    /// `boxoffice cluster` set it to the SMS sandbox).
    pub url: Option<String>,
    /// API key (env `BOXOFFICE_NOTIFICATION__SMS__API_KEY`).
    pub api_key: String,
    /// API secret (env `BOXOFFICE_NOTIFICATION__SMS__API_SECRET`).
    pub api_secret: String,
    /// The registered sender number (env `BOXOFFICE_NOTIFICATION__SMS__SENDER`).
    pub sender: String,
    /// Longest wait for one call, ms (env `BOXOFFICE_NOTIFICATION__SMS__TIMEOUT_MS`).
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            url: None,
            api_key: "sandbox-sms-key".into(),
            api_secret: "sandbox-sms-secret".into(),
            sender: "0215880000".into(),
            timeout_ms: 5_000,
        }
    }
}

/// `notification.retry.*`: exponential backoff with jitter for temporary failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries before a delivery is dead-lettered (env
    /// `BOXOFFICE_NOTIFICATION__RETRY__MAX_ATTEMPTS`; default 8).
    pub max_attempts: i32,
    /// The first pause, ms (env `BOXOFFICE_NOTIFICATION__RETRY__BASE_MS`; default 2000); it
    /// doubles per try.
    pub base_ms: u64,
    /// The longest pause, ms (env `BOXOFFICE_NOTIFICATION__RETRY__MAX_MS`; default 1 hour).
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_ms: 2_000,
            max_ms: 3_600_000,
        }
    }
}

/// `notification.reminder.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReminderConfig {
    /// Whether reminders are sent (env `BOXOFFICE_NOTIFICATION__REMINDER__ENABLED`).
    pub enabled: bool,
    /// How long before a performance its reminder goes, ms (env
    /// `BOXOFFICE_NOTIFICATION__REMINDER__LEAD_MS`; default 24 hours: the day before).
    pub lead_ms: u64,
    /// Pause between the scheduler's looks, ms (env
    /// `BOXOFFICE_NOTIFICATION__REMINDER__INTERVAL_MS`; default 60000, min 10).
    pub interval_ms: u64,
}

impl Default for ReminderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lead_ms: 86_400_000,
            interval_ms: 60_000,
        }
    }
}
