//! Public reads without the seed: parameter checks, not-found answers and HTTP caching.

use uuid::Uuid;

use crate::support::{fields, spawn};

#[tokio::test]
async fn bad_listing_parameters_are_named() {
    let app = spawn("cat_params").await;
    let cases = [
        ("from=yesterday", "from"),
        ("from=2026-05-02&to=2026-05-01", "to"),
        ("kind=opera_house", "kind"),
        ("venue_id=12", "venue_id"),
        ("team=yankees", "team"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=%%%", "cursor"),
        ("on_sale=yes", "on_sale"),
        ("opening_soon=2", "opening_soon"),
    ];
    for (query, field) in cases {
        let (status, body) = app.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "validation_failed", "{query}");
        assert_eq!(fields(&body), vec![field.to_owned()], "{query}");
    }
    let long = "가".repeat(101);
    let (status, body) = app.get(&format!("/api/v1/events?q={long}")).await;
    assert_eq!((status, fields(&body)), (400, vec!["q".to_owned()]));

    let (status, body) = app.get("/api/v1/events/not-a-uuid").await;
    assert_eq!((status, fields(&body)), (400, vec!["event_id".to_owned()]));
    let (status, body) = app.get(&format!("/api/v1/events/{}", Uuid::now_v7())).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = app.get(&format!("/api/v1/venues/{}", Uuid::now_v7())).await;
    assert_eq!(status, 404);
    let (status, body) = app.get("/api/v1/nothing-here").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    app.finish().await;
}

#[tokio::test]
async fn listings_carry_caching_headers_and_answer_304() {
    let app = spawn("cat_cache").await;
    let url = app.server.url("/api/v1/events?kind=baseball");
    let r = app.server.client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 0);
    assert!(body["next_cursor"].is_null());
    let r = app
        .server
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
    let r = app
        .server
        .client
        .get(app.server.url("/api/v1/venues"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("etag"));
    app.finish().await;
}
