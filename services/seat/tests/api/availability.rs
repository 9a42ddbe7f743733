//! The seat service tells the catalog what is left: `performance.availability` follows holds,
//! releases and sales, with the map's epoch and version, on both stores.

use contracts::events::PerformanceAvailability;
use seat::Config;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, Observer, performance, spawn};

fn eager() -> Config {
    Config {
        availability_interval_ms: 100,
        ..Config::default()
    }
}

#[tokio::test]
async fn what_is_left_follows_holds_and_releases_on_both_stores() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, eager()).await;
        let mut seen = Observer::seats(&app).await;
        // 2 rows of 3 (grade vip) and a standing area of 50 (grade ga).
        let p = performance(2, 3, 10);
        let perf = p.performance_id;
        app.publish_performance(&p).await;

        let first: PerformanceAvailability = seen
            .next(|e: &PerformanceAvailability| e.performance_id == perf)
            .await;
        assert_eq!(first.available_total(), 56, "{backend:?}: {first:?}");
        assert_eq!((first.held, first.sold), (0, 0));
        assert_eq!(first.available.get("vip"), Some(&6));
        assert_eq!(first.available.get("ga"), Some(&50));

        // Every reserved seat held: the vip grade has none left, the standing area is untouched.
        let buyer = Uuid::now_v7();
        let seat_ids: Vec<String> = p.seats.iter().map(|s| s.seat_id.clone()).collect();
        let r = app
            .hold(buyer, json!({"performance_id": perf, "seat_ids": seat_ids}))
            .await;
        assert_eq!(r.status(), 201, "{backend:?}");
        let hold: serde_json::Value = r.json().await.unwrap();
        let held = seen
            .next(|e: &PerformanceAvailability| e.performance_id == perf && e.held == 6)
            .await;
        assert_eq!(held.available.get("vip"), Some(&0), "{backend:?}: {held:?}");
        assert_eq!(held.available_total(), 50);
        assert_eq!(held.epoch, first.epoch, "same epoch: versions compare");
        assert!(held.version > first.version);

        // Released: back to what it was, at a later version.
        let r = app
            .server
            .client
            .delete(app.server.url(&format!(
                "/api/v1/holds/{}",
                hold["hold_id"].as_str().unwrap()
            )))
            .bearer_auth(app.token(buyer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let back = seen
            .next(|e: &PerformanceAvailability| e.performance_id == perf && e.held == 0)
            .await;
        assert_eq!(back.available_total(), 56, "{backend:?}: {back:?}");
        assert!(back.version > held.version);
        app.infra.shutdown.cancel();
    }
}
