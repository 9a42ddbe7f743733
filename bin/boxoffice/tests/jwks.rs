//! A token issued by the user service is verified by another crate (this one) with nothing but
//! the published JWKS: no shared secret, no call to the user service per token.

#![allow(clippy::unwrap_used)]

use platform::{
    auth::{Role, Verifier},
    testing,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_user_service_token_verifies_with_only_the_jwks() {
    let mut cfg = user::Config::default();
    // Cheap hashing keeps the test fast; the parameters do not matter here.
    cfg.argon2.memory_kib = 256;
    cfg.argon2.iterations = 1;
    let infra = testing::infra("jwks");
    let service = user::start(&cfg, &infra).await.unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;

    let (id, token) = sign_up_and_log_in(&server, "jwks@example.com").await;

    let verifier = Verifier::remote(server.url("/.well-known/jwks.json"));
    let claims = verifier.verify_async(&token).await.unwrap();
    assert_eq!(claims.sub.to_string(), id);
    assert_eq!(claims.roles, [Role::Buyer]);
    assert_eq!(claims.iss, platform::auth::ISSUER);
    // A token with another token's claims under its signature does not pass.
    let other = sign_up_and_log_in(&server, "other@example.com").await.1;
    let mine: Vec<&str> = token.split('.').collect();
    let theirs: Vec<&str> = other.split('.').collect();
    let forged = format!("{}.{}.{}", mine[0], theirs[1], mine[2]);
    // Once the keys are fetched, verification needs no network at all.
    drop(server);
    assert!(verifier.verify(&token).is_ok());
    assert!(verifier.verify(&other).is_ok());
    assert!(verifier.verify(&forged).is_err());
}

/// Signs `email` up and logs in over HTTP; returns the user id and the access token.
async fn sign_up_and_log_in(server: &testing::TestServer, email: &str) -> (String, String) {
    let password = "verified elsewhere";
    let r = server
        .client
        .post(server.url("/api/v1/users"))
        .json(&json!({"email": email, "password": password, "name": "J"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server
        .client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, token)
}
