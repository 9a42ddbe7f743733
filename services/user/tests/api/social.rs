//! Social login against the sandbox provider: the full authorization code flow with PKCE for
//! each provider, linking to an existing account, and what is refused.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ADMIN_EMAIL, App, PASSWORD, REDIRECT_BASE, json_of, problem, spawn};

fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::FOUND, "expected a redirect");
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Our authorize → the provider's page (automated with `login_hint`/`auto`) → our callback.
/// Returns the callback's path and query, as the browser would follow it.
async fn through_provider(app: &App, provider: &str, extra: &str) -> String {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/auth/oauth/{provider}/authorize")))
        .send()
        .await
        .unwrap();
    let to_provider = location(&r);
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

async fn sign_in(app: &App, provider: &str, email: &str) -> Value {
    let callback = through_provider(app, provider, &format!("login_hint={email}")).await;
    let r = app.client.get(app.url(&callback)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{provider} callback");
    json_of(r).await
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
    let app = spawn().await;
    let id = app.sign_up("both@example.com").await;
    let signed = sign_in(&app, "google", "Both@Example.com").await;
    assert_eq!(signed["user"]["id"], id.as_str());
    assert_eq!(signed["user"]["created"], false);
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
    let app = spawn().await;
    app.sign_up("victim@example.com").await;
    let callback = through_provider(
        &app,
        "google",
        "login_hint=victim@example.com&email_verified=false",
    )
    .await;
    let r = app.client.get(app.url(&callback)).send().await.unwrap();
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
    let callback = through_provider(&app, "kakao", "login_hint=s@example.com").await;
    let (path, query) = callback.split_once('?').unwrap();
    let code = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap();
    // A made-up state.
    let r = app
        .client
        .get(app.url(&format!("{path}?code={code}&state=forged")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    // The state of another provider's sign-in.
    let naver = format!("/api/v1/auth/oauth/naver/callback?{query}");
    let r = app.client.get(app.url(&naver)).send().await.unwrap();
    problem(r, StatusCode::BAD_REQUEST, "invalid_state").await;
    // The state was spent by that attempt: the genuine callback fails too (single use).
    let r = app.client.get(app.url(&callback)).send().await.unwrap();
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
    let callback = through_provider(&app, "google", "login_hint=g@example.com").await;
    let r = app.client.get(app.url(&callback)).send().await.unwrap();
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
    let callback = through_provider(&app, "kakao", "login_hint=k@example.com").await;
    let r = app.client.get(app.url(&callback)).send().await.unwrap();
    problem(r, StatusCode::BAD_GATEWAY, "oauth_provider_error").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM identities")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
