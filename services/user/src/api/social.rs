//! Social login endpoints: send the browser to the provider, then sign in whoever comes back.
//!
//! Who a provider account signs in to:
//! - an already linked provider account signs in its user — except that an identity from a
//!   sandbox provider signs in only to the account it created, and never to one holding `admin`;
//! - else a **sandbox** identity may only make a new account (its email must be free);
//! - else a verified email links to the existing account of that email only when that account's
//!   email is verified too, it holds no `admin` role and the provider may link by email (Naver may
//!   not); otherwise `link_requires_login`: log in with the password, then link from the profile
//!   (`POST /api/v1/users/me/identities/{provider}`);
//! - else a new account is made.
//!
//! Every flow is bound to the browser that started it by an HttpOnly, SameSite=Lax cookie.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{
    auth::{AuthUser, Role},
    problem::{ApiError, FieldError},
};
use serde::Serialize;
use uuid::Uuid;

use super::{ApiResult, AppState, Problem, fail};
use crate::{
    domain::{DisplayName, Email},
    oauth::{self, Provider, ProviderKind, ProviderMode, ProviderUser},
    store::{self, CreateError, NewIdentity, NewUser, User},
    tokens::TokenPair,
};

/// How long the browser's binding cookie lives (the state's lifetime).
const COOKIE_MAX_AGE_SECS: u32 = 600;

fn provider(name: &str) -> ApiResult<ProviderKind> {
    ProviderKind::parse(name).ok_or_else(|| {
        ApiError::not_found(format!("no provider `{name}`; one of kakao, naver, google"))
    })
}

/// The enabled provider `name`: 404 `not_found` for an unknown name, 404 `provider_disabled`
/// for one that is neither configured nor sandboxed.
fn enabled<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Provider> {
    let kind = provider(name)?;
    state.oauth.provider(kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "provider_disabled",
            format!("sign-in with {name} is not available here"),
        )
    })
}

fn sandbox_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "sandbox_refused",
        "a sandbox identity signs in only to an account it created, never to an existing or an \
         administrator's account",
    )
}

fn link_requires_login(kind: ProviderKind) -> ApiError {
    let name = kind.as_str();
    ApiError::conflict(
        "link_requires_login",
        format!(
            "an account with this email exists; log in with its password, then link {name} from \
             your profile (POST /api/v1/users/me/identities/{name})"
        ),
    )
}

fn identity_taken() -> ApiError {
    ApiError::conflict(
        "identity_taken",
        "this provider account is already linked to another account",
    )
}

/// `Set-Cookie` binding a sign-in to the browser (`value` empty: removes it).
fn binding_cookie(state: &AppState, kind: ProviderKind, value: &str) -> ApiResult<HeaderValue> {
    let max_age = if value.is_empty() {
        0
    } else {
        COOKIE_MAX_AGE_SECS
    };
    let secure = if state.oauth.secure_cookie() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/api/v1/auth/oauth/{}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        oauth::cookie_name(kind),
        kind.as_str(),
    );
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

/// The value of the cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Marks a response that carries tokens as never to be cached (RFC 6749 §5.1): the password
/// login and refresh answers (the social callback sets it itself).
pub(super) async fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// One enabled provider in the login page's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderEntry {
    name: &'static str,
    mode: ProviderMode,
}

/// The providers a login page may offer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderList {
    providers: Vec<ProviderEntry>,
}

/// Where to send the browser to link a provider account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorizeUrl {
    authorize_url: String,
}

/// `GET /api/v1/auth/oauth/providers`: the providers a login page may offer.
#[utoipa::path(
    get,
    path = "/api/v1/auth/oauth/providers",
    tag = "social",
    responses((status = 200, description = "The enabled providers, each `configured` or `sandbox`", body = ProviderList)),
)]
pub async fn providers(State(state): State<AppState>) -> Json<ProviderList> {
    let list: Vec<ProviderEntry> = state
        .oauth
        .enabled()
        .iter()
        .map(|p| ProviderEntry {
            name: p.kind.as_str(),
            mode: p.mode,
        })
        .collect();
    Json(ProviderList { providers: list })
}

/// `GET /api/v1/auth/oauth/{provider}/authorize` → 302 to the provider, with the binding cookie.
#[utoipa::path(
    get,
    path = "/api/v1/auth/oauth/{provider}/authorize",
    tag = "social",
    params(("provider" = String, Path, description = "`kakao`, `naver` or `google`")),
    responses(
        (status = 302, description = "To the provider's consent page; sets the HttpOnly binding cookie",
            headers(("Location" = String, description = "The provider's authorize URL"), ("Set-Cookie" = String))),
        (status = 404, description = "`not_found` (no such provider), `provider_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (sign-ins started from this address), with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn authorize(
    State(state): State<AppState>,
    _: super::AuthorizeRateLimit,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let p = enabled(&state, &name)?;
    let begun = state.oauth.begin(p, None).await.map_err(fail)?;
    let cookie = binding_cookie(&state, p.kind, &begun.binding)?;
    let location = HeaderValue::from_str(&begun.url).map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

/// `POST /api/v1/users/me/identities/{provider}` (bearer): starts a sign-in at the provider that
/// links its account to the caller's. Answers `{authorize_url}` (send the browser there) and the
/// binding cookie; the callback then links and signs in.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/identities/{provider}",
    tag = "social",
    params(("provider" = String, Path, description = "`kakao`, `naver` or `google`")),
    responses(
        (status = 200, description = "Send the browser to `authorize_url`; sets the binding cookie", body = AuthorizeUrl),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`sandbox_refused`: a sandbox provider never links to an account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (no such provider), `provider_disabled`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn link_from_profile(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let p = enabled(&state, &name)?;
    if p.is_sandbox() {
        return Err(sandbox_refused());
    }
    store::by_id(&state.pool, caller.id())
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    let begun = state
        .oauth
        .begin(p, Some(caller.id()))
        .await
        .map_err(fail)?;
    let cookie = binding_cookie(&state, p.kind, &begun.binding)?;
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(AuthorizeUrl {
            authorize_url: begun.url,
        }),
    )
        .into_response())
}

/// A completed social sign-in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    #[serde(flatten)]
    tokens: TokenPair,
    user: SignedInUser,
}

/// Who signed in, whether the account was just made, and whether this sign-in linked the provider
/// account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedInUser {
    id: Uuid,
    email: String,
    name: String,
    created: bool,
    linked: bool,
}

/// `GET /api/v1/auth/oauth/{provider}/callback?code&state` (with the binding cookie) → tokens as
/// JSON, `Cache-Control: no-store`.
#[utoipa::path(
    get,
    path = "/api/v1/auth/oauth/{provider}/callback",
    tag = "social",
    params(
        ("provider" = String, Path, description = "`kakao`, `naver` or `google`"),
        ("code" = Option<String>, Query, description = "The provider's authorization code"),
        ("state" = Option<String>, Query, description = "The state `authorize` sent"),
        ("error" = Option<String>, Query, description = "Set by the provider when the user declined"),
    ),
    responses(
        (status = 200, description = "Signed in (`Cache-Control: no-store`); the account is made on a first sign-in", body = SignedIn),
        (status = 400, description = "`validation_failed` (code or state missing), `oauth_denied`, `invalid_state`, `state_cookie_mismatch`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized` (a linking sign-in whose account is gone)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`sandbox_refused`, `email_unverified`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (no such provider), `provider_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`link_requires_login`, `identity_taken`, `email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`oauth_provider_error`: the provider did not confirm the sign-in", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let p = enabled(&state, &name)?;
    let kind = p.kind;
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
    let binding = cookie(&headers, &oauth::cookie_name(kind));
    let done = state
        .oauth
        .complete(p, code, oauth_state, binding)
        .await
        .map_err(fail)?;
    let who = &done.who;
    let (user, created, linked) = match done.link_user {
        Some(user_id) => (link_to(&state, p, who, user_id).await?, false, true),
        None => account_for(&state, p, who).await?,
    };
    let tokens = state.sessions.sign_in(&user).await.map_err(fail)?;
    tracing::info!(
        user_id = %user.id,
        provider = kind.as_str(),
        sandbox = p.is_sandbox(),
        created,
        linked,
        "social sign-in"
    );
    let clear = binding_cookie(&state, kind, "")?;
    Ok((
        [
            (header::SET_COOKIE, clear),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(SignedIn {
            tokens,
            user: SignedInUser {
                id: user.id,
                email: user.email,
                name: user.name,
                created,
                linked,
            },
        }),
    )
        .into_response())
}

/// The provider's email when it vouches for it, else 403 `email_unverified`.
fn vouched_email(who: &ProviderUser) -> ApiResult<Email> {
    who.email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .filter(|_| who.email_verified)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "email_unverified",
                "the provider did not share a verified email address",
            )
        })
}

/// The account `who` signs in to, linking or creating it: `(user, created, linked)`.
async fn account_for(
    state: &AppState,
    p: &Provider,
    who: &ProviderUser,
) -> ApiResult<(User, bool, bool)> {
    let kind = p.kind;
    let sandbox = p.is_sandbox();
    let mut tx = state.pool.begin().await?;
    if let Some(linked) = store::by_identity(&mut tx, kind.as_str(), &who.subject).await? {
        let user = linked.user;
        let allowed = if sandbox {
            // The sandbox mints any subject: only rows it made, to accounts it made, non-admin.
            linked.sandbox && user.sandbox && !user.roles().contains(&Role::Admin)
        } else {
            // A real identity never signs in through a row the sandbox made.
            !linked.sandbox
        };
        if !allowed {
            tracing::warn!(user_id = %user.id, provider = kind.as_str(), sandbox,
                "social sign-in refused: identity and account of different origins");
            return Err(sandbox_refused());
        }
        return Ok((user, false, false));
    }
    let email = vouched_email(who)?;
    if let Some(existing) = store::by_email(&mut tx, email.as_str()).await? {
        if sandbox {
            tracing::warn!(user_id = %existing.id, provider = kind.as_str(),
                "sandbox sign-in refused: the email belongs to an existing account");
            return Err(sandbox_refused());
        }
        let admin = existing.roles().contains(&Role::Admin);
        if !kind.links_by_email() || !existing.email_verified || admin {
            tracing::info!(user_id = %existing.id, provider = kind.as_str(),
                account_verified = existing.email_verified, admin,
                "social email not linked automatically");
            return Err(link_requires_login(kind));
        }
        let identity = NewIdentity {
            provider: kind.as_str(),
            subject: &who.subject,
            email: Some(email.as_str()),
            sandbox: false,
        };
        if !store::link_identity(&mut tx, &identity, existing.id).await? {
            return Err(identity_taken());
        }
        tx.commit().await?;
        return Ok((existing, false, true));
    }
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
    let mut user = match store::create(&mut tx, &new).await {
        Ok(user) => user,
        Err(CreateError::EmailTaken) => {
            return Err(ApiError::conflict(
                "email_taken",
                "another sign-in created this account at the same moment; try again",
            ));
        }
        Err(e) => return Err(fail(e)),
    };
    // The sandbox proves nothing; a real provider that may link by email proved the address.
    user.email_verified = !sandbox && kind.links_by_email();
    user.sandbox = sandbox;
    store::set_origin(&mut tx, user.id, user.email_verified, user.sandbox).await?;
    let identity = NewIdentity {
        provider: kind.as_str(),
        subject: &who.subject,
        email: Some(email.as_str()),
        sandbox,
    };
    if !store::link_identity(&mut tx, &identity, user.id).await? {
        return Err(identity_taken());
    }
    tx.commit().await?;
    Ok((user, true, true))
}

/// Links `who` to `user_id`, who started the flow from the profile; the account's email becomes
/// verified when the provider vouches for that very address.
async fn link_to(
    state: &AppState,
    p: &Provider,
    who: &ProviderUser,
    user_id: Uuid,
) -> ApiResult<User> {
    if p.is_sandbox() {
        return Err(sandbox_refused());
    }
    let kind = p.kind;
    let mut tx = state.pool.begin().await?;
    let mut user = store::by_id(&mut *tx, user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    let email = who.email.as_deref().and_then(|e| Email::parse(e).ok());
    match store::by_identity(&mut tx, kind.as_str(), &who.subject).await? {
        Some(linked) if linked.user.id == user_id && !linked.sandbox => {}
        Some(_) => return Err(identity_taken()),
        None => {
            let identity = NewIdentity {
                provider: kind.as_str(),
                subject: &who.subject,
                email: email.as_ref().map(Email::as_str),
                sandbox: false,
            };
            if !store::link_identity(&mut tx, &identity, user_id).await? {
                return Err(identity_taken());
            }
        }
    }
    let proves_email = kind.links_by_email()
        && who.email_verified
        && email.as_ref().is_some_and(|e| e.as_str() == user.email);
    if proves_email && !user.email_verified {
        store::set_email_verified(&mut tx, user_id).await?;
        user.email_verified = true;
    }
    tx.commit().await?;
    tracing::info!(user_id = %user_id, provider = kind.as_str(), email_verified = user.email_verified,
        "provider linked from the profile");
    Ok(user)
}
