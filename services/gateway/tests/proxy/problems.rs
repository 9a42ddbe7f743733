//! Every client error of a real service is problem+json with a stable code, through the gateway:
//! unknown routes, a method the route does not take (405 with `Allow`), a path parameter or a
//! query that does not parse, a body that is not JSON. The user and seat services answer.

use platform::{service::Directory, testing};
use serde_json::{Value, json};

use super::gateway;

/// Asserts a problem+json answer with `status` and `code`; returns the response's headers.
async fn problem(resp: reqwest::Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    assert_eq!(resp.status(), status, "{code}");
    let headers = resp.headers().clone();
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{code}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    headers
}

#[tokio::test]
async fn client_errors_of_real_services_are_problems() {
    let mut infra = testing::infra("gw_problems");
    let users = testing::serve(
        user::start(&user::Config::default(), &infra).await.unwrap(),
        infra.shutdown.clone(),
    )
    .await;
    infra
        .directory
        .0
        .insert("user".into(), users.base_url.clone());
    let seats = testing::serve(
        seat::start(&seat::Config::default(), &infra).await.unwrap(),
        infra.shutdown.clone(),
    )
    .await;
    let mut dir = Directory::default();
    dir.0.insert("user".into(), users.base_url.clone());
    dir.0.insert("seat".into(), seats.base_url.clone());
    let gw = gateway(dir, gateway::Config::default()).await;
    let client = &gw.client;

    // Unknown routes: the gateway's own, and one inside a service's space.
    problem(
        client.get(gw.url("/api/v1/nothing")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    problem(
        client
            .get(gw.url("/api/v1/users/me/nothing"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    // A route that takes only POST.
    let headers = problem(
        client
            .delete(gw.url("/api/v1/auth/login"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_eq!(headers["allow"], "POST");

    // A path parameter that is not UTF-8.
    problem(
        client
            .get(gw.url("/api/v1/auth/oauth/%FF/authorize"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_path",
    )
    .await;

    // A query the seat map cannot read (`format` twice).
    let perf = uuid::Uuid::now_v7();
    problem(
        client
            .get(gw.url(&format!(
                "/api/v1/performances/{perf}/seats?format=json&format=compact"
            )))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_query",
    )
    .await;

    // A body that is not JSON, and one that is not what the route takes.
    let login = |body: String| {
        client
            .post(gw.url("/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body(body)
    };
    problem(
        login("{nope".into()).send().await.unwrap(),
        400,
        "malformed_json",
    )
    .await;
    let wrong = json!({"email": 1}).to_string();
    problem(login(wrong).send().await.unwrap(), 400, "validation_failed").await;
    infra.shutdown.cancel();
}
