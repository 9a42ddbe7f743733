//! Password login, token refresh, logout and the published keys.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::problem::{ApiError, ApiJson, FieldError};
use serde::Deserialize;

use super::{ApiResult, AppState, ClientAddr, Problem, fail, rate_limited};
use crate::{domain::Email, store, tokens::TokenPair};

/// `POST /api/v1/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Login {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the email or the password is wrong",
    )
}

/// `POST /api/v1/auth/login`: a token pair for a right email and password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "A token pair (`Cache-Control: no-store`)", body = TokenPair),
        (status = 400, description = "`validation_failed`: email or password missing", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many failed logins for the account or from the address, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Json<TokenPair>> {
    let mut errors = Vec::new();
    if body.email.trim().is_empty() {
        errors.push(FieldError::new("email", "is required"));
    }
    if body.password.is_empty() {
        errors.push(FieldError::new("password", "is required"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // A malformed email is simply an unknown account: same answer, same work (its throttle key
    // is escaped and bounded, as it may hold anything).
    let email = Email::parse(&body.email).ok();
    let account_key = match &email {
        Some(e) => format!("email:{e}"),
        None => {
            let raw: String = body.email.trim().to_lowercase().chars().take(254).collect();
            format!("email:{}", raw.escape_default())
        }
    };
    let client_key = format!("ip:{client}");
    // Counted before the password is checked, so parallel guesses cannot outrun the lock.
    let attempt = match state.throttle.reserve(&account_key, &client_key).await? {
        Ok(attempt) => attempt,
        Err(secs) => return Err(rate_limited(secs, "too many failed logins")),
    };
    let user = match &email {
        Some(e) => {
            let mut conn = state.pool.acquire().await?;
            store::by_email(&mut conn, e.as_str()).await?
        }
        None => None,
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let ok = state
        .hasher
        .verify(&body.password, hash)
        .await
        .map_err(fail)?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("login refused");
        return Err(invalid_credentials());
    };
    state.throttle.succeeded(attempt).await?;
    // `None`: the password changed since it was read; the old one no longer signs in.
    let Some(pair) = state
        .sessions
        .sign_in_with_password(&user)
        .await
        .map_err(fail)?
    else {
        tracing::info!(user_id = %user.id, "login refused: the password changed meanwhile");
        return Err(invalid_credentials());
    };
    tracing::info!(user_id = %user.id, "logged in");
    Ok(Json(pair))
}

/// `POST /api/v1/auth/refresh` and `/logout`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    #[serde(default)]
    refresh_token: String,
}

fn required(body: &RefreshBody) -> ApiResult<&str> {
    let token = body.refresh_token.trim();
    if token.is_empty() {
        return Err(ApiError::validation(vec![FieldError::new(
            "refresh_token",
            "is required",
        )]));
    }
    Ok(token)
}

/// `POST /api/v1/auth/refresh`: spends a refresh token for the next pair.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "The next pair; the refresh token given is spent (`Cache-Control: no-store`)", body = TokenPair),
        (status = 400, description = "`validation_failed`: `refresh_token` missing", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_refresh_token`: unknown, expired, revoked, or reused (a reuse revokes the whole sign-in)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Json<TokenPair>> {
    let token = required(&body)?;
    Ok(Json(state.sessions.refresh(token).await.map_err(fail)?))
}

/// `POST /api/v1/auth/logout`: ends the refresh token's session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "The session is ended"),
        (status = 400, description = "`validation_failed`: `refresh_token` missing", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_refresh_token`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    let token = required(&body)?;
    state.sessions.logout(token).await.map_err(fail)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /.well-known/jwks.json`: cached for `user.tokens.jwks_max_age_secs`; verifiers refetch
/// after it, and when they meet a new key id.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "The published public keys (RFC 7517), `Cache-Control: public, max-age=...`", body = super::docs::JwkSetDoc)),
)]
pub async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let set = state.keys.jwks().map_err(fail)?;
    Ok((
        [(header::CACHE_CONTROL, state.keys.jwks_cache_control())],
        Json(set),
    )
        .into_response())
}
