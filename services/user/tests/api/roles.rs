//! Roles: buyers by default, granted by admins, carried in the token.

use platform::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, config, json_of, problem, spawn};

#[tokio::test]
async fn an_admin_grants_roles_and_they_travel_in_the_next_token() {
    let app = spawn().await;
    let id = app.sign_up("organizer@example.com").await;
    let pair = app.login("organizer@example.com", PASSWORD).await;
    let buyer_token = pair["access_token"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}/roles");

    // A buyer may not grant, not even to themself; nobody without a token either.
    let r = app
        .post_auth(&path, buyer_token, &json!({"roles": ["organizer"]}))
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.post(&path, &json!({"roles": ["organizer"]})).await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .post_auth(&path, "not-a-jwt", &json!({"roles": ["organizer"]}))
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let admin = app.admin_token().await;
    let r = app
        .post_auth(&path, &admin, &json!({"roles": ["emperor"]}))
        .await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let r = app
        .post_auth(
            "/api/v1/admin/users/00000000-0000-0000-0000-000000000000/roles",
            &admin,
            &json!({"roles": ["organizer"]}),
        )
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_auth(
            "/api/v1/admin/users/nope/roles",
            &admin,
            &json!({"roles": []}),
        )
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;

    let r = app
        .post_auth(&path, &admin, &json!({"roles": ["organizer"]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["roles"], json!(["buyer", "organizer"]));

    // The next token (refresh or login) carries the new role.
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed = json_of(r).await;
    let claims = app
        .verify(refreshed["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub.to_string(), id);
    assert_eq!(claims.roles, [Role::Buyer, Role::Organizer]);
    assert!(!claims.has(Role::Admin));
    let me = json_of(
        app.get_auth(
            "/api/v1/users/me",
            refreshed["access_token"].as_str().unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["roles"], json!(["buyer", "organizer"]));
}

#[tokio::test]
async fn the_admin_is_reset_at_start() {
    let infra = platform::testing::infra("user");
    let mut cfg = config("http://127.0.0.1:9");
    user::start(&cfg, &infra).await.unwrap();
    cfg.admin_password = Some("a brand new admin passphrase".into());
    let service = user::start(&cfg, &infra).await.unwrap();
    let server = platform::testing::serve(service, infra.shutdown.clone()).await;
    let r = server
        .client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": "a brand new admin passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The old password no longer works.
    let r = server
        .client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // A weak administrator password stops the start with a clear error.
    cfg.admin_password = Some("admin".into());
    let Err(e) = user::start(&cfg, &infra).await else {
        panic!("a weak admin password was accepted");
    };
    assert!(e.to_string().contains("admin_password"), "{e}");
}
