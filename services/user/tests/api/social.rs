//! Social login against the sandbox provider: the full authorization code flow with PKCE for
//! each provider, the state bound to the browser, linking to an existing account (only when both
//! sides proved the email, or from the profile), and what is refused. Providers "configured for
//! real" are the fake under a client registration of their own (`helpers::configure_real`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_EMAIL, App, PASSWORD, REDIRECT_BASE, configure_real, json_of, problem, spawn, spawn_with,
};

pub fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::FOUND, "expected a redirect");
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// A sign-in on its way back from the provider: the callback's path and query, and the
/// browser's binding cookie (`name=value`), as the browser would send them.
pub struct Flow {
    pub path: String,
    pub cookie: String,
}

/// The binding cookie an answer sets (`name=value`), after checking its attributes.
pub fn binding_cookie(r: &reqwest::Response, provider: &str) -> String {
    let name = format!("boxoffice_oauth_{provider}=");
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&name))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        &format!("Path=/api/v1/auth/oauth/{provider}"),
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// From the provider's authorize URL (automated with `login_hint`/`auto`) back to our callback.
pub async fn via_provider(app: &App, provider: &str, to_provider: &str, extra: &str) -> String {
    assert!(to_provider.starts_with(&format!("{}/{provider}/authorize?", app.oauth.base_url)));
    assert!(to_provider.contains("code_challenge_method=S256"));
    let r = app
        .client
        .get(format!("{to_provider}&auto=1&{extra}"))
        .send()
        .await
        .unwrap();
    let back = location(&r);
    let prefix = format!("{REDIRECT_BASE}/api/v1/auth/oauth/{provider}/callback?");
    assert!(back.starts_with(&prefix), "{back}");
    back[REDIRECT_BASE.len()..].to_owned()
}

/// Our authorize → the provider's page → our callback, as the browser would follow it.
pub async fn through_provider(app: &App, provider: &str, extra: &str) -> Flow {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/auth/oauth/{provider}/authorize")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookie = binding_cookie(&r, provider);
    let to_provider = location(&r);
    let path = via_provider(app, provider, &to_provider, extra).await;
    Flow { path, cookie }
}

/// The browser arriving at our callback, with its cookie.
pub async fn callback(app: &App, flow: &Flow) -> reqwest::Response {
    app.client
        .get(app.url(&flow.path))
        .header("cookie", &flow.cookie)
        .send()
        .await
        .unwrap()
}

pub async fn sign_in(app: &App, provider: &str, email: &str) -> Value {
    let flow = through_provider(app, provider, &format!("login_hint={email}")).await;
    let r = callback(app, &flow).await;
    assert_eq!(r.status(), StatusCode::OK, "{provider} callback");
    assert_eq!(r.headers()["cache-control"], "no-store");
    json_of(r).await
}

/// Marks `email`'s account verified, as the verification link will once the notification
/// service sends it.
pub async fn verify_email(app: &App, email: &str) {
    sqlx::query("UPDATE users SET email_verified = true WHERE email = $1")
        .bind(email)
        .execute(&app.db)
        .await
        .unwrap();
}

pub async fn identities(app: &App) -> Vec<(String, String)> {
    sqlx::query_as("SELECT provider, user_id::text FROM identities ORDER BY provider")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn full_flow(provider: &str) {
    let app = spawn().await;
    let email = format!("{provider}-fan@example.com");
    let first = sign_in(&app, provider, &email).await;
    assert_eq!(first["user"]["created"], true);
    assert_eq!(first["user"]["email"], email.as_str());
    assert_eq!(first["token_type"], "Bearer");
    let claims = app
        .verify(first["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        claims.sub.to_string(),
        first["user"]["id"].as_str().unwrap()
    );
    // The next sign-in finds the linked account.
    let again = sign_in(&app, provider, &email).await;
    assert_eq!(again["user"]["created"], false);
    assert_eq!(again["user"]["id"], first["user"]["id"]);
    // The refresh token works like any other.
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!({"refresh_token": again["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed = app
        .verify(json_of(r).await["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(refreshed.sub, claims.sub);
    let id = first["user"]["id"].as_str().unwrap();
    let linked: Vec<String> =
        sqlx::query_scalar("SELECT user_id::text FROM identities WHERE provider = $1")
            .bind(provider)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(linked, [id], "one identity, linked to the new user");
    let registered: Vec<String> = sqlx::query_scalar(
        "SELECT envelope->'payload'->>'user_id' FROM bus_outbox
         WHERE envelope->>'type' = 'user.registered' AND envelope->'payload'->>'email' = $1",
    )
    .bind(&email)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(registered, [id], "user.registered once");
}

#[tokio::test]
async fn kakao_sign_in_end_to_end() {
    full_flow("kakao").await;
}

#[tokio::test]
async fn naver_sign_in_end_to_end() {
    full_flow("naver").await;
}

#[tokio::test]
async fn google_sign_in_end_to_end() {
    full_flow("google").await;
}

#[tokio::test]
async fn a_provider_account_links_to_the_user_with_the_same_verified_email() {
    let app = spawn_with(|c| configure_real(c, "google")).await;
    let id = app.sign_up("both@example.com").await;
    verify_email(&app, "both@example.com").await;
    let signed = sign_in(&app, "google", "Both@Example.com").await;
    assert_eq!(signed["user"]["id"], id.as_str());
    assert_eq!(signed["user"]["created"], false);
    assert_eq!(signed["user"]["linked"], true);
    let claims = app
        .verify(signed["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub.to_string(), id);
    let linked: Vec<String> =
        sqlx::query_scalar("SELECT user_id::text FROM identities WHERE provider = 'google'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(linked, [id.as_str()]);
    // The password still works too.
    app.login("both@example.com", PASSWORD).await;
}

#[tokio::test]
async fn an_unverified_email_neither_links_nor_creates() {
    let app = spawn_with(|c| configure_real(c, "google")).await;
    app.sign_up("victim@example.com").await;
    verify_email(&app, "victim@example.com").await;
    let flow = through_provider(
        &app,
        "google",
        "login_hint=victim@example.com&email_verified=false",
    )
    .await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::FORBIDDEN, "email_unverified").await;
    // Not linked to the victim, and no account of its own either.
    let identities: i64 = sqlx::query_scalar("SELECT count(*) FROM identities")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(identities, 0);
    let mut emails: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(&app.db)
        .await
        .unwrap();
    emails.sort();
    assert_eq!(emails, [ADMIN_EMAIL, "victim@example.com"]);
}

#[tokio::test]
async fn a_bad_or_replayed_state_is_refused() {
    let app = spawn().await;
    let flow = through_provider(&app, "kakao", "login_hint=s@example.com").await;
    let (path, query) = flow.path.split_once('?').unwrap();
    let code = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap();
    // A made-up state.
    let forged = Flow {
        path: format!("{path}?code={code}&state=forged"),
        cookie: flow.cookie.clone(),
    };
    let r = callback(&app, &forged).await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    // The state of another provider's sign-in.
    let naver = Flow {
        path: format!("/api/v1/auth/oauth/naver/callback?{query}"),
        cookie: flow.cookie.clone(),
    };
    let r = callback(&app, &naver).await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    // The state was spent by that attempt: the genuine callback fails too (single use).
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    // Missing parameters, denied consent, unknown provider.
    let r = app.client.get(app.url(path)).send().await.unwrap();
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let r = app
        .client
        .get(app.url(&format!("{path}?error=access_denied&state=x")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "oauth_denied").await;
    let r = app
        .client
        .get(app.url("/api/v1/auth/oauth/myspace/authorize"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_provider_page_is_a_form_and_checks_pkce() {
    let app = spawn().await;
    let r = app
        .client
        .get(app.url("/api/v1/auth/oauth/naver/authorize"))
        .send()
        .await
        .unwrap();
    let to_provider = location(&r);
    let page = app
        .client
        .get(&to_provider)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<form method=\"post\"") && page.contains("Approve"));
    // Without PKCE the provider refuses to start.
    let no_pkce = to_provider.replace("code_challenge_method=S256", "code_challenge_method=plain");
    let r = app.client.get(&no_pkce).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let why = r.text().await.unwrap();
    assert!(
        why.contains("PKCE with code_challenge_method=S256 is required"),
        "{why}"
    );
    // A code exchanged with the wrong verifier is refused by the token endpoint.
    let r = app
        .client
        .get(format!("{to_provider}&auto=1&login_hint=p@example.com"))
        .send()
        .await
        .unwrap();
    let back = location(&r);
    let code = back
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap();
    let r = app
        .client
        .post(format!("{}/naver/token", app.oauth.base_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            (
                "redirect_uri",
                &format!("{REDIRECT_BASE}/api/v1/auth/oauth/naver/callback"),
            ),
            ("client_id", "boxoffice-naver"),
            ("client_secret", "sandbox-naver-secret"),
            (
                "code_verifier",
                "not-the-verifier-not-the-verifier-not-the-ver",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let refused = json_of(r).await;
    assert_eq!(refused["error"], "invalid_grant");
    // Refused for the verifier, not for the code, client or redirect URI.
    assert_eq!(
        refused["error_description"], "PKCE verification failed",
        "{refused}"
    );
}

#[tokio::test]
async fn an_id_token_from_an_unexpected_issuer_is_refused() {
    let app = crate::helpers::spawn_with(|c| {
        c.oauth.google.issuer = Some("https://accounts.google.com".into());
    })
    .await;
    let flow = through_provider(&app, "google", "login_hint=g@example.com").await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::BAD_GATEWAY, "oauth_provider_error").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM identities")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_by_the_provider() {
    let app = crate::helpers::spawn_with(|c| {
        c.oauth.kakao.client_secret = Some("guessed".into());
    })
    .await;
    let flow = through_provider(&app, "kakao", "login_hint=k@example.com").await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::BAD_GATEWAY, "oauth_provider_error").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM identities")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_state_is_bound_to_the_browser_that_started_the_sign_in() {
    let app = spawn().await;
    // Login CSRF: the attacker's own sign-in, finished in the victim's browser (no cookie).
    let attackers = through_provider(&app, "google", "login_hint=mallory@example.com").await;
    let r = app
        .client
        .get(app.url(&attackers.path))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "state_cookie_mismatch").await;
    // A browser carrying another sign-in's cookie.
    let one = through_provider(&app, "google", "login_hint=mallory@example.com").await;
    let other = through_provider(&app, "google", "login_hint=victim@example.com").await;
    let crossed = Flow {
        path: one.path.clone(),
        cookie: other.cookie.clone(),
    };
    let r = callback(&app, &crossed).await;
    problem(r, StatusCode::BAD_REQUEST, "state_cookie_mismatch").await;
    // The refused attempts spent their states and made nobody.
    let r = callback(&app, &one).await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    assert!(identities(&app).await.is_empty());
    // The browser that started it gets in, and its cookie is cleared.
    let r = callback(&app, &other).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cleared = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cleared.starts_with("boxoffice_oauth_google=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn a_verified_social_email_is_not_linked_to_an_unverified_account() {
    // An attacker registers the victim's address with a password first (nobody verifies it);
    // the victim later signs in with Google: no link to the attacker's account, no tokens.
    let app = spawn_with(|c| configure_real(c, "google")).await;
    let squatter = app.sign_up("victim@example.com").await;
    let flow = through_provider(&app, "google", "login_hint=victim@example.com").await;
    let r = callback(&app, &flow).await;
    let body = problem(r, StatusCode::CONFLICT, "link_requires_login").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1/users/me/identities/google"),
        "{body}"
    );
    assert!(identities(&app).await.is_empty());
    let verified: bool = sqlx::query_scalar("SELECT email_verified FROM users WHERE id = $1::uuid")
        .bind(&squatter)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!verified, "a password sign-up is not a proof of the email");
    // Once the account's owner proves the address, the same sign-in links.
    verify_email(&app, "victim@example.com").await;
    let signed = sign_in(&app, "google", "victim@example.com").await;
    assert_eq!(signed["user"]["id"], squatter.as_str());
}

#[tokio::test]
async fn kakao_links_only_a_valid_and_verified_email() {
    let app = spawn_with(|c| configure_real(c, "kakao")).await;
    app.sign_up("fan@example.kr").await;
    verify_email(&app, "fan@example.kr").await;
    let flow = through_provider(&app, "kakao", "login_hint=fan@example.kr&email_valid=false").await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::FORBIDDEN, "email_unverified").await;
    assert!(identities(&app).await.is_empty());
    let signed = sign_in(&app, "kakao", "fan@example.kr").await;
    assert_eq!(signed["user"]["created"], false);
    assert_eq!(signed["user"]["linked"], true);
}

#[tokio::test]
async fn naver_identities_never_link_by_email() {
    let app = spawn_with(|c| configure_real(c, "naver")).await;
    app.sign_up("fan@example.kr").await;
    verify_email(&app, "fan@example.kr").await;
    let flow = through_provider(&app, "naver", "login_hint=fan@example.kr").await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::CONFLICT, "link_requires_login").await;
    assert!(identities(&app).await.is_empty());
    // A new Naver account still makes an account, which starts unverified.
    let signed = sign_in(&app, "naver", "new@example.kr").await;
    assert_eq!(signed["user"]["created"], true);
    let verified: bool =
        sqlx::query_scalar("SELECT email_verified FROM users WHERE email = 'new@example.kr'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!verified);
}

#[tokio::test]
async fn no_identity_is_linked_automatically_to_an_administrator() {
    let app = spawn_with(|c| configure_real(c, "google")).await;
    verify_email(&app, ADMIN_EMAIL).await;
    let flow = through_provider(&app, "google", &format!("login_hint={ADMIN_EMAIL}")).await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::CONFLICT, "link_requires_login").await;
    assert!(identities(&app).await.is_empty());
}

/// `POST /api/v1/users/me/identities/{provider}`: the provider URL to send the browser to, and
/// the binding cookie.
async fn start_link(app: &App, provider: &str, token: &str) -> (String, String) {
    let r = app
        .post_auth(
            &format!("/api/v1/users/me/identities/{provider}"),
            token,
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookie = binding_cookie(&r, provider);
    let url = json_of(r).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_owned();
    (url, cookie)
}

#[tokio::test]
async fn a_logged_in_user_links_a_provider_from_the_profile() {
    let app = spawn_with(|c| {
        configure_real(c, "google");
        configure_real(c, "kakao");
    })
    .await;
    let id = app.sign_up("me@example.com").await;
    let other = app.sign_up("other@example.com").await;
    let token = app.login("me@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Without a token, nothing starts.
    let r = app
        .post("/api/v1/users/me/identities/google", &json!({}))
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // The Google account's email is the account's: linked, and the email now counts as proved.
    let (url, cookie) = start_link(&app, "google", &token).await;
    let path = via_provider(&app, "google", &url, "login_hint=me@example.com").await;
    let r = callback(&app, &Flow { path, cookie }).await;
    assert_eq!(r.status(), StatusCode::OK);
    let linked = json_of(r).await;
    assert_eq!(linked["user"]["id"], id.as_str());
    assert_eq!(linked["user"]["linked"], true);
    let verified: bool = sqlx::query_scalar("SELECT email_verified FROM users WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(verified);
    // A Kakao account of another address links too (the email stays as it is).
    let (url, cookie) = start_link(&app, "kakao", &token).await;
    let path = via_provider(&app, "kakao", &url, "login_hint=me.kakao@example.kr").await;
    let r = callback(&app, &Flow { path, cookie }).await;
    assert_eq!(json_of(r).await["user"]["id"], id.as_str());
    assert_eq!(
        identities(&app).await,
        [("google".into(), id.clone()), ("kakao".into(), id.clone())]
    );
    // Signing in with it later finds the account.
    let again = sign_in(&app, "kakao", "me.kakao@example.kr").await;
    assert_eq!(again["user"]["id"], id.as_str());
    assert_eq!(again["user"]["linked"], false);
    // Another user cannot take a provider account that is already linked.
    let others = app.login("other@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (url, cookie) = start_link(&app, "google", &others).await;
    let path = via_provider(&app, "google", &url, "login_hint=me@example.com").await;
    let r = callback(&app, &Flow { path, cookie }).await;
    problem(r, StatusCode::CONFLICT, "identity_taken").await;
    assert!(!identities(&app).await.iter().any(|(_, u)| *u == other));
    // A sandboxed provider is never linked from a profile.
    let r = app
        .post_auth("/api/v1/users/me/identities/naver", &token, &json!({}))
        .await;
    problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
}

#[tokio::test]
async fn answers_that_carry_tokens_are_never_cached() {
    let app = spawn().await;
    app.sign_up("cache@example.com").await;
    let r = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "cache@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let pair = json_of(r).await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The social callback: checked in `sign_in`.
    sign_in(&app, "google", "cache.social@example.com").await;
}
