//! Typed configuration: defaults, then an optional TOML file, then environment variables with the
//! `BOXOFFICE_` prefix (nested keys joined by `__`, e.g. `BOXOFFICE_HTTP__PORT`). Any bad value
//! ends in one [`ConfigError`] that names the setting and its environment variable.

use std::path::Path;

use serde::de::DeserializeOwned;

/// The prefix of every environment variable the platform reads.
pub const ENV_PREFIX: &str = "BOXOFFICE";

/// A configuration that cannot be used, with the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {message}")]
pub struct ConfigError {
    /// One line that names the setting and what is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about one setting, named by its dotted key (`http.port`).
    pub fn setting(key: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            message: format!("setting `{key}` (env {}): {problem}", env_name(key)),
        }
    }
}

/// The environment variable that sets a dotted key: `seat.hold_ttl_secs` →
/// `BOXOFFICE_SEAT__HOLD_TTL_SECS`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.replace('.', "__").to_uppercase())
}

/// Variables with our prefix that are not settings: the config file's path, the PostgreSQL
/// binaries folder, the test suite's infrastructure addresses and run tag, and the scripts' own
/// folders and ports (`scripts/lib.sh`, `scripts/infra.sh`), which a `make test` run exports.
const NOT_SETTINGS: &[&str] = &[
    "BOXOFFICE_CONFIG",
    "BOXOFFICE_PG_BINDIR",
    "BOXOFFICE_TEST_",
    "BOXOFFICE_STATE_DIR",
    "BOXOFFICE_TOOLS_DIR",
    "BOXOFFICE_INFRA_",
];

/// Loads `T` from its defaults, the optional TOML `file`, and the environment.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(file, std::env::vars())
}

/// Like [`load`], reading variables from `vars` instead of the process environment (tests).
pub fn load_from<T: DeserializeOwned>(
    file: Option<&Path>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError {
                message: format!("config file {} does not exist", path.display()),
            });
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    let prefix = format!("{ENV_PREFIX}_");
    let env: config::Map<String, String> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix) && !NOT_SETTINGS.iter().any(|n| k.starts_with(n)))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    let cfg = builder.build().map_err(describe)?;
    cfg.try_deserialize().map_err(describe)
}

fn describe(err: config::ConfigError) -> ConfigError {
    match err {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => ConfigError::setting(&key, format!("expected {expected}, found {unexpected}")),
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => ConfigError::setting(&key, error),
        other => {
            let text = other.to_string();
            // serde's "unknown field `x`" / "missing field `x`" messages name the key themselves.
            ConfigError { message: text }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Http {
        port: u16,
        host: String,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Root {
        http: Http,
        name: String,
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nested_keys_come_from_prefixed_env() {
        let root: Root = load_from(
            None,
            vars(&[
                ("BOXOFFICE_HTTP__PORT", "9000"),
                ("BOXOFFICE_NAME", "x"),
                ("OTHER", "y"),
            ]),
        )
        .unwrap();
        assert_eq!(root.http.port, 9000);
        assert_eq!(root.name, "x");
    }

    #[test]
    fn the_scripts_own_variables_are_not_settings() {
        // `make test` exports these; a strict (deny_unknown_fields) config must not see them.
        #[derive(Debug, Deserialize, Default)]
        #[serde(default, deny_unknown_fields)]
        struct Strict {
            http: Http,
        }
        let root: Strict = load_from(
            None,
            vars(&[
                ("BOXOFFICE_HTTP__PORT", "9000"),
                ("BOXOFFICE_TEST_RUN", "rdeadbeef"),
                ("BOXOFFICE_TEST_LEASE", "42"),
                ("BOXOFFICE_STATE_DIR", "/tmp/s"),
                ("BOXOFFICE_TOOLS_DIR", "/tmp/t"),
                ("BOXOFFICE_INFRA_KAFKA_PORT", "19092"),
            ]),
        )
        .unwrap();
        assert_eq!(root.http.port, 9000);
        assert!(load_from::<Strict>(None, vars(&[("BOXOFFICE_STATE", "x")])).is_err());
    }

    #[test]
    fn bad_value_names_the_setting_and_its_variable() {
        let err = load_from::<Root>(None, vars(&[("BOXOFFICE_HTTP__PORT", "eighty")])).unwrap_err();
        assert!(err.message.contains("http.port"), "{}", err.message);
        assert!(
            err.message.contains("BOXOFFICE_HTTP__PORT"),
            "{}",
            err.message
        );
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "name = \"file\"\n[http]\nport = 1\nhost = \"h\"\n").unwrap();
        let root: Root = load_from(Some(&path), vars(&[("BOXOFFICE_HTTP__PORT", "2")])).unwrap();
        assert_eq!(
            (root.http.port, root.http.host.as_str(), root.name.as_str()),
            (2, "h", "file")
        );
    }

    #[test]
    fn missing_file_is_one_clear_error() {
        let err = load_from::<Root>(Some(Path::new("/nonexistent/x.toml")), vars(&[])).unwrap_err();
        assert!(err.message.contains("/nonexistent/x.toml"));
    }

    #[test]
    fn env_name_maps_dots() {
        assert_eq!(
            env_name("seat.hold_ttl_secs"),
            "BOXOFFICE_SEAT__HOLD_TTL_SECS"
        );
    }
}
