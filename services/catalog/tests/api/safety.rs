//! Correctness under failure and concurrency: autopublish goes on past a performance that fails
//! to publish and retries it after a backoff; concurrent writers cannot undo each other (a venue
//! rename and an edit or publication of its event; autopublish and a price edit; two replicas).
//! The races are interleaved deterministically: the test holds a row lock in its own
//! transaction, as a writer in flight would, while the other side runs.

use std::time::Duration as StdDuration;

use catalog::Clock;
use chrono::{DateTime, Duration, Utc};
use platform::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{App, concert, hall, saturday_noon, spawn_with};

/// An admin's venue and `n` events at it, each with one performance on sale from an hour before
/// `now`, announced (as the seed leaves the season) and their events published: what autopublish
/// picks up. Returns the venue, and (event, performance) ids in creation order.
async fn announced(app: &App, token: &str, n: usize) -> (String, Vec<(Uuid, Uuid)>) {
    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(token), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    let venue_id = venue["id"].as_str().expect("venue id").to_owned();
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, _, event) = app
            .send(
                "POST",
                "/api/v1/admin/events",
                Some(token),
                &concert(&venue_id, app.now()),
            )
            .await;
        assert_eq!(status, 201, "{event}");
        let id = |v: &Value| Uuid::parse_str(v.as_str().expect("id")).expect("uuid");
        out.push((id(&event["id"]), id(&event["performances"][0]["id"])));
    }
    for (event, perf) in &out {
        sqlx::query("UPDATE events SET status = 'published' WHERE id = $1")
            .bind(event)
            .execute(&app.pool)
            .await
            .expect("event");
        sqlx::query("UPDATE performances SET status = 'announced' WHERE id = $1")
            .bind(perf)
            .execute(&app.pool)
            .await
            .expect("performance");
    }
    (venue_id, out)
}

/// `(status, revision, publish_attempts, publish_next_attempt_at, publish_last_error)`.
type Publication = (String, i64, i32, Option<DateTime<Utc>>, Option<String>);

async fn publication(pool: &PgPool, perf: Uuid) -> Publication {
    sqlx::query_as(
        "SELECT status, revision, publish_attempts, publish_next_attempt_at, publish_last_error
         FROM performances WHERE id = $1",
    )
    .bind(perf)
    .fetch_one(pool)
    .await
    .expect("performance")
}

/// The prices (`{grade: price}`) of every `performance.published` written to the outbox for
/// `perf`, in order.
async fn published_prices(pool: &PgPool, perf: Uuid) -> Vec<Value> {
    let payloads: Vec<Value> = sqlx::query_scalar(
        "SELECT envelope->'payload' FROM bus_outbox
         WHERE key = $1 AND envelope->>'type' = 'performance.published' ORDER BY seq",
    )
    .bind(perf.to_string())
    .fetch_all(pool)
    .await
    .expect("outbox");
    payloads
        .iter()
        .map(|p| {
            let mut prices = serde_json::Map::new();
            for t in p["prices"].as_array().expect("prices") {
                prices.insert(
                    t["grade"].as_str().expect("grade").to_owned(),
                    t["price_krw"].clone(),
                );
            }
            Value::Object(prices)
        })
        .collect()
}

/// The status a buyer sees of the event's first performance, in its detail and whether the
/// `on_sale` listing has it. Each listing asks for another `limit`, so that the service's
/// one-second listing cache never answers it.
async fn shown(app: &App, event: Uuid) -> (String, bool) {
    static ASKED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let limit = 100 - ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 90;
    let (status, detail) = app.get(&format!("/api/v1/events/{event}")).await;
    assert_eq!(status, 200, "{detail}");
    let (status, list) = app
        .get(&format!("/api/v1/events?on_sale=true&limit={limit}"))
        .await;
    assert_eq!(status, 200, "{list}");
    let listed = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|i| i["id"] == event.to_string());
    (
        detail["performances"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        listed,
    )
}

#[tokio::test]
async fn a_performance_that_fails_to_publish_does_not_stop_the_next_and_is_retried_after_a_backoff()
{
    let now = saturday_noon();
    let app = spawn_with("cat_ap_retry", Clock::fixed(now)).await;
    let admin = app.token(&[Role::Admin]);
    let (_, perfs) = announced(&app, &admin, 2).await;
    let ((broken_event, broken), (fine_event, fine)) = (perfs[0], perfs[1]);
    // The first one's tiers are trimmed: its standing area has no price any more.
    let trimmed = json!({"price_tiers": [{"grade": "r", "price_krw": 99000}]});
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{broken_event}"),
            Some(&admin),
            &trimmed,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Both are due; the first fails, the second is published all the same.
    let published = catalog::autopublish::publish_due(&app.pool, now)
        .await
        .expect("a round");
    assert_eq!(published, 1);
    let (status, revision, attempts, next, error) = publication(&app.pool, broken).await;
    assert_eq!((status.as_str(), revision, attempts), ("announced", 0, 1));
    assert_eq!(next, Some(now + Duration::minutes(1)));
    assert!(
        error.as_deref().unwrap_or_default().contains("floor"),
        "{error:?}"
    );
    assert_eq!(publication(&app.pool, fine).await.0, "published");
    assert_eq!(published_prices(&app.pool, broken).await.len(), 0);
    assert_eq!(published_prices(&app.pool, fine).await.len(), 1);

    // Its window is open, but the seat service has nothing to sell: not shown on sale.
    assert_eq!(
        shown(&app, broken_event).await,
        ("scheduled".to_owned(), false)
    );
    assert_eq!(shown(&app, fine_event).await, ("on_sale".to_owned(), true));

    // Not tried again before its backoff; then tried, failing again, and waiting twice as long.
    let later = now + Duration::seconds(30);
    assert_eq!(
        catalog::autopublish::publish_due(&app.pool, later)
            .await
            .expect("a round"),
        0
    );
    assert_eq!(publication(&app.pool, broken).await.2, 1, "not retried yet");
    let retry = now + Duration::minutes(1);
    assert_eq!(
        catalog::autopublish::publish_due(&app.pool, retry)
            .await
            .expect("a round"),
        0
    );
    let (status, _, attempts, next, _) = publication(&app.pool, broken).await;
    assert_eq!((status.as_str(), attempts), ("announced", 2));
    assert_eq!(next, Some(retry + Duration::minutes(2)));

    // Mended prices make it due at once: the next round publishes it, and forgets the failures.
    let mended = json!({"price_tiers": [{"grade": "r", "price_krw": 99000}, {"grade": "floor", "price_krw": 88000}]});
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{broken_event}"),
            Some(&admin),
            &mended,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let soon = retry + Duration::seconds(5);
    assert_eq!(
        catalog::autopublish::publish_due(&app.pool, soon)
            .await
            .expect("a round"),
        1
    );
    assert_eq!(
        publication(&app.pool, broken).await,
        ("published".to_owned(), 1, 0, None, None)
    );
    assert_eq!(
        published_prices(&app.pool, broken).await,
        vec![json!({"r": 99000, "floor": 88000})]
    );
    assert_eq!(shown(&app, broken_event).await.0, "on_sale");
    app.finish().await;
}

#[tokio::test]
async fn autopublish_publishes_the_committed_prices_not_those_of_an_edit_in_flight() {
    let now = saturday_noon();
    let app = spawn_with("cat_ap_edit", Clock::fixed(now)).await;
    let admin = app.token(&[Role::Admin]);
    let (_, perfs) = announced(&app, &admin, 1).await;
    let (event, perf) = perfs[0];

    // An edit of the event's prices in flight: like every event writer, it holds the event's row
    // lock, and it has replaced a price it has not committed yet.
    let mut edit = app.pool.begin().await.expect("transaction");
    sqlx::query("SELECT id FROM events WHERE id = $1 FOR UPDATE")
        .bind(event)
        .execute(&mut *edit)
        .await
        .expect("lock");
    sqlx::query("UPDATE price_tiers SET price_krw = 123000 WHERE event_id = $1 AND grade = 'r'")
        .bind(event)
        .execute(&mut *edit)
        .await
        .expect("price");

    // Autopublish leaves the performance to its next round rather than publish the old price
    // (which the edit, seeing an announced performance, would never re-publish).
    let published = catalog::autopublish::publish_due(&app.pool, now)
        .await
        .expect("a round");
    assert_eq!(published, 0, "published while the event was being changed");
    assert_eq!(publication(&app.pool, perf).await.0, "announced");
    assert_eq!(publication(&app.pool, perf).await.2, 0, "not a failure");
    edit.commit().await.expect("commit");

    assert_eq!(
        catalog::autopublish::publish_due(&app.pool, now)
            .await
            .expect("a round"),
        1
    );
    assert_eq!(
        published_prices(&app.pool, perf).await,
        vec![json!({"r": 123000, "floor": 88000})]
    );
    app.finish().await;
}

#[tokio::test]
async fn concurrent_price_edits_and_autopublish_rounds_end_with_the_committed_prices_published() {
    let now = saturday_noon();
    let app = spawn_with("cat_ap_storm", Clock::fixed(now)).await;
    let admin = app.token(&[Role::Admin]);
    let (_, perfs) = announced(&app, &admin, 4).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (event, _)) in perfs.iter().copied().enumerate() {
        let (app, admin) = (app.clone(), admin.clone());
        tasks.spawn(async move {
            for round in 0..5 {
                let price = 100_000 + 1_000 * i64::try_from(i * 10 + round).expect("small");
                let body = json!({"price_tiers": [{"grade": "r", "price_krw": price}, {"grade": "floor", "price_krw": 88000}]});
                let (status, _, body) = app
                    .send("PATCH", &format!("/api/v1/admin/events/{event}"), Some(&admin), &body)
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        });
    }
    // Two replicas' rounds at the same time as the edits.
    for _ in 0..2 {
        let pool = app.pool.clone();
        tasks.spawn(async move {
            for _ in 0..10 {
                catalog::autopublish::publish_due(&pool, now)
                    .await
                    .expect("a round");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    // A round after the storm publishes whatever was left to it.
    catalog::autopublish::publish_due(&app.pool, now)
        .await
        .expect("a round");
    for (event, perf) in perfs {
        let committed: Vec<(String, i64)> =
            sqlx::query_as("SELECT grade, price_krw FROM price_tiers WHERE event_id = $1")
                .bind(event)
                .fetch_all(&app.pool)
                .await
                .expect("tiers");
        let committed: serde_json::Map<String, Value> =
            committed.into_iter().map(|(g, p)| (g, json!(p))).collect();
        let sent = published_prices(&app.pool, perf).await;
        assert_eq!(
            sent.last(),
            Some(&Value::Object(committed)),
            "{perf}: {sent:?}"
        );
        let (status, revision, ..) = publication(&app.pool, perf).await;
        assert_eq!(status, "published");
        assert_eq!(usize::try_from(revision).expect("revision"), sent.len());
    }
    match std::sync::Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("the app is still shared"),
    }
}

#[tokio::test]
async fn two_replicas_publishing_at_once_publish_each_performance_once() {
    let now = saturday_noon();
    let app = spawn_with("cat_ap_replicas", Clock::fixed(now)).await;
    let admin = app.token(&[Role::Admin]);
    let (_, perfs) = announced(&app, &admin, 6).await;
    let (a, b) = tokio::join!(
        catalog::autopublish::publish_due(&app.pool, now),
        catalog::autopublish::publish_due(&app.pool, now)
    );
    let (a, b) = (a.expect("a round"), b.expect("a round"));
    // Whatever a replica skipped (locked by the other) is left to its next round.
    let c = catalog::autopublish::publish_due(&app.pool, now)
        .await
        .expect("a round");
    assert_eq!(a + b + c, 6, "{a} + {b} + {c}");
    for (_, perf) in perfs {
        assert_eq!(published_prices(&app.pool, perf).await.len(), 1, "{perf}");
        assert_eq!(publication(&app.pool, perf).await.1, 1);
    }
    app.finish().await;
}

/// Waits until some connection of the test's database waits for a row lock (the other side of
/// a race has reached it), within 10 s.
async fn until_someone_waits_for_a_lock(pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query ILIKE '%events%'",
        )
        .fetch_one(pool)
        .await
        .expect("activity");
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody waited for the lock"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_venue_rename_waits_for_an_edit_in_flight_and_writes_only_search_documents() {
    let now = saturday_noon();
    let app = spawn_with("cat_rename_race", Clock::fixed(now)).await;
    let organizer = Uuid::now_v7();
    let token = app.token_for(organizer, &[Role::Organizer]);
    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    let venue_id = venue["id"].as_str().expect("venue id").to_owned();
    let (status, _, event) = app
        .send(
            "POST",
            "/api/v1/admin/events",
            Some(&token),
            &concert(&venue_id, now),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    let event_id = Uuid::parse_str(event["id"].as_str().expect("id")).expect("uuid");

    // A publication and a retitling of the event in flight, holding its row lock.
    let mut edit = app.pool.begin().await.expect("transaction");
    sqlx::query("SELECT id FROM events WHERE id = $1 FOR UPDATE")
        .bind(event_id)
        .execute(&mut *edit)
        .await
        .expect("lock");
    sqlx::query(
        "UPDATE events SET status = 'published', title = 'Quokka Night', ticket_limit = 3
         WHERE id = $1",
    )
    .bind(event_id)
    .execute(&mut *edit)
    .await
    .expect("edit");

    // The rename runs meanwhile, and waits for the edit.
    let url = app.server.url(&format!("/api/v1/admin/venues/{venue_id}"));
    let client = app.server.client.clone();
    let rename = tokio::spawn(async move {
        client
            .patch(url)
            .bearer_auth(token)
            .json(&json!({"name_en": "Wombat Arena"}))
            .send()
            .await
            .expect("rename")
            .status()
            .as_u16()
    });
    until_someone_waits_for_a_lock(&app.pool).await;
    edit.commit().await.expect("commit");
    assert_eq!(rename.await.expect("rename task"), 200);

    let (status, title, limit, doc): (String, String, i32, String) =
        sqlx::query_as("SELECT status, title, ticket_limit, search_doc FROM events WHERE id = $1")
            .bind(event_id)
            .fetch_one(&app.pool)
            .await
            .expect("event");
    assert_eq!(
        status, "published",
        "the rename put the event back to draft"
    );
    assert_eq!(
        (title.as_str(), limit),
        ("Quokka Night", 3),
        "a stale read written back"
    );
    assert!(doc.contains("wombat"), "the new venue name: {doc}");
    assert!(
        doc.contains("quokka"),
        "the title committed meanwhile: {doc}"
    );
    app.finish().await;
}
