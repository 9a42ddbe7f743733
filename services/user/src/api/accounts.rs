//! Sign-up and the signed-in user's own account: profile and password.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use platform::{
    auth::{AuthUser, Role},
    problem::{ApiError, ApiJson, FieldError},
};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{ApiResult, AppState, ClientAddr, Problem, fail, rate_limited};
use crate::{
    domain::{DisplayName, Email, Password, Phone},
    store::{self, NewUser, User},
};

/// `POST /api/v1/users`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignUp {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: Option<String>,
}

/// A created account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Created {
    id: Uuid,
    email: String,
    name: String,
}

/// The signed-in user's account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Profile {
    id: Uuid,
    email: String,
    name: String,
    phone: Option<String>,
    roles: Vec<Role>,
    has_password: bool,
    created_at: DateTime<Utc>,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Self {
            roles: u.roles(),
            has_password: u.password_hash.is_some(),
            id: u.id,
            email: u.email,
            name: u.name,
            phone: u.phone,
            created_at: u.created_at,
        }
    }
}

fn check<T>(errors: &mut Vec<FieldError>, field: &str, r: Result<T, &str>) -> Option<T> {
    r.map_err(|m| errors.push(FieldError::new(field, m))).ok()
}

/// `POST /api/v1/users`: creates an account.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "accounts",
    request_body = SignUp,
    responses(
        (status = 201, description = "The account, with the buyer role", body = Created),
        (status = 400, description = "`validation_failed`: the email, the password (at least 10 characters, not the email) or the name, each named in `errors`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (sign-ups from this address), with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn sign_up(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<SignUp>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let email = check(&mut errors, "email", Email::parse(&body.email));
    let password = check(
        &mut errors,
        "password",
        Password::parse(&body.password, email.as_ref().map(Email::as_str)),
    );
    let name = check(&mut errors, "name", DisplayName::parse(&body.name));
    let phone = match body.phone.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => check(&mut errors, "phone", Phone::parse(p)),
    };
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // Counted once the request is valid, before the costly hash.
    if let Some(secs) = state.throttle.sign_up(&client).await? {
        return Err(rate_limited(secs, "too many sign-ups from this address"));
    }
    let hash = state.hasher.hash(password.expose()).await.map_err(fail)?;
    let mut tx = state.pool.begin().await?;
    let user = store::create(
        &mut tx,
        &NewUser {
            email: email.as_str(),
            name: name.as_str(),
            phone: phone.as_ref().map(Phone::as_str),
            password_hash: Some(&hash),
            roles: &[Role::Buyer],
        },
    )
    .await
    .map_err(fail)?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "account created");
    let body = Created {
        id: user.id,
        email: user.email,
        name: user.name,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn current(state: &AppState, caller: &AuthUser) -> ApiResult<User> {
    store::by_id(&state.pool, caller.id())
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))
}

/// `GET /api/v1/users/me`: the caller's profile.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "accounts",
    responses(
        (status = 200, description = "The caller's account", body = Profile),
        (status = 401, description = "`unauthorized`: no valid access token, or the account is gone", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<Profile>> {
    Ok(Json(current(&state, &caller).await?.into()))
}

/// Absent stays `None`, `null` becomes `Some(None)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/users/me`: fields left out are kept; `"phone": null` removes the phone.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ProfileUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    phone: Option<Option<String>>,
}

/// `PATCH /api/v1/users/me`: changes name and/or phone.
#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    tag = "accounts",
    request_body = ProfileUpdate,
    responses(
        (status = 200, description = "The account after the change", body = Profile),
        (status = 400, description = "`validation_failed`: the name or the phone", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn update_me(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> ApiResult<Json<Profile>> {
    let mut errors = Vec::new();
    let name = match &body.name {
        Some(n) => check(&mut errors, "name", DisplayName::parse(n)),
        None => None,
    };
    let phone = match &body.phone {
        None => None,
        Some(None) => Some(None),
        Some(Some(p)) if p.trim().is_empty() => Some(None),
        Some(Some(p)) => check(&mut errors, "phone", Phone::parse(p)).map(Some),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let phone_str = phone.as_ref().map(|p| p.as_ref().map(Phone::as_str));
    let user = store::update_profile(
        &state.pool,
        caller.id(),
        name.as_ref().map(DisplayName::as_str),
        phone_str,
    )
    .await?
    .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    Ok(Json(user.into()))
}

/// `POST /api/v1/users/me/password`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    new_password: String,
}

/// `POST /api/v1/users/me/password`: changes the password, revoking the other sessions. It needs
/// fresh proof, under the login throttle: the current password, or — for a social-only account
/// setting its first one — a session signed in to within `user.tokens.fresh_login_secs`. (The
/// session's sign-in time, not the access token's `iat`: a refresh re-issues access tokens
/// without a new sign-in.)
#[utoipa::path(
    post,
    path = "/api/v1/users/me/password",
    tag = "accounts",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every other session of the account is revoked"),
        (status = 400, description = "`validation_failed`: `new_password`, or a wrong `current_password`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`fresh_login_required`: a social-only account setting its first password signed in too long ago", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`password_changed`: changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: AuthUser,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let user = current(&state, &caller).await?;
    let new = Password::parse(&body.new_password, Some(&user.email))
        .map_err(|m| ApiError::validation(vec![FieldError::new("new_password", m)]))?;
    let attempt = match state
        .throttle
        .reserve(&format!("email:{}", user.email), &format!("ip:{client}"))
        .await?
    {
        Ok(attempt) => attempt,
        Err(secs) => return Err(rate_limited(secs, "too many failed attempts")),
    };
    if user.password_hash.is_some() {
        let given = body.current_password.as_deref().unwrap_or_default();
        let ok = state
            .hasher
            .verify(given, user.password_hash.as_deref())
            .await
            .map_err(fail)?;
        if !ok {
            tracing::info!(user_id = %user.id, "password change refused: wrong current password");
            return Err(ApiError::validation(vec![FieldError::new(
                "current_password",
                "is not your current password",
            )]));
        }
    } else {
        let signed_in = state.sessions.signed_in_at(user.id, caller.0.jti).await?;
        let fresh = chrono::Duration::seconds(state.fresh_login_secs);
        if signed_in.is_none_or(|at| at < Utc::now() - fresh) {
            tracing::info!(user_id = %user.id, "first password refused: no recent sign-in");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "fresh_login_required",
                format!(
                    "sign in again with your provider (within {} minutes) to set a password",
                    state.fresh_login_secs.div_euclid(60).max(1)
                ),
            ));
        }
    }
    state.throttle.succeeded(attempt).await?;
    let hash = state.hasher.hash(new.expose()).await.map_err(fail)?;
    let mut tx = state.pool.begin().await?;
    // The hash this proof was checked against must still be the account's; a concurrent change
    // (or a first password set meanwhile) wins and this one is refused.
    let changed =
        store::replace_password(&mut tx, user.id, user.password_hash.as_deref(), &hash).await?;
    if !changed {
        return Err(ApiError::conflict(
            "password_changed",
            "the password was changed meanwhile; sign in again",
        ));
    }
    let revoked = state
        .sessions
        .revoke_others(&mut tx, user.id, caller.0.jti)
        .await
        .map_err(fail)?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, revoked, "password changed; other sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}
