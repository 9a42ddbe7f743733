//! The gateway's public port says only ready or not, and serves no metrics; an administrator's
//! token sees the details there, and the ops listener has the details and the metrics for anyone
//! who can reach it (it is not published).

use axum::{Json, Router, routing::get};
use platform::{
    auth::Role,
    service::{Directory, Service},
    testing::{self, TestIssuer},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{gateway_with_ops, get_json, upstream};

/// A stand-in for the user service that publishes `issuer`'s key.
async fn jwks(issuer: &TestIssuer) -> testing::TestServer {
    let keys = json!({"keys": [issuer.key.public_jwk().unwrap()]});
    let router = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let keys = keys.clone();
            async move { Json(keys) }
        }),
    );
    testing::serve(
        Service {
            name: "user",
            router,
            readiness: Default::default(),
            tasks: vec![],
        },
        CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn the_public_port_shows_no_detail_and_no_metrics() {
    let issuer = TestIssuer::default();
    let users = jwks(&issuer).await;
    let catalog = upstream().await;
    let mut dir = Directory::default();
    dir.0.insert("user".into(), users.base_url.clone());
    dir.0.insert("catalog".into(), catalog.base_url.clone());
    let (gw, ops) = gateway_with_ops(dir, gateway::Config::default()).await;

    let readyz = |token: Option<String>| {
        let mut req = gw.client.get(gw.url("/readyz"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let bare = (200, json!({"status": "ready"}));
    assert_eq!(readyz(None).await, bare);
    let buyer = issuer.token(Uuid::now_v7(), &[Role::Buyer]);
    assert_eq!(readyz(Some(buyer)).await, bare, "a buyer sees no detail");
    let forged = TestIssuer::default().token(Uuid::now_v7(), &[Role::Admin]);
    assert_eq!(
        readyz(Some(forged)).await,
        bare,
        "a token of unknown keys sees no detail"
    );

    let admin = issuer.token(Uuid::now_v7(), &[Role::Buyer, Role::Admin]);
    let (status, detail) = readyz(Some(admin)).await;
    assert_eq!(status, 200);
    assert_eq!(detail["status"], "ready");
    assert_eq!(detail["service"], "gateway");
    assert_eq!(detail["checks"]["catalog"]["status"], "up", "{detail}");
    assert_eq!(detail["checks"]["user"]["status"], "up", "{detail}");

    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 404);
    assert_eq!(
        metrics.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(metrics.json::<Value>().await.unwrap()["code"], "not_found");

    // The ops listener: every detail and the metrics, no token needed.
    let (status, detail) = get_json(&format!("{ops}/readyz")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["checks"]["catalog"]["status"], "up", "{detail}");
    let metrics = reqwest::get(format!("{ops}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("boxoffice_http_requests_total"), "{text}");
}
