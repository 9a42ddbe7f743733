//! Stand-ins for third parties that are real HTTP servers speaking the providers' APIs, so
//! standalone mode and tests work end to end without the internet. Each fake is a `Router`
//! served on its own port (distributed tests) or under `/sandbox/<name>/` through the gateway
//! (standalone). The fakes arrive with the services that call them. They run only in sandbox
//! mode: standalone starts them unless `--no-sandbox`; distributed mode when asked for
//! (`boxoffice serve fake-<name>`).

pub mod mail;
pub mod oauth;
pub mod pg;
pub mod sms;

use axum::Router;
use serde::Deserialize;

/// A fake third party: its sandbox name (the gateway mounts it at `/sandbox/<name>/`) and routes.
pub struct Fake {
    /// Sandbox name: `pg`, `oauth`, `mail`, `sms`.
    pub name: &'static str,
    /// Its HTTP routes, rooted at `/`.
    pub router: Router,
}

/// The fakes' settings (`fakes.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The OAuth provider (`fakes.oauth.*`).
    pub oauth: oauth::Settings,
    /// The payment gateway (`fakes.pg.*`).
    pub pg: pg::Settings,
    /// The mail catcher (`fakes.mail.*`).
    pub mail: mail::Settings,
}

/// How each fake is set up when it starts (the launcher derives it from the settings and the
/// platform's own addresses).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The OAuth provider's registrations.
    pub oauth: oauth::Options,
    /// The payment gateway's keys, redirect origins, webhooks and faults.
    pub pg: pg::Options,
    /// The mail catcher's store, shared with its SMTP server ([`mail::smtp::serve`]), which the
    /// launcher starts on its own port.
    pub mail: mail::Mailbox,
    /// The SMS sandbox's store.
    pub sms: sms::Outbox,
}

/// The names of every fake this build has.
pub const NAMES: &[&str] = &["oauth", "pg", "mail", "sms"];

/// Every fake this build has.
pub fn all(options: &Options) -> Vec<Fake> {
    vec![
        Fake {
            name: "oauth",
            router: oauth::router(options.oauth.clone()),
        },
        Fake {
            name: "pg",
            router: pg::router(options.pg.clone()),
        },
        Fake {
            name: "mail",
            router: mail::router(options.mail.clone()),
        },
        Fake {
            name: "sms",
            router: sms::router(options.sms.clone()),
        },
    ]
}
