//! Sold out is live: the seat service's `performance.availability` moves a published performance
//! to sold out and back, over the bus, newest `(epoch, version)` first; nothing else moves.

use std::{collections::BTreeMap, time::Duration};

use catalog::availability::{Applied, apply};
use chrono::Utc;
use contracts::{Envelope, events::PerformanceAvailability, topics};
use platform::{auth::Role, testing::eventually};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{App, concert, hall, spawn};

/// A published concert in the test hall: (event id, performance id).
async fn published(app: &App) -> (String, Uuid) {
    let token = app.token(&[Role::Admin]);
    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    let venue_id = venue["id"].as_str().expect("venue id");
    let (status, _, event) = app
        .send(
            "POST",
            "/api/v1/admin/events",
            Some(&token),
            &concert(venue_id, app.now()),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    let perf = event["performances"][0]["id"].as_str().expect("perf id");
    let (status, _, body) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (
        event["id"].as_str().expect("event id").to_owned(),
        Uuid::parse_str(perf).expect("uuid"),
    )
}

fn told(perf: Uuid, epoch: i64, version: u64, r: i64, floor: i64) -> PerformanceAvailability {
    PerformanceAvailability {
        performance_id: perf,
        epoch,
        version,
        available: BTreeMap::from([("floor".to_owned(), floor), ("r".to_owned(), r)]),
        held: 2,
        sold: 126 - r - floor,
        at: Utc::now(),
    }
}

async fn send(app: &App, e: &PerformanceAvailability) {
    let env = Envelope::new(e).expect("envelope");
    app.infra
        .bus
        .publish(topics::SEATS, &env)
        .await
        .expect("publish");
}

async fn performance(app: &App, event: &str) -> Value {
    let (status, detail) = app.get(&format!("/api/v1/events/{event}")).await;
    assert_eq!(status, 200, "{detail}");
    detail["performances"][0].clone()
}

async fn on_sale_ids(app: &App) -> Vec<String> {
    let (status, page) = app.get("/api/v1/events?kind=concert&on_sale=true").await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_performance_sells_out_and_comes_back_as_the_seat_service_tells() {
    let app = spawn("cat_avail_live").await;
    let (event, perf) = published(&app).await;
    assert_eq!(performance(&app, &event).await["status"], "on_sale");
    assert!(
        performance(&app, &event).await.get("remaining").is_none(),
        "nothing told yet: no counts"
    );

    send(&app, &told(perf, 100, 4, 3, 10)).await;
    eventually("the counts are shown", Duration::from_secs(10), || async {
        performance(&app, &event).await["remaining"]["total"] == 13
    })
    .await;
    let p = performance(&app, &event).await;
    assert_eq!(p["remaining"]["by_grade"], json!({"floor": 10, "r": 3}));
    assert_eq!(p["status"], "on_sale");

    // The last seats go: sold out, and no longer listed as on sale.
    send(&app, &told(perf, 100, 9, 0, 0)).await;
    eventually("sold out", Duration::from_secs(10), || async {
        performance(&app, &event).await["status"] == "sold_out"
    })
    .await;
    assert!(!on_sale_ids(&app).await.contains(&event));
    let (_, page) = app.get("/api/v1/events?kind=concert").await;
    assert_eq!(page["items"][0]["status"], "sold_out", "{page}");

    // A hold lapsed: on sale again, and listed again once the listing's cache turns over.
    send(&app, &told(perf, 100, 10, 1, 0)).await;
    eventually("on sale again", Duration::from_secs(10), || async {
        performance(&app, &event).await["status"] == "on_sale"
    })
    .await;
    eventually("listed on sale again", Duration::from_secs(15), || async {
        on_sale_ids(&app).await.contains(&event)
    })
    .await;
    app.finish().await;
}

#[tokio::test]
async fn only_the_newest_count_counts_and_only_published_performances_move() {
    let app = spawn("cat_avail_order").await;
    let (event, perf) = published(&app).await;
    let mut tx = app.pool.begin().await.expect("begin");

    assert_eq!(
        apply(&mut tx, &told(perf, 100, 5, 0, 0))
            .await
            .expect("apply"),
        Applied::SoldOut
    );
    // Late (an older version of the same epoch, or the same version told by another replica):
    // ignored, the performance stays sold out.
    for (epoch, version) in [(100, 4), (100, 5), (99, 50)] {
        assert_eq!(
            apply(&mut tx, &told(perf, epoch, version, 7, 7))
                .await
                .expect("apply"),
            Applied::Ignored,
            "({epoch}, {version})"
        );
    }
    // A later epoch (the store installed the performance afresh) counts from version 1.
    assert_eq!(
        apply(&mut tx, &told(perf, 200, 1, 7, 0))
            .await
            .expect("apply"),
        Applied::Back
    );
    assert_eq!(
        apply(&mut tx, &told(perf, 200, 2, 6, 0))
            .await
            .expect("apply"),
        Applied::Counts
    );
    // A performance the catalog does not know leaves nothing behind.
    let stranger = Uuid::now_v7();
    assert_eq!(
        apply(&mut tx, &told(stranger, 1, 1, 0, 0))
            .await
            .expect("apply"),
        Applied::Ignored
    );
    tx.commit().await.expect("commit");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM performance_availability WHERE performance_id = $1",
    )
    .bind(stranger)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(rows, 0);
    assert_eq!(performance(&app, &event).await["remaining"]["total"], 6);

    // A cancelled performance stays cancelled, whatever is told of it.
    let token = app.token(&[Role::Admin]);
    let (status, _, body) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf}/cancel"),
            Some(&token),
            &json!({"reason": "rain"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut tx = app.pool.begin().await.expect("begin");
    for (version, left) in [(3, 0), (4, 5)] {
        assert_eq!(
            apply(&mut tx, &told(perf, 200, version, left, 0))
                .await
                .expect("apply"),
            Applied::Counts,
            "counts kept, state untouched"
        );
    }
    tx.commit().await.expect("commit");
    assert_eq!(performance(&app, &event).await["status"], "cancelled");
    app.finish().await;
}
