//! Social login endpoints: send the browser to the provider, then sign in whoever comes back.
//! A provider account already linked signs in its user; otherwise it is linked to the account
//! with the same verified email, or a new account is made.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{
    auth::Role,
    problem::{ApiError, FieldError},
};
use serde::Serialize;
use uuid::Uuid;

use super::{ApiResult, AppState, fail};
use crate::{
    domain::{DisplayName, Email},
    oauth::{ProviderKind, ProviderUser},
    store::{self, CreateError, NewUser, User},
    tokens::TokenPair,
};

fn provider(name: &str) -> ApiResult<ProviderKind> {
    ProviderKind::parse(name).ok_or_else(|| {
        ApiError::not_found(format!("no provider `{name}`; one of kakao, naver, google"))
    })
}

/// `GET /api/v1/auth/oauth/{provider}/authorize` → 302 to the provider.
pub async fn authorize(
    State(state): State<AppState>,
    _: super::AuthorizeRateLimit,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let kind = provider(&name)?;
    let url = state.oauth.begin(kind).await.map_err(fail)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response())
}

/// A completed social sign-in.
#[derive(Serialize)]
pub struct SignedIn {
    #[serde(flatten)]
    tokens: TokenPair,
    user: SignedInUser,
}

/// Who signed in, and whether the account was just made.
#[derive(Serialize)]
pub struct SignedInUser {
    id: Uuid,
    email: String,
    name: String,
    created: bool,
}

/// `GET /api/v1/auth/oauth/{provider}/callback?code&state` → tokens as JSON.
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<SignedIn>> {
    let kind = provider(&name)?;
    if let Some(error) = query.get("error") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "oauth_denied",
            format!("the provider did not sign you in ({error})"),
        ));
    }
    let mut errors = Vec::new();
    for field in ["code", "state"] {
        if query.get(field).is_none_or(|v| v.is_empty()) {
            errors.push(FieldError::new(field, "is required"));
        }
    }
    let (Some(code), Some(oauth_state)) = (query.get("code"), query.get("state")) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let who = state
        .oauth
        .complete(kind, code, oauth_state)
        .await
        .map_err(fail)?;
    let (user, created) = account_for(&state, kind, &who).await?;
    let tokens = state.sessions.sign_in(&user).await.map_err(fail)?;
    tracing::info!(user_id = %user.id, provider = kind.as_str(), created, "social sign-in");
    Ok(Json(SignedIn {
        tokens,
        user: SignedInUser {
            id: user.id,
            email: user.email,
            name: user.name,
            created,
        },
    }))
}

/// The account `who` signs in to, linking or creating it; `true` when created.
async fn account_for(
    state: &AppState,
    kind: ProviderKind,
    who: &ProviderUser,
) -> ApiResult<(User, bool)> {
    let provider = kind.as_str();
    let mut tx = state.pool.begin().await?;
    if let Some(user) = store::by_identity(&mut tx, provider, &who.subject).await? {
        return Ok((user, false));
    }
    let email = who
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .filter(|_| who.email_verified)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "email_unverified",
                "the provider did not share a verified email address",
            )
        })?;
    let (user, created) = match store::by_email(&mut tx, email.as_str()).await? {
        Some(user) => (user, false),
        None => {
            let fallback = email.as_str().split('@').next().unwrap_or("member");
            let name = who
                .name
                .as_deref()
                .and_then(|n| DisplayName::parse(n).ok())
                .or_else(|| DisplayName::parse(fallback).ok())
                .map(DisplayName::into_string)
                .unwrap_or_else(|| "member".into());
            let new = NewUser {
                email: email.as_str(),
                name: &name,
                phone: None,
                password_hash: None,
                roles: &[Role::Buyer],
            };
            match store::create(&mut tx, &new).await {
                Ok(user) => (user, true),
                Err(CreateError::EmailTaken) => {
                    return Err(ApiError::conflict(
                        "email_taken",
                        "another sign-in created this account at the same moment; try again",
                    ));
                }
                Err(e) => return Err(fail(e)),
            }
        }
    };
    store::link_identity(
        &mut tx,
        provider,
        &who.subject,
        user.id,
        Some(email.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok((user, created))
}
