//! The web UI through the gateway: its files embedded and served with their types, `ETag` and
//! a strict CSP on the page; the page only at UI paths (never at `/api/`, `/sandbox/`, ...);
//! browser sessions in HttpOnly cookies (`/web/session/*`) and the attacks on them: a cookie
//! without the CSRF header or with another one is 403 `csrf_failed`, a forged cookie token 401,
//! and the tokens never reach an upstream in a cookie.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Json, Router,
    extract::Request,
    http::{HeaderMap, StatusCode},
    routing::{any, get, post},
};
use platform::{
    auth::Role,
    service::{Directory, Service},
    testing::{self, TestIssuer, TestServer},
};
use reqwest::header;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::gateway;

/// A stand-in user service (and every other upstream): the issuer's JWKS; login answers a
/// token pair for `user` when the password is `right`; refresh answers a new pair for the
/// refresh token `r1` only; logout counts; anything else echoes its path, identity and cookies.
struct Upstream {
    server: TestServer,
    user: Uuid,
    logouts: Arc<AtomicUsize>,
}

async fn upstream(issuer: &TestIssuer) -> Upstream {
    let user = Uuid::now_v7();
    let logouts = Arc::new(AtomicUsize::new(0));
    let keys = json!({"keys": [issuer.key.public_jwk().unwrap()]});
    let pair = {
        let token = issuer.token(user, &[Role::Buyer]);
        json!({"access_token": token, "refresh_token": "r1", "token_type": "Bearer", "expires_in": 900})
    };
    let router = Router::new()
        .route(
            "/.well-known/jwks.json",
            get(move || async move { Json(keys) }),
        )
        .route(
            "/api/v1/auth/login",
            post({
                let pair = pair.clone();
                move |Json(body): Json<Value>| async move {
                    if body["password"] == "right" {
                        (StatusCode::OK, Json(pair))
                    } else {
                        (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"code": "invalid_credentials", "status": 401})),
                        )
                    }
                }
            }),
        )
        .route(
            "/api/v1/auth/refresh",
            post({
                let pair = pair.clone();
                move |Json(body): Json<Value>| async move {
                    if body["refresh_token"] == "r1" {
                        (StatusCode::OK, Json(pair))
                    } else {
                        (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"code": "unauthorized", "status": 401})),
                        )
                    }
                }
            }),
        )
        .route(
            "/api/v1/auth/logout",
            post({
                let logouts = logouts.clone();
                move || {
                    logouts.fetch_add(1, Ordering::SeqCst);
                    async { StatusCode::NO_CONTENT }
                }
            }),
        )
        .route(
            "/api/v1/auth/oauth/kakao/authorize",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [
                        ("location", "http://provider.test/authorize?state=s1"),
                        (
                            "set-cookie",
                            "boxoffice_oauth_kakao=b1; Path=/api/v1/auth/oauth/kakao; HttpOnly",
                        ),
                    ],
                )
            }),
        )
        .route(
            "/api/v1/auth/oauth/kakao/callback",
            get({
                let pair = pair.clone();
                move |headers: HeaderMap, uri: axum::http::Uri| async move {
                    let cookie = headers
                        .get("cookie")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    if !cookie.contains("boxoffice_oauth_kakao=b1") {
                        let body = json!({"code": "state_cookie_mismatch", "status": 400});
                        return (StatusCode::BAD_REQUEST, Json(body));
                    }
                    let mut body = pair.clone();
                    body["user"] = json!({"created": true});
                    body["query"] = json!(uri.query());
                    (StatusCode::OK, Json(body))
                }
            }),
        )
        .route(
            "/api/{*rest}",
            any(|req: Request| async move {
                let h = req.headers();
                let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                Json(json!({
                    "path": req.uri().path(),
                    "account": get("x-boxoffice-account"),
                    "authorization": h.contains_key("authorization"),
                    "cookie": get("cookie"),
                }))
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
    Upstream {
        server,
        user,
        logouts,
    }
}

fn directory(up: &TestServer) -> Directory {
    let mut dir = Directory::default();
    for name in ["user", "order", "catalog", "seat"] {
        dir.0.insert(name.into(), up.base_url.clone());
    }
    dir
}

/// The `name=value` of each `Set-Cookie` named `name`, with its attributes.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn value(cookie: &str) -> &str {
    cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map_or("", |(_, v)| v)
}

#[tokio::test]
async fn the_ui_is_served_embedded_with_its_types_and_a_strict_csp() {
    let gw = gateway(Directory::default(), gateway::Config::default()).await;
    for path in [
        "/",
        "/search?q=x",
        "/events/abc",
        "/pay/success?paymentKey=k",
        "/bookings",
    ] {
        let r = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{csp}"
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let body = r.text().await.unwrap();
        assert!(body.contains(r#"<script type="module" src="/assets/js/app.js">"#));
        assert!(!body.contains("<script>"), "no inline script");
    }

    let r = gw
        .client
        .get(gw.url("/assets/js/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let again = gw
        .client
        .get(gw.url("/assets/js/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let css = gw
        .client
        .get(gw.url("/assets/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let svg = gw
        .client
        .get(gw.url("/assets/favicon.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn the_page_never_stands_in_for_the_platforms_own_paths() {
    let gw = gateway(Directory::default(), gateway::Config::default()).await;
    for path in [
        "/api/v1/nothing",
        "/api/v1/events",
        "/.well-known/nothing",
        "/sandbox/pg/checkout",
        "/unknown",
        "/assets/nothing.js",
        "/assets/index.html",
        "/assets/../Cargo.toml",
        "/metrics",
    ] {
        let r = gw.client.get(gw.url(path)).send().await.unwrap();
        assert!(
            r.status().is_client_error() || r.status().is_server_error(),
            "{path}: {}",
            r.status()
        );
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ctype, "application/problem+json", "{path}");
    }
    let r = gw.client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
}

/// Logs in through `/web/session/login`: the session's cookies as a `Cookie` header value, and
/// the CSRF value.
async fn log_in(gw: &TestServer) -> (String, String) {
    let first = gw.client.get(gw.url("/web/session")).send().await.unwrap();
    let csrf = value(set_cookie(first.headers(), "boxoffice_csrf").unwrap()).to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["signed_in"], false);

    let r = gw
        .client
        .post(gw.url("/web/session/login"))
        .header("cookie", format!("boxoffice_csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"email": "a@b.kr", "password": "right"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let access = set_cookie(r.headers(), "boxoffice_access")
        .unwrap()
        .to_owned();
    let refresh = set_cookie(r.headers(), "boxoffice_refresh")
        .unwrap()
        .to_owned();
    for c in [&access, &refresh] {
        assert!(
            c.contains("; HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(
            !c.contains("Secure"),
            "plain HTTP from a client that is no proxy: {c}"
        );
    }
    assert!(access.contains("Path=/;"), "{access}");
    assert!(refresh.contains("Path=/web/session;"), "{refresh}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["signed_in"], true);
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    let cookies = format!(
        "boxoffice_access={}; boxoffice_refresh={}; boxoffice_csrf={csrf}; other=kept",
        value(&access),
        value(&refresh)
    );
    (cookies, csrf)
}

#[tokio::test]
async fn a_cookie_session_signs_requests_in_and_attacks_on_it_fail() {
    let issuer = TestIssuer::default();
    let up = upstream(&issuer).await;
    let gw = gateway(directory(&up.server), gateway::Config::default()).await;

    // A wrong password: the user service's problem, and no cookie.
    let csrf = "c".repeat(64);
    let r = gw
        .client
        .post(gw.url("/web/session/login"))
        .header("cookie", format!("boxoffice_csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"email": "a@b.kr", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(set_cookie(r.headers(), "boxoffice_access").is_none());
    // A login posted by another site: no CSRF header.
    let r = gw
        .client
        .post(gw.url("/web/session/login"))
        .json(&json!({"email": "a@b.kr", "password": "right"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie(r.headers(), "boxoffice_access").is_none());

    let (cookies, csrf) = log_in(&gw).await;

    // GET signed in by the cookie: the upstream sees the identity and a bearer token, and no
    // token cookie (the others go on).
    let r = gw
        .client
        .get(gw.url("/api/v1/orders/o1"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["account"], up.user.to_string());
    assert_eq!(seen["authorization"], true);
    let cookie_seen = seen["cookie"].as_str().unwrap();
    assert!(
        !cookie_seen.contains("boxoffice_access") && !cookie_seen.contains("boxoffice_refresh")
    );
    assert!(cookie_seen.contains("other=kept"), "{cookie_seen}");

    // A state-changing call with the CSRF header: through.
    let r = gw
        .client
        .post(gw.url("/api/v1/holds"))
        .header("cookie", &cookies)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The attacks: the cookie without the header, with another value, on every unsafe method.
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for header_value in [None, Some("x".repeat(64)), Some(String::new())] {
            let mut req = gw
                .client
                .request(m.clone(), gw.url("/api/v1/orders/o1/cancel"))
                .header("cookie", &cookies);
            if let Some(v) = &header_value {
                req = req.header("x-csrf-token", v);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 403, "{method} {header_value:?}");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "csrf_failed");
        }
    }

    // A forged token in the cookie: 401 before any upstream, on GET as on POST.
    let forged = TestIssuer::default().token(up.user, &[Role::Admin]);
    let forged_cookies = format!("boxoffice_access={forged}; boxoffice_csrf={csrf}");
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let r = gw
            .client
            .request(method.clone(), gw.url("/api/v1/orders/o1"))
            .header("cookie", &forged_cookies)
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }

    // The session endpoints' own CSRF check: refresh and logout without the header.
    for path in ["/web/session/refresh", "/web/session/logout"] {
        let r = gw
            .client
            .post(gw.url(path))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    assert_eq!(up.logouts.load(Ordering::SeqCst), 0);

    // The status says who is signed in; refresh gives new cookies; logout clears them.
    let r = gw
        .client
        .get(gw.url("/web/session"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["signed_in"], true);
    assert_eq!(body["account_id"], up.user.to_string());
    let r = gw
        .client
        .post(gw.url("/web/session/refresh"))
        .header("cookie", &cookies)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookie(r.headers(), "boxoffice_access").is_some());
    let r = gw
        .client
        .post(gw.url("/web/session/logout"))
        .header("cookie", &cookies)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(up.logouts.load(Ordering::SeqCst), 1);
    let cleared = set_cookie(r.headers(), "boxoffice_access").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // A refresh token the user service refuses: 401 and the cookies cleared.
    let r = gw
        .client
        .post(gw.url("/web/session/refresh"))
        .header(
            "cookie",
            format!("boxoffice_refresh=stolen; boxoffice_csrf={csrf}"),
        )
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        set_cookie(r.headers(), "boxoffice_refresh")
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn cookies_are_secure_only_behind_a_trusted_tls_proxy() {
    let issuer = TestIssuer::default();
    let up = upstream(&issuer).await;
    let csrf = "c".repeat(64);
    let login = |gw: &TestServer| {
        gw.client
            .post(gw.url("/web/session/login"))
            .header("cookie", format!("boxoffice_csrf={csrf}"))
            .header("x-csrf-token", &csrf)
            .header("x-forwarded-proto", "https")
            .json(&json!({"email": "a@b.kr", "password": "right"}))
            .send()
    };
    // The test client is 127.0.0.1: not a proxy by default, so its claim of https is ignored.
    let gw = gateway(directory(&up.server), gateway::Config::default()).await;
    let r = login(&gw).await.unwrap();
    assert!(
        !set_cookie(r.headers(), "boxoffice_access")
            .unwrap()
            .contains("Secure")
    );

    let config = gateway::Config {
        trusted_proxies: "127.0.0.1".parse().unwrap(),
        ..gateway::Config::default()
    };
    let gw = gateway(directory(&up.server), config).await;
    let r = login(&gw).await.unwrap();
    for name in ["boxoffice_access", "boxoffice_refresh", "boxoffice_csrf"] {
        assert!(
            set_cookie(r.headers(), name).unwrap().ends_with("; Secure"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_social_sign_in_started_by_the_ui_ends_in_the_cookie_session() {
    let issuer = TestIssuer::default();
    let up = upstream(&issuer).await;
    let gw = gateway(directory(&up.server), gateway::Config::default()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The UI's start: the provider's redirect, the user service's binding cookie and our marker.
    let r = client
        .get(gw.url("/web/session/oauth/kakao"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "http://provider.test/authorize?state=s1"
    );
    assert!(set_cookie(r.headers(), "boxoffice_oauth_kakao").is_some());
    let marker = set_cookie(r.headers(), "boxoffice_web_oauth").unwrap();
    assert!(marker.contains("HttpOnly") && marker.contains("Path=/api/v1/auth/oauth/kakao"));
    let r = client
        .get(gw.url("/web/session/oauth/evil"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Back from the provider with the marker: the session cookies and the account page, no JSON.
    let callback = gw.url("/api/v1/auth/oauth/kakao/callback?code=c&state=s1");
    let r = client
        .get(&callback)
        .header("cookie", "boxoffice_oauth_kakao=b1; boxoffice_web_oauth=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account?signed_in=kakao");
    let access = set_cookie(r.headers(), "boxoffice_access").unwrap();
    assert!(access.contains("HttpOnly") && access.contains("SameSite=Strict"));
    assert!(set_cookie(r.headers(), "boxoffice_csrf").is_some());
    assert!(
        set_cookie(r.headers(), "boxoffice_web_oauth")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(r.text().await.unwrap().is_empty(), "no token in the body");

    // A refused sign-in (the binding cookie missing): to the login page with the code.
    let r = client
        .get(&callback)
        .header("cookie", "boxoffice_web_oauth=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?error=state_cookie_mismatch"
    );
    assert!(set_cookie(r.headers(), "boxoffice_access").is_none());

    // Without the marker the callback answers as the API says: JSON with the tokens.
    let r = client
        .get(&callback)
        .header("cookie", "boxoffice_oauth_kakao=b1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookie(r.headers(), "boxoffice_access").is_none());
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string());
    assert_eq!(body["query"], "code=c&state=s1");
}
