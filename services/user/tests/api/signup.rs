//! Sign-up: a valid account, a duplicate, and each invalid field.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, json_of, problem, spawn};

#[tokio::test]
async fn valid_sign_up_creates_the_account_and_emits_user_registered() {
    let app = spawn().await;
    let r = app
        .post(
            "/api/v1/users",
            &json!({"email": " Fan@Example.COM ", "password": PASSWORD,
                    "name": "김민지", "phone": "010-1234-5678"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = json_of(r).await;
    assert_eq!(body["email"], "fan@example.com");
    assert_eq!(body["name"], "김민지");
    let id = body["id"].as_str().unwrap().to_owned();

    let (hash, phone, roles): (String, Option<String>, Vec<String>) =
        sqlx::query_as("SELECT password_hash, phone, roles FROM users WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // An argon2id hash of this very password (and not of another).
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use argon2::PasswordVerifier as _;
    let argon2 = argon2::Argon2::default();
    assert!(
        argon2
            .verify_password(PASSWORD.as_bytes(), hash.as_str())
            .is_ok()
    );
    let other = argon2.verify_password(b"correct horse battery!", hash.as_str());
    assert!(
        matches!(other, Err(argon2::password_hash::Error::PasswordInvalid)),
        "{other:?}"
    );
    assert_eq!(phone.as_deref(), Some("+821012345678"));
    assert_eq!(roles, ["buyer"]);

    // Exactly one user.registered, about this account.
    let events: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT envelope FROM bus_outbox WHERE envelope->>'type' = 'user.registered'
         AND envelope->'payload'->>'email' <> $1",
    )
    .bind(crate::helpers::ADMIN_EMAIL)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["payload"],
        json!({"user_id": id, "email": "fan@example.com", "name": "김민지",
               "phone": "+821012345678"})
    );
}

#[tokio::test]
async fn duplicate_email_is_409_whatever_its_case() {
    let app = spawn().await;
    app.sign_up("dup@example.com").await;
    let r = app
        .post(
            "/api/v1/users",
            &json!({"email": "DUP@example.com", "password": PASSWORD, "name": "Other"}),
        )
        .await;
    problem(r, StatusCode::CONFLICT, "email_taken").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'dup@example.com'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD, "name": "A"}),
            "email",
        ),
        (json!({"password": PASSWORD, "name": "A"}), "email"),
        (
            json!({"email": "a@example.com", "password": "short1!", "name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "Password123", "name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "  "}),
            "name",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "phone": "555-0100"}),
            "phone",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v1/users", &body).await;
        let p = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
        let errors = p["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{p}");
        assert_eq!(errors[0]["field"], field, "{p}");
    }
    // Everything wrong at once: every field is listed.
    let r = app
        .post(
            "/api/v1/users",
            &json!({"email": "x", "password": "x", "name": "", "phone": "x"}),
        )
        .await;
    let p = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 4);
    // Malformed or mistyped bodies are problems too, never a 500.
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    let r = app.post("/api/v1/users", &json!({"email": 5})).await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email <> $1")
        .bind(crate::helpers::ADMIN_EMAIL)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing half-written");
}
