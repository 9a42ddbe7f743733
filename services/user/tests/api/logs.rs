//! No password, token or secret reaches the logs: the whole life of an account runs with every
//! log line (at TRACE) captured, and none contains one.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use reqwest::StatusCode;
use serde_json::json;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

use crate::helpers::{ADMIN_PASSWORD, REDIRECT_BASE, json_of, spawn};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: the thread-local subscriber sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_appears_in_the_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new("trace"))
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn().await;
    let password = "log-test passphrase 42";
    let new_password = "log-test new passphrase 43";
    let r = app
        .post(
            "/api/v1/users",
            &json!({"email": "quiet@example.com", "password": password, "name": "Q"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "quiet@example.com", "password": "wrong-log-test-password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let pair = app.login("quiet@example.com", password).await;
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh1 = pair["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .post("/api/v1/auth/refresh", &json!({"refresh_token": refresh1}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = json_of(r).await;
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    // Reuse (logs a warning about the family), logout, password change.
    let r = app
        .post("/api/v1/auth/refresh", &json!({"refresh_token": refresh1}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let pair = app.login("quiet@example.com", password).await;
    let access2 = pair["access_token"].as_str().unwrap().to_owned();
    let refresh3 = pair["refresh_token"].as_str().unwrap().to_owned();
    let r = app.get_auth("/api/v1/users/me", &access2).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_auth(
            "/api/v1/users/me/password",
            &access2,
            &json!({"current_password": password, "new_password": new_password}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post("/api/v1/auth/logout", &json!({"refresh_token": refresh3}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A social sign-in: the provider's code, tokens and our client secret stay out too.
    let r = app
        .client
        .get(app.url("/api/v1/auth/oauth/google/authorize"))
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let cookie = crate::social::binding_cookie(&r, "google");
    // Another address: a sandbox identity never signs in to an existing account.
    let r = app
        .client
        .get(format!("{to}&auto=1&login_hint=quiet.social@example.com"))
        .send()
        .await
        .unwrap();
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    let code = back
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let r = app
        .client
        .get(app.url(&back[REDIRECT_BASE.len()..]))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let social = json_of(r).await;
    let admin = app.admin_token().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("logged in"), "the capture works");
    assert!(text.contains("refresh token presented again"));
    for secret in [
        password,
        new_password,
        "wrong-log-test-password",
        ADMIN_PASSWORD,
        &access,
        &access2,
        &admin,
        &refresh1,
        &refresh2,
        &refresh3,
        second["access_token"].as_str().unwrap(),
        social["access_token"].as_str().unwrap(),
        social["refresh_token"].as_str().unwrap(),
        &code,
        cookie.split_once('=').unwrap().1,
        "sandbox-google-secret",
    ] {
        assert!(
            !text.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}
