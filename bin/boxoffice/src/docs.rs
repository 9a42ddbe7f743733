//! The platform's OpenAPI document: every service's own (generated from its handlers), merged by
//! the gateway into the paths it routes. Served at `/api/docs/openapi.json`; `boxoffice openapi`
//! prints it.

use anyhow::{Context, anyhow};
use gateway::docs::ApiDocs;

/// Every service's document, by the name the gateway routes to.
fn parts() -> anyhow::Result<Vec<(&'static str, serde_json::Value)>> {
    let docs = [
        ("user", user::api::docs::openapi()),
        ("catalog", catalog::openapi()),
        ("seat", seat::api::docs::openapi()),
        ("admission", admission::api::openapi()),
        ("order", order::api::docs::openapi()),
        ("payment", payment::api::docs::openapi()),
        ("notification", notification::api::docs::openapi()),
    ];
    docs.into_iter()
        .map(|(name, doc)| {
            serde_json::to_value(doc)
                .map(|v| (name, v))
                .with_context(|| format!("the {name} service's OpenAPI document"))
        })
        .collect()
}

/// The aggregate document.
pub fn api_docs() -> anyhow::Result<ApiDocs> {
    ApiDocs::aggregate(parts()?).map_err(|e| anyhow!("the OpenAPI document: {e}"))
}

/// `boxoffice openapi`: prints the document.
pub fn print() -> anyhow::Result<()> {
    use std::io::Write;
    let docs = api_docs()?;
    let mut out = std::io::stdout().lock();
    out.write_all(docs.json())
        .and_then(|()| out.write_all(b"\n"))
        .context("writing the document")
}
