//! Sessions and throttling under attack and under load: revocation that cannot miss a token a
//! concurrent refresh creates, refreshes that hold one connection, guesses in parallel, spoofed
//! client addresses, per-client rate limits and fresh proof for a first password.

use std::{future::Future, time::Duration};

use platform::testing::{self, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use user::config::{Config, TrustedProxies};

use crate::helpers::{App, PASSWORD, json_of, problem, spawn, spawn_with};

/// A failure bound only: every request here answers in milliseconds when nothing stalls.
const BOUND: Duration = Duration::from_secs(10);

async fn refresh(app: &App, token: &Value) -> reqwest::Response {
    app.post("/api/v1/auth/refresh", &json!({"refresh_token": token}))
        .await
}

/// Runs `requests` concurrently; their answers in order.
async fn all<F>(requests: impl IntoIterator<Item = F>) -> Vec<reqwest::Response>
where
    F: Future<Output = reqwest::Response> + Send + 'static,
{
    let running: Vec<_> = requests.into_iter().map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for r in running {
        answers.push(r.await.unwrap());
    }
    answers
}

/// A POST as a detached future, optionally with a bearer token and an `x-forwarded-for`.
fn post(
    client: &reqwest::Client,
    url: String,
    body: Value,
    bearer: Option<&str>,
    xff: Option<&str>,
) -> impl Future<Output = reqwest::Response> + Send + use<> {
    let mut req = client.post(url).json(&body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    async move { req.send().await.unwrap() }
}

fn login_from(
    app: &App,
    email: &str,
    password: &str,
    xff: &str,
) -> impl Future<Output = reqwest::Response> + Send + use<> {
    post(
        &app.client,
        app.url("/api/v1/auth/login"),
        json!({"email": email, "password": password}),
        None,
        Some(xff),
    )
}

#[tokio::test]
async fn an_admin_reset_refuses_the_old_refresh_token() {
    let app = spawn().await;
    let id = app.sign_up("demoted@example.com").await;
    let admin = app.admin_token().await;
    let path = format!("/api/v1/admin/users/{id}/roles");
    let r = app
        .post_auth(&path, &admin, &json!({"roles": ["organizer"]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let old = app.login("demoted@example.com", PASSWORD).await;
    // Granting keeps the sessions (the next refresh carries the role)...
    let r = app
        .post_auth(&path, &admin, &json!({"roles": ["organizer", "admin"]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let old = json_of(refresh(&app, &old["refresh_token"]).await).await;
    // ...taking a role away ends every session the account had.
    let r = app
        .post_auth(&path, &admin, &json!({"roles": ["buyer"]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = refresh(&app, &old["refresh_token"]).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // The next sign-in carries what is left. The administrator's own session lives on.
    let fresh = app.login("demoted@example.com", PASSWORD).await;
    let claims = app
        .verify(fresh["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.roles, [platform::auth::Role::Buyer]);
    let r = app.get_auth("/api/v1/users/me", &admin).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_racing_a_logout_leaves_no_live_token() {
    let app = spawn().await;
    app.sign_up("racer@example.com").await;
    for round in 0..60 {
        let pair = app.login("racer@example.com", PASSWORD).await;
        let token = &pair["refresh_token"];
        let body = json!({"refresh_token": token});
        let (r, out) = tokio::join!(refresh(&app, token), app.post("/api/v1/auth/logout", &body),);
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        let family: uuid::Uuid = sqlx::query_scalar(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
        )
        .bind(token.as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
        if r.status() == StatusCode::OK {
            // The refresh won the race; the logout after it must still have ended the family.
            let next = json_of(r).await;
            let r = refresh(&app, &next["refresh_token"]).await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "round {round}: a token created by a refresh racing the logout is still live"
            );
        } else {
            problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refresh_tokens
             WHERE family_id = $1 AND revoked_at IS NULL AND spent_at IS NULL",
        )
        .bind(family)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(live, 0, "round {round}: the family has a live token");
        let r = refresh(&app, token).await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
}

/// The service with a small connection pool (and a long pool timeout, so a stall shows as one).
async fn small_pool(max_connections: u32) -> (TestServer, sqlx::PgPool) {
    let mut infra = testing::infra("user_sessions");
    infra.database.max_connections = max_connections;
    infra.database.acquire_timeout_ms = 60_000;
    let prefix = infra.database.name_prefix.clone();
    let cfg: Config = crate::helpers::config("http://127.0.0.1:9");
    let service = user::start(&cfg, &infra).await.unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let db = sqlx::PgPool::connect(&format!("{}/{prefix}user", testing::database_url()))
        .await
        .unwrap();
    (server, db)
}

#[tokio::test]
async fn concurrent_refreshes_do_not_stall_other_requests() {
    let (server, _db) = small_pool(5).await;
    let client = reqwest::Client::new();
    let call = |path: &str, body: Value| post(&client, server.url(path), body, None, None);
    let r = call(
        "/api/v1/users",
        json!({"email": "busy@example.com", "password": PASSWORD, "name": "Busy"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let creds = json!({"email": "busy@example.com", "password": PASSWORD});
    let mut sessions = Vec::new();
    for _ in 0..30 {
        let r = call("/api/v1/auth/login", creds.clone()).await;
        assert_eq!(r.status(), StatusCode::OK);
        sessions.push(json_of(r).await);
    }
    let access = sessions[0]["access_token"].as_str().unwrap().to_owned();
    // Thirty refreshes at once on a pool of five, and meanwhile a profile read and a login.
    let refreshes = sessions
        .iter()
        .map(|s| {
            call(
                "/api/v1/auth/refresh",
                json!({"refresh_token": s["refresh_token"]}),
            )
        })
        .collect::<Vec<_>>();
    let refreshes = tokio::spawn(all(refreshes));
    let profile = client
        .get(server.url("/api/v1/users/me"))
        .bearer_auth(&access)
        .send();
    let login = call("/api/v1/auth/login", creds.clone());
    let (refreshed, profile, login) =
        tokio::time::timeout(BOUND, async { tokio::join!(refreshes, profile, login) })
            .await
            .expect("the service stalled under concurrent refreshes");
    for r in refreshed.unwrap() {
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(profile.unwrap().status(), StatusCode::OK);
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_exceed_the_allowed_attempts() {
    let app = spawn_with(|c| {
        c.throttle.account_free_failures = 5;
        c.throttle.client_free_failures = 1000;
        c.throttle.base_lock_secs = 600;
        // A hash that takes a moment, so the guesses really overlap.
        c.argon2.memory_kib = 4096;
    })
    .await;
    app.sign_up("guessed@example.com").await;
    let answers = all((0..50).map(|i| {
        login_from(
            &app,
            "guessed@example.com",
            "wrong password!",
            &format!("198.51.100.{i}"),
        )
    }))
    .await;
    let count = |status| answers.iter().filter(|r| r.status() == status).count();
    let (refused, limited) = (
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::TOO_MANY_REQUESTS),
    );
    assert_eq!(refused + limited, 50);
    assert_eq!(refused, 5, "{refused} guesses reached the password check");
    // Locked now, for the right password too.
    let r = login_from(&app, "guessed@example.com", PASSWORD, "192.0.2.1").await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_right_password_gives_its_reservation_back() {
    let app = spawn_with(|c| {
        c.throttle.client_free_failures = 3;
        c.throttle.base_lock_secs = 600;
    })
    .await;
    app.sign_up("regular@example.com").await;
    // Many good logins from one address never lock it...
    for _ in 0..6 {
        let r = login_from(&app, "regular@example.com", PASSWORD, "192.0.2.50").await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // ...while its failures still count: two, a good one (which would have been the third), and
    // the address is not locked until a real third failure.
    for _ in 0..2 {
        let r = login_from(&app, "nobody@example.com", "wrong password!", "192.0.2.50").await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let r = login_from(&app, "regular@example.com", PASSWORD, "192.0.2.50").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = login_from(&app, "nobody@example.com", "wrong password!", "192.0.2.50").await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = login_from(&app, "regular@example.com", PASSWORD, "192.0.2.50").await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn failures_are_remembered_past_the_longest_lock() {
    let app = spawn_with(|c| {
        c.throttle.account_free_failures = 2;
        c.throttle.base_lock_secs = 600;
        c.throttle.max_lock_secs = 600;
        c.throttle.window_secs = 600;
    })
    .await;
    app.sign_up("patient@example.com").await;
    for _ in 0..2 {
        let r = login_from(&app, "patient@example.com", "wrong password!", "10.1.1.1").await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // The attacker waits the whole lock out: the last failure is now as old as the window.
    sqlx::query(
        "UPDATE login_attempts SET last_failure_at = now() - interval '600 seconds',
                                   locked_until = now()
         WHERE key = 'email:patient@example.com'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // One more guess, and the account is locked again at once: the count was not forgotten.
    let r = login_from(&app, "patient@example.com", "wrong password!", "10.1.1.2").await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = login_from(&app, "patient@example.com", "wrong password!", "10.1.1.3").await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // This test's requests come from loopback; here loopback is not a trusted proxy.
    let app = spawn_with(|c| {
        c.trusted_proxies = "192.0.2.254".parse().unwrap();
        c.throttle.client_free_failures = 3;
        c.throttle.account_free_failures = 100;
        c.throttle.base_lock_secs = 600;
    })
    .await;
    app.sign_up("victim@example.com").await;
    for i in 0..3 {
        let r = login_from(
            &app,
            &format!("guess{i}@example.com"),
            "wrong password!",
            &format!("203.0.113.{i}"),
        )
        .await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Claiming yet another address does not escape the peer's lock.
    let r = login_from(&app, "victim@example.com", PASSWORD, "203.0.113.99").await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM login_attempts WHERE key LIKE 'ip:%'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(keys, ["ip:127.0.0.1"]);
}

#[tokio::test]
async fn sign_up_is_rate_limited_per_client_address() {
    let app = spawn_with(|c| c.throttle.signup_per_client = 2).await;
    let sign_up = |email: String, ip: &str| {
        post(
            &app.client,
            app.url("/api/v1/users"),
            json!({"email": email, "password": PASSWORD, "name": "N"}),
            None,
            Some(ip),
        )
    };
    for i in 0..2 {
        let r = sign_up(format!("n{i}@example.com"), "192.0.2.10").await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = sign_up("n2@example.com".into(), "192.0.2.10").await;
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Invalid requests cost nothing and are not counted; another address is not limited.
    let r = app.post("/api/v1/users", &json!({"email": "x"})).await;
    problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let r = sign_up("n3@example.com".into(), "192.0.2.11").await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn starting_social_sign_ins_is_rate_limited_per_client_address() {
    let app = spawn_with(|c| c.throttle.authorize_per_client = 2).await;
    let authorize = |ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/v1/auth/oauth/google/authorize"))
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        assert_eq!(authorize("192.0.2.20").await.status(), StatusCode::FOUND);
    }
    let r = authorize("192.0.2.20").await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(authorize("192.0.2.21").await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn expired_oauth_states_are_pruned_through_an_index() {
    let app = spawn().await;
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, provider, code_verifier, nonce, expires_at) VALUES
            ('\\x01', 'google', 'v', 'n', now() - interval '1 minute'),
            ('\\x02', 'google', 'v', 'n', now() + interval '5 minutes')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let keys = user::keys::KeyRing::open(app.db.clone(), 900, 0)
        .await
        .unwrap();
    let sessions = user::tokens::Sessions::new(app.db.clone(), keys, 900, 3600);
    sessions.sweep().await.unwrap();
    let left: Vec<Vec<u8>> = sqlx::query_scalar("SELECT state_hash FROM oauth_states")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(left, [vec![2u8]]);
    // The sweeper's delete can use the expiry index (forbid the sequential scan to see it).
    let mut conn = app.db.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN DELETE FROM oauth_states WHERE expires_at < now()")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert!(
        plan.iter().any(|l| l.contains("oauth_states_expires")),
        "{plan:?}"
    );
}

/// A social-only account (no password) with a session signed in to now, as a provider sign-in
/// makes: its access token.
async fn social_only(app: &App, email: &str) -> (uuid::Uuid, String) {
    let id = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, $2, 'Social')")
        .bind(id)
        .bind(email)
        .execute(&app.db)
        .await
        .unwrap();
    (id, signed_in(app, email).await)
}

/// An access token of a session of `email` signed in to now (as a provider sign-in makes one).
async fn signed_in(app: &App, email: &str) -> String {
    let keys = user::keys::KeyRing::open(app.db.clone(), 900, 0)
        .await
        .unwrap();
    let sessions = user::tokens::Sessions::new(app.db.clone(), keys, 900, 3600);
    let mut conn = app.db.acquire().await.unwrap();
    let account = user::store::by_email(&mut conn, email)
        .await
        .unwrap()
        .unwrap();
    sessions.sign_in(&account).await.unwrap().access_token
}

#[tokio::test]
async fn a_first_password_needs_a_recent_sign_in() {
    let app = spawn_with(|c| c.tokens.fresh_login_secs = 300).await;
    let path = "/api/v1/users/me/password";
    let body = json!({"new_password": "my first passphrase"});
    let (id, stale) = social_only(&app, "social@example.com").await;
    // A session signed in to long ago (kept alive by refreshes) is not proof enough.
    sqlx::query(
        "UPDATE refresh_families SET created_at = now() - interval '1 hour' WHERE user_id = $1",
    )
    .bind(id)
    .execute(&app.db)
    .await
    .unwrap();
    let r = app.post_auth(path, &stale, &body).await;
    problem(r, StatusCode::FORBIDDEN, "fresh_login_required").await;
    // A fresh sign-in is.
    let fresh = signed_in(&app, "social@example.com").await;
    let r = app.post_auth(path, &fresh, &body).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.login("social@example.com", "my first passphrase").await;
    // From now on the current password is needed, as for everyone.
    let r = app
        .post_auth(path, &fresh, &json!({"new_password": "another passphrase"}))
        .await;
    let p = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "current_password");
}

#[tokio::test]
async fn changing_a_password_is_under_the_login_throttle() {
    let app = spawn_with(|c| {
        c.throttle.account_free_failures = 3;
        c.throttle.base_lock_secs = 600;
    })
    .await;
    app.sign_up("changer@example.com").await;
    let token = app.login("changer@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = "/api/v1/users/me/password";
    let guesses = all((0..10).map(|i| {
        post(
            &app.client,
            app.url(path),
            json!({"current_password": format!("guess number {i}"), "new_password": "a fresh passphrase"}),
            Some(&token),
            None,
        )
    }))
    .await;
    let wrong = guesses
        .iter()
        .filter(|r| r.status() == StatusCode::BAD_REQUEST)
        .count();
    let limited = guesses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((wrong, limited), (3, 7));
    // The account is locked for the right password too, here and at login.
    let r = app
        .post_auth(
            path,
            &token,
            &json!({"current_password": PASSWORD, "new_password": "a fresh passphrase"}),
        )
        .await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let r = login_from(&app, "changer@example.com", PASSWORD, "192.0.2.30").await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[test]
fn trusted_proxies_default_to_loopback() {
    let c = Config::default();
    assert_eq!(c.trusted_proxies, TrustedProxies::default());
    assert!(c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
}
