//! A client's own `X-Forwarded-For` cannot become its address: the gateway appends the peer it
//! sees, and the user service (which throttles logins per address) trusts only the entry the
//! gateway wrote. The client connects from 127.0.0.2, so the appended entry is visibly the
//! client's address and not the gateway's own (127.0.0.1).

use reqwest::StatusCode;
use serde_json::{Value, json};

use platform::{service::Directory, testing};

use super::{gateway, upstream};

/// The address the test's client connects from.
const PEER: &str = "127.0.0.2";

/// A client whose connections come from [`PEER`].
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(PEER.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_is_followed_by_the_real_peer() {
    let up = upstream().await;
    let mut dir = Directory::default();
    dir.0.insert("catalog".into(), up.base_url.clone());
    let gw = gateway(dir, gateway::Config::default()).await;

    let forwarded_for = |resp: reqwest::Response| async move {
        let body: Value = resp.json().await.unwrap();
        body["forwarded_for"].as_str().unwrap().to_owned()
    };
    let client = client();
    let spoofed = client
        .get(gw.url("/api/v1/events"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded_for(spoofed).await, format!("203.0.113.7, {PEER}"));

    // A list, and the header twice over: still one value, ending with the peer.
    let listed = client
        .get(gw.url("/api/v1/events"))
        .header("x-forwarded-for", "203.0.113.7, 198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forwarded_for(listed).await,
        format!("203.0.113.7, 198.51.100.1, {PEER}")
    );
    let twice = client
        .get(gw.url("/api/v1/events"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    let value = forwarded_for(twice).await;
    assert_eq!(
        value.rsplit(',').next().map(str::trim),
        Some(PEER),
        "{value}"
    );
}

/// End to end: the real user service behind the gateway locks the client's address after its
/// failures even though every attempt claims another address.
#[tokio::test]
async fn the_login_throttle_sees_through_spoofed_addresses() {
    let mut cfg = user::Config::default();
    cfg.argon2.memory_kib = 256;
    cfg.argon2.iterations = 1;
    cfg.throttle.client_free_failures = 4;
    cfg.throttle.account_free_failures = 100;
    cfg.throttle.base_lock_secs = 60;
    // Only the gateway's address is a proxy (the default trusts all of loopback, where the test's
    // client is too).
    cfg.trusted_proxies = "127.0.0.1".parse().unwrap();
    let infra = testing::infra("gw_spoofed_xff");
    let service = user::start(&cfg, &infra).await.unwrap();
    let users = testing::serve(service, infra.shutdown.clone()).await;
    let mut dir = Directory::default();
    dir.0.insert("user".into(), users.base_url.clone());
    let gw = gateway(dir, gateway::Config::default()).await;

    let password = "the right passphrase";
    let r = gw
        .client
        .post(gw.url("/api/v1/users"))
        .json(&json!({"email": "someone@example.com", "password": password, "name": "S"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let login = |base: String, email: String, password: &'static str, claimed: String| {
        // Through the gateway, from PEER; straight to the user service, from the gateway's
        // address (a proxy's).
        let client = if base == gw.base_url {
            client()
        } else {
            users.client.clone()
        };
        async move {
            let r = client
                .post(format!("{base}/api/v1/auth/login"))
                .header("x-forwarded-for", claimed)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body["code"].as_str().map(str::to_owned))
        }
    };
    // Four failures on four accounts, each claiming a different address.
    for i in 0..4 {
        let answer = login(
            gw.base_url.clone(),
            format!("guess{i}@example.com"),
            "wrong password!",
            format!("203.0.113.{i}"),
        )
        .await;
        assert_eq!(
            answer,
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials".into()))
        );
    }
    // The fourth locked the one real address: the right password, claiming yet another
    // address, is refused before it is checked.
    let answer = login(
        gw.base_url.clone(),
        "someone@example.com".into(),
        password,
        "203.0.113.99".into(),
    )
    .await;
    assert_eq!(
        answer,
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited".into()))
    );
    // The lock is that address's, not everyone's: a request from the gateway's own address
    // straight to the user service, forwarded for another client, gets in.
    let answer = login(
        users.base_url.clone(),
        "someone@example.com".into(),
        password,
        "192.0.2.8".into(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK);
}
