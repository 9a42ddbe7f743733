//! The signed-in user's profile and password.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, json_of, problem, spawn};

#[tokio::test]
async fn profile_reads_and_updates() {
    let app = spawn().await;
    let id = app.sign_up("me@example.com").await;
    let token = app.login("me@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = json_of(app.get_auth("/api/v1/users/me", &token).await).await;
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["email"], "me@example.com");
    assert_eq!(me["roles"], json!(["buyer"]));
    assert_eq!(me["has_password"], true);
    assert!(me.get("password_hash").is_none(), "{me}");

    let patch = |body: serde_json::Value| {
        let (app, token) = (&app, token.clone());
        async move {
            app.client
                .patch(app.url("/api/v1/users/me"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = patch(json!({"name": "박서준", "phone": "+82 10 9876 5432"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let me = json_of(r).await;
    assert_eq!(
        (me["name"].as_str(), me["phone"].as_str()),
        (Some("박서준"), Some("+821098765432"))
    );
    // Stored, not only echoed.
    let me = json_of(app.get_auth("/api/v1/users/me", &token).await).await;
    assert_eq!(
        (me["name"].as_str(), me["phone"].as_str()),
        (Some("박서준"), Some("+821098765432"))
    );
    // Leaving a field out keeps it; null removes the phone.
    let me = json_of(patch(json!({"phone": null})).await).await;
    assert_eq!(me["name"], "박서준");
    assert_eq!(me["phone"], serde_json::Value::Null, "{me}");
    let me = json_of(app.get_auth("/api/v1/users/me", &token).await).await;
    assert_eq!(
        (me["name"].as_str(), &me["phone"]),
        (Some("박서준"), &serde_json::Value::Null)
    );
    // A refused change leaves the profile as it was.
    let r = patch(json!({"phone": "12"})).await;
    let p = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "phone");
    let r = patch(json!({"name": ""})).await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let me = json_of(app.get_auth("/api/v1/users/me", &token).await).await;
    assert_eq!(me["name"], "박서준");
    let r = app
        .client
        .get(app.url("/api/v1/users/me"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn changing_the_password_revokes_the_other_sessions() {
    let app = spawn().await;
    app.sign_up("pw@example.com").await;
    let here = app.login("pw@example.com", PASSWORD).await;
    let elsewhere = app.login("pw@example.com", PASSWORD).await;
    let token = here["access_token"].as_str().unwrap();
    let path = "/api/v1/users/me/password";

    let r = app
        .post_auth(
            path,
            token,
            &json!({"current_password": "not it at all", "new_password": "a fresh passphrase"}),
        )
        .await;
    let p = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "current_password");
    let r = app
        .post_auth(
            path,
            token,
            &json!({"current_password": PASSWORD, "new_password": "1234567890"}),
        )
        .await;
    let p = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "new_password");

    let r = app
        .post_auth(
            path,
            token,
            &json!({"current_password": PASSWORD, "new_password": "a fresh passphrase"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "pw@example.com", "password": PASSWORD}),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    app.login("pw@example.com", "a fresh passphrase").await;
    // The other session is gone; this one lives on.
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": elsewhere["refresh_token"]}),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": here["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
