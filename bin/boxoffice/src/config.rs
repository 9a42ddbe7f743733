//! The whole platform's settings: the shared sections from libs/platform and one section per
//! service. See docs/configuration.md for every setting.

use std::path::Path;

use platform::{
    bus::BusSettings,
    config::ConfigError,
    db::DatabaseSettings,
    http::HttpSettings,
    service::{Directory, RedisSettings},
    telemetry::LogSettings,
};
use serde::Deserialize;

/// An http(s) URL without query, fragment, whitespace or control characters.
fn is_base_url(url: &str) -> bool {
    let scheme = url.starts_with("http://") || url.starts_with("https://");
    let clean =
        !url.contains(['?', '#']) && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    scheme && clean
}

/// Every setting, loaded from defaults, the optional file and `BOXOFFICE_*` variables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Sandbox mode (`sandbox`, env `BOXOFFICE_SANDBOX`): the fakes stand in for third parties
    /// (OAuth now; the PG, mail and SMS later) that are not configured for real. Unset: on in
    /// standalone (`--no-sandbox` turns it off), off in distributed mode. The launcher passes it
    /// down into each service's settings.
    pub sandbox: Option<bool>,
    /// The platform's public base URL as browsers reach it (`public_url`, env
    /// `BOXOFFICE_PUBLIC_URL`, e.g. `https://tickets.example.kr`): redirect URIs and links are
    /// built from it. Unset: `http://localhost:<port>` in standalone, `http://localhost:8080`
    /// otherwise.
    pub public_url: Option<String>,
    pub log: LogSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub bus: BusSettings,
    pub redis: RedisSettings,
    pub services: Directory,
    pub gateway: gateway::Config,
    pub user: user::Config,
    pub catalog: catalog::Config,
    pub seat: seat::Config,
    pub admission: admission::Config,
    pub order: order::Config,
    pub payment: payment::Config,
    pub notification: notification::Config,
    pub fakes: fakes::Config,
}

impl AppConfig {
    /// Loads and validates the settings.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let cfg: Self = platform::config::load(file)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url
            && !is_base_url(url)
        {
            return Err(ConfigError::setting(
                "public_url",
                format!("`{url}` is not an http(s) base URL (e.g. https://tickets.example.kr)"),
            ));
        }
        if self.http.body_limit_bytes == 0 {
            return Err(ConfigError::setting(
                "http.body_limit_bytes",
                "must be above 0",
            ));
        }
        if self.http.request_timeout_ms == 0 {
            return Err(ConfigError::setting(
                "http.request_timeout_ms",
                "must be above 0",
            ));
        }
        if let Some(url) = &self.database.url
            && platform::db::server_options(url).is_err()
        {
            return Err(ConfigError::setting(
                "database.url",
                format!("`{url}` is not a PostgreSQL URL (postgres://user@host:port)"),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::setting(
                "database.max_connections",
                "must be above 0",
            ));
        }
        if self.bus.partitions < 1 {
            return Err(ConfigError::setting("bus.partitions", "must be at least 1"));
        }
        self.redis.validate()?;
        Ok(())
    }
}
