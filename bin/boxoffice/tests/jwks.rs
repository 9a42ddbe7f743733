//! A token issued by the user service is verified by another service with nothing but the
//! published JWKS, fetched over HTTP: the user service and two replicas of the catalog (one
//! directory, so one JWKS address) run on their own ports, and a tiny proxy in front of the JWKS
//! counts every fetch the catalogs make. Covered: a valid token passes and a forged one does not;
//! a key rotation reaches both replicas (they refetch on an unknown key id); a flood of unknown
//! key ids costs at most one fetch per replica per 10 s; and a key that has left the JWKS stops
//! verifying once the replica's copy is past its `max-age`.
//!
//! The services' verifiers use the default `platform::auth::JwksRefresh`: an unknown key id
//! refetches at most every 10 s of wall-clock time, and `max-age` counts from 5 s. The tests that
//! need a second fetch wait for those to pass: that wait is the behaviour under test, not a
//! synchronisation.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, http::header, routing::get};
use platform::{
    auth::{Claims, Role, SigningKey},
    http::Readiness,
    service::{Infra, Service},
    testing::{self, TestServer},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How often an unknown key id may make a verifier refetch (`JwksRefresh::unknown_kid_interval`).
const REFETCH_LIMIT: Duration = Duration::from_secs(10);
/// The shortest `max-age` a verifier honours (`JwksRefresh::min_max_age`).
const SHORTEST_MAX_AGE: u64 = 5;
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "an administrator's passphrase";

/// The user service, the counting JWKS proxy in front of it and two catalog replicas that find
/// the user service (that is, the proxy) in their directory.
struct Stack {
    user: TestServer,
    jwks: CountingJwks,
    catalogs: Vec<TestServer>,
    infra: Infra,
}

/// Forwards `GET /.well-known/jwks.json` to the user service, recording when each fetch came,
/// and serves the keys with a `Cache-Control: max-age` of the test's choosing.
struct CountingJwks {
    server: TestServer,
    fetches: Arc<Mutex<Vec<Instant>>>,
}

impl CountingJwks {
    async fn start(upstream: String, max_age_secs: u64) -> Self {
        let fetches = Arc::new(Mutex::new(Vec::new()));
        let seen = fetches.clone();
        let client = reqwest::Client::new();
        let router = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let (seen, client, upstream) = (seen.clone(), client.clone(), upstream.clone());
                async move {
                    seen.lock().unwrap().push(Instant::now());
                    let r = client.get(&upstream).send().await.unwrap();
                    assert_eq!(r.status(), StatusCode::OK);
                    let body = r.text().await.unwrap();
                    let cache_control = format!("public, max-age={max_age_secs}");
                    (
                        [
                            (header::CONTENT_TYPE, "application/json".to_owned()),
                            (header::CACHE_CONTROL, cache_control),
                        ],
                        body,
                    )
                }
            }),
        );
        let service = Service {
            name: "jwks-proxy",
            router,
            readiness: Readiness::default(),
            tasks: vec![],
        };
        let server = testing::serve(service, tokio_util::sync::CancellationToken::new()).await;
        Self { server, fetches }
    }

    fn count(&self) -> usize {
        self.fetches.lock().unwrap().len()
    }

    fn at(&self, i: usize) -> Instant {
        self.fetches.lock().unwrap()[i]
    }
}

impl Stack {
    /// Starts everything, the JWKS served with `max_age_secs`; `tune` adjusts the user service's
    /// settings.
    async fn start(
        label: &str,
        replicas: usize,
        max_age_secs: u64,
        tune: impl FnOnce(&mut user::Config),
    ) -> Self {
        let mut cfg = user::Config::default();
        // Cheap hashing keeps the test fast; the parameters do not matter here.
        cfg.argon2.memory_kib = 256;
        cfg.argon2.iterations = 1;
        cfg.admin_email = Some(ADMIN_EMAIL.into());
        cfg.admin_password = Some(ADMIN_PASSWORD.into());
        tune(&mut cfg);
        let mut infra = testing::infra(label);
        let service = user::start(&cfg, &infra).await.unwrap();
        let user = testing::serve(service, infra.shutdown.clone()).await;
        let jwks = CountingJwks::start(user.url("/.well-known/jwks.json"), max_age_secs).await;
        infra
            .directory
            .0
            .insert("user".into(), jwks.server.base_url.clone());
        let config = catalog::Config {
            seed_on_empty: false,
            ..catalog::Config::default()
        };
        let mut catalogs = Vec::new();
        // Replicas: one database, one directory, each its own process state (and verifier).
        for _ in 0..replicas {
            let service = catalog::start(&config, &infra).await.unwrap();
            catalogs.push(testing::serve(service, infra.shutdown.clone()).await);
        }
        Self {
            user,
            jwks,
            catalogs,
            infra,
        }
    }

    /// Logs `email` in at the user service; returns the access token.
    async fn log_in(&self, email: &str, password: &str) -> String {
        let r = self
            .user
            .client
            .post(self.user.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Signs `email` up; returns the user id.
    async fn sign_up(&self, email: &str, password: &str) -> String {
        let r = self
            .user
            .client
            .post(self.user.url("/api/v1/users"))
            .json(&json!({"email": email, "password": password, "name": "J"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An authenticated call to catalog replica `i` (creating a venue, which needs the organizer
    /// role: admins have it); returns its status.
    async fn create_venue(&self, i: usize, token: &str) -> StatusCode {
        let c = &self.catalogs[i];
        c.client
            .post(c.url("/api/v1/admin/venues"))
            .bearer_auth(token)
            .json(&json!({
                "name": "키 회전홀 Rotation Hall",
                "kind": "concert_hall",
                "city": "서울 Seoul",
                "plan": {"width": 100, "height": 100},
                "grades": [{"code": "floor", "name": "스탠딩", "rank": 0}],
                "areas": [{"code": "floor", "name": "스탠딩 구역", "grade": "floor",
                           "kind": "standing", "capacity": 10,
                           "geometry": {"position": {"x": 50, "y": 50}}}]
            }))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `POST /api/v1/auth/keys/rotate` as the administrator; returns the new key id.
    async fn rotate(&self, admin_token: &str) -> String {
        let r = self
            .user
            .client
            .post(self.user.url("/api/v1/auth/keys/rotate"))
            .bearer_auth(admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The key ids the user service publishes now.
    async fn published(&self) -> Vec<String> {
        let jwks: Value = self
            .user
            .client
            .get(self.user.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Logs the administrator in until the token is signed by `kid` (a rotated-in key signs only
    /// from its activation time).
    async fn admin_token_signed_by(&self, kid: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let token = self.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
            if kid_of(&token) == kid {
                return token;
            }
            assert!(Instant::now() < deadline, "no token signed by {kid}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Admin claims under a key nobody publishes, with a key id nobody has seen.
fn unknown_kid_token() -> String {
    let key = SigningKey::generate(format!("intruder-{}", uuid::Uuid::new_v4().simple()));
    key.sign(&Claims::new(uuid::Uuid::now_v7(), vec![Role::Admin], 900))
        .unwrap()
}

/// Sends `n` tokens with unknown key ids to replica `i` at once; each must be refused.
async fn flood(stack: &Stack, i: usize, n: usize) {
    let tokens: Vec<String> = (0..n).map(|_| unknown_kid_token()).collect();
    let answers = futures::future::join_all(tokens.iter().map(|t| stack.create_venue(i, t))).await;
    assert!(
        answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_rotated_key_reaches_every_replica_of_another_service_through_its_jwks() {
    // A long max-age: within this test only unknown key ids make the replicas refetch.
    let stack = Stack::start("jwks_rotate", 2, 600, |c| {
        c.tokens.key_activation_delay_secs = 1;
    })
    .await;
    assert_eq!(stack.jwks.count(), 0, "verifiers fetch lazily");
    let old = stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let old_kid = kid_of(&old);

    // Replica 0 meets its first token: one fetch, then the token passes.
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::CREATED);
    assert_eq!(stack.jwks.count(), 1);
    // Another token's claims under this token's signature do not pass (and cost no fetch: the
    // key id is known).
    stack
        .sign_up("buyer@example.com", "verified elsewhere")
        .await;
    let other = stack
        .log_in("buyer@example.com", "verified elsewhere")
        .await;
    let mine: Vec<&str> = old.split('.').collect();
    let theirs: Vec<&str> = other.split('.').collect();
    let forged = format!("{}.{}.{}", mine[0], theirs[1], mine[2]);
    assert_eq!(
        stack.create_venue(0, &forged).await,
        StatusCode::UNAUTHORIZED
    );
    // The buyer's genuine token verifies; the buyer lacks the organizer role.
    assert_eq!(stack.create_venue(0, &other).await, StatusCode::FORBIDDEN);
    assert_eq!(stack.jwks.count(), 1);

    // The rate limit: a flood of unknown key ids at a replica that has never fetched costs one
    // fetch; at a replica that has just fetched, none.
    flood(&stack, 1, 50).await;
    assert_eq!(stack.jwks.count(), 2, "one fetch for the whole flood");
    flood(&stack, 0, 50).await;
    assert_eq!(stack.jwks.count(), 2, "no fetch within 10 s of the last");
    // Replica 1 learned the keys from that one fetch.
    assert_eq!(stack.create_venue(1, &old).await, StatusCode::CREATED);
    assert_eq!(stack.jwks.count(), 2);

    // Rotation: the new key is published at once and signs after the activation delay.
    let new_kid = stack.rotate(&old).await;
    assert_ne!(new_kid, old_kid);
    let mut published = stack.published().await;
    published.sort();
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(published, both, "two keys are served during a rotation");
    let new = stack.admin_token_signed_by(&new_kid).await;

    // Within 10 s of their last fetch the replicas may not refetch, so they refuse a token
    // signed by a key they have not seen yet (why the activation delay must be longer).
    assert!(
        stack.jwks.at(0).elapsed() < REFETCH_LIMIT,
        "the test ran too slowly to observe the refetch limit"
    );
    assert_eq!(stack.create_venue(0, &new).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.create_venue(1, &new).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.jwks.count(), 2);

    // Once the limit has passed, the first token with the new key id makes each replica refetch
    // once and passes.
    tokio::time::sleep_until((stack.jwks.at(1) + REFETCH_LIMIT).into()).await;
    assert_eq!(stack.create_venue(0, &new).await, StatusCode::CREATED);
    assert_eq!(stack.jwks.count(), 3);
    assert_eq!(stack.create_venue(1, &new).await, StatusCode::CREATED);
    assert_eq!(stack.jwks.count(), 4);
    // The replaced key is still published, so its tokens keep passing: nobody is logged out.
    for i in 0..2 {
        assert_eq!(stack.create_venue(i, &old).await, StatusCode::CREATED);
        assert_eq!(stack.create_venue(i, &new).await, StatusCode::CREATED);
    }
    assert_eq!(stack.jwks.count(), 4);
}

/// A key the user service stops publishing stops verifying at a replica once the replica's copy
/// of the JWKS is past its `max-age`, though no token with an unknown key id comes along: until
/// then it is still trusted.
#[tokio::test]
async fn a_key_gone_from_the_jwks_stops_verifying_once_the_copy_is_stale() {
    let stack = Stack::start("jwks_retire", 1, SHORTEST_MAX_AGE, |c| {
        c.tokens.key_activation_delay_secs = 0;
        c.tokens.key_reload_secs = 1;
    })
    .await;
    let max_age = Duration::from_secs(SHORTEST_MAX_AGE);
    let old = stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let old_kid = kid_of(&old);
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::CREATED);
    assert_eq!(stack.jwks.count(), 1);

    let new_kid = stack.rotate(&old).await;
    let new = stack.admin_token_signed_by(&new_kid).await;
    // The replaced key would stay published for the access-token lifetime plus a minute; move
    // its retirement back a day so the user service stops publishing it at its next reload.
    let userdb = sqlx::PgPool::connect(&format!(
        "{}/{}{}",
        testing::database_url(),
        stack.infra.database.name_prefix,
        user::NAME
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE signing_keys SET retired_at = now() - interval '1 day' WHERE kid = $1")
        .bind(&old_kid)
        .execute(&userdb)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.published().await.contains(&old_kid) {
        assert!(Instant::now() < deadline, "{old_kid} is still published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stack.published().await, [new_kid.as_str()]);
    // The user service itself no longer accepts the old key's tokens...
    let me = stack
        .user
        .client
        .get(stack.user.url("/api/v1/users/me"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    // ...but while its copy is fresh the catalog still does, without looking again.
    assert!(
        stack.jwks.at(0).elapsed() < max_age,
        "the test ran too slowly to see a fresh copy"
    );
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::CREATED);
    assert_eq!(stack.jwks.count(), 1);

    // Past the max-age (with a margin for the fetch itself), the next token makes it refetch,
    // and the retired key is gone from the copy: refused, whereas the new key verifies.
    tokio::time::sleep_until((stack.jwks.at(0) + max_age + Duration::from_millis(500)).into())
        .await;
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.jwks.count(), 2);
    assert_eq!(stack.create_venue(0, &new).await, StatusCode::CREATED);
    // Unknown to it now, the old key id is refetched at most every 10 s, and stays refused.
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.jwks.count(), 2);
}

// Retiring a compromised key at once (`POST /api/v1/auth/keys/{kid}/retire`) and the seeds at
// rest (`user.tokens.key_encryption_key`).

/// Settings for another user-service process on the same UserDB.
fn user_config(tune: impl FnOnce(&mut user::Config)) -> user::Config {
    let mut cfg = user::Config::default();
    cfg.argon2.memory_kib = 256;
    cfg.argon2.iterations = 1;
    tune(&mut cfg);
    cfg
}

/// A pool on the user service's database.
async fn userdb(infra: &Infra) -> sqlx::PgPool {
    sqlx::PgPool::connect(&format!(
        "{}/{}{}",
        testing::database_url(),
        infra.database.name_prefix,
        user::NAME
    ))
    .await
    .unwrap()
}

/// `POST /api/v1/auth/keys/{kid}/retire` with `token` (if any).
async fn retire(server: &TestServer, token: Option<&str>, kid: &str) -> reqwest::Response {
    let mut req = server
        .client
        .post(server.url(&format!("/api/v1/auth/keys/{kid}/retire")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// `GET /api/v1/users/me` at `server` with `token`: whether that service takes the token.
async fn me(server: &TestServer, token: &str) -> StatusCode {
    server
        .client
        .get(server.url("/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// A problem's status and code.
async fn problem(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "{status}"
    );
    let body: Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_retired_key_is_refused_by_another_service_within_its_refresh_interval() {
    let stack = Stack::start("jwks_revoke", 1, SHORTEST_MAX_AGE, |c| {
        c.tokens.jwks_max_age_secs = SHORTEST_MAX_AGE;
    })
    .await;
    let max_age = Duration::from_secs(SHORTEST_MAX_AGE);
    // The user service publishes its keys with the configured max-age.
    let r = stack
        .user
        .client
        .get(stack.user.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()[header::CACHE_CONTROL],
        format!("public, max-age={SHORTEST_MAX_AGE}").as_str()
    );
    // A second user-service replica, reloading its keys only every 30 s by the clock.
    let cfg = user_config(|c| c.tokens.key_reload_secs = 30);
    let replica = user::start(&cfg, &stack.infra).await.unwrap();
    let replica = testing::serve(replica, stack.infra.shutdown.clone()).await;

    let old = stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let old_kid = kid_of(&old);
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::CREATED);
    assert_eq!(me(&replica, &old).await, StatusCode::OK);

    let r = retire(&stack.user, Some(&old), &old_kid).await;
    assert_eq!(r.status(), StatusCode::OK);
    let retired: Value = r.json().await.unwrap();
    assert_eq!(retired["kid"], old_kid.as_str());
    let new_kid = retired["replaced_by"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(retired["signing_kid"], new_kid.as_str());

    // At once: gone from the JWKS, refused by the user service, and the next token is signed by
    // the replacement without an activation delay.
    assert_eq!(stack.published().await, [new_kid.as_str()]);
    assert_eq!(me(&stack.user, &old).await, StatusCode::UNAUTHORIZED);
    let new = stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(kid_of(&new), new_kid);
    assert_eq!(me(&stack.user, &new).await, StatusCode::OK);
    // The other replica hears of it long before its 30 s reload.
    testing::eventually(
        "the other replica refuses the retired key",
        Duration::from_secs(5),
        || async { me(&replica, &old).await == StatusCode::UNAUTHORIZED },
    )
    .await;
    assert_eq!(me(&replica, &new).await, StatusCode::OK);

    // The catalog drops it once its copy of the JWKS is past the max-age, with no unknown key
    // id to make it look (it is asked about the old key only).
    testing::eventually(
        "the catalog refuses the retired key",
        max_age + Duration::from_secs(2),
        || async { stack.create_venue(0, &old).await == StatusCode::UNAUTHORIZED },
    )
    .await;
    assert_eq!(stack.create_venue(0, &new).await, StatusCode::CREATED);
    assert_eq!(stack.create_venue(0, &old).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_an_administrator_retires_a_key_and_signing_never_stops() {
    let stack = Stack::start("jwks_retire_api", 0, SHORTEST_MAX_AGE, |_| {}).await;
    let admin = stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let first = kid_of(&admin);
    stack
        .sign_up("buyer@example.com", "a buyer's passphrase")
        .await;
    let buyer = stack
        .log_in("buyer@example.com", "a buyer's passphrase")
        .await;
    let (status, code) = problem(retire(&stack.user, None, &first).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, code) = problem(retire(&stack.user, Some(&buyer), &first).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, code) = problem(retire(&stack.user, Some(&admin), "k-nobody").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "key_not_found")
    );
    assert_eq!(stack.published().await, [first.as_str()]);

    // A rotated-in key not signing yet (45 s activation delay): retiring it undoes the rotation,
    // and the current key signs on and stays published.
    let scheduled = stack.rotate(&admin).await;
    let r = retire(&stack.user, Some(&admin), &scheduled).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replaced_by"], Value::Null);
    assert_eq!(body["signing_kid"], first.as_str());
    assert_eq!(stack.published().await, [first.as_str()]);
    let userdb = userdb(&stack.infra).await;
    let retired_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT retired_at FROM signing_keys WHERE kid = $1")
            .bind(&first)
            .fetch_one(&userdb)
            .await
            .unwrap();
    assert_eq!(retired_at, None, "the rotation was undone");
    assert_eq!(
        kid_of(&stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await),
        first
    );

    // Retiring the signing key while a rotation is scheduled brings the scheduled key forward:
    // it signs at once, and tokens of the retired key are refused.
    let next = stack.rotate(&admin).await;
    let r = retire(&stack.user, Some(&admin), &first).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replaced_by"], next.as_str());
    assert_eq!(stack.published().await, [next.as_str()]);
    let admin = stack.log_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(kid_of(&admin), next);
    assert_eq!(me(&stack.user, &buyer).await, StatusCode::UNAUTHORIZED);

    // Twice is a conflict; the key stays retired.
    let (status, code) = problem(retire(&stack.user, Some(&admin), &first).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "key_already_retired")
    );
    assert_eq!(stack.published().await, [next.as_str()]);
}

#[tokio::test]
async fn seeds_are_sealed_at_rest_and_a_wrong_key_encryption_key_stops_the_start() {
    use user::keys::Kek;
    let infra = testing::infra("jwks_kek");
    let start = |kek: Option<Kek>| {
        let cfg = user_config(|c| {
            c.admin_email = Some(ADMIN_EMAIL.into());
            c.admin_password = Some(ADMIN_PASSWORD.into());
            c.tokens.key_encryption_key = kek;
        });
        let infra = infra.clone();
        async move { user::start(&cfg, &infra).await }
    };
    let rows = |db: sqlx::PgPool| async move {
        sqlx::query_as::<_, (String, Vec<u8>, Option<String>)>(
            "SELECT kid, seed, seed_kek FROM signing_keys ORDER BY created_at",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    let log_in = |server: &TestServer| {
        let (client, url) = (server.client.clone(), server.url("/api/v1/auth/login"));
        async move {
            let r = client
                .post(url)
                .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // Without a key-encryption key the seed is stored as it is (as before this setting).
    let plain = testing::serve(start(None).await.unwrap(), CancellationToken::new()).await;
    let token = log_in(&plain).await;
    let db = userdb(&infra).await;
    let before = rows(db.clone()).await;
    let [(kid, seed, None)] = before.as_slice() else {
        panic!("{before:?}")
    };
    assert_eq!(seed.len(), 32);
    assert_eq!(&kid_of(&token), kid);
    drop(plain);

    // Started with one, it seals the stored seed: the same key goes on signing.
    let kek = Kek::generate();
    let sealed = testing::serve(
        start(Some(kek.clone())).await.unwrap(),
        CancellationToken::new(),
    )
    .await;
    let after = rows(db.clone()).await;
    let [(same_kid, stored, Some(kek_id))] = after.as_slice() else {
        panic!("{after:?}")
    };
    assert_eq!((same_kid, kek_id.as_str()), (kid, kek.id()));
    assert_eq!(stored.len(), 24 + 32 + 16);
    assert!(
        !stored.windows(32).any(|w| w == seed),
        "the seed is in the row"
    );
    assert_eq!(&kek.open(kid, stored).unwrap(), seed);
    assert!(Kek::generate().open(kid, stored).is_err());
    assert_eq!(me(&sealed, &token).await, StatusCode::OK);
    assert_eq!(kid_of(&log_in(&sealed).await), *kid);
    // A key made now is sealed from the start.
    let rotated = sealed
        .client
        .post(sealed.url("/api/v1/auth/keys/rotate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let all = rows(db.clone()).await;
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|(_, s, k)| s.len() == 72 && k.as_deref() == Some(kek.id()))
    );
    drop(sealed);

    // Another key, or none, stops the start with a clear error: no new key in their place.
    let other = Kek::generate();
    for (given, named) in [
        (Some(other.clone()), other.id()),
        (None, "none is configured"),
    ] {
        let Err(e) = start(given).await else {
            panic!("started with the wrong key-encryption key")
        };
        let e = e.to_string();
        assert!(
            e.contains("user.tokens.key_encryption_key")
                && e.contains(kek.id())
                && e.contains(named),
            "{e}"
        );
        assert_eq!(rows(db.clone()).await.len(), 2);
    }
    // The right key starts it again.
    let again = testing::serve(start(Some(kek)).await.unwrap(), CancellationToken::new()).await;
    assert_eq!(me(&again, &token).await, StatusCode::OK);
}
