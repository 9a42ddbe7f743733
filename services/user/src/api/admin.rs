//! Administration: granting roles and rotating the token signing key.

use axum::{
    Json,
    extract::{Path, State},
};
use platform::{
    auth::{AuthUser, Role},
    problem::{ApiError, ApiJson, FieldError},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiResult, AppState, Problem, fail};
use crate::store;

/// `POST /api/v1/admin/users/{id}/roles`: the user's complete set of roles.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RolesBody {
    #[serde(default)]
    roles: Vec<String>,
}

/// A user's roles after a change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserRoles {
    id: Uuid,
    email: String,
    roles: Vec<Role>,
}

/// A new signing key and when it starts signing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rotated {
    kid: String,
    activates_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /api/v1/admin/users/{id}/roles` (admin): replaces a user's roles.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/roles",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = RolesBody,
    responses(
        (status = 200, description = "The user's roles now (`buyer` is always kept)", body = UserRoles),
        (status = 400, description = "`validation_failed`: a name that is not a role", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn set_roles(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RolesBody>,
) -> ApiResult<Json<UserRoles>> {
    caller.require(Role::Admin)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such user"))?;
    let mut roles = Vec::new();
    for name in &body.roles {
        match Role::parse(name) {
            Some(r) => roles.push(r),
            None => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "roles",
                    format!("`{name}` is not a role (buyer, organizer, admin)"),
                )]));
            }
        }
    }
    // Everyone may buy: the buyer role is never taken away.
    roles.push(Role::Buyer);
    roles.sort();
    roles.dedup();
    let user = store::set_roles(&state.pool, id, &roles)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    tracing::info!(admin = %caller.id(), user_id = %user.id, roles = ?roles, "roles set");
    Ok(Json(UserRoles {
        roles: user.roles(),
        id: user.id,
        email: user.email,
    }))
}

/// `POST /api/v1/auth/keys/rotate` (admin): publishes a new signing key that takes over after
/// the activation delay; the old one stays published until its tokens expire.
#[utoipa::path(
    post,
    path = "/api/v1/auth/keys/rotate",
    tag = "admin",
    responses(
        (status = 200, description = "The new key, published now, signing from `activates_at`", body = Rotated),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn rotate_keys(
    State(state): State<AppState>,
    caller: AuthUser,
) -> ApiResult<Json<Rotated>> {
    caller.require(Role::Admin)?;
    let (kid, activates_at) = state.keys.rotate().await.map_err(fail)?;
    Ok(Json(Rotated { kid, activates_at }))
}
