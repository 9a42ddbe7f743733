//! Browser sessions in cookies that scripts cannot read.
//!
//! The web UI never holds a token. `POST /web/session/login` (and the social sign-in callback,
//! when the browser started it at `GET /web/session/oauth/{provider}`) passes the user service's
//! answer through the gateway, which keeps the tokens in cookies:
//! - [`ACCESS_COOKIE`]: the access token, `HttpOnly; SameSite=Strict; Path=/`, for its lifetime;
//! - [`REFRESH_COOKIE`]: the refresh token, `HttpOnly; SameSite=Strict; Path=/web/session` (sent
//!   only to these endpoints);
//! - [`CSRF_COOKIE`]: a random value scripts *can* read, `SameSite=Strict; Path=/`.
//!
//! All three are `Secure` when the request came over TLS, which the gateway knows only from
//! `X-Forwarded-Proto: https` sent by one of `gateway.trusted_proxies`.
//!
//! At the edge ([`from_cookie`]) a request with no `Authorization` header but the access cookie
//! is treated as carrying that bearer token; for `POST`, `PUT`, `PATCH` and `DELETE` only when
//! its [`CSRF_HEADER`] equals the CSRF cookie (double submit: another site can make the browser
//! send the cookies but can neither read the CSRF cookie nor set a custom header without CORS),
//! else 403 `csrf_failed`. The session endpoints themselves require the same for every `POST`.
//! The session cookies are removed from what goes on to an upstream.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    body::Body,
    extract::{ConnectInfo, Path, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use platform::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{edge::Edge, proxy};

/// The access token's cookie.
pub const ACCESS_COOKIE: &str = "boxoffice_access";
/// The refresh token's cookie (path `/web/session`).
pub const REFRESH_COOKIE: &str = "boxoffice_refresh";
/// The double-submit CSRF cookie, readable by scripts.
pub const CSRF_COOKIE: &str = "boxoffice_csrf";
/// The header that must repeat the CSRF cookie on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Marks a social sign-in the web UI started (path `/api/v1/auth/oauth/<provider>`).
const WEB_OAUTH_COOKIE: &str = "boxoffice_web_oauth";

/// Where the refresh cookie is sent.
const SESSION_PATH: &str = "/web/session";
/// How long the refresh cookie lives: the user service's default refresh-token lifetime (a
/// refresh token past its own lifetime is refused there anyway).
const REFRESH_MAX_AGE_SECS: i64 = 14 * 24 * 3600;
/// How long the CSRF cookie lives.
const CSRF_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// Longest body read back from the user service.
const UPSTREAM_BODY_LIMIT: usize = 64 * 1024;

/// What the session endpoints need.
#[derive(Clone)]
pub struct Sessions {
    pub proxy: Arc<proxy::Proxy>,
    pub edge: Arc<Edge>,
    pub sandbox: bool,
}

/// The value of the cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request's CSRF header repeats its CSRF cookie.
pub fn csrf_ok(headers: &HeaderMap) -> bool {
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (header, cookie(headers, CSRF_COOKIE)) {
        (Some(h), Some(c)) => c.len() >= 32 && same(h.trim().as_bytes(), c.as_bytes()),
        _ => false,
    }
}

fn state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn csrf_failed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        format!(
            "a request signed in by cookie must repeat the {CSRF_COOKIE} cookie in the \
             {CSRF_HEADER} header"
        ),
    )
}

/// At the edge: a request without `Authorization` that carries the access cookie gets it as its
/// bearer token (checked for CSRF when it changes state); the session cookies never go on
/// upstream. `public`: the path is a public route, where the cookie is not used.
pub fn from_cookie(req: &mut Request, public: bool) -> Result<(), ApiError> {
    let headers = req.headers();
    let token = (!headers.contains_key(header::AUTHORIZATION) && !public)
        .then(|| cookie(headers, ACCESS_COOKIE))
        .flatten()
        .map(str::to_owned);
    if let Some(token) = token {
        if state_changing(req.method()) && !csrf_ok(req.headers()) {
            return Err(csrf_failed());
        }
        let bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad_cookie_token())?;
        req.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    // The session endpoints read them; they strip them from what they send on themselves.
    if !is_session_path(req.uri().path()) {
        strip_session_cookies(req.headers_mut());
    }
    Ok(())
}

fn is_session_path(path: &str) -> bool {
    path.strip_prefix(SESSION_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        || (path.starts_with("/api/v1/auth/oauth/") && path.ends_with("/callback"))
}

fn bad_cookie_token() -> ApiError {
    ApiError::unauthorized("the session cookie does not hold a valid token")
}

/// Removes the token cookies from the `Cookie` headers (the others stay: the OAuth binding).
fn strip_session_cookies(headers: &mut HeaderMap) {
    let values: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    let kept: Vec<String> = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && name != ACCESS_COOKIE && name != REFRESH_COOKIE
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Whether the browser reached us over TLS: only a trusted proxy's `X-Forwarded-Proto` says so.
fn over_tls(edge: &Edge, req_headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
    let Some(peer) = peer else { return false };
    edge.trusted_proxies.contains(peer.ip().to_canonical())
        && req_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// One `Set-Cookie` value (`value` empty: removes the cookie).
fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    http_only: bool,
    same_site: &str,
    secure: bool,
) -> Result<HeaderValue, ApiError> {
    let max_age = if value.is_empty() { 0 } else { max_age.max(0) };
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite={same_site}");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).map_err(|_| ApiError::internal("a cookie value is not a header"))
}

fn new_csrf() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// The tokens of a login, refresh or social callback answer.
#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
}

/// The cookies of a session holding `tokens`, with the CSRF cookie kept (or made).
fn session_cookies(
    tokens: &Tokens,
    csrf: Option<&str>,
    secure: bool,
) -> Result<Vec<HeaderValue>, ApiError> {
    let csrf = csrf.map_or_else(new_csrf, str::to_owned);
    Ok(vec![
        set_cookie(
            ACCESS_COOKIE,
            &tokens.access_token,
            "/",
            tokens.expires_in,
            true,
            "Strict",
            secure,
        )?,
        set_cookie(
            REFRESH_COOKIE,
            &tokens.refresh_token,
            SESSION_PATH,
            REFRESH_MAX_AGE_SECS,
            true,
            "Strict",
            secure,
        )?,
        set_cookie(
            CSRF_COOKIE,
            &csrf,
            "/",
            CSRF_MAX_AGE_SECS,
            false,
            "Strict",
            secure,
        )?,
    ])
}

fn cleared_cookies(secure: bool) -> Result<Vec<HeaderValue>, ApiError> {
    Ok(vec![
        set_cookie(ACCESS_COOKIE, "", "/", 0, true, "Strict", secure)?,
        set_cookie(REFRESH_COOKIE, "", SESSION_PATH, 0, true, "Strict", secure)?,
    ])
}

fn with_cookies(mut r: Response, cookies: Vec<HeaderValue>) -> Response {
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Calls the user service through the proxy (balancing, breaker, request id and client address
/// as for any request), with the caller's connection info and forwarding headers.
async fn call_user(
    s: &Sessions,
    original: &Parts,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut builder = Request::builder().method(method).uri(path);
    for name in [
        header::COOKIE.as_str(),
        "x-forwarded-for",
        header::USER_AGENT.as_str(),
    ] {
        for v in original.headers.get_all(name) {
            builder = builder.header(name, v);
        }
    }
    let body = match body {
        Some(v) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = match builder.body(body) {
        Ok(r) => r,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    if let Some(info) = original.extensions.get::<ConnectInfo<SocketAddr>>() {
        req.extensions_mut().insert(*info);
    }
    strip_session_cookies(req.headers_mut());
    proxy::forward(State(s.proxy.clone()), req).await
}

/// The upstream's answer as status, headers and JSON (a body that is not JSON: `Null`).
async fn read(r: Response) -> (StatusCode, HeaderMap, Value) {
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, UPSTREAM_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let json = match serde_json::from_slice(&bytes) {
        Ok(json) => json,
        // A plain-text client error (an extractor's rejection) as the upstream's own port would
        // have rewritten it: in process that rewrite is the gateway's middleware's, and it does
        // not see this answer (it sees ours).
        Err(_) if parts.status.is_client_error() => {
            let text = String::from_utf8_lossy(&bytes);
            platform::problem::client_problem(parts.status, text.trim()).body()
        }
        Err(_) => Value::Null,
    };
    (parts.status, parts.headers, json)
}

/// An upstream's error passed on as it was (it is problem+json already).
fn pass_on(status: StatusCode, json: Value) -> Response {
    let mut r = (status, Json(json)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(platform::problem::PROBLEM_JSON),
    );
    r
}

fn peer(req: &Parts) -> Option<SocketAddr> {
    req.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn require_csrf(req: &Parts) -> Result<(), ApiError> {
    if csrf_ok(&req.headers) {
        Ok(())
    } else {
        Err(csrf_failed())
    }
}

/// `GET /web/session` → `{signed_in, account_id, roles, sandbox}`; sets the CSRF cookie when the
/// browser has none.
pub async fn status(State(s): State<Sessions>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let secure = over_tls(&s.edge, &req.headers, peer(&req));
    let claims = match (&s.edge.verifier, cookie(&req.headers, ACCESS_COOKIE)) {
        (Some(v), Some(token)) => v.verify_async(token).await.ok(),
        _ => None,
    };
    let body = json!({
        "signed_in": claims.is_some(),
        "account_id": claims.as_ref().map(|c| c.sub),
        "roles": claims.as_ref().map(|c| c.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
        "can_refresh": cookie(&req.headers, REFRESH_COOKIE).is_some(),
        "sandbox": s.sandbox,
    });
    let mut cookies = Vec::new();
    if cookie(&req.headers, CSRF_COOKIE).is_none_or(|c| c.len() < 32) {
        match set_cookie(
            CSRF_COOKIE,
            &new_csrf(),
            "/",
            CSRF_MAX_AGE_SECS,
            false,
            "Strict",
            secure,
        ) {
            Ok(c) => cookies.push(c),
            Err(e) => return e.into_response(),
        }
    }
    with_cookies(Json(body).into_response(), cookies)
}

/// The JSON body of a session call (`{}` when empty).
async fn json_body(req: Request) -> Result<(Parts, Value), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, UPSTREAM_BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "too large",
            )
        })?;
    let value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            )
        })?
    };
    Ok((parts, value))
}

/// Signed in: the tokens into cookies, `{signed_in: true, expires_in, user?}` to the page.
fn signed_in(tokens_json: &Value, req: &Parts, s: &Sessions) -> Result<Response, ApiError> {
    let tokens: Tokens = serde_json::from_value(tokens_json.clone())
        .map_err(|_| ApiError::internal("the user service's answer carries no tokens"))?;
    let secure = over_tls(&s.edge, &req.headers, peer(req));
    let cookies = session_cookies(&tokens, cookie(&req.headers, CSRF_COOKIE), secure)?;
    let body = json!({
        "signed_in": true,
        "expires_in": tokens.expires_in,
        "user": tokens_json.get("user"),
    });
    Ok(with_cookies(Json(body).into_response(), cookies))
}

/// `POST /web/session/login {email, password}` (CSRF header required).
pub async fn login(State(s): State<Sessions>, req: Request) -> Response {
    let result = async {
        let (req, body) = json_body(req).await?;
        require_csrf(&req)?;
        let r = call_user(&s, &req, Method::POST, "/api/v1/auth/login", Some(body)).await;
        let (status, _, json) = read(r).await;
        if !status.is_success() {
            return Ok(pass_on(status, json));
        }
        signed_in(&json, &req, &s)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /web/session/refresh` (CSRF header required): a new pair from the refresh cookie; a
/// refused one clears the session.
pub async fn refresh(State(s): State<Sessions>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let result = async {
        require_csrf(&req)?;
        let secure = over_tls(&s.edge, &req.headers, peer(&req));
        let Some(token) = cookie(&req.headers, REFRESH_COOKIE).map(str::to_owned) else {
            return Err(ApiError::unauthorized("no session to refresh; log in"));
        };
        let body = json!({ "refresh_token": token });
        let r = call_user(&s, &req, Method::POST, "/api/v1/auth/refresh", Some(body)).await;
        let (status, _, json) = read(r).await;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
            return Ok(with_cookies(
                pass_on(status, json),
                cleared_cookies(secure)?,
            ));
        }
        if !status.is_success() {
            return Ok(pass_on(status, json));
        }
        signed_in(&json, &req, &s)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /web/session/logout` (CSRF header required): the refresh token revoked, the cookies
/// cleared; 204 even when there was no session.
pub async fn logout(State(s): State<Sessions>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let result = async {
        require_csrf(&req)?;
        let secure = over_tls(&s.edge, &req.headers, peer(&req));
        if let Some(token) = cookie(&req.headers, REFRESH_COOKIE).map(str::to_owned) {
            let body = json!({ "refresh_token": token });
            let r = call_user(&s, &req, Method::POST, "/api/v1/auth/logout", Some(body)).await;
            let (status, _, _) = read(r).await;
            if status.is_server_error() {
                tracing::warn!(%status, "logout: the user service did not revoke the refresh token");
            }
        }
        Ok::<_, ApiError>(with_cookies(
            StatusCode::NO_CONTENT.into_response(),
            cleared_cookies(secure)?,
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn provider_name(name: &str) -> Result<&str, ApiError> {
    match name {
        "kakao" | "naver" | "google" => Ok(name),
        _ => Err(ApiError::not_found(format!(
            "no provider `{name}`; one of kakao, naver, google"
        ))),
    }
}

/// `GET /web/session/oauth/{provider}`: the user service's authorize redirect (and its binding
/// cookie), plus a marker that makes the callback end in session cookies and a page of the UI
/// instead of JSON.
pub async fn oauth_start(
    State(s): State<Sessions>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (req, _) = req.into_parts();
    let result = async {
        let name = provider_name(&name)?;
        let secure = over_tls(&s.edge, &req.headers, peer(&req));
        let path = format!("/api/v1/auth/oauth/{name}/authorize");
        let r = call_user(&s, &req, Method::GET, &path, None).await;
        if r.status() != StatusCode::FOUND {
            return Ok(r);
        }
        let marker = set_cookie(
            WEB_OAUTH_COOKIE,
            "1",
            &format!("/api/v1/auth/oauth/{name}"),
            600,
            true,
            "Lax",
            secure,
        )?;
        Ok::<_, ApiError>(with_cookies(r, vec![marker]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => ApiError::internal("bad redirect").into_response(),
    }
}

/// `GET /api/v1/auth/oauth/{provider}/callback`: as the API says (JSON with the tokens) unless
/// the web UI started the sign-in; then the tokens go into the session cookies and the browser
/// to `/account` (or to `/login?error=<code>` when the sign-in was refused).
pub async fn oauth_callback(
    State(s): State<Sessions>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    if cookie(req.headers(), WEB_OAUTH_COOKIE).is_none() {
        return proxy::forward(State(s.proxy.clone()), req).await;
    }
    let (req, _) = req.into_parts();
    let result = async {
        let name = provider_name(&name)?.to_owned();
        let secure = over_tls(&s.edge, &req.headers, peer(&req));
        let path_and_query = req
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let r = call_user(&s, &req, Method::GET, &path_and_query, None).await;
        let upstream_cookies: Vec<HeaderValue> = r
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        let (status, _, json) = read(r).await;
        let marker = set_cookie(
            WEB_OAUTH_COOKIE,
            "",
            &format!("/api/v1/auth/oauth/{name}"),
            0,
            true,
            "Lax",
            secure,
        )?;
        let mut cookies = upstream_cookies;
        cookies.push(marker);
        if !status.is_success() {
            let code = json
                .get("code")
                .and_then(Value::as_str)
                .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .unwrap_or("oauth_failed");
            return Ok(with_cookies(
                see_other(&format!("/login?error={code}")),
                cookies,
            ));
        }
        let tokens: Tokens = serde_json::from_value(json.clone())
            .map_err(|_| ApiError::internal("the callback's answer carries no tokens"))?;
        cookies.extend(session_cookies(
            &tokens,
            cookie(&req.headers, CSRF_COOKIE),
            secure,
        )?);
        Ok::<_, ApiError>(with_cookies(
            see_other(&format!("/account?signed_in={name}")),
            cookies,
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn an_upstreams_plain_text_client_error_is_passed_on_as_a_problem() {
        let plain = Response::builder()
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(axum::body::Body::from(
                "Failed to deserialize the JSON body",
            ))
            .unwrap();
        let (status, _, json) = read(plain).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json["status"], 422, "{json}");
        assert!(
            json["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{json}"
        );
        // A server error that is not JSON stays nothing to pass on.
        let plain = Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(axum::body::Body::from("bad gateway"))
            .unwrap();
        assert_eq!(read(plain).await.2, Value::Null);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn csrf_needs_a_long_cookie_repeated_exactly() {
        let token = "a".repeat(64);
        let ok = headers(&[
            ("cookie", &format!("x=1; {CSRF_COOKIE}={token}")),
            (CSRF_HEADER, &token),
        ]);
        assert!(csrf_ok(&ok));
        let short = headers(&[("cookie", "boxoffice_csrf=abc"), (CSRF_HEADER, "abc")]);
        assert!(!csrf_ok(&short));
        let other = headers(&[
            ("cookie", &format!("{CSRF_COOKIE}={token}")),
            (CSRF_HEADER, &"b".repeat(64)),
        ]);
        assert!(!csrf_ok(&other));
        let missing = headers(&[("cookie", &format!("{CSRF_COOKIE}={token}"))]);
        assert!(!csrf_ok(&missing));
    }

    #[test]
    fn only_the_token_cookies_are_stripped() {
        let mut h = headers(&[
            (
                "cookie",
                "boxoffice_access=t; boxoffice_oauth_kakao=b; boxoffice_refresh=r",
            ),
            ("cookie", "boxoffice_csrf=c"),
        ]);
        strip_session_cookies(&mut h);
        assert_eq!(
            h.get_all("cookie").iter().collect::<Vec<_>>(),
            ["boxoffice_oauth_kakao=b; boxoffice_csrf=c"]
        );
        let mut h = headers(&[("cookie", "boxoffice_access=t")]);
        strip_session_cookies(&mut h);
        assert!(!h.contains_key("cookie"));
    }
}
