//! Rate limits at the edge: a client address's burst passes, then 429 `rate_limited` with
//! `Retry-After`; a rotating `X-Forwarded-For` does not make a new client unless the peer is a
//! trusted proxy; an account's budget is one across two gateway replicas sharing Redis (one
//! server and a cluster); with Redis unreachable the gateway keeps serving on local buckets.

use std::{net::IpAddr, time::Duration};

use platform::{
    auth::Role,
    net::IpBlocks,
    service::{Infra, Mode, RedisSettings},
    testing::{self, TestIssuer, TestServer},
};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::{auth::StandIn, dead_address, gateway_on, infra};

/// A client whose connections come from `ip` (a loopback address other than the gateway's).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Limits for the tests: `burst` at once and then (practically) nothing more, per address or per
/// account; no address exempt.
fn limits(per_address: Option<u32>, per_account: Option<u32>) -> gateway::Config {
    let mut config = gateway::Config::default();
    let slow = 0.001; // one request per 1000 s: nothing refills during a test
    config.rate_limit.per_address = if per_address.is_some() { slow } else { 0.0 };
    config.rate_limit.address_burst = per_address.unwrap_or(0);
    config.rate_limit.per_account = if per_account.is_some() { slow } else { 0.0 };
    config.rate_limit.account_burst = per_account.unwrap_or(0);
    config.rate_limit.exempt = IpBlocks::default();
    config
}

/// `GET /api/v1/events` from `client`, with `xff` and `token` if given.
async fn get(
    client: &reqwest::Client,
    gw: &TestServer,
    xff: Option<&str>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = client.get(gw.url("/api/v1/events"));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Checks a 429 answer: problem+json `rate_limited` with a `Retry-After` of whole seconds.
async fn assert_limited(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert_eq!(body["retry_after_secs"], retry, "{body}");
}

#[tokio::test]
async fn an_address_burst_passes_then_429_with_retry_after() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let (gw, ops) = gateway_on(infra(up.directory()), limits(Some(3), None)).await;
    let client = client_from("127.0.0.3");
    for i in 0..3 {
        let resp = get(&client, &gw, None, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i} of the burst");
    }
    assert_limited(get(&client, &gw, None, None).await).await;
    assert_eq!(up.requests(), 3, "the refused request reached no upstream");

    // Another address has a bucket of its own; the gateway's own endpoints are not limited.
    let other = client_from("127.0.0.4");
    assert_eq!(get(&other, &gw, None, None).await.status(), StatusCode::OK);
    let health = client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let metrics = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("boxoffice_gateway_rate_limited_total{limit=\"address\"}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_loopback_is_exempt_by_default_and_zero_turns_a_limit_off() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    // Default exemption (loopback), tiny limits: the benchmarks' single address is not held.
    let mut config = limits(Some(1), None);
    config.rate_limit.exempt = gateway::RateLimits::default().exempt;
    let (gw, _ops) = gateway_on(infra(up.directory()), config).await;
    let client = client_from("127.0.0.5");
    for _ in 0..5 {
        assert_eq!(get(&client, &gw, None, None).await.status(), StatusCode::OK);
    }
    // No exemption, limit 0: off.
    let (gw, _ops) = gateway_on(infra(up.directory()), limits(None, None)).await;
    for _ in 0..5 {
        assert_eq!(get(&client, &gw, None, None).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_rotating_forwarded_for_does_not_escape_the_address_limit() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let client = client_from("127.0.0.6");

    // Not a trusted proxy (the default): every claimed address is the same peer.
    let (gw, _ops) = gateway_on(infra(up.directory()), limits(Some(3), None)).await;
    for i in 0..3 {
        let resp = get(&client, &gw, Some(&format!("203.0.113.{i}")), None).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    for i in 3..6 {
        let xff = format!("203.0.113.{i}, 198.51.100.{i}");
        assert_limited(get(&client, &gw, Some(&xff), None).await).await;
    }

    // The same rotation from a peer configured as a trusted proxy: each address is a client of
    // its own, so nobody is held (what an attacker would get if the header were believed).
    let mut config = limits(Some(3), None);
    config.trusted_proxies = "127.0.0.6".parse().unwrap();
    let (gw, _ops) = gateway_on(infra(up.directory()), config).await;
    for i in 0..6 {
        let resp = get(&client, &gw, Some(&format!("203.0.113.{i}")), None).await;
        assert_eq!(resp.status(), StatusCode::OK, "client {i}");
    }
    // ...but one client behind it is held after its burst, whatever it prepends.
    for i in 0..3 {
        let xff = format!("192.0.2.{i}, 203.0.113.77");
        assert_eq!(
            get(&client, &gw, Some(&xff), None).await.status(),
            StatusCode::OK
        );
    }
    assert_limited(get(&client, &gw, Some("192.0.2.9, 203.0.113.77"), None).await).await;
}

/// A gateway in distributed mode on `redis`, with `config`; its ops listener says when its
/// limits are shared.
async fn replica(
    up: &StandIn,
    redis: RedisSettings,
    config: gateway::Config,
) -> (TestServer, String) {
    let infra = Infra {
        mode: Mode::Distributed,
        redis,
        ..infra(up.directory())
    };
    gateway_on(infra, config).await
}

/// Waits until the replica behind `ops` reports its limits shared through Redis.
async fn wait_shared(ops: &str) {
    testing::eventually(
        "the limits are shared through Redis",
        Duration::from_secs(15),
        || async {
            let resp = reqwest::get(format!("{ops}/readyz")).await.unwrap();
            let body: Value = resp.json().await.unwrap();
            body["checks"]["rate-limit-redis"]["status"] == "up"
        },
    )
    .await;
}

/// Two replicas on `redis`: an account's burst is counted once across both.
async fn an_account_budget_is_shared_by_two_replicas(redis: RedisSettings) {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let config = limits(None, Some(4));
    let (a, a_ops) = replica(&up, redis.clone(), config.clone()).await;
    let (b, b_ops) = replica(&up, redis, config).await;
    wait_shared(&a_ops).await;
    wait_shared(&b_ops).await;

    let client = reqwest::Client::new();
    let token = issuer.token(Uuid::now_v7(), &[Role::Buyer]);
    // Alternating replicas: four in all pass (each alone would have let four through).
    for (i, gw) in [&a, &b, &a, &b].into_iter().enumerate() {
        let resp = get(&client, gw, None, Some(&token)).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
    }
    assert_limited(get(&client, &a, None, Some(&token)).await).await;
    assert_limited(get(&client, &b, None, Some(&token)).await).await;
    assert_eq!(up.requests(), 4);

    // Another account, and the anonymous, are not held.
    let other = issuer.token(Uuid::now_v7(), &[Role::Buyer]);
    assert_eq!(
        get(&client, &b, None, Some(&other)).await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&client, &a, None, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_account_budget_is_shared_by_two_replicas_through_redis() {
    an_account_budget_is_shared_by_two_replicas(RedisSettings::single(testing::redis_url())).await;
}

#[tokio::test]
async fn an_account_budget_is_shared_by_two_replicas_through_a_redis_cluster() {
    an_account_budget_is_shared_by_two_replicas(RedisSettings::cluster(testing::redis_cluster()))
        .await;
}

#[tokio::test]
async fn with_redis_down_requests_are_served_and_limited_locally() {
    let issuer = TestIssuer::default();
    let up = StandIn::start(&issuer).await;
    let dead = dead_address().replace("http://", "redis://");
    let (gw, ops) = replica(&up, RedisSettings::single(dead), limits(Some(5), Some(3))).await;
    let client = client_from("127.0.0.7");
    let token = issuer.token(Uuid::now_v7(), &[Role::Buyer]);

    // Served, never a 500: the local buckets hold the account after its burst...
    for i in 0..3 {
        let resp = get(&client, &gw, None, Some(&token)).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
    }
    assert_limited(get(&client, &gw, None, Some(&token)).await).await;
    // ...and the address after its own.
    assert_eq!(get(&client, &gw, None, None).await.status(), StatusCode::OK);
    assert_limited(get(&client, &gw, None, None).await).await;
    assert_eq!(up.requests(), 4);

    // Still ready; the details and the metrics say the limits are local.
    let resp = reqwest::get(format!("{ops}/readyz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(
        body["checks"]["rate-limit-redis"]["status"], "down",
        "{body}"
    );
    let metrics = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("boxoffice_gateway_rate_limit_fallback_total"),
        "{metrics}"
    );
}
