//! The web UI: the files of `web/` at the repository root, embedded in the binary at compile
//! time (no folder needed at run time, no Node.js at build time), and the browser sessions
//! ([`session`]).
//!
//! - `/assets/...`: the ES modules, the stylesheet and the images, each with its content type,
//!   a strong `ETag` (`If-None-Match` → 304) and `Cache-Control: no-cache` (always revalidated:
//!   the files are not fingerprinted, so a new release is picked up at once);
//! - `/` and the UI's own paths ([`UI_ROOTS`]): `index.html` (the page routes on the client),
//!   with a strict `Content-Security-Policy` (our own scripts, styles, images and connections
//!   only; no inline script, no CDN), `X-Frame-Options: DENY` and `Cache-Control: no-cache`.
//!   Nothing else falls back to the page: `/api/...`, `/.well-known/...`, `/sandbox/...`,
//!   `/healthz` and `/readyz` keep their own answers and unknown paths stay 404 problems.

pub mod session;

use std::sync::OnceLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use platform::ApiError;

pub use session::Sessions;

/// One embedded file.
struct Asset {
    /// Path below `web/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Embeds the files of `web/` (a path below it, and its content type).
macro_rules! assets {
    ($($path:literal => $ctype:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $ctype,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the UI is made of (a test checks that none in `web/` is left out).
static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/i18n.js" => JS,
    "js/ui.js" => JS,
    "js/pages/home.js" => JS,
    "js/pages/event.js" => JS,
    "js/pages/queue.js" => JS,
    "js/pages/seats.js" => JS,
    "js/pages/checkout.js" => JS,
    "js/pages/bookings.js" => JS,
    "js/pages/auth.js" => JS,
];

/// First path segments the client-side router owns: a GET there is answered with the page.
pub const UI_ROOTS: &[&str] = &[
    "search", "events", "queue", "seats", "checkout", "pay", "orders", "bookings", "login",
    "signup", "account",
];

/// The page's Content-Security-Policy: everything from our own origin, nothing inline.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                // FNV-1a 64: enough to tell one build's file from another's.
                let hash = a.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
                });
                format!("\"{hash:016x}-{}\"", a.body.len())
            })
            .collect()
    })
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((index, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == path) else {
        return ApiError::not_found(format!("no asset /assets/{path}")).into_response();
    };
    let etag = &etags()[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.path.ends_with(".html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    r
}

async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // The page itself is served at its own paths only.
    if path == "index.html" {
        return ApiError::not_found("no asset /assets/index.html").into_response();
    }
    serve(&path, &headers)
}

/// The UI's files and pages: no edge (no token, no bucket for static files).
pub fn pages() -> Router {
    let mut router = Router::new()
        .route("/", get(page))
        .route("/assets/{*path}", get(asset));
    for root in UI_ROOTS {
        router = router
            .route(&format!("/{root}"), get(page))
            .route(&format!("/{root}/{{*rest}}"), get(page));
    }
    router
}

/// The session endpoints and the social callback they complete (behind the edge: rate limited
/// like the API; `/web/session` is a public route, so a stale cookie never blocks them).
pub fn sessions(state: Sessions) -> Router {
    Router::new()
        .route("/web/session", get(session::status))
        .route("/web/session/login", post(session::login))
        .route("/web/session/refresh", post(session::refresh))
        .route("/web/session/logout", post(session::logout))
        .route("/web/session/oauth/{provider}", get(session::oauth_start))
        .route(
            "/api/v1/auth/oauth/{provider}/callback",
            get(session::oauth_callback),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn files(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_web_is_embedded() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut found = Vec::new();
        files(&base, &base, &mut found);
        found.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed);
    }

    #[test]
    fn ui_roots_never_shadow_the_platforms_paths() {
        for reserved in [
            "api",
            ".well-known",
            "sandbox",
            "healthz",
            "readyz",
            "web",
            "metrics",
        ] {
            assert!(!UI_ROOTS.contains(&reserved), "{reserved}");
        }
    }
}
