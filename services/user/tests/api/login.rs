//! Password login.

use platform::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, problem, spawn};

#[tokio::test]
async fn login_answers_a_token_pair_verifiable_with_the_jwks() {
    let app = spawn().await;
    let id = app.sign_up("buyer@example.com").await;
    let pair = app.login("Buyer@Example.com", PASSWORD).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    // At least 256 bits, base64url; stored (as its SHA-256) for this user.
    let refresh = pair["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 43, "{refresh}");
    let owner: String = sqlx::query_scalar(
        "SELECT user_id::text FROM refresh_tokens
         WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(refresh)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(owner, id);
    let claims = app
        .verify(pair["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub.to_string(), id);
    assert_eq!(claims.roles, [Role::Buyer]);
    assert_eq!(claims.exp - claims.iat, 900);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn().await;
    app.sign_up("known@example.com").await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "known@example.com", "password": "not the password"}),
        )
        .await;
    let wrong = problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    let unknown = problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    // Garbage is an unknown account too, never a 500.
    for email in [&"x".repeat(5000), "not an email"] {
        let r = app
            .post(
                "/api/v1/auth/login",
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // NUL, which no account can hold, is refused before the handler, on every service alike.
    let r = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "nul\u{0}@example.com", "password": PASSWORD}),
        )
        .await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "x".repeat(4000))
        .json(&json!({"email": "known@example.com", "password": "nope nope nope"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app.post("/api/v1/auth/login", &json!({})).await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
}

#[tokio::test]
async fn the_configured_admin_exists_with_the_admin_role() {
    let app = spawn().await;
    let pair = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let claims = app
        .verify(pair["access_token"].as_str().unwrap())
        .await
        .unwrap();
    let (id, roles): (String, Vec<String>) =
        sqlx::query_as("SELECT id::text, roles FROM users WHERE email = $1")
            .bind(ADMIN_EMAIL)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(claims.sub.to_string(), id);
    assert_eq!(roles, ["buyer", "admin"]);
    assert_eq!(claims.roles, [Role::Buyer, Role::Admin]);
}
