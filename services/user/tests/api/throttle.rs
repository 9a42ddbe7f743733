//! Login throttling per account and per client address.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{App, PASSWORD, problem, spawn_with};

async fn attempt(app: &App, email: &str, password: &str, ip: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", format!("203.0.113.250, {ip}"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_account_is_locked_with_backoff_after_repeated_failures() {
    let app = spawn_with(|c| {
        c.throttle.account_free_failures = 3;
        c.throttle.base_lock_secs = 60;
    })
    .await;
    app.sign_up("target@example.com").await;
    for _ in 0..2 {
        let r = attempt(
            &app,
            "target@example.com",
            "wrong password!",
            "198.51.100.1",
        )
        .await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // The third failure locks the account for the base time.
    let r = attempt(
        &app,
        "target@example.com",
        "wrong password!",
        "198.51.100.2",
    )
    .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // Now even the right password from another address is refused, with Retry-After.
    let r = attempt(&app, "target@example.com", PASSWORD, "198.51.100.3").await;
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["retry_after_secs"], retry);
    // Other accounts are unaffected.
    app.sign_up("bystander@example.com").await;
    let r = attempt(&app, "bystander@example.com", PASSWORD, "198.51.100.3").await;
    assert_eq!(r.status(), StatusCode::OK);
    // The lock doubles: expire it by hand, fail once more, and the next lock is longer.
    sqlx::query(
        "UPDATE login_attempts SET locked_until = now() WHERE key = 'email:target@example.com'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let r = attempt(
        &app,
        "target@example.com",
        "wrong password!",
        "198.51.100.4",
    )
    .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = attempt(&app, "target@example.com", PASSWORD, "198.51.100.4").await;
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((61..=120).contains(&retry), "{retry}");
}

#[tokio::test]
async fn a_client_address_is_locked_across_accounts() {
    let app = spawn_with(|c| c.throttle.client_free_failures = 4).await;
    app.sign_up("someone@example.com").await;
    for i in 0..4 {
        let r = attempt(
            &app,
            &format!("guess{i}@example.com"),
            "wrong password!",
            "192.0.2.7",
        )
        .await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let r = attempt(&app, "someone@example.com", PASSWORD, "192.0.2.7").await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The gateway appends the client address last; another client is not locked.
    let r = attempt(&app, "someone@example.com", PASSWORD, "192.0.2.8").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_success_clears_the_account_counter() {
    let app = spawn_with(|c| c.throttle.account_free_failures = 3).await;
    app.sign_up("forgetful@example.com").await;
    for round in 0..3 {
        for _ in 0..2 {
            let r = attempt(&app, "forgetful@example.com", "wrong password!", "10.0.0.1").await;
            problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
        let r = attempt(&app, "forgetful@example.com", PASSWORD, "10.0.0.1").await;
        assert_eq!(r.status(), StatusCode::OK, "round {round}");
    }
}

#[tokio::test]
async fn stale_counters_and_expired_tokens_are_swept() {
    let app = spawn_with(|_| {}).await;
    sqlx::query(
        "INSERT INTO login_attempts (key, failures, last_failure_at, locked_until) VALUES
            ('email:old@example.com', 3, now() - interval '1 day', NULL),
            ('email:locked@example.com', 9, now() - interval '1 day', now() + interval '1 hour'),
            ('email:recent@example.com', 1, now(), NULL)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let throttle = user::throttle::Throttle::new(app.db.clone(), Default::default());
    throttle.sweep().await.unwrap();
    // (The service's own sweeper may have got there first; either way only the stale row goes.)
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM login_attempts ORDER BY key")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        left,
        ["email:locked@example.com", "email:recent@example.com"]
    );
    let keys = user::keys::KeyRing::open(app.db.clone(), 900, 0)
        .await
        .unwrap();
    let sessions = user::tokens::Sessions::new(app.db.clone(), keys, 900, 3600);
    app.sign_up("sweep@example.com").await;
    app.login("sweep@example.com", PASSWORD).await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '2 days'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(sessions.sweep().await.unwrap(), 1);
}
