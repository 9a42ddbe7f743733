//! Pieces every service's OpenAPI document shares: the problem body its errors carry and the
//! bearer security scheme. A service lists [`Problem`] in `components(schemas(...))` and adds
//! [`Bearer`] to `modifiers(...)`.

use serde::Serialize;
use utoipa::{
    Modify, ToSchema,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

/// An RFC 9457 problem, as every error is answered (`application/problem+json`; see
/// [`crate::problem`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `https://boxoffice.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// What happened, for people.
    pub detail: String,
}

/// Adds the `bearer` security scheme (an access token in `Authorization: Bearer`).
pub struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
