//! The sandbox provider's back channel: the token endpoint, user info, keys and discovery.

use axum::{
    Form, Json,
    extract::{Path, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::auth::SigningKey;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Grant, ISSUER_BASE, PKCS8_ED25519_PREFIX, PROVIDERS, Shared, random};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// A token endpoint answer: never cached (RFC 6749 §5.1).
fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn unknown_provider() -> Response {
    oauth_error(StatusCode::NOT_FOUND, "invalid_request", "unknown provider")
}

/// The token request (RFC 6749 §4.1.3 with RFC 7636's verifier).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: String,
}

/// The client from HTTP Basic or the form.
fn client(headers: &HeaderMap, p: &TokenParams) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    basic.or_else(|| Some((p.client_id.clone()?, p.client_secret.clone()?)))
}

/// `POST /{p}/token`: exchanges an authorization code (client, redirect URI and PKCE checked).
pub async fn token(
    State(state): State<Shared>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Response {
    no_store(exchange(&state, &provider, &headers, form).await)
}

async fn exchange(
    state: &Shared,
    provider: &str,
    headers: &HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Response {
    let p = match form {
        Ok(Form(p)) => p,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("send an application/x-www-form-urlencoded body ({e})"),
            );
        }
    };
    let Some((id, secret)) = client(headers, &p) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client credentials",
        );
    };
    if !state.options.authenticates(provider, &id, &secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    if p.grant_type != "authorization_code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "");
    }
    let grant = state
        .codes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(&p.code);
    let Some(grant) = grant else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if grant.provider != provider || grant.client_id != id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code of another client",
        );
    }
    if grant.redirect_uri != p.redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri mismatch",
        );
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(p.code_verifier.as_bytes())) != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    let access_token = random();
    state
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(access_token.clone(), grant.account.clone());
    let mut body = json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": 3600,
        "scope": grant.scope,
    });
    if provider != "naver" && grant.scope.split(' ').any(|s| s == "openid") {
        // Not bad input: our own key failed to sign.
        match id_token(&state.key, &grant) {
            Ok(t) => body["id_token"] = Value::String(t),
            Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
        }
    }
    Json(body).into_response()
}

/// A signed id token for `grant`.
fn id_token(key: &SigningKey, grant: &Grant) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp();
    let a = &grant.account;
    let mut claims = json!({
        "iss": format!("{ISSUER_BASE}/{}", grant.provider),
        "sub": a.subject(),
        "aud": grant.client_id,
        "iat": now,
        "exp": now + 3600,
        "email": a.email,
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = Value::String(nonce.clone());
    }
    if grant.provider == "google" {
        claims["email_verified"] = Value::Bool(a.verified);
        claims["name"] = Value::String(a.name.clone());
    } else {
        claims["nickname"] = Value::String(a.name.clone());
    }
    let mut der = PKCS8_ED25519_PREFIX.to_vec();
    der.extend_from_slice(key.seed());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der))
        .map_err(|e| e.to_string())
}

/// `GET /{p}/userinfo`: the account behind a bearer access token, in the provider's shape.
pub async fn userinfo(
    State(state): State<Shared>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| {
            state
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(t.trim())
                .cloned()
        })
        .filter(|a| a.provider == provider);
    if !PROVIDERS.contains(&provider.as_str()) {
        return unknown_provider();
    }
    let Some(a) = account else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "unknown access token",
        );
    };
    let body = match provider.as_str() {
        "kakao" => json!({
            "id": a.subject().parse::<i64>().unwrap_or_default(),
            "kakao_account": {
                "email": a.email,
                "is_email_valid": a.valid,
                "is_email_verified": a.verified,
                "profile": { "nickname": a.name },
            },
        }),
        "naver" => json!({
            "resultcode": "00",
            "message": "success",
            "response": { "id": a.subject(), "email": a.email, "name": a.name, "nickname": a.name },
        }),
        _ => json!({
            "sub": a.subject(),
            "email": a.email,
            "email_verified": a.verified,
            "name": a.name,
        }),
    };
    Json(body).into_response()
}

/// `GET /{p}/jwks.json`: the key that signs id tokens.
pub async fn jwks(State(state): State<Shared>, Path(provider): Path<String>) -> Response {
    if !PROVIDERS.contains(&provider.as_str()) {
        return unknown_provider();
    }
    match state.key.public_jwk() {
        Ok(jwk) => Json(json!({ "keys": [jwk] })).into_response(),
        Err(e) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &e.to_string(),
        ),
    }
}

/// `GET /{p}/.well-known/openid-configuration`: OIDC discovery.
pub async fn discovery(Path(provider): Path<String>, headers: HeaderMap) -> Response {
    if !PROVIDERS.contains(&provider.as_str()) {
        return unknown_provider();
    }
    // Best effort: endpoints relative to the address the caller used.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    let base = format!("http://{host}/{provider}");
    Json(json!({
        "issuer": format!("{ISSUER_BASE}/{provider}"),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }))
    .into_response()
}
