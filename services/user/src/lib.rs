//! The user service: accounts, password and social login (Kakao, Naver, Google), access tokens
//! (EdDSA JWTs verified by everyone through `/.well-known/jwks.json`) and rotating refresh
//! tokens, profiles, roles and login throttling. It owns UserDB. See docs/services/user.md.
//!
//! `start` opens UserDB, loads (or makes) the signing keys, creates or resets the configured
//! administrator and returns the routes; `api::router` builds the routes from a ready state.

pub mod api;
pub mod config;
pub mod domain;
pub mod hashing;
pub mod keys;
pub mod oauth;
pub mod store;
pub mod throttle;
pub mod tokens;

use std::time::Duration;

use platform::{
    auth::Role,
    http::Readiness,
    service::{Infra, Service, StartError},
};

pub use crate::config::Config;
use crate::{
    api::AppState,
    domain::{Email, Password},
    hashing::Hasher,
    keys::KeyRing,
    oauth::OAuth,
    store::NewUser,
    throttle::Throttle,
    tokens::Sessions,
};

/// The service's name: its database is `<prefix>user`, its config section `user`.
pub const NAME: &str = "user";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens the service's database and builds its routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let hasher = Hasher::new(&config.argon2).map_err(|e| StartError::Config(e.to_string()))?;
    let keys = KeyRing::start(&pool, &config.tokens, infra).await?;
    // In standalone the sandbox provider also listens on a loopback port; server-to-server calls
    // go there directly rather than through the gateway.
    let internal_sandbox = infra.directory.0.get("fake-oauth").cloned();
    let oauth = OAuth::new(pool.clone(), config, internal_sandbox.as_deref())
        .map_err(StartError::Config)?;
    let offered: Vec<String> = oauth
        .enabled()
        .iter()
        .map(|p| format!("{} ({})", p.kind.as_str(), mode_name(p.mode)))
        .collect();
    tracing::info!(sandbox = config.sandbox, providers = ?offered, "social login");
    ensure_admin(config, &pool, &hasher).await?;
    let state = AppState {
        sessions: Sessions::new(
            pool.clone(),
            keys.clone(),
            config.tokens.access_ttl_secs,
            config.tokens.refresh_ttl_secs,
        ),
        throttle: Throttle::new(pool.clone(), config.throttle.clone()),
        oauth,
        hasher,
        keys: keys.clone(),
        pool: pool.clone(),
        trusted_proxies: std::sync::Arc::new(config.trusted_proxies.clone()),
        fresh_login_secs: config.tokens.fresh_login_secs,
    };
    let relay = infra.spawn_relay(NAME, pool.clone());
    let sweeper = spawn_sweeper(
        state.sessions.clone(),
        state.throttle.clone(),
        infra.shutdown.clone(),
    );
    let reload = keys.spawn_reload(
        Duration::from_secs(config.tokens.key_reload_secs.max(1)),
        infra.shutdown.clone(),
    );
    Ok(Service {
        name: NAME,
        router: api::router(state),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![relay, reload, sweeper],
    })
}

/// Every 10 minutes, deletes long-expired refresh tokens and stale throttle counters.
fn spawn_sweeper(
    sessions: Sessions,
    throttle: Throttle,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let tokens = sessions.sweep().await;
                    let counters = throttle.sweep().await;
                    match (tokens, counters) {
                        (Ok(tokens), Ok(counters)) => {
                            tracing::debug!(tokens, counters, "swept expired rows");
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::warn!(error = %e, "sweeping expired rows failed");
                        }
                    }
                }
            }
        }
    })
}

fn mode_name(mode: oauth::ProviderMode) -> &'static str {
    match mode {
        oauth::ProviderMode::Configured => "configured",
        oauth::ProviderMode::Sandbox => "sandbox",
    }
}

/// Creates the configured administrator, or resets it. An existing account that did not hold
/// `admin` is promoted: first its refresh tokens are revoked and its linked provider accounts
/// removed (whoever could sign in to it before must not inherit the role), and it stops counting
/// as a sandbox-made account. An administrator whose configured password changed loses its
/// sessions too.
async fn ensure_admin(
    config: &Config,
    pool: &sqlx::PgPool,
    hasher: &Hasher,
) -> Result<(), StartError> {
    let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) else {
        return Ok(());
    };
    let bad = |what: &str, why: &str| StartError::Config(format!("user.{what} {why}"));
    let email = Email::parse(email).map_err(|why| bad("admin_email", why))?;
    let password = Password::parse(password, Some(email.as_str()))
        .map_err(|why| bad("admin_password", why))?;
    let db = |e: sqlx::Error| StartError::Other(format!("creating the administrator: {e}"));
    let other = |e: hashing::HashError| StartError::Other(e.to_string());
    let mut tx = pool.begin().await.map_err(db)?;
    match store::by_email(&mut tx, email.as_str()).await.map_err(db)? {
        Some(user) => {
            let mut roles = user.roles();
            let promoted = !roles.contains(&Role::Admin);
            let same_password = hasher
                .verify(password.expose(), user.password_hash.as_deref())
                .await
                .map_err(other)?;
            if promoted || !same_password {
                let tokens = tokens::revoke_user(&mut tx, user.id, None)
                    .await
                    .map_err(db)?;
                let identities = if promoted {
                    store::unlink_all(&mut tx, user.id).await.map_err(db)?
                } else {
                    0
                };
                tracing::warn!(
                    user_id = %user.id,
                    promoted,
                    revoked_sessions = tokens,
                    unlinked_identities = identities,
                    "administrator account taken over by the configuration: its sessions and \
                     linked identities were revoked first"
                );
            }
            if !same_password {
                let hash = hasher.hash(password.expose()).await.map_err(other)?;
                store::set_password(&mut tx, user.id, &hash)
                    .await
                    .map_err(db)?;
            }
            roles.push(Role::Admin);
            roles.sort();
            roles.dedup();
            sqlx::query("UPDATE users SET roles = $2, sandbox = false WHERE id = $1")
                .bind(user.id)
                .bind(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tracing::info!(user_id = %user.id, promoted, "administrator reset");
        }
        None => {
            let hash = hasher.hash(password.expose()).await.map_err(other)?;
            let user = store::create(
                &mut tx,
                &NewUser {
                    email: email.as_str(),
                    name: "Administrator",
                    phone: None,
                    password_hash: Some(&hash),
                    roles: &[Role::Buyer, Role::Admin],
                },
            )
            .await
            .map_err(|e| StartError::Other(format!("creating the administrator: {e}")))?;
            tracing::info!(user_id = %user.id, "administrator created");
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}
