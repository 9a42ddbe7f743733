//! End to end in one process, as standalone runs it: the gateway in front of the seat and
//! admission services, both following the same (in-memory) bus. The seat service checks passes
//! against the admission service's published keys (`<admission>/.well-known/jwks.json`), as it
//! does when started without overrides.

use std::{sync::Arc, time::Duration};

use platform::testing::{self, TestServer};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, Backend, config, performance, spawn};

struct Platform {
    admission: App,
    _seat: TestServer,
    gateway: TestServer,
}

impl Platform {
    async fn start(pass_ttl_secs: u64) -> Self {
        let mut cfg = config();
        cfg.rate_per_sec = 1000.0;
        cfg.pass_ttl_secs = pass_ttl_secs;
        let admission = spawn(Backend::Memory, cfg).await;
        // The seat service on the same bus, finding the admission service in its directory.
        let mut infra = testing::infra_with_bus("adm_seat", admission.infra.bus.clone());
        infra
            .directory
            .0
            .insert("admission".into(), admission.server.base_url.clone());
        let overrides = seat::Overrides {
            verifier: Some(admission.issuer.verifier()),
            passes: None,
            store: Some(Arc::new(seat::store::memory::MemoryStore::new())),
        };
        let seat_cfg = seat::Config {
            seat_map_max_stale_ms: 0,
            ..seat::Config::default()
        };
        let service = seat::start_with(&seat_cfg, &infra, overrides)
            .await
            .unwrap();
        let seat = testing::serve(service, infra.shutdown.clone()).await;
        let mut gw_infra = testing::infra("adm_gw");
        gw_infra.database_url = None;
        gw_infra
            .directory
            .0
            .insert("admission".into(), admission.server.base_url.clone());
        gw_infra
            .directory
            .0
            .insert("seat".into(), seat.base_url.clone());
        let service = gateway::start(&gateway::Config::default(), &gw_infra)
            .await
            .unwrap();
        let gateway = testing::serve(service, gw_infra.shutdown.clone()).await;
        Self {
            admission,
            _seat: seat,
            gateway,
        }
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    async fn seats(&self, perf: Uuid, pass: Option<&str>) -> (u16, Value) {
        let mut req = self
            .gateway
            .client
            .get(self.url(&format!("/api/v1/performances/{perf}/seats")));
        if let Some(p) = pass {
            req = req.header("x-admission-pass", p);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn hold(&self, user: Uuid, perf: Uuid, seat: &str, pass: Option<&str>) -> (u16, Value) {
        let mut req = self
            .gateway
            .client
            .post(self.url("/api/v1/holds"))
            .bearer_auth(self.admission.token(user))
            .json(&json!({"performance_id": perf, "seat_ids": [seat]}));
        if let Some(p) = pass {
            req = req.header("x-admission-pass", p);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// Queues `fan` for `perf` through the gateway and waits for the pass.
    async fn admitted(&self, perf: Uuid, fan: Uuid) -> String {
        let r = self
            .gateway
            .client
            .post(self.url(&format!("/api/v1/performances/{perf}/queue")))
            .bearer_auth(self.admission.token(fan))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let joined: Value = r.json().await.unwrap();
        let token = joined["queue_token"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let body: Value = self
                .gateway
                .client
                .get(self.url(&format!("/api/v1/performances/{perf}/queue/{token}")))
                .bearer_auth(self.admission.token(fan))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["status"] == "admitted" {
                return body["admission_pass"].as_str().unwrap().to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "{body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes a waiting-room performance and waits until both services know it.
    async fn performance(&self) -> Uuid {
        let p = performance(chrono::Duration::seconds(-1));
        let perf = p.performance_id;
        self.admission.publish_performance(&p).await;
        testing::eventually(
            "the seat service to guard it",
            Duration::from_secs(10),
            || async { self.seats(perf, None).await.0 == 403 },
        )
        .await;
        perf
    }
}

#[tokio::test]
async fn a_waiting_room_performance_is_reached_only_with_ones_own_pass() {
    let platform = Platform::start(600).await;
    let perf = platform.performance().await;
    let other_perf = platform.performance().await;
    let (fan, other) = (Uuid::now_v7(), Uuid::now_v7());
    // Without a pass: neither the seat map nor a hold.
    let (code, body) = platform.seats(perf, None).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("admission_required"))
    );
    let (code, body) = platform.hold(fan, perf, "A-01-01", None).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("admission_required"))
    );
    let (code, _) = platform.hold(fan, perf, "A-01-01", Some("forged")).await;
    assert_eq!(code, 403);
    // Queue → admitted → seats and a hold.
    let pass = platform.admitted(perf, fan).await;
    let (code, map) = platform.seats(perf, Some(&pass)).await;
    assert_eq!(code, 200, "{map}");
    let (code, hold) = platform.hold(fan, perf, "A-01-01", Some(&pass)).await;
    assert_eq!(code, 201, "{hold}");
    assert_eq!(hold["seat_ids"], json!(["A-01-01"]));
    // Another account cannot use it, nor can it open another performance.
    let (code, body) = platform.hold(other, perf, "A-01-02", Some(&pass)).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("admission_required"))
    );
    let (code, body) = platform.seats(other_perf, Some(&pass)).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("admission_required"))
    );
    let (code, _) = platform.hold(fan, other_perf, "A-01-01", Some(&pass)).await;
    assert_eq!(code, 403);
    // The other account's own pass works for it.
    let their = platform.admitted(perf, other).await;
    let (code, body) = platform.hold(other, perf, "A-01-02", Some(&their)).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn an_expired_pass_is_refused_by_the_seat_service() {
    let platform = Platform::start(2).await;
    let perf = platform.performance().await;
    let fan = Uuid::now_v7();
    let pass = platform.admitted(perf, fan).await;
    let (code, body) = platform.hold(fan, perf, "A-01-01", Some(&pass)).await;
    assert_eq!(code, 201, "{body}");
    // Past its expiry (and the verifiers' 5 s leeway), the same pass opens nothing.
    testing::eventually(
        "the pass to be refused",
        Duration::from_secs(20),
        || async { platform.seats(perf, Some(&pass)).await.0 == 403 },
    )
    .await;
    let (code, body) = platform.hold(fan, perf, "A-01-02", Some(&pass)).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("admission_required"))
    );
    // And the place reports `expired`: a new join goes to the back for a new pass.
    let r = platform
        .gateway
        .client
        .post(platform.url(&format!("/api/v1/performances/{perf}/queue")))
        .bearer_auth(platform.admission.token(fan))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "a fresh place, not the expired one");
}
