//! Retiring a compromised signing key at once.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use platform::{
    auth::{AuthUser, Role},
    problem::ApiError,
};

use super::{ApiResult, AppState, Problem, fail};
use crate::keys::{KeyError, Retired};

/// `POST /api/v1/auth/keys/{kid}/retire` (admin): the key stops being published, trusted by
/// this service and used to sign at once (other verifiers drop it at their next JWKS refetch,
/// within `user.tokens.jwks_max_age_secs`); when it was signing, another key signs from now.
/// 404 `key_not_found` for an unknown key id, 409 `key_already_retired` when it was retired so.
#[utoipa::path(
    post,
    path = "/api/v1/auth/keys/{kid}/retire",
    tag = "admin",
    params(("kid" = String, Path, description = "The key id (`kid` in the JWKS)")),
    responses(
        (status = 200, description = "Retired; which key signs now", body = Retired),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`key_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`key_already_retired`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn retire(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(kid): Path<String>,
) -> ApiResult<Json<Retired>> {
    caller.require(Role::Admin)?;
    match state.keys.retire(&kid).await {
        Ok(retired) => {
            tracing::warn!(admin = %caller.id(), kid = %retired.kid, "signing key retired");
            Ok(Json(retired))
        }
        Err(KeyError::UnknownKey(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            "no signing key has this id",
        )),
        Err(KeyError::AlreadyRetired(_)) => Err(ApiError::conflict(
            "key_already_retired",
            "this signing key is already retired",
        )),
        Err(other) => Err(fail(other)),
    }
}
