//! A real OAuth2 / OpenID Connect provider that stands in for Kakao, Naver and Google. One server
//! serves all three, chosen by the first path segment (`/kakao/...`, `/naver/...`,
//! `/google/...`):
//!
//! - `GET /{p}/authorize` — the sign-in page: pick an email (and name) and approve or deny. Add
//!   `login_hint=<email>&auto=1` to skip the page and redirect straight back (tests, load runs);
//!   `email_verified=false` makes the provider report the email unverified.
//! - `POST /{p}/token` — authorization code grant; checks the client id and secret (form fields or
//!   HTTP Basic), the code (single use, 5 minutes), the redirect URI and the PKCE S256 verifier.
//!   Kakao and Google also answer an `id_token` (EdDSA, signed by this server's key).
//! - `GET /{p}/userinfo` — the account in that provider's own shape (Google's OIDC user info,
//!   Kakao's `/v2/user/me`, Naver's `/v1/nid/me`).
//! - `GET /{p}/jwks.json`, `GET /{p}/.well-known/openid-configuration`.
//!
//! Registered clients: `boxoffice-<p>` with secret `sandbox-<p>-secret`. Id tokens name the
//! issuer `https://oauth.sandbox.boxoffice.invalid/<p>`. Subjects are stable per email.

mod endpoints;
mod page;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use platform::auth::SigningKey;
use rand::RngCore;
use serde::Deserialize;

/// The issuer prefix of id tokens: `<ISSUER_BASE>/<provider>`.
pub const ISSUER_BASE: &str = "https://oauth.sandbox.boxoffice.invalid";

/// The providers this server imitates.
pub const PROVIDERS: &[&str] = &["kakao", "naver", "google"];

/// The registered client id for `provider`.
pub fn client_id(provider: &str) -> String {
    format!("boxoffice-{provider}")
}

/// The registered client secret for `provider`.
pub fn client_secret(provider: &str) -> String {
    format!("sandbox-{provider}-secret")
}

pub(crate) const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
pub(crate) const CODE_TTL: Duration = Duration::from_secs(300);

/// An approved sign-in waiting for its code to be exchanged.
#[derive(Clone)]
pub(crate) struct Grant {
    pub(crate) provider: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) nonce: Option<String>,
    pub(crate) scope: String,
    pub(crate) account: Account,
    pub(crate) issued: Instant,
}

/// Who signed in.
#[derive(Clone)]
pub(crate) struct Account {
    pub(crate) provider: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) verified: bool,
}

impl Account {
    /// A stable id per provider and email (FNV-1a), numeric like Kakao's and Google's.
    pub(crate) fn subject(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in format!("{}:{}", self.provider, self.email).bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h & 0x7fff_ffff_ffff_ffff).to_string()
    }
}

pub(crate) struct Provider {
    pub(crate) key: SigningKey,
    pub(crate) codes: Mutex<HashMap<String, Grant>>,
    pub(crate) tokens: Mutex<HashMap<String, Account>>,
}

pub(crate) type Shared = Arc<Provider>;

pub(crate) fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider's routes, rooted at `/`.
pub fn router() -> Router {
    let state = Arc::new(Provider {
        key: SigningKey::generate(format!("sandbox-{}", &random()[..8])),
        codes: Mutex::new(HashMap::new()),
        tokens: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/{provider}/authorize", get(authorize).post(approve))
        .route("/{provider}/token", post(endpoints::token))
        .route("/{provider}/userinfo", get(endpoints::userinfo))
        .route("/{provider}/jwks.json", get(endpoints::jwks))
        .route(
            "/{provider}/.well-known/openid-configuration",
            get(endpoints::discovery),
        )
        .with_state(state)
}

/// What the authorize page receives (query, or the approval form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthorizeParams {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
    nonce: Option<String>,
    login_hint: Option<String>,
    auto: Option<String>,
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<String>,
    decision: Option<String>,
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(page::error(why))).into_response()
}

/// Checks what must hold before anything is redirected to `redirect_uri`.
fn check(provider: &str, p: &AuthorizeParams) -> Result<(), &'static str> {
    if !PROVIDERS.contains(&provider) {
        return Err("unknown provider");
    }
    if p.client_id != client_id(provider) {
        return Err("unknown client_id");
    }
    if !(p.redirect_uri.starts_with("http://") || p.redirect_uri.starts_with("https://")) {
        return Err("redirect_uri must be an http(s) URL");
    }
    if p.response_type != "code" {
        return Err("response_type must be `code`");
    }
    if p.code_challenge.is_empty() || p.code_challenge_method != "S256" {
        return Err("PKCE with code_challenge_method=S256 is required");
    }
    Ok(())
}

fn back(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", page::url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{redirect_uri}{sep}{query}"))],
    )
        .into_response()
}

fn issue_code(state: &Shared, provider: &str, p: &AuthorizeParams, email: &str) -> Response {
    let email = email.trim().to_lowercase();
    if !email.contains('@') {
        return bad_request("enter an email address");
    }
    let name = p
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("member").to_owned());
    let verified = !matches!(p.email_verified.as_deref(), Some("false" | "0" | "off"));
    let code = random();
    let grant = Grant {
        provider: provider.to_owned(),
        client_id: p.client_id.clone(),
        redirect_uri: p.redirect_uri.clone(),
        challenge: p.code_challenge.clone(),
        nonce: p.nonce.clone(),
        scope: p.scope.clone(),
        account: Account {
            provider: provider.to_owned(),
            email,
            name,
            verified,
        },
        issued: Instant::now(),
    };
    let mut codes = state.codes.lock().unwrap_or_else(|e| e.into_inner());
    codes.retain(|_, g| g.issued.elapsed() < CODE_TTL);
    codes.insert(code.clone(), grant);
    drop(codes);
    back(&p.redirect_uri, &[("code", &code), ("state", &p.state)])
}

async fn authorize(
    State(state): State<Shared>,
    Path(provider): Path<String>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    if let Err(why) = check(&provider, &p) {
        return bad_request(why);
    }
    if matches!(p.auto.as_deref(), Some("1" | "true"))
        && let Some(email) = p.login_hint.clone()
    {
        return issue_code(&state, &provider, &p, &email);
    }
    Html(page::sign_in(&provider, &p)).into_response()
}

async fn approve(
    State(state): State<Shared>,
    Path(provider): Path<String>,
    Form(mut p): Form<AuthorizeParams>,
) -> Response {
    // An unticked checkbox sends nothing.
    p.email_verified.get_or_insert_with(|| "false".into());
    if let Err(why) = check(&provider, &p) {
        return bad_request(why);
    }
    if p.decision.as_deref() != Some("approve") {
        return back(
            &p.redirect_uri,
            &[("error", "access_denied"), ("state", &p.state)],
        );
    }
    let email = p.email.clone().unwrap_or_default();
    issue_code(&state, &provider, &p, &email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_stable_per_provider_and_email() {
        let a = |provider: &str, email: &str| Account {
            provider: provider.into(),
            email: email.into(),
            name: "n".into(),
            verified: true,
        };
        assert_eq!(
            a("kakao", "x@y.kr").subject(),
            a("kakao", "x@y.kr").subject()
        );
        assert_ne!(
            a("kakao", "x@y.kr").subject(),
            a("naver", "x@y.kr").subject()
        );
        assert_ne!(
            a("kakao", "x@y.kr").subject(),
            a("kakao", "z@y.kr").subject()
        );
        // Stable across runs and releases too (linked identities are stored by subject): the
        // FNV-1a of `kakao:x@y.kr`, top bit cleared, as a number.
        assert_eq!(a("kakao", "x@y.kr").subject(), "5924966447030349726");
    }

    #[test]
    fn the_authorize_request_needs_client_redirect_and_pkce() {
        let ok = AuthorizeParams {
            response_type: "code".into(),
            client_id: client_id("google"),
            redirect_uri: "http://localhost/cb".into(),
            code_challenge: "abc".into(),
            code_challenge_method: "S256".into(),
            ..Default::default()
        };
        assert_eq!(check("google", &ok), Ok(()));
        assert_eq!(check("myspace", &ok), Err("unknown provider"));
        assert_eq!(
            check("kakao", &ok),
            Err("unknown client_id"),
            "client of another provider"
        );
        let plain = AuthorizeParams {
            code_challenge_method: "plain".into(),
            ..ok.clone()
        };
        let pkce = Err("PKCE with code_challenge_method=S256 is required");
        assert_eq!(check("google", &plain), pkce);
        let no_challenge = AuthorizeParams {
            code_challenge: String::new(),
            ..ok.clone()
        };
        assert_eq!(check("google", &no_challenge), pkce);
        let token_flow = AuthorizeParams {
            response_type: "token".into(),
            ..ok.clone()
        };
        assert_eq!(
            check("google", &token_flow),
            Err("response_type must be `code`")
        );
        let js = AuthorizeParams {
            redirect_uri: "javascript:alert(1)".into(),
            ..ok
        };
        assert_eq!(
            check("google", &js),
            Err("redirect_uri must be an http(s) URL")
        );
    }

    #[test]
    fn page_values_are_escaped() {
        assert_eq!(
            page::escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(page::url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
