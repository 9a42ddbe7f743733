//! The HTTP API (paths in docs/services/user.md): the shared state, the router and how the
//! service's errors become problem+json.

mod accounts;
mod admin;
mod auth;
mod social;

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{StatusCode, request::Parts},
    routing::{get, post},
};
use platform::{auth::Verifier, problem::ApiError};
use sqlx::PgPool;

use crate::{
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
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/keys/rotate", post(admin::rotate_keys))
        .route(
            "/api/v1/auth/oauth/{provider}/authorize",
            get(social::authorize),
        )
        .route(
            "/api/v1/auth/oauth/{provider}/callback",
            get(social::callback),
        )
        .route("/api/v1/admin/users/{id}/roles", post(admin::set_roles))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .with_state(state)
}

/// The caller's address: the last `x-forwarded-for` entry (the one the gateway added) when it is
/// an IP address, else the connection's peer.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| ip.to_string());
        let peer = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        Ok(Self(forwarded.unwrap_or_else(peer)))
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
