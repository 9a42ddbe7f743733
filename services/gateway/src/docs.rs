//! The platform's one OpenAPI document, `GET /api/docs/openapi.json`, and a viewer for it at
//! `GET /api/docs`. Every service describes its own API from its handlers (utoipa); the launcher
//! hands those documents to the gateway ([`ApiDocs::aggregate`]), which keeps of each exactly the
//! paths it forwards to that service ([`crate::upstream_for`]) — a path the gateway does not route
//! (an internal call such as a hold's checkout) is not public and is left out — adds its own, and
//! merges the components. Two services naming different schemas alike keep both: the later one is
//! renamed `<service>.<name>` and its references follow.
//!
//! The viewer is three files of our own compiled into the binary (no CDN, nothing fetched), served
//! with a Content-Security-Policy that allows only them.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::routes::upstream_for;

/// The aggregate document, rendered once.
#[derive(Debug, Clone)]
pub struct ApiDocs {
    json: Bytes,
}

impl Default for ApiDocs {
    /// A document with only the gateway's own paths (no service described).
    fn default() -> Self {
        Self::aggregate(Vec::new()).unwrap_or_else(|_| Self {
            json: Bytes::from_static(b"{}"),
        })
    }
}

/// Why the documents could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// A service's document is not an OpenAPI object.
    #[error("the {0} service's OpenAPI document is malformed: {1}")]
    Malformed(String, &'static str),
    /// Two services describe the same path.
    #[error("both {0} and {1} describe `{2}`")]
    Clash(String, String, String),
    /// Two operations of a service share an id (utoipa names them after their functions).
    #[error("the {0} service has two operations `{1}`: give one an `operation_id`")]
    DuplicateOperation(String, String),
}

/// The gateway's own operations.
fn own_paths() -> Map<String, Value> {
    let text = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}});
    let mut paths = Map::new();
    paths.insert(
        "/healthz".into(),
        json!({"get": {"tags": ["operations"], "operationId": "healthz",
            "summary": "Liveness: the gateway process answers",
            "responses": {"200": text("`{\"status\": \"ok\", ...}`")}}}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {"tags": ["operations"], "operationId": "readyz",
            "summary": "Readiness: ready or not (an administrator's token sees every check)",
            "responses": {"200": text("Ready"), "503": text("Not ready")},
            "security": [{}, {"bearer": []}]}}),
    );
    paths.insert(
        "/api/docs/openapi.json".into(),
        json!({"get": {"tags": ["operations"], "operationId": "openapi",
            "summary": "This document: every public path of every service",
            "responses": {"200": text("The OpenAPI 3.1 document")}}}),
    );
    paths.insert(
        "/api/docs".into(),
        json!({"get": {"tags": ["operations"], "operationId": "openapi_viewer",
            "summary": "A viewer for this document",
            "responses": {"200": {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}}),
    );
    paths
}

/// Rewrites every `$ref` to a renamed schema, anywhere in `value`.
fn rename_refs(value: &mut Value, renames: &BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = v
                    && let Some(name) = target.strip_prefix("#/components/schemas/")
                    && let Some(new) = renames.get(name)
                {
                    *target = format!("#/components/schemas/{new}");
                } else {
                    rename_refs(v, renames);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, renames)),
        _ => {}
    }
}

/// HTTP methods of an OpenAPI path item.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Operation ids are unique in one document, and two services may both have a `create`: each
/// becomes `<service>_<id>`.
fn qualify_operations(
    service: &str,
    item: &mut Value,
    ids: &mut BTreeSet<String>,
) -> Result<(), DocsError> {
    for method in METHODS {
        if let Some(Value::Object(op)) = item.get_mut(*method) {
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or(method)
                .to_owned();
            let id = format!("{service}_{id}");
            if !ids.insert(id.clone()) {
                return Err(DocsError::DuplicateOperation(service.into(), id));
            }
            op.insert("operationId".into(), Value::String(id));
        }
    }
    Ok(())
}

fn object(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl ApiDocs {
    /// Merges the services' documents: `(service, document)`, the service named as in
    /// [`crate::upstream_for`].
    pub fn aggregate(parts: Vec<(&str, Value)>) -> Result<Self, DocsError> {
        let mut paths = own_paths();
        let mut owner: BTreeMap<String, String> = paths
            .keys()
            .map(|p| (p.clone(), "gateway".to_owned()))
            .collect();
        let mut schemas = Map::new();
        let mut schemes = Map::new();
        let mut tags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        tags.entry("operations".into())
            .or_default()
            .insert("Health and this document (the gateway)".into());
        let mut services = Vec::new();
        let mut operation_ids = BTreeSet::new();
        for (service, doc) in parts {
            let Value::Object(mut doc) = doc else {
                return Err(DocsError::Malformed(service.into(), "not an object"));
            };
            let mut components = object(doc.remove("components"));
            let mut theirs = object(components.remove("schemas"));
            let mut renames = BTreeMap::new();
            for (name, schema) in &theirs {
                if schemas.get(name).is_some_and(|ours| ours != schema) {
                    renames.insert(name.clone(), format!("{service}.{name}"));
                }
            }
            let mut their_paths = Value::Object(object(doc.remove("paths")));
            if !renames.is_empty() {
                let mut all = Value::Object(theirs);
                rename_refs(&mut all, &renames);
                rename_refs(&mut their_paths, &renames);
                theirs = object(Some(all));
            }
            for (name, schema) in theirs {
                let name = renames.get(&name).cloned().unwrap_or(name);
                schemas.entry(name).or_insert(schema);
            }
            for (name, scheme) in object(components.remove("securitySchemes")) {
                schemes.entry(name).or_insert(scheme);
            }
            for (path, mut item) in object(Some(their_paths)) {
                if upstream_for(&path) != Some(service) {
                    tracing::debug!(service, path, "not routed by the gateway: left out");
                    continue;
                }
                if let Some(first) = owner.get(&path) {
                    return Err(DocsError::Clash(first.clone(), service.into(), path));
                }
                owner.insert(path.clone(), service.into());
                qualify_operations(service, &mut item, &mut operation_ids)?;
                paths.insert(path, item);
            }
            if let Some(Value::Array(list)) = doc.remove("tags") {
                for tag in list {
                    let name = tag.get("name").and_then(Value::as_str);
                    let description = tag.get("description").and_then(Value::as_str);
                    if let Some(name) = name {
                        let entry = tags.entry(name.to_owned()).or_default();
                        entry.extend(description.map(str::to_owned));
                    }
                }
            }
            services.push(service.to_owned());
        }
        let tags: Vec<Value> = tags
            .into_iter()
            .map(|(name, d)| {
                let description = d.into_iter().collect::<Vec<_>>().join("; ");
                json!({"name": name, "description": description})
            })
            .collect();
        let document = json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Boxoffice API",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Every public path of the platform, as the gateway serves it. Errors are \
                                RFC 9457 problems (`application/problem+json`) with a stable `code`. \
                                Generated from the services' handlers.",
            },
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": schemes},
            "tags": tags,
            "x-boxoffice-services": services,
        });
        let json = serde_json::to_vec(&document)
            .map_err(|_| DocsError::Malformed("gateway".into(), "does not serialise"))?;
        Ok(Self { json: json.into() })
    }

    /// The document as JSON.
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

const VIEWER_HTML: &str = include_str!("docs/viewer.html");
const VIEWER_JS: &str = include_str!("docs/viewer.js");
const VIEWER_CSS: &str = include_str!("docs/viewer.css");

/// Only the viewer's own files; nothing inline, nothing from elsewhere.
const VIEWER_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                          connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                          form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(VIEWER_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/docs/openapi.json`.
pub async fn openapi(State(docs): State<ApiDocs>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        docs.json.clone(),
    )
        .into_response()
}

/// `GET /api/docs`: the viewer page.
pub async fn viewer() -> Response {
    asset("text/html; charset=utf-8", VIEWER_HTML)
}

/// `GET /api/docs/viewer.js`.
pub async fn viewer_js() -> Response {
    asset("text/javascript; charset=utf-8", VIEWER_JS)
}

/// `GET /api/docs/viewer.css`.
pub async fn viewer_css() -> Response {
    asset("text/css; charset=utf-8", VIEWER_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(paths: Value, schemas: Value) -> Value {
        json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
               "components": {"schemas": schemas,
                              "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
               "tags": [{"name": "admin", "description": "x"}]})
    }

    fn merged(parts: Vec<(&str, Value)>) -> Value {
        let docs = ApiDocs::aggregate(parts).unwrap();
        serde_json::from_slice(docs.json()).unwrap()
    }

    #[test]
    fn keeps_only_what_the_gateway_routes_to_each_service() {
        let seat = doc(
            json!({"/api/v1/holds": {"post": {}}, "/api/v1/holds/{hold_id}/checkout": {"post": {}},
                   "/internal/v1/load": {"get": {}}, "/api/v1/events": {"get": {}}}),
            json!({}),
        );
        let all = merged(vec![("seat", seat)]);
        let paths = all["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/holds"));
        assert_eq!(paths["/api/v1/holds"]["post"]["operationId"], "seat_post");
        // Not routed at all, or routed to another service: not part of the seat service's API.
        for hidden in [
            "/api/v1/holds/{hold_id}/checkout",
            "/internal/v1/load",
            "/api/v1/events",
        ] {
            assert!(!paths.contains_key(hidden), "{hidden}");
        }
        for own in ["/healthz", "/readyz", "/api/docs/openapi.json", "/api/docs"] {
            assert!(paths.contains_key(own), "{own}");
        }
        assert_eq!(all["x-boxoffice-services"], json!(["seat"]));
        assert_eq!(
            all["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn a_schema_named_alike_but_different_is_renamed_with_its_references() {
        let problem = json!({"type": "object", "properties": {"code": {"type": "string"}}});
        let order = doc(
            json!({"/api/v1/orders": {"get": {"responses": {"200": {"content": {"application/json":
                {"schema": {"$ref": "#/components/schemas/Status"}}}}}}}}),
            json!({"Status": {"type": "string", "enum": ["paid"]}, "Problem": problem}),
        );
        let payment = doc(
            json!({"/api/v1/payments/confirm": {"post": {"responses": {"200": {"content": {"application/json":
                {"schema": {"$ref": "#/components/schemas/Status"}}}}}}}}),
            json!({"Status": {"type": "string", "enum": ["approved"]}, "Problem": problem,
                   "Wrapper": {"type": "object", "properties": {"s": {"$ref": "#/components/schemas/Status"}}}}),
        );
        let all = merged(vec![("order", order), ("payment", payment)]);
        let schemas = &all["components"]["schemas"];
        assert_eq!(schemas["Status"]["enum"], json!(["paid"]));
        assert_eq!(schemas["payment.Status"]["enum"], json!(["approved"]));
        // The same schema twice is kept once, under its own name.
        assert!(schemas.get("payment.Problem").is_none());
        let confirm = &all["paths"]["/api/v1/payments/confirm"]["post"]["responses"]["200"];
        assert_eq!(
            confirm["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/payment.Status"
        );
        assert_eq!(
            schemas["Wrapper"]["properties"]["s"]["$ref"],
            "#/components/schemas/payment.Status"
        );
        let orders = &all["paths"]["/api/v1/orders"]["get"]["responses"]["200"];
        assert_eq!(
            orders["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Status"
        );
        // Tags of the same name from two services are one tag.
        let tags = all["tags"].as_array().unwrap();
        assert_eq!(tags.iter().filter(|t| t["name"] == "admin").count(), 1);
    }

    #[test]
    fn two_services_claiming_one_path_is_an_error() {
        let a = doc(json!({"/api/v1/orders": {"get": {}}}), json!({}));
        let b = doc(json!({"/api/v1/orders": {"post": {}}}), json!({}));
        let err = ApiDocs::aggregate(vec![("order", a), ("order", b)]).unwrap_err();
        assert!(err.to_string().contains("/api/v1/orders"), "{err}");
        let twice = doc(
            json!({"/api/v1/orders/{id}": {"get": {"operationId": "find"}},
                   "/api/v1/tickets/{id}": {"get": {"operationId": "find"}}}),
            json!({}),
        );
        let err = ApiDocs::aggregate(vec![("order", twice)]).unwrap_err();
        assert!(matches!(err, DocsError::DuplicateOperation(..)), "{err}");
        let bad = ApiDocs::aggregate(vec![("order", json!([]))]).unwrap_err();
        assert!(matches!(bad, DocsError::Malformed(..)), "{bad}");
    }
}
