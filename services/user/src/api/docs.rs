//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions, served at `GET /api/docs/user/openapi.json`.

pub use platform::openapi::{Bearer, Problem};

use axum::Json;
use utoipa::{OpenApi, ToSchema};

/// A JSON Web Key Set (RFC 7517) as `/.well-known/jwks.json` publishes it: the public keys that
/// verify access tokens, each found by its `kid`.
#[derive(serde::Serialize, ToSchema)]
// Describes the JSON the `jsonwebtoken` crate's `JwkSet` serialises to
pub struct JwkSetDoc {
    keys: Vec<JwkDoc>,
}

/// One published public key.
#[derive(serde::Serialize, ToSchema)]
pub struct JwkDoc {
    /// The key type, e.g. `OKP` or `EC`.
    kty: String,
    /// The key id that access tokens name in their header.
    kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    use_: Option<String>,
    /// The signing algorithm, e.g. `EdDSA`.
    alg: Option<String>,
    /// The curve, for `OKP` and `EC` keys.
    crv: Option<String>,
    /// The public key (base64url).
    x: Option<String>,
    /// The second coordinate, for `EC` keys.
    y: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice user service",
        description = "Accounts, password and social sign-in (Kakao, Naver, Google), access and \
                       refresh tokens, the published signing keys, roles."
    ),
    paths(
        super::accounts::sign_up, super::accounts::me, super::accounts::update_me,
        super::accounts::change_password, super::auth::login, super::auth::refresh,
        super::auth::logout, super::auth::jwks, super::keys::retire, super::admin::rotate_keys,
        super::admin::set_roles, super::social::providers, super::social::authorize,
        super::social::callback, super::social::link_from_profile,
    ),
    components(schemas(
        Problem, JwkSetDoc, JwkDoc, super::accounts::SignUp, super::accounts::Created,
        super::accounts::Profile, super::accounts::ProfileUpdate, super::accounts::PasswordChange,
        super::auth::Login, super::auth::RefreshBody, crate::tokens::TokenPair,
        crate::keys::Retired, super::admin::RolesBody, super::admin::UserRoles,
        super::admin::Rotated, super::social::ProviderList, super::social::ProviderEntry,
        super::social::AuthorizeUrl, super::social::SignedIn, super::social::SignedInUser,
        crate::oauth::ProviderMode, platform::auth::Role,
    )),
    modifiers(&Bearer),
    tags(
        (name = "accounts", description = "Sign-up and the caller's account"),
        (name = "auth", description = "Password sign-in, tokens and the published keys"),
        (name = "social", description = "Sign-in with Kakao, Naver, Google"),
        (name = "admin", description = "Roles and signing keys (admins)"),
    ),
)]
struct ApiDoc;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/docs/user/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
