//! What the gateway decides before a request reaches any upstream, in this order:
//!
//! 1. the per-address limit, on the client address (the TCP peer, or what `X-Forwarded-For`
//!    says only when the peer is one of `gateway.trusted_proxies`), unless the address is exempt;
//! 2. every client-sent `x-boxoffice-*` header is dropped (that namespace is the gateway's: the
//!    verified identity travels in it);
//! 3. a bearer token is verified against the user service's JWKS: a bad one (forged, expired,
//!    tampered, unknown key) is a 401 `unauthorized` — except on a public route
//!    (`gateway.public_routes`), where it goes on unverified and without identity and the
//!    upstream decides. A verified one adds `x-boxoffice-account` (the account id) and
//!    `x-boxoffice-roles` (comma-separated) for the upstream, which still verifies the token
//!    itself;
//! 4. the per-account limit, on the verified account.
//!
//! A browser signed in through the web UI has no `Authorization` header but the session cookie:
//! outside the public routes it stands for the bearer token (step 3 applies to it), and for
//! `POST`/`PUT`/`PATCH`/`DELETE` only with the CSRF header (403 `csrf_failed` otherwise); see
//! [`crate::web::session`].
//!
//! A request without a token goes on without identity: the upstream decides whether the route
//! needs one.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use platform::{
    ApiError,
    auth::{AuthError, Claims, Verifier},
    net::IpBlocks,
};

use crate::limit::{Limiter, Rate, Subject, Verdict};

/// The verified account, for the upstream.
pub const ACCOUNT_HEADER: HeaderName = HeaderName::from_static("x-boxoffice-account");
/// The verified account's roles, comma-separated, for the upstream.
pub const ROLES_HEADER: HeaderName = HeaderName::from_static("x-boxoffice-roles");
/// The prefix of every header only the gateway may set.
const RESERVED_PREFIX: &str = "x-boxoffice-";

/// The edge's settings and state.
pub struct Edge {
    /// `None`: no user service to verify against (tokens go on unverified, without identity).
    pub verifier: Option<Verifier>,
    /// Path prefixes where a bad token is not refused.
    pub public_routes: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: IpBlocks,
    /// Client addresses no per-address limit applies to.
    pub exempt: IpBlocks,
    /// Per client address; `None`: no limit.
    pub per_address: Option<Rate>,
    /// Per account; `None`: no limit.
    pub per_account: Option<Rate>,
    /// Where the buckets are.
    pub limiter: Limiter,
}

impl Edge {
    /// Whether `path` is under one of the public routes: a prefix ending in `/` covers what is
    /// below it, any other covers itself and what is below it (`/api/v1/auth/login` covers
    /// `/api/v1/auth/login/x`, not `/api/v1/auth/loginx`).
    fn is_public(&self, path: &str) -> bool {
        self.public_routes.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
            })
        })
    }

    async fn limit(&self, subject: Subject, rate: Option<Rate>) -> Result<(), ApiError> {
        let Some(rate) = rate else { return Ok(()) };
        match self.limiter.check(subject, rate).await {
            Verdict::Pass => Ok(()),
            Verdict::Wait(wait) => {
                metrics::counter!("boxoffice_gateway_rate_limited_total",
                    "limit" => subject.kind())
                .increment(1);
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let secs = secs.max(1);
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "too many requests from this {}; try again in {secs} s",
                        subject.kind()
                    ),
                )
                .with("retry_after_secs", secs))
            }
        }
    }
}

/// The bearer token of a request, if any (as the services read it).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Drops every header in the gateway's namespace, however the client spelled it (`_` for `-`
/// included, which some servers read as the same name).
fn strip_reserved(headers: &mut HeaderMap) {
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.len() >= RESERVED_PREFIX.len()
                && name
                    .bytes()
                    .take(RESERVED_PREFIX.len())
                    .map(|b| if b == b'_' { b'-' } else { b })
                    .eq(RESERVED_PREFIX.bytes())
        })
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

fn add_identity(headers: &mut HeaderMap, claims: &Claims) -> Result<(), ApiError> {
    let roles = claims
        .roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let account = HeaderValue::from_str(&claims.sub.to_string()).map_err(ApiError::internal)?;
    let roles = HeaderValue::from_str(&roles).map_err(ApiError::internal)?;
    headers.insert(ACCOUNT_HEADER, account);
    headers.insert(ROLES_HEADER, roles);
    Ok(())
}

/// The middleware: limits, strips, verifies (see the module's documentation).
pub async fn admit(State(edge): State<Arc<Edge>>, mut req: Request, next: Next) -> Response {
    match check(&edge, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(refused) => refused,
    }
}

/// What [`admit`] does before passing a request on: the request as it may go on, or the answer
/// that refuses it. (The proxied routes call it themselves rather than through the middleware:
/// one boxed service and future less per request.)
pub async fn check(edge: &Edge, req: &mut Request) -> Result<(), Response> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = edge.trusted_proxies.client(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        if !edge.exempt.contains(client)
            && let Err(e) = edge.limit(Subject::address(client), edge.per_address).await
        {
            return Err(e.into_response());
        }
    }
    strip_reserved(req.headers_mut());
    let public = edge.is_public(req.uri().path());
    if let Err(e) = crate::web::session::from_cookie(req, public) {
        return Err(e.into_response());
    }
    let account = match (&edge.verifier, bearer(req.headers())) {
        (Some(verifier), Some(token)) => match verifier.verify_async(token).await {
            Ok(claims) => {
                if let Err(e) = add_identity(req.headers_mut(), &claims) {
                    return Err(e.into_response());
                }
                Some(claims.sub)
            }
            Err(_) if public => None,
            Err(e) => {
                let reason = match &e {
                    AuthError::Unavailable(_) => "keys_unavailable",
                    _ => "invalid",
                };
                metrics::counter!("boxoffice_gateway_auth_rejected_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(error = %e, path = req.uri().path(), "token refused at the edge");
                return Err(ApiError::from(e).into_response());
            }
        },
        _ => None,
    };
    if let Some(account) = account
        && let Err(e) = edge
            .limit(Subject::Account(account), edge.per_account)
            .await
    {
        return Err(e.into_response());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn edge(public: &[&str]) -> Edge {
        Edge {
            verifier: None,
            public_routes: public.iter().map(|s| (*s).to_owned()).collect(),
            trusted_proxies: IpBlocks::default(),
            exempt: IpBlocks::default(),
            per_address: None,
            per_account: None,
            limiter: Limiter::local(),
        }
    }

    #[test]
    fn public_routes_match_whole_segments() {
        let e = edge(&["/api/v1/auth/login", "/.well-known/"]);
        assert!(e.is_public("/api/v1/auth/login"));
        assert!(e.is_public("/api/v1/auth/login/"));
        assert!(!e.is_public("/api/v1/auth/loginx"));
        assert!(!e.is_public("/api/v1/auth/keys/rotate"));
        assert!(e.is_public("/.well-known/jwks.json"));
        assert!(!e.is_public("/.well-known"));
        assert!(!e.is_public("/api/v1/orders"));
    }

    #[test]
    fn reserved_headers_go_however_spelled() {
        let mut h = HeaderMap::new();
        h.insert("x-boxoffice-account", HeaderValue::from_static("a"));
        h.insert(
            HeaderName::from_bytes(b"X-Boxoffice-Roles").unwrap(),
            HeaderValue::from_static("admin"),
        );
        h.insert("x_boxoffice_account", HeaderValue::from_static("b"));
        h.insert("x-boxoffice-anything", HeaderValue::from_static("c"));
        h.insert("x-request-id", HeaderValue::from_static("keep"));
        h.insert("x-boxofficeaccount", HeaderValue::from_static("keep"));
        strip_reserved(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("x-request-id") && h.contains_key("x-boxofficeaccount"));
    }
}
