//! Sandbox mode cannot hand out accounts: the fake provider mints any email, so its identities
//! sign in only to accounts they made, never to an administrator; outside sandbox mode an
//! unconfigured provider is off and the sandbox's secret is refused; the fake itself redirects
//! only to registered URIs and answers bad input with a 4xx; promoting an account to administrator
//! at start revokes what could reach it before.

use platform::{service::StartError, testing};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{
        ADMIN_EMAIL, ADMIN_PASSWORD, App, PASSWORD, REDIRECT_BASE, config, configure_real, json_of,
        problem, spawn, spawn_with,
    },
    social::{Flow, callback, identities, location, sign_in, through_provider, verify_email},
};

/// The subject the fake gives `provider:email` (FNV-1a, top bit cleared).
fn sandbox_subject(provider: &str, email: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{provider}:{email}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h & 0x7fff_ffff_ffff_ffff).to_string()
}

async fn sandbox_sign_in(app: &App, provider: &str, email: &str) -> reqwest::Response {
    let flow = through_provider(app, provider, &format!("login_hint={email}")).await;
    callback(app, &flow).await
}

#[tokio::test]
async fn a_sandbox_identity_never_signs_in_as_the_administrator() {
    let app = spawn().await;
    // Even with the administrator's email proved, which would let a real provider's link through
    // the email rule, the sandbox is refused outright.
    verify_email(&app, ADMIN_EMAIL).await;
    for provider in ["kakao", "naver", "google"] {
        let r = sandbox_sign_in(&app, provider, ADMIN_EMAIL).await;
        problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
    }
    assert!(identities(&app).await.is_empty());
    // The attack of issue 9, as written: `auto=1&login_hint=<admin>` appended by hand.
    let flow = through_provider(
        &app,
        "kakao",
        &format!("login_hint={}", ADMIN_EMAIL.replace('@', "%40")),
    )
    .await;
    let r = callback(&app, &flow).await;
    let body = problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn a_sandbox_identity_never_signs_in_to_a_password_account() {
    let app = spawn().await;
    let victim = app.sign_up("victim@example.com").await;
    verify_email(&app, "victim@example.com").await;
    for provider in ["kakao", "naver", "google"] {
        let r = sandbox_sign_in(&app, provider, "Victim@Example.com").await;
        problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
    }
    assert!(identities(&app).await.is_empty());
    // The victim's account is as it was.
    let (sandbox, verified): (bool, bool) =
        sqlx::query_as("SELECT sandbox, email_verified FROM users WHERE id = $1::uuid")
            .bind(&victim)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!sandbox && verified);
}

#[tokio::test]
async fn a_sandbox_identity_does_not_ride_a_real_identitys_link() {
    // The sandbox picks its subjects from the email typed in; one equal to a real provider
    // account's subject must not sign in through that account's link.
    let app = spawn().await;
    let owner = app.sign_up("owner@example.com").await;
    let subject = sandbox_subject("google", "collision@example.com");
    sqlx::query(
        "INSERT INTO identities (provider, subject, user_id, email) VALUES ('google', $1, $2::uuid, 'owner@example.com')",
    )
    .bind(&subject)
    .bind(&owner)
    .execute(&app.db)
    .await
    .unwrap();
    let r = sandbox_sign_in(&app, "google", "collision@example.com").await;
    problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
}

#[tokio::test]
async fn a_sandbox_account_is_found_again_but_never_once_it_is_an_administrator() {
    let app = spawn().await;
    let first = sign_in(&app, "google", "demo@example.com").await;
    assert_eq!(first["user"]["created"], true);
    let id = first["user"]["id"].as_str().unwrap().to_owned();
    let (sandbox, verified): (bool, bool) =
        sqlx::query_as("SELECT sandbox, email_verified FROM users WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(sandbox, "made by the sandbox");
    assert!(!verified, "the sandbox proves no email");
    let marked: bool = sqlx::query_scalar("SELECT sandbox FROM identities")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(marked);
    let again = sign_in(&app, "google", "demo@example.com").await;
    assert_eq!(again["user"]["id"], id.as_str());
    // Granted admin: the sandbox (anyone who types that email) no longer gets in.
    let admin = app.admin_token().await;
    let r = app
        .post_auth(
            &format!("/api/v1/admin/users/{id}/roles"),
            &admin,
            &json!({"roles": ["admin"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = sandbox_sign_in(&app, "google", "demo@example.com").await;
    problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
}

async fn providers(app: &App) -> Value {
    let r = app
        .client
        .get(app.url("/api/v1/auth/oauth/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await["providers"].clone()
}

#[tokio::test]
async fn the_login_page_is_offered_only_the_enabled_providers() {
    let app = spawn().await;
    assert_eq!(
        providers(&app).await,
        json!([
            {"name": "kakao", "mode": "sandbox"},
            {"name": "naver", "mode": "sandbox"},
            {"name": "google", "mode": "sandbox"},
        ])
    );
    let app = spawn_with(|c| configure_real(c, "google")).await;
    assert_eq!(
        providers(&app).await[2],
        json!({"name": "google", "mode": "configured"})
    );
    // Sandbox mode off: only what is configured.
    let app = spawn_with(|c| {
        configure_real(c, "google");
        c.sandbox = false;
    })
    .await;
    assert_eq!(
        providers(&app).await,
        json!([{"name": "google", "mode": "configured"}])
    );
    let signed = sign_in(&app, "google", "real@example.com").await;
    assert_eq!(signed["user"]["created"], true);
}

#[tokio::test]
async fn outside_sandbox_mode_an_unconfigured_provider_is_off() {
    let app = spawn_with(|c| c.sandbox = false).await;
    assert_eq!(providers(&app).await, json!([]));
    for provider in ["kakao", "naver", "google"] {
        let r = app
            .client
            .get(app.url(&format!("/api/v1/auth/oauth/{provider}/authorize")))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::NOT_FOUND, "provider_disabled").await;
        let r = app
            .client
            .get(app.url(&format!(
                "/api/v1/auth/oauth/{provider}/callback?code=c&state=s"
            )))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::NOT_FOUND, "provider_disabled").await;
    }
    let token = app.admin_token().await;
    let r = app
        .post_auth("/api/v1/users/me/identities/google", &token, &json!({}))
        .await;
    problem(r, StatusCode::NOT_FOUND, "provider_disabled").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM oauth_states")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0, "no sign-in was started");
}

async fn start_error(adjust: impl FnOnce(&mut user::Config)) -> String {
    let mut cfg = config("http://127.0.0.1:9");
    cfg.sandbox = false;
    adjust(&mut cfg);
    match user::start(&cfg, &testing::infra("user_cfg")).await {
        Err(StartError::Config(message)) => message,
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started with {cfg:?}"),
    }
}

#[tokio::test]
async fn the_sandbox_secret_is_refused_outside_sandbox_mode() {
    let message = start_error(|c| {
        c.oauth.google.client_id = Some("123.apps.googleusercontent.com".into());
        c.oauth.google.client_secret = Some("sandbox-google-secret".into());
    })
    .await;
    assert!(
        message.contains("user.oauth.google.client_secret"),
        "{message}"
    );
    assert!(
        message.contains("BOXOFFICE_USER__OAUTH__GOOGLE__CLIENT_SECRET"),
        "{message}"
    );
    assert!(
        message.contains("refused outside sandbox mode"),
        "{message}"
    );
    let message = start_error(|c| {
        c.oauth.kakao.client_id = Some("kakao-app".into());
    })
    .await;
    assert!(
        message.contains("user.oauth.kakao.client_secret"),
        "{message}"
    );
    assert!(
        message.contains("is not set but the client id is"),
        "{message}"
    );
}

/// The fake's authorize URL for `redirect_uri`, otherwise well formed.
fn fake_authorize(app: &App, redirect_uri: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("{}/google/authorize", app.oauth.base_url)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "boxoffice-google")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid email")
        .append_pair("state", "s")
        .append_pair(
            "code_challenge",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq",
        )
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", "x@example.com")
        .append_pair("auto", "1");
    url.into()
}

#[tokio::test]
async fn the_fake_is_no_open_redirect() {
    let app = spawn().await;
    let registered = format!("{REDIRECT_BASE}/api/v1/auth/oauth/google/callback");
    let r = app
        .client
        .get(fake_authorize(&app, &registered))
        .send()
        .await
        .unwrap();
    assert!(location(&r).starts_with(&format!("{registered}?code=")));
    for elsewhere in [
        "https://evil.example/steal".to_owned(),
        format!("{registered}/../../evil"),
        format!("{registered}?next=https://evil.example"),
        "http://boxoffice.test.evil.example/api/v1/auth/oauth/google/callback".to_owned(),
    ] {
        let r = app
            .client
            .get(fake_authorize(&app, &elsewhere))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{elsewhere}");
        assert!(!r.headers().contains_key("location"), "{elsewhere}");
        assert!(r.text().await.unwrap().contains("not registered"));
        // The approval form is held to the same rule.
        let r = app
            .client
            .post(format!("{}/google/authorize", app.oauth.base_url))
            .form(&[
                ("response_type", "code"),
                ("client_id", "boxoffice-google"),
                ("redirect_uri", &elsewhere),
                ("state", "s"),
                ("code_challenge", "abc"),
                ("code_challenge_method", "S256"),
                ("decision", "deny"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{elsewhere}");
        assert!(!r.headers().contains_key("location"));
    }
}

#[tokio::test]
async fn a_redirect_uri_with_cr_or_lf_is_a_400() {
    let app = spawn().await;
    let registered = format!("{REDIRECT_BASE}/api/v1/auth/oauth/google/callback");
    for injected in [
        format!("{registered}\r\nSet-Cookie: pwned=1"),
        format!("{registered}\n"),
        format!("{registered}\r"),
    ] {
        let r = app
            .client
            .get(fake_authorize(&app, &injected))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(!r.headers().contains_key("set-cookie"));
        assert!(r.text().await.unwrap().contains("control characters"));
    }
}

#[tokio::test]
async fn the_fake_answers_bad_input_with_oauth_errors_and_never_caches_tokens() {
    let app = spawn().await;
    let token_url = format!("{}/google/token", app.oauth.base_url);
    // Not a form at all.
    let r = app
        .client
        .post(&token_url)
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(json_of(r).await["error"], "invalid_request");
    // Unknown code, unknown provider, a token nobody issued.
    let r = app
        .client
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("client_id", "boxoffice-google"),
            ("client_secret", "sandbox-google-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(json_of(r).await["error"], "invalid_grant");
    for path in [
        "/myspace/jwks.json",
        "/myspace/.well-known/openid-configuration",
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.oauth.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json_of(r).await["error"], "invalid_request");
    }
    let r = app
        .client
        .get(format!("{}/google/userinfo", app.oauth.base_url))
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Malformed authorize parameters: a page, not a 500.
    let r = app
        .client
        .get(format!("{}/google/authorize?auto=%ZZ", app.oauth.base_url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

/// Starts another user service on `app`'s database with `admin` as the configured administrator.
async fn restart_with_admin(app: &App, email: &str, password: &str) {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let mut infra = testing::infra("user");
    infra.database.name_prefix = db.strip_suffix("user").unwrap().to_owned();
    let mut cfg = config(&app.oauth.base_url);
    cfg.admin_email = Some(email.into());
    cfg.admin_password = Some(password.into());
    let service = user::start(&cfg, &infra).await.expect("the service starts");
    infra.shutdown.cancel();
    for task in service.tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn promoting_an_account_to_administrator_revokes_its_sessions_and_identities() {
    let app = spawn().await;
    let boss = app.sign_up("boss@example.com").await;
    let before = app.login("boss@example.com", PASSWORD).await;
    // A provider account someone linked to it while it was an ordinary account.
    sqlx::query(
        "INSERT INTO identities (provider, subject, user_id, email) VALUES ('google', '4242', $1::uuid, 'boss@example.com')",
    )
    .bind(&boss)
    .execute(&app.db)
    .await
    .unwrap();
    let new_password = "the boss has a new passphrase";
    restart_with_admin(&app, "boss@example.com", new_password).await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": before["refresh_token"]}),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert!(
        identities(&app).await.is_empty(),
        "linked identities removed"
    );
    // The administrator signs in with the configured password and holds the role.
    let pair = app.login("boss@example.com", new_password).await;
    let claims = app
        .verify(pair["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(claims.has(platform::auth::Role::Admin));
    // Restarting with the same settings keeps its sessions...
    restart_with_admin(&app, "boss@example.com", new_password).await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let kept = json_of(r).await;
    // ...a changed password ends them.
    restart_with_admin(&app, "boss@example.com", ADMIN_PASSWORD).await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": kept["refresh_token"]}),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[tokio::test]
async fn a_promoted_sandbox_account_is_out_of_the_sandboxs_reach() {
    let app = spawn().await;
    let made = sign_in(&app, "kakao", "lucky@example.com").await;
    restart_with_admin(&app, "lucky@example.com", "a configured passphrase").await;
    let sandbox: bool = sqlx::query_scalar("SELECT sandbox FROM users WHERE id = $1::uuid")
        .bind(made["user"]["id"].as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!sandbox);
    let r = sandbox_sign_in(&app, "kakao", "lucky@example.com").await;
    problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
    let flow: Flow = through_provider(&app, "naver", "login_hint=lucky@example.com").await;
    let r = callback(&app, &flow).await;
    problem(r, StatusCode::FORBIDDEN, "sandbox_refused").await;
}
