//! The HTTP API (paths in docs/services/user.md): the shared state, the router and how the
//! service's errors become problem+json.

mod accounts;
mod admin;
mod auth;
pub mod docs;
mod keys;
mod social;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Router,
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{StatusCode, request::Parts},
    routing::{get, post},
};
use docs::Problem;
use platform::{auth::Verifier, problem::ApiError};
use sqlx::PgPool;

use crate::{
    config::TrustedProxies,
    hashing::{HashError, Hasher},
    keys::{KeyError, KeyRing},
    oauth::{OAuth, OAuthError},
    store::CreateError,
    throttle::Throttle,
    tokens::{Sessions, TokenError},
};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// UserDB.
    pub pool: PgPool,
    /// Password hashing.
    pub hasher: Hasher,
    /// Signing keys.
    pub keys: KeyRing,
    /// Token issuing and rotation.
    pub sessions: Sessions,
    /// Login throttling.
    pub throttle: Throttle,
    /// Social login.
    pub oauth: OAuth,
    /// Peers whose `x-forwarded-for` is believed (`user.trusted_proxies`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// How recent a sign-in proves itself, in seconds (`user.tokens.fresh_login_secs`).
    pub fresh_login_secs: i64,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.keys.verifier()
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/users", post(accounts::sign_up))
        .route(
            "/api/v1/users/me",
            get(accounts::me).patch(accounts::update_me),
        )
        .route("/api/v1/users/me/password", post(accounts::change_password))
        .route(
            "/api/v1/auth/login",
            post(auth::login).layer(axum::middleware::map_response(social::no_store)),
        )
        .route(
            "/api/v1/auth/refresh",
            post(auth::refresh).layer(axum::middleware::map_response(social::no_store)),
        )
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/keys/{kid}/retire", post(keys::retire))
        .route("/api/v1/auth/keys/rotate", post(admin::rotate_keys))
        .route("/api/v1/auth/oauth/providers", get(social::providers))
        .route(
            "/api/v1/auth/oauth/{provider}/authorize",
            get(social::authorize),
        )
        .route(
            "/api/v1/auth/oauth/{provider}/callback",
            get(social::callback),
        )
        .route(
            "/api/v1/users/me/identities/{provider}",
            post(social::link_from_profile),
        )
        .route("/api/v1/admin/users/{id}/roles", post(admin::set_roles))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/api/docs/user/openapi.json", get(docs::openapi_json))
        .with_state(state)
}

/// The caller's address. From a peer that is not a trusted proxy (`user.trusted_proxies`), the
/// peer itself, whatever `x-forwarded-for` claims. From a trusted proxy, `x-forwarded-for` is
/// walked from the right (the entry the nearest proxy added) past further trusted proxies: the
/// first other address is the client. An entry that is not an IP address ends the walk at the
/// last trusted hop, since no proxy we trust wrote it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

/// The client address of a request from `peer` carrying `forwarded` (`x-forwarded-for` values
/// in order), given the trusted proxies.
pub fn client_addr<'a>(
    peer: Option<IpAddr>,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> String {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return "unknown".into();
    };
    let mut client = peer;
    if trusted.contains(client) {
        for entry in forwarded.flat_map(|v| v.split(',')).rev() {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !trusted.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    client.to_string()
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>();
        Ok(Self(client_addr(
            peer,
            forwarded.into_iter(),
            &state.trusted_proxies,
        )))
    }
}

/// 429 `rate_limited` with `Retry-After: secs`.
pub(crate) fn rate_limited(secs: i64, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{what}; try again in {secs} s"),
    )
    .with("retry_after_secs", secs)
}

/// The per-client rate limit of starting a social sign-in
/// (`GET /api/v1/auth/oauth/{provider}/authorize`, `user.throttle.authorize_*`): as a handler
/// argument, it answers 429 `rate_limited` with `Retry-After` before the handler runs.
pub struct AuthorizeRateLimit;

impl FromRequestParts<AppState> for AuthorizeRateLimit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Ok(ClientAddr(client)) = ClientAddr::from_request_parts(parts, state).await;
        match state.throttle.authorize(&client).await? {
            Some(secs) => Err(rate_limited(secs, "too many sign-ins started")),
            None => Ok(Self),
        }
    }
}

/// Errors of the service's own parts, mapped to problems.
pub(crate) struct Failure(ApiError);

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        f.0
    }
}

impl From<HashError> for Failure {
    fn from(e: HashError) -> Self {
        Self(ApiError::internal(e))
    }
}

impl From<KeyError> for Failure {
    fn from(e: KeyError) -> Self {
        Self(match e {
            KeyError::Db(db) => db.into(),
            other => ApiError::internal(other),
        })
    }
}

impl From<TokenError> for Failure {
    fn from(e: TokenError) -> Self {
        Self(match e {
            TokenError::Invalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "the refresh token is unknown, expired or revoked",
            ),
            TokenError::Reused => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "the refresh token was already used; every session of its sign-in is revoked",
            ),
            TokenError::Db(db) => db.into(),
            TokenError::Key(k) => Failure::from(k).0,
        })
    }
}

impl From<CreateError> for Failure {
    fn from(e: CreateError) -> Self {
        Self(match e {
            CreateError::EmailTaken => {
                ApiError::conflict("email_taken", "an account with this email already exists")
            }
            CreateError::Db(db) => db.into(),
            CreateError::Outbox(o) => ApiError::internal(o),
        })
    }
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Self(match e {
            OAuthError::InvalidState => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_state",
                "the sign-in is unknown or expired; start again",
            ),
            OAuthError::BrowserMismatch => ApiError::new(
                StatusCode::BAD_REQUEST,
                "state_cookie_mismatch",
                "this sign-in was started in another browser, or its cookie was blocked (open the \
                 site at its public address); start again",
            ),
            OAuthError::Provider(why) => {
                tracing::warn!(reason = %why, "social sign-in refused by the provider step");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "oauth_provider_error",
                    "the provider did not confirm the sign-in; start again",
                )
            }
            OAuthError::Db(db) => db.into(),
        })
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self(e.into())
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

/// Handler result.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// `?` for the service's error types inside handlers.
pub(crate) fn fail<E: Into<Failure>>(e: E) -> ApiError {
    e.into().0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(peer: &str, xff: &[&str], trusted: &str) -> String {
        client_addr(
            Some(peer.parse().unwrap()),
            xff.iter().copied(),
            &trusted.parse().unwrap(),
        )
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let lo = "127.0.0.0/8, ::1";
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(addr("203.0.113.9", &["198.51.100.1"], lo), "203.0.113.9");
        assert_eq!(addr("127.0.0.1", &["198.51.100.1"], ""), "127.0.0.1");
        // A trusted peer: the rightmost address that is not a trusted proxy.
        assert_eq!(
            addr("127.0.0.1", &["1.1.1.1, 198.51.100.1"], lo),
            "198.51.100.1"
        );
        let two = "127.0.0.1, 10.0.0.0/8";
        assert_eq!(
            addr("127.0.0.1", &["1.1.1.1, 198.51.100.1, 10.1.2.3"], two),
            "198.51.100.1"
        );
        // Several headers read as one list, in order.
        assert_eq!(
            addr("::1", &["1.1.1.1", "198.51.100.2"], lo),
            "198.51.100.2"
        );
        // No header, or nothing but proxies: the last trusted hop.
        assert_eq!(addr("127.0.0.1", &[], lo), "127.0.0.1");
        assert_eq!(addr("127.0.0.1", &["10.0.0.5"], two), "10.0.0.5");
        // Garbage no trusted proxy could have written ends the walk.
        assert_eq!(addr("127.0.0.1", &["1.1.1.1, nonsense"], lo), "127.0.0.1");
        // IPv4-mapped peers are IPv4.
        assert_eq!(addr("::ffff:127.0.0.1", &["192.0.2.4"], lo), "192.0.2.4");
        assert_eq!(
            client_addr(None, ["192.0.2.4"].into_iter(), &TrustedProxies::default()),
            "unknown"
        );
    }
}
