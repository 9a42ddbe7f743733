//! A real OAuth2 / OpenID Connect provider that stands in for Kakao, Naver and Google. One server
//! serves all three, chosen by the first path segment (`/kakao/...`, `/naver/...`,
//! `/google/...`):
//!
//! - `GET /{p}/authorize` — the sign-in page: pick an email (and name) and approve or deny. Add
//!   `login_hint=<email>&auto=1` to skip the page and redirect straight back (tests, load runs);
//!   `email_verified=false` makes the provider report the email unverified, `email_valid=false`
//!   (Kakao's `is_email_valid`) invalid.
//! - `POST /{p}/token` — authorization code grant; checks the client id and secret (form fields or
//!   HTTP Basic), the code (single use, 5 minutes), the redirect URI and the PKCE S256 verifier.
//!   Kakao and Google also answer an `id_token` (EdDSA, signed by this server's key). Answers
//!   carry `Cache-Control: no-store`.
//! - `GET /{p}/userinfo` — the account in that provider's own shape (Google's OIDC user info,
//!   Kakao's `/v2/user/me`, Naver's `/v1/nid/me`).
//! - `GET /{p}/jwks.json`, `GET /{p}/.well-known/openid-configuration`.
//!
//! Registered clients: `boxoffice-<p>` with secret `sandbox-<p>-secret` (plus any in
//! [`Options::clients`]). The browser is sent back only to a registered redirect URI
//! ([`Options::redirect_uris`], compared exactly): anything else — another host, a control
//! character — is a 400 page, never a redirect. Codes and access tokens live in memory in maps of
//! bounded size with a lifetime. Bad input is a 4xx (an OAuth error object on the back channel),
//! never a 500. Id tokens name the issuer `https://oauth.sandbox.boxoffice.invalid/<p>`. Subjects
//! are stable per email.

mod bounded;
mod endpoints;
mod page;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Form, Router,
    extract::{
        Path, Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use platform::auth::SigningKey;
use rand::RngCore;
use serde::{Deserialize, Deserializer};

use self::bounded::Bounded;

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
/// Access tokens live as long as the token response says (`expires_in`).
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A client registered at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `kakao`, `naver` or `google`.
    pub provider: String,
    /// Its client id.
    pub id: String,
    /// Its client secret.
    pub secret: String,
}

/// How the provider is set up: who may use it and where it may send browsers.
#[derive(Debug, Clone)]
pub struct Options {
    /// The redirect URIs browsers may be sent back to, compared exactly (no prefix, no
    /// wildcard). Empty: every authorization request is refused.
    pub redirect_uris: Vec<String>,
    /// Registered clients: `boxoffice-<p>` / `sandbox-<p>-secret` for each provider by default.
    pub clients: Vec<Client>,
    /// Most authorization codes kept at once (the oldest is evicted).
    pub max_codes: usize,
    /// Most access tokens kept at once (the oldest is evicted).
    pub max_tokens: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redirect_uris: Vec::new(),
            clients: PROVIDERS
                .iter()
                .map(|p| Client {
                    provider: (*p).to_owned(),
                    id: client_id(p),
                    secret: client_secret(p),
                })
                .collect(),
            max_codes: 10_000,
            max_tokens: 10_000,
        }
    }
}

impl Options {
    /// The default clients, sending browsers back only to `redirect_uris`.
    pub fn with_redirect_uris(redirect_uris: impl IntoIterator<Item = String>) -> Self {
        Self {
            redirect_uris: redirect_uris.into_iter().collect(),
            ..Self::default()
        }
    }

    fn knows_client(&self, provider: &str, id: &str) -> bool {
        self.clients
            .iter()
            .any(|c| c.provider == provider && c.id == id)
    }

    fn authenticates(&self, provider: &str, id: &str, secret: &str) -> bool {
        self.clients
            .iter()
            .any(|c| c.provider == provider && c.id == id && c.secret == secret)
    }
}

/// Settings of the provider (`fakes.oauth.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Redirect URIs to register besides the platform's own callbacks: a list, or one
    /// comma-separated string (env `BOXOFFICE_FAKES__OAUTH__REDIRECT_URIS`).
    #[serde(deserialize_with = "list_or_csv")]
    pub redirect_uris: Vec<String>,
}

fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

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
}

/// Who signed in.
#[derive(Clone)]
pub(crate) struct Account {
    pub(crate) provider: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) verified: bool,
    /// Kakao's `is_email_valid`.
    pub(crate) valid: bool,
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
    pub(crate) options: Options,
    pub(crate) codes: Mutex<Bounded<Grant>>,
    pub(crate) tokens: Mutex<Bounded<Account>>,
}

pub(crate) type Shared = Arc<Provider>;

pub(crate) fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn provider_state(options: Options) -> Shared {
    Arc::new(Provider {
        key: SigningKey::generate(format!("sandbox-{}", &random()[..8])),
        codes: Mutex::new(Bounded::new(options.max_codes, CODE_TTL)),
        tokens: Mutex::new(Bounded::new(options.max_tokens, TOKEN_TTL)),
        options,
    })
}

/// The provider's routes, rooted at `/`.
pub fn router(options: Options) -> Router {
    let state = provider_state(options);
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
    email_valid: Option<String>,
    decision: Option<String>,
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(page::error(why))).into_response()
}

/// Checks the redirect URI before anything is sent to it: registered exactly, no control
/// characters (a CR/LF would split the `Location` header).
fn check_redirect(options: &Options, redirect_uri: &str) -> Result<(), &'static str> {
    if redirect_uri.chars().any(char::is_control) {
        return Err("redirect_uri contains control characters");
    }
    if !options.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err("redirect_uri is not registered for this client");
    }
    Ok(())
}

/// Checks what must hold before anything is redirected to `redirect_uri` (which
/// [`check_redirect`] also checks against the registrations).
fn check(options: &Options, provider: &str, p: &AuthorizeParams) -> Result<(), &'static str> {
    if !PROVIDERS.contains(&provider) {
        return Err("unknown provider");
    }
    if !options.knows_client(provider, &p.client_id) {
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

/// Both checks, in the order that never redirects on a bad request.
fn check_all(options: &Options, provider: &str, p: &AuthorizeParams) -> Result<(), &'static str> {
    check(options, provider, p)?;
    check_redirect(options, &p.redirect_uri)
}

fn back(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", page::url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    match HeaderValue::from_str(&format!("{redirect_uri}{sep}{query}")) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => bad_request("redirect_uri is not a valid header value"),
    }
}

fn flag(value: Option<&str>) -> bool {
    !matches!(value, Some("false" | "0" | "off"))
}

fn issue_code(state: &Shared, provider: &str, p: &AuthorizeParams, email: &str) -> Response {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_control) {
        return bad_request("enter an email address");
    }
    let name = p
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("member").to_owned());
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
            verified: flag(p.email_verified.as_deref()),
            valid: flag(p.email_valid.as_deref()),
        },
    };
    state
        .codes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(code.clone(), grant);
    back(&p.redirect_uri, &[("code", &code), ("state", &p.state)])
}

async fn authorize(
    State(state): State<Shared>,
    Path(provider): Path<String>,
    query: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = query else {
        return bad_request("the request's parameters cannot be read");
    };
    if let Err(why) = check_all(&state.options, &provider, &p) {
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
    form: Result<Form<AuthorizeParams>, FormRejection>,
) -> Response {
    let Ok(Form(mut p)) = form else {
        return bad_request("the form cannot be read");
    };
    // An unticked checkbox sends nothing.
    p.email_verified.get_or_insert_with(|| "false".into());
    if let Err(why) = check_all(&state.options, &provider, &p) {
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
            valid: true,
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
        let opts = Options::default();
        let ok = AuthorizeParams {
            response_type: "code".into(),
            client_id: client_id("google"),
            redirect_uri: "http://localhost/cb".into(),
            code_challenge: "abc".into(),
            code_challenge_method: "S256".into(),
            ..Default::default()
        };
        assert_eq!(check(&opts, "google", &ok), Ok(()));
        assert_eq!(check(&opts, "myspace", &ok), Err("unknown provider"));
        assert_eq!(
            check(&opts, "kakao", &ok),
            Err("unknown client_id"),
            "client of another provider"
        );
        let plain = AuthorizeParams {
            code_challenge_method: "plain".into(),
            ..ok.clone()
        };
        let pkce = Err("PKCE with code_challenge_method=S256 is required");
        assert_eq!(check(&opts, "google", &plain), pkce);
        let no_challenge = AuthorizeParams {
            code_challenge: String::new(),
            ..ok.clone()
        };
        assert_eq!(check(&opts, "google", &no_challenge), pkce);
        let token_flow = AuthorizeParams {
            response_type: "token".into(),
            ..ok.clone()
        };
        assert_eq!(
            check(&opts, "google", &token_flow),
            Err("response_type must be `code`")
        );
        let js = AuthorizeParams {
            redirect_uri: "javascript:alert(1)".into(),
            ..ok
        };
        assert_eq!(
            check(&opts, "google", &js),
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

    #[test]
    fn only_registered_redirect_uris_are_sent_back_to() {
        let opts = Options::with_redirect_uris(["http://localhost:8080/cb".to_owned()]);
        assert_eq!(check_redirect(&opts, "http://localhost:8080/cb"), Ok(()));
        for other in [
            "https://evil.example/cb",
            "http://localhost:8080/cb/../x",
            "http://localhost:8080/cb?next=https://evil.example",
            "http://localhost:8080",
            "http://localhost:8080/cbx",
        ] {
            assert_eq!(
                check_redirect(&opts, other),
                Err("redirect_uri is not registered for this client"),
                "{other}"
            );
        }
        assert_eq!(
            check_redirect(&opts, "http://localhost:8080/cb\r\nSet-Cookie: x=1"),
            Err("redirect_uri contains control characters")
        );
        assert!(check_redirect(&Options::default(), "http://localhost:8080/cb").is_err());
    }

    #[test]
    fn the_provider_keeps_at_most_its_configured_number_of_codes() {
        let state = provider_state(Options {
            max_codes: 2,
            ..Options::with_redirect_uris(["http://localhost/cb".to_owned()])
        });
        let p = AuthorizeParams {
            response_type: "code".into(),
            client_id: client_id("google"),
            redirect_uri: "http://localhost/cb".into(),
            code_challenge: "abc".into(),
            code_challenge_method: "S256".into(),
            ..Default::default()
        };
        for i in 0..5 {
            let r = issue_code(&state, "google", &p, &format!("u{i}@example.com"));
            assert_eq!(r.status(), StatusCode::FOUND);
            assert!(state.codes.lock().unwrap().len() <= 2);
        }
    }

    #[test]
    fn a_redirect_that_is_no_header_value_is_a_400_not_a_500() {
        let r = back("http://x/\ncb", &[("code", "c")]);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn redirect_uris_come_as_a_list_or_a_comma_separated_string() {
        let s: Settings = serde_json::from_value(
            serde_json::json!({"redirect_uris": "http://a/cb, http://b/cb"}),
        )
        .unwrap();
        assert_eq!(s.redirect_uris, ["http://a/cb", "http://b/cb"]);
        let s: Settings =
            serde_json::from_value(serde_json::json!({"redirect_uris": ["http://a/cb"]})).unwrap();
        assert_eq!(s.redirect_uris, ["http://a/cb"]);
    }
}
