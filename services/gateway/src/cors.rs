//! Cross-origin calls (`gateway.cors_origins`). The platform's own pages are served by the
//! gateway itself, same-origin, and need none of this; it is for another site's scripts calling
//! the API with bearer tokens. Credentials (cookies) are never allowed across origins: a
//! browser session is only ever used by the platform's own pages. Preflights are answered here,
//! before the edge's token check and rate limits (they carry neither a token nor a body).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Whether `s` is `*` or an origin: `http(s)://host[:port]`, nothing after.
pub fn is_origin(s: &str) -> bool {
    let s = s.trim().trim_end_matches('/');
    if s == "*" {
        return true;
    }
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && HeaderValue::from_str(s).is_ok()
        && rest
            .rsplit_once(':')
            .is_none_or(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The layer answering CORS for `origins`; none for no origins (no CORS headers at all, so
/// browsers keep other sites' scripts out, and nothing on the hot path).
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    (!origins.is_empty()).then(|| allowing(origins))
}

fn allowing(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-admission-pass"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::ETAG,
            header::LOCATION,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::is_origin;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for ok in [
            "*",
            "https://tickets.example.kr",
            "http://localhost:3000",
            "https://a.example/",
        ] {
            assert!(is_origin(ok), "{ok}");
        }
        for bad in [
            "",
            "example.kr",
            "ftp://example.kr",
            "https://",
            "https://example.kr/path",
            "https://user@example.kr",
            "https://example.kr:99999",
            "https://example.kr?x",
            "https://:80",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
