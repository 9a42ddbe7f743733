//! The OpenAPI document, served publicly through the shared middleware.

use crate::support::spawn;

#[tokio::test]
async fn the_openapi_docs_are_served_without_a_token_and_match_the_crates_document() {
    let app = spawn("cat_docs").await;
    let url = app.server.url("/api/docs/catalog/openapi.json");
    let expected = serde_json::to_value(catalog::openapi()).unwrap();
    for authorization in [None, Some("Bearer not-a-token")] {
        let mut request = app.server.client.get(&url);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200, "{authorization:?}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let doc: serde_json::Value = r.json().await.unwrap();
        assert_eq!(doc, expected);
        assert_eq!(doc["info"]["title"], "Boxoffice catalog service");
        assert!(doc["paths"]["/api/v1/events"]["get"].is_object());
    }
    // Other methods are not routed: 405 as problem+json, not the document.
    let r = app.server.client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
}
