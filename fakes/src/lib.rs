//! Stand-ins for third parties that are real HTTP servers speaking the providers' APIs, so
//! standalone mode and tests work end to end without the internet. Each fake is a `Router`
//! served on its own port (distributed tests) or under `/sandbox/<name>/` through the gateway
//! (standalone). The fakes arrive with the services that call them.

pub mod oauth;

use axum::Router;

/// A fake third party: its sandbox name (the gateway mounts it at `/sandbox/<name>/`) and routes.
pub struct Fake {
    /// Sandbox name: `pg`, `oauth`, `mail`, `sms`.
    pub name: &'static str,
    /// Its HTTP routes, rooted at `/`.
    pub router: Router,
}

/// Every fake this build has.
pub fn all() -> Vec<Fake> {
    vec![Fake {
        name: "oauth",
        router: oauth::router(),
    }]
}
