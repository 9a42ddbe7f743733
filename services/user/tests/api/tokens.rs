//! Refresh rotation, stolen-token detection, logout and signing key rotation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{App, PASSWORD, json_of, problem, spawn, spawn_with};

async fn refresh(app: &App, token: &Value) -> reqwest::Response {
    app.post("/api/v1/auth/refresh", &json!({"refresh_token": token}))
        .await
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let app = spawn().await;
    let id = app.sign_up("rotate@example.com").await;
    let first = app.login("rotate@example.com", PASSWORD).await;
    let r = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = json_of(r).await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    let claims = app
        .verify(second["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        claims.sub.to_string(),
        id,
        "the refreshed token is the same user's"
    );
    // The new one works in turn.
    let r = refresh(&app, &second["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Stored hashed only, for its user.
    let raw = second["refresh_token"].as_str().unwrap();
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT user_id::text FROM refresh_tokens
         WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(raw)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(owners, [id], "stored as its SHA-256");
    let r = refresh(&app, &json!("made-up")).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_family() {
    let app = spawn().await;
    app.sign_up("stolen@example.com").await;
    let first = app.login("stolen@example.com", PASSWORD).await;
    let other_session = app.login("stolen@example.com", PASSWORD).await;
    let second = json_of(refresh(&app, &first["refresh_token"]).await).await;
    // The thief (or the victim) presents the spent token again...
    let r = refresh(&app, &first["refresh_token"]).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // ...and the whole family is dead, including the newest token.
    let r = refresh(&app, &second["refresh_token"]).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Another sign-in of the same user is a different family and lives on.
    let r = refresh(&app, &other_session["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn().await;
    app.sign_up("bye@example.com").await;
    let pair = app.login("bye@example.com", PASSWORD).await;
    let r = app
        .post(
            "/api/v1/auth/logout",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = refresh(&app, &pair["refresh_token"]).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Idempotent.
    let r = app
        .post(
            "/api/v1/auth/logout",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.post("/api/v1/auth/logout", &json!({})).await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn jwks(app: &App) -> jsonwebtoken::jwk::JwkSet {
    app.client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn rotate(app: &App) -> String {
    let admin = app.admin_token().await;
    let r = app
        .post_auth("/api/v1/auth/keys/rotate", &admin, &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let app = spawn_with(|c| c.tokens.key_activation_delay_secs = 0).await;
    let id = app.sign_up("keys@example.com").await;
    let before = app.login("keys@example.com", PASSWORD).await;
    let old_token = before["access_token"].as_str().unwrap().to_owned();
    let old_kid = kid(&old_token);

    let r = app
        .post_auth("/api/v1/auth/keys/rotate", &old_token, &json!({}))
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let new_kid = rotate(&app).await;
    assert_ne!(new_kid, old_kid);

    let set = jwks(&app).await;
    assert!(set.find(&old_kid).is_some() && set.find(&new_kid).is_some());
    assert_eq!(set.keys.len(), 2);

    let after = app.login("keys@example.com", PASSWORD).await;
    let new_token = after["access_token"].as_str().unwrap();
    assert_eq!(kid(new_token), new_kid);
    // Tokens of both keys verify with the JWKS alone: nobody is logged out.
    for t in [old_token.as_str(), new_token] {
        assert_eq!(app.verify(t).await.unwrap().sub.to_string(), id);
    }
    // And the service itself accepts both, as that user.
    for t in [old_token.as_str(), new_token] {
        let r = app.get_auth("/api/v1/users/me", t).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(json_of(r).await["id"], id.as_str());
    }
    // A refresh token issued before the rotation still refreshes, now with the new key.
    let r = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": before["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed = json_of(r).await;
    assert_eq!(kid(refreshed["access_token"].as_str().unwrap()), new_kid);
    // Both keys live in UserDB (`tokens_survive_a_restart` restarts on them).
    let mut stored: Vec<String> = sqlx::query_scalar("SELECT kid FROM signing_keys")
        .fetch_all(&app.db)
        .await
        .unwrap();
    stored.sort();
    let mut published = vec![old_kid, new_kid];
    published.sort();
    assert_eq!(stored, published);
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs() {
    let app = spawn_with(|c| c.tokens.key_activation_delay_secs = 2).await;
    let id = app.sign_up("prepub@example.com").await;
    let old_kid = kid(
        app.login("prepub@example.com", PASSWORD).await["access_token"]
            .as_str()
            .unwrap(),
    );
    let new_kid = rotate(&app).await;
    // Published at once, but the old key still signs.
    let set = jwks(&app).await;
    assert!(set.find(&new_kid).is_some());
    let now = app.login("prepub@example.com", PASSWORD).await;
    assert_eq!(kid(now["access_token"].as_str().unwrap()), old_kid);
    // A verifier that fetched the keys now (and never again) verifies what comes next.
    let cached = platform::auth::Verifier::from_jwks(set.keys.clone());
    let old = old_kid.clone();
    platform::testing::eventually(
        "tokens signed by the new key",
        std::time::Duration::from_secs(10),
        || {
            let (app, old) = (&app, old.clone());
            async move {
                let pair = app.login("prepub@example.com", PASSWORD).await;
                kid(pair["access_token"].as_str().unwrap()) != old
            }
        },
    )
    .await;
    let pair = app.login("prepub@example.com", PASSWORD).await;
    let latest = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid(&latest), new_kid);
    assert_eq!(cached.verify(&latest).unwrap().sub.to_string(), id);
}

#[tokio::test]
async fn tokens_survive_a_restart() {
    let infra = platform::testing::infra("user");
    let cfg = crate::helpers::config("http://127.0.0.1:9");
    let first = user::start(&cfg, &infra).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = platform::testing::serve(first, shutdown.clone()).await;
    let body = json!({"email": "restart@example.com", "password": PASSWORD, "name": "R"});
    let r = server
        .client
        .post(server.url("/api/v1/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = json_of(r).await["id"].as_str().unwrap().to_owned();
    let r = server
        .client
        .post(server.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let pair = json_of(r).await;
    drop(server);

    let again = user::start(&cfg, &infra).await.unwrap();
    let server = platform::testing::serve(again, infra.shutdown.clone()).await;
    let token = pair["access_token"].as_str().unwrap();
    let claims = platform::auth::Verifier::remote(server.url("/.well-known/jwks.json"))
        .verify_async(token)
        .await
        .unwrap();
    assert_eq!(
        claims.sub.to_string(),
        id,
        "the token names the user who signed up"
    );
    let r = server
        .client
        .post(server.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": pair["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        kid(json_of(r).await["access_token"].as_str().unwrap()),
        kid(token)
    );
}
