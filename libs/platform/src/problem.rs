//! RFC 9457 problem details: the one error shape every service answers with. Each error carries
//! a stable machine-readable `code`; client errors say what was wrong, server errors say nothing
//! about internals (they are logged with the request id instead).

use axum::{
    Json,
    body::Body,
    extract::{
        FromRequest, FromRequestParts, Path, Query, Request,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered as `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `seat_unavailable`.
    pub code: &'static str,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// Extra members (e.g. `seat_ids`, `errors`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    /// A problem with a status, a code and a detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// 400 `validation_failed` with per-field messages under `errors`.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", detail).with(
            "errors",
            serde_json::to_value(&errors).unwrap_or(Value::Null),
        )
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 409 with a code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 503 `unavailable`: a dependency is down; retry later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// 500 `internal`: logs `cause` and tells the client nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; it has been logged",
        )
    }

    /// Adds an extra member to the problem document.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.extra.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// The problem document as JSON.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            Value::String(format!("https://boxoffice.dev/problems/{}", self.code)),
        );
        body.insert(
            "title".into(),
            Value::String(self.status.canonical_reason().unwrap_or("Error").to_owned()),
        );
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("code".into(), Value::String(self.code.to_owned()));
        body.insert("detail".into(), Value::String(self.detail.clone()));
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(Value::Number(secs)) = self.extra.get("retry_after_secs")
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %err, "database unavailable");
                Self::unavailable("the database is unavailable; try again shortly")
            }
            _ => Self::internal(err),
        }
    }
}

/// One invalid field of a request body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name (JSON path).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A JSON body extractor whose rejections are problem+json (`malformed_json`,
/// `unsupported_media_type`, `payload_too_large`) instead of axum's plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "payload_too_large", "the request body is too large")
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        rejection.body_text(),
                    )
                }
            })?;
        // PostgreSQL text cannot hold U+0000: refused here, for every service, rather than a
        // 500 from the database after part of the work.
        if has_nul_escape(&bytes) {
            return Err(nul_refused());
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether the headers say JSON: `application/json` or `application/<something>+json`, as
/// axum's own `Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Whether a JSON text holds the escape `\u0000` (a raw NUL byte is not valid JSON at all): an
/// escape starts at a backslash that is not itself escaped.
fn has_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000".as_slice())
            {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a percent-encoded path or query holds `%00`.
fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// Middleware: a path or query string holding `%00` (NUL, which no text column can store) is
/// answered 400 `validation_failed` before any handler, whatever extractor it uses.
pub async fn refuse_encoded_nul(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if has_encoded_nul(uri.path()) || uri.query().is_some_and(has_encoded_nul) {
        return nul_refused().into_response();
    }
    next.run(req).await
}

fn nul_refused() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "text must not contain the NUL character (U+0000)",
    )
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", text)
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "the request body is too large")
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", text),
    }
}

/// A path-parameters extractor whose rejections are problem+json: 400 `invalid_path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    let status = rejection.status();
    if status.is_server_error() {
        // The route and the extractor disagree (a bug, not the client's fault).
        return ApiError::internal(rejection.body_text());
    }
    ApiError::new(status, "invalid_path", rejection.body_text())
}

/// A query-string extractor whose rejections are problem+json: 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::new(rejection.status(), "invalid_query", rejection.body_text())
}

/// The fallback for unknown routes: 404 problem+json.
pub async fn not_found_fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Longest client-error body [`client_errors_as_problems`] reads to rewrite it.
const REWRITE_LIMIT: usize = 16 * 1024;

/// Middleware that makes every client error problem+json: a 4xx answered with no body or a
/// plain-text one (axum's own rejections of paths, queries, bodies and forms; 405 from the
/// router, which keeps its `Allow` header; a bare status from a handler) is rewritten into a
/// problem with a stable code. Bodies that are already JSON (problems, or a third party's own
/// error format such as OAuth's) and other media types (HTML pages) pass through untouched.
pub async fn client_errors_as_problems(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if !response.status().is_client_error() || !rewritable(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REWRITE_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let problem = client_problem(parts.status, &text);
    let mut rewritten = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name.clone(), value.clone());
        }
    }
    rewritten
}

/// Whether a client error's body is plain text or absent.
fn rewritable(response: &Response<Body>) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        }),
    }
}

/// The problem for a client error answered as `status` with the plain-text body `text`: axum's
/// rejections are told apart by their (stable) messages, everything else by its status.
pub fn client_problem(status: StatusCode, text: &str) -> ApiError {
    let detail = |fallback: &str| {
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text.to_owned()
        }
    };
    const PATH: &[&str] = &["Invalid URL", "Invalid UTF-8 in `"];
    const QUERY: &[&str] = &["Failed to deserialize query string"];
    const BODY: &[&str] = &[
        "Failed to deserialize the JSON body",
        "Failed to parse the request body as JSON",
        "Failed to deserialize form",
        "Request body didn't contain valid UTF-8",
    ];
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| text.starts_with(p));
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ if starts(PATH) => "invalid_path",
        _ if starts(QUERY) => "invalid_query",
        _ if starts(BODY) => "invalid_body",
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::GONE => "gone",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PRECONDITION_FAILED => "precondition_failed",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "client_error",
    };
    let fallback = match code {
        "method_not_allowed" => "this method is not allowed here; see the Allow header".to_owned(),
        "not_found" => "not found".to_owned(),
        "payload_too_large" => "the request body is too large".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_ascii_lowercase(),
    };
    ApiError::new(status, code, detail(&fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_json_escapes_and_percent_encodings_only() {
        assert!(has_nul_escape(br#"{"name":"a\u0000b"}"#));
        assert!(
            has_nul_escape(br#"["\\\u0000"]"#),
            "an escaped backslash, then NUL"
        );
        assert!(
            !has_nul_escape(br#"["\\u0000"]"#),
            "a backslash, then the text u0000"
        );
        assert!(!has_nul_escape(br#"{"name":"plain \u0001 \n"}"#));
        assert!(!has_nul_escape(b"\\"));
        assert!(has_encoded_nul("q=a%00b"));
        assert!(!has_encoded_nul("q=a%200b&x=%0A"));
    }

    #[test]
    fn json_media_types_are_recognised() {
        let with = |ct: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            json_content_type(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!json_content_type(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn body_has_rfc9457_members_and_code() {
        let e = ApiError::conflict("seat_unavailable", "taken").with("seat_ids", ["A-1"]);
        let b = e.body();
        assert_eq!(b["status"], 409);
        assert_eq!(b["code"], "seat_unavailable");
        assert_eq!(b["seat_ids"][0], "A-1");
        assert!(b["type"].as_str().unwrap().ends_with("/seat_unavailable"));
        assert_eq!(b["title"], "Conflict");
    }

    #[test]
    fn response_is_problem_json() {
        let r = ApiError::not_found("x").into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn client_errors_get_stable_codes() {
        let cases = [
            (StatusCode::METHOD_NOT_ALLOWED, "", "method_not_allowed"),
            (StatusCode::NOT_FOUND, "", "not_found"),
            (
                StatusCode::BAD_REQUEST,
                "Invalid URL: Cannot parse `id` with value `x` to a `u64`",
                "invalid_path",
            ),
            (
                StatusCode::BAD_REQUEST,
                "Failed to deserialize query string: missing field `a`",
                "invalid_query",
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Failed to deserialize the JSON body into the target type: missing field `a`",
                "invalid_body",
            ),
            (
                StatusCode::BAD_REQUEST,
                "Failed to parse the request body as JSON: EOF",
                "invalid_body",
            ),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected",
                "unsupported_media_type",
            ),
            (StatusCode::BAD_REQUEST, "nope", "bad_request"),
            (StatusCode::UNAUTHORIZED, "", "unauthorized"),
            (StatusCode::IM_A_TEAPOT, "", "client_error"),
        ];
        for (status, text, code) in cases {
            let p = client_problem(status, text);
            assert_eq!((p.status, p.code), (status, code), "{text}");
            assert!(!p.detail.is_empty(), "{code}");
        }
    }

    #[test]
    fn validation_lists_fields() {
        let e = ApiError::validation(vec![FieldError::new("email", "is not an email")]);
        assert_eq!(e.body()["errors"][0]["field"], "email");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
