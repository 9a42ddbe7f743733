//! Response compression: gzip at the fastest level, for clients that ask (`Accept-Encoding`),
//! of successful responses over 1 KiB that are not compressed already — the seat map, listings,
//! the web UI's files. Not of event streams (each event must reach the browser when it is sent,
//! not when a compressor's buffer fills), images, or errors (problem bodies are small, and the
//! platform's error rewriting reads them as they are).

use axum::http::{Extensions, HeaderMap, StatusCode, Version, header};
use tower_http::{
    CompressionLevel,
    compression::{CompressionLayer, Predicate},
};

/// Smallest body worth compressing.
const MIN_BYTES: u64 = 1024;

#[derive(Clone, Copy)]
pub struct Worthwhile;

impl Predicate for Worthwhile {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        worthwhile(
            response.status(),
            response.version(),
            response.headers(),
            response.extensions(),
            axum::body::HttpBody::size_hint(response.body()).exact(),
        )
    }
}

fn worthwhile(
    status: StatusCode,
    _: Version,
    headers: &HeaderMap,
    _: &Extensions,
    exact_size: Option<u64>,
) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(exact_size);
    status.is_success()
        && status != StatusCode::NO_CONTENT
        && declared.is_none_or(|n| n >= MIN_BYTES)
        && !content_type.starts_with("text/event-stream")
        && !content_type.starts_with("image/")
        && !content_type.starts_with("application/grpc")
}

/// The layer.
pub fn layer() -> CompressionLayer<Worthwhile> {
    CompressionLayer::new()
        .gzip(true)
        .quality(CompressionLevel::Fastest)
        .compress_when(Worthwhile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(content_type: &str, length: Option<u64>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        if let Some(n) = length {
            h.insert(header::CONTENT_LENGTH, n.into());
        }
        h
    }

    #[test]
    fn only_sizeable_successful_non_stream_bodies() {
        let e = Extensions::new();
        let v = Version::HTTP_11;
        let ok = StatusCode::OK;
        assert!(worthwhile(
            ok,
            v,
            &with("application/json", Some(50_000)),
            &e,
            None
        ));
        // A streamed body of unknown size (a proxied response without a length).
        assert!(worthwhile(ok, v, &with("application/json", None), &e, None));
        assert!(!worthwhile(
            ok,
            v,
            &with("application/json", Some(200)),
            &e,
            None
        ));
        assert!(!worthwhile(
            ok,
            v,
            &with("application/json", None),
            &e,
            Some(200)
        ));
        assert!(!worthwhile(
            ok,
            v,
            &with("text/event-stream", None),
            &e,
            None
        ));
        assert!(!worthwhile(
            ok,
            v,
            &with("image/png", Some(90_000)),
            &e,
            None
        ));
        let problem = with("application/problem+json", Some(5_000));
        assert!(!worthwhile(StatusCode::BAD_REQUEST, v, &problem, &e, None));
        assert!(!worthwhile(StatusCode::BAD_GATEWAY, v, &problem, &e, None));
    }
}
