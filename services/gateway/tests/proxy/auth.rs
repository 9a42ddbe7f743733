//! Edge authentication: a bad bearer token (forged, expired, tampered, under an unknown key) is a
//! 401 problem before any upstream sees the request; a verified one reaches the upstream with the
//! account and roles in `x-boxoffice-*` headers; whatever a client sends in those headers itself
//! never does; public routes let a bad token through to the upstream, without identity.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use axum::{
    Json, Router,
    extract::Request,
    http::{HeaderMap, StatusCode},
    routing::{any, get},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use platform::{
    auth::{Claims, Role, SigningKey},
    service::{Directory, Service},
    testing::{self, TestIssuer, TestServer},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::gateway_with_ops;

/// A stand-in for the user service and every other upstream: it publishes `issuer`'s key at
/// `/.well-known/jwks.json` (counting fetches) and answers anything else with what it was sent
/// (counting requests).
pub struct StandIn {
    pub server: TestServer,
    pub requests: Arc<AtomicUsize>,
    pub jwks_fetches: Arc<AtomicUsize>,
}

impl StandIn {
    pub async fn start(issuer: &TestIssuer) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let keys = json!({"keys": [issuer.key.public_jwk().unwrap()]});
        let router = Router::new()
            .route(
                "/.well-known/jwks.json",
                get({
                    let fetches = jwks_fetches.clone();
                    move || {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let keys = keys.clone();
                        async move { Json(keys) }
                    }
                }),
            )
            .route(
                "/api/{*rest}",
                any({
                    let requests = requests.clone();
                    move |req: Request| {
                        requests.fetch_add(1, Ordering::SeqCst);
                        async move { Json(echo(req.uri().path(), req.headers())) }
                    }
                }),
            );
        let server = testing::serve(
            Service {
                name: "stand-in",
                router,
                readiness: Default::default(),
                tasks: vec![],
            },
            CancellationToken::new(),
        )
        .await;
        Self {
            server,
            requests,
            jwks_fetches,
        }
    }

    /// A directory where this stand-in is the user, order and catalog services.
    pub fn directory(&self) -> Directory {
        let mut dir = Directory::default();
        for name in ["user", "order", "catalog"] {
            dir.0.insert(name.into(), self.server.base_url.clone());
        }
        dir
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Every value of every header the stand-in's caller could take for identity, and whether a
/// bearer token came along.
fn echo(path: &str, headers: &HeaderMap) -> Value {
    let all = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    json!({
        "path": path,
        "account": all("x-boxoffice-account"),
        "roles": all("x-boxoffice-roles"),
        "underscored": all("x_boxoffice_account"),
        "other": all("x-boxoffice-other"),
        "authorization": headers.contains_key("authorization"),
    })
}

/// Sends `GET path` with `token` (if any) and `extra` headers; the status and JSON body.
async fn call(
    gw: &TestServer,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut req = gw.client.get(gw.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap())
}

/// `token` with its payload replaced by `claims`, its header and signature kept.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn bad_tokens_are_refused_before_any_upstream() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let (gw, ops) = gateway_with_ops(up.directory(), gateway::Config::default()).await;
    let user = Uuid::now_v7();

    // Signed by another key under an unknown key id, and by another key claiming our key's id.
    let stranger = TestIssuer::default().token(user, &[Role::Buyer]);
    let impostor = SigningKey::generate(issuer.key.kid.clone())
        .sign(&Claims::new(user, vec![Role::Admin], 900))
        .unwrap();
    let expired = issuer
        .key
        .sign(&Claims::new(user, vec![Role::Buyer], -120))
        .unwrap();
    // A genuine token whose payload now claims another account with the admin role.
    let genuine = issuer.token(user, &[Role::Buyer]);
    let claims = serde_json::to_value(Claims::new(Uuid::now_v7(), vec![Role::Admin], 900)).unwrap();
    let tampered = with_payload(&genuine, &claims);
    let cases = [
        ("another key", stranger),
        ("another key, our key id", impostor),
        ("expired", expired),
        ("tampered payload", tampered),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (what, token) in &cases {
        for path in [
            "/api/v1/orders/o1",
            "/api/v1/events",
            "/api/v1/auth/keys/rotate",
        ] {
            let (status, headers, body) = call(&gw, path, Some(token), &[]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} on {path}: {body}");
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{what}"
            );
            assert_eq!(body["code"], "unauthorized", "{what}");
            assert_eq!(body["status"], 401, "{what}");
        }
    }
    assert_eq!(
        up.requests(),
        0,
        "no upstream saw a request with a bad token"
    );

    // The genuine token still gets through: the stand-in counts it.
    let (status, _, body) = call(&gw, "/api/v1/orders/o1", Some(&genuine), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(up.requests(), 1);

    let metrics = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rejected = metrics
        .lines()
        .find(|l| l.starts_with("boxoffice_gateway_auth_rejected_total{reason=\"invalid\"}"))
        .unwrap_or_else(|| panic!("no rejection counter in {metrics}"));
    let count: f64 = rejected.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= (cases.len() * 3) as f64, "{rejected}");
}

#[tokio::test]
async fn a_verified_token_reaches_the_upstream_with_its_identity() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let (gw, _ops) = gateway_with_ops(up.directory(), gateway::Config::default()).await;
    let user = Uuid::now_v7();
    let token = issuer.token(user, &[Role::Buyer, Role::Organizer]);

    let (status, _, seen) = call(&gw, "/api/v1/orders/o1", Some(&token), &[]).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["account"], json!([user.to_string()]));
    assert_eq!(seen["roles"], json!(["buyer,organizer"]));
    // The token goes on too: the upstream verifies it again itself.
    assert_eq!(seen["authorization"], true);

    // Without a token: through, and without identity.
    let (status, _, seen) = call(&gw, "/api/v1/events", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["account"], json!([]));
    assert_eq!(seen["roles"], json!([]));
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_an_upstream() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let (gw, _ops) = gateway_with_ops(up.directory(), gateway::Config::default()).await;
    let victim = Uuid::now_v7().to_string();
    let spoofed: &[(&str, &str)] = &[
        ("x-boxoffice-account", &victim),
        ("X-Boxoffice-Roles", "admin"),
        ("x_boxoffice_account", &victim),
        ("x-boxoffice-other", "anything"),
    ];

    // No token: every copy dropped.
    let (status, _, seen) = call(&gw, "/api/v1/orders/o1", None, spoofed).await;
    assert_eq!(status, StatusCode::OK);
    for field in ["account", "roles", "underscored", "other"] {
        assert_eq!(seen[field], json!([]), "{field}: {seen}");
    }

    // A valid token of another account: the verified one, once; the claimed one nowhere.
    let me = Uuid::now_v7();
    let token = issuer.token(me, &[Role::Buyer]);
    let (status, _, seen) = call(&gw, "/api/v1/orders/o1", Some(&token), spoofed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["account"], json!([me.to_string()]), "{seen}");
    assert_eq!(seen["roles"], json!(["buyer"]), "{seen}");
    for field in ["underscored", "other"] {
        assert_eq!(seen[field], json!([]), "{field}: {seen}");
    }

    // A bad token on a public route goes on, but without anyone's identity.
    let expired = issuer
        .key
        .sign(&Claims::new(me, vec![Role::Buyer], -120))
        .unwrap();
    let (status, _, seen) = call(&gw, "/api/v1/auth/refresh", Some(&expired), spoofed).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["path"], "/api/v1/auth/refresh");
    assert_eq!(seen["account"], json!([]), "{seen}");
    assert_eq!(seen["roles"], json!([]), "{seen}");
}

#[tokio::test]
async fn public_routes_pass_bad_tokens_and_are_configurable() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let forged = TestIssuer::default().token(Uuid::now_v7(), &[Role::Buyer]);

    let (gw, _ops) = gateway_with_ops(up.directory(), gateway::Config::default()).await;
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
    ] {
        let (status, _, seen) = call(&gw, path, Some(&forged), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {seen}");
        assert_eq!(seen["account"], json!([]));
    }
    // The admin routes under /api/v1/auth/ are not public.
    let (status, _, _) = call(&gw, "/api/v1/auth/keys/rotate", Some(&forged), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.requests(), 3);

    // Configured away: the same token is refused on the same route.
    let config = gateway::Config {
        public_routes: vec!["/api/v1/events".into()],
        ..Default::default()
    };
    let (gw, _ops) = gateway_with_ops(up.directory(), config).await;
    let (status, _, _) = call(&gw, "/api/v1/auth/refresh", Some(&forged), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&gw, "/api/v1/events", Some(&forged), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(up.requests(), 4);
}

#[tokio::test]
async fn unknown_key_ids_do_not_make_the_gateway_refetch_the_keys_each_time() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let (gw, _ops) = gateway_with_ops(up.directory(), gateway::Config::default()).await;
    let started = Instant::now();
    let attempts = 30;
    for _ in 0..attempts {
        let forged = TestIssuer::default().token(Uuid::now_v7(), &[Role::Admin]);
        let (status, _, _) = call(&gw, "/api/v1/orders/o1", Some(&forged), &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let token = issuer.token(Uuid::now_v7(), &[Role::Buyer]);
    let (status, _, _) = call(&gw, "/api/v1/orders/o1", Some(&token), &[]).await;
    assert_eq!(status, StatusCode::OK);
    // The first token fetched the keys; an unknown key id refetches at most every 10 s.
    let fetches = up.jwks_fetches.load(Ordering::SeqCst);
    let allowed = 1 + (started.elapsed().as_secs() / 10) as usize;
    assert!(
        (1..=allowed).contains(&fetches),
        "{fetches} JWKS fetches for {attempts} unknown key ids in {:?}",
        started.elapsed()
    );
}
