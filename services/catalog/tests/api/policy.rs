//! An event's own cancellation policy: set on create or edit (a preset or an object), refused
//! field by field with nothing written, shown in the event's detail and published with each of
//! its performances; `null` goes back to the platform default.

// Test code: a failed step should panic with its error, wherever the helper is.
#![allow(clippy::unwrap_used)]

use contracts::policy::{CancellationPolicy, Tier};
use platform::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{App, concert, fields, hall, next_event, next_publication, spawn};

/// A venue of the organizer's: its id.
async fn venue(app: &App, token: &str) -> String {
    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(token), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    venue["id"].as_str().unwrap().to_owned()
}

async fn count(app: &App, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The policy the catalog stored for `event`, as JSON (`null`: none).
async fn stored(app: &App, event: &str) -> Value {
    sqlx::query_scalar::<_, Option<Value>>("SELECT cancellation_policy FROM events WHERE id = $1")
        .bind(Uuid::parse_str(event).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_policy_is_shown_published_with_each_performance_and_changed_by_a_republication() {
    let app = spawn("cat_policy").await;
    let organizer = Uuid::now_v7();
    let token = app.token_for(organizer, &[Role::Organizer]);
    let mut sub = app.subscribe().await;
    let venue_id = venue(&app, &token).await;

    // A theatre-style schedule, free for two days and closing at 18:00.
    let mut body = concert(&venue_id, app.now());
    body["cancellation_policy"] =
        json!({"preset": "theatre", "free_days_after_booking": 2, "cutoff_hour": 18});
    let (status, _, event) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &body)
        .await;
    assert_eq!(status, 201, "{event}");
    let want = CancellationPolicy {
        free_days_after_booking: 2,
        cutoff_hour: 18,
        ..CancellationPolicy::standard(2_000)
    };
    // Stored whole, the preset resolved.
    assert_eq!(
        event["cancellation_policy"],
        serde_json::to_value(&want).unwrap()
    );
    assert_eq!(
        stored(&app, event["id"].as_str().unwrap()).await["flat_fee_krw"],
        2_000
    );
    let event_id = event["id"].as_str().unwrap().to_owned();
    let perf_id = event["performances"][0]["id"].as_str().unwrap().to_owned();
    let perf = Uuid::parse_str(&perf_id).unwrap();

    let (status, _, _) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, envelopes) = next_publication(&mut sub, perf).await;
    let header = envelopes.last().unwrap();
    assert_eq!(header.event_type, "performance.published");
    let published: contracts::events::PerformancePublished = header.decode().unwrap();
    assert_eq!(published.revision, 1);
    assert_eq!(published.cancellation_policy.as_ref(), Some(&want));

    // Buyers see it on the public detail.
    let (status, public) = app.get(&format!("/api/v1/events/{event_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(public["cancellation_policy"]["cutoff_hour"], 18);

    // Another organizer may not change it.
    let stranger = app.token(&[Role::Organizer]);
    let (status, _, _) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{event_id}"),
            Some(&stranger),
            &json!({"cancellation_policy": "concert"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(stored(&app, &event_id).await, public["cancellation_policy"]);

    // A new one, given whole: re-published with it.
    let custom = json!({"flat_fee_from_days": 3, "tiers": [
        {"days_before": 2, "percent": 50}, {"days_before": 1, "percent": 80}]});
    let (status, _, edited) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{event_id}"),
            Some(&token),
            &json!({"cancellation_policy": custom}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    let (_, envelopes) = next_publication(&mut sub, perf).await;
    let published: contracts::events::PerformancePublished =
        envelopes.last().unwrap().decode().unwrap();
    assert_eq!(published.revision, 2);
    let p = published.cancellation_policy.unwrap();
    // Not merged with the previous one: the rest is the standard schedule.
    assert_eq!(
        (p.flat_fee_krw, p.cutoff_hour, p.free_days_after_booking),
        (4_000, 17, 7)
    );
    assert_eq!(
        p.tiers,
        vec![
            Tier {
                days_before: 2,
                percent: 50
            },
            Tier {
                days_before: 1,
                percent: 80
            }
        ]
    );
    assert_eq!(edited["cancellation_policy"]["tiers"][1]["percent"], 80);

    // An edit without the field leaves it as it is.
    let (status, _, edited) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{event_id}"),
            Some(&token),
            &json!({"title": "새 제목 New title"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(edited["cancellation_policy"]["flat_fee_from_days"], 3);
    let (_, envelopes) = next_publication(&mut sub, perf).await;
    let published: contracts::events::PerformancePublished =
        envelopes.last().unwrap().decode().unwrap();
    assert_eq!(published.revision, 3);
    assert_eq!(published.cancellation_policy.unwrap().flat_fee_from_days, 3);

    // `null`: back to the platform default, and published without one.
    let (status, _, edited) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{event_id}"),
            Some(&token),
            &json!({"cancellation_policy": null}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(edited["cancellation_policy"], Value::Null);
    assert_eq!(stored(&app, &event_id).await, Value::Null);
    let (_, envelopes) = next_publication(&mut sub, perf).await;
    let header = envelopes.last().unwrap();
    assert!(header.payload.get("cancellation_policy").is_none());
    let published: contracts::events::PerformancePublished = header.decode().unwrap();
    assert_eq!(published.revision, 4);
    assert_eq!(published.cancellation_policy, None);
    // The owner goes with it: the waiting room and the gates let this organizer operate it.
    assert_eq!(published.organizer_id, Some(organizer));
    app.finish().await;
}

#[tokio::test]
async fn an_event_without_a_policy_has_the_platform_default() {
    let app = spawn("cat_policy_none").await;
    let token = app.token(&[Role::Organizer]);
    let mut sub = app.subscribe().await;
    let venue_id = venue(&app, &token).await;
    let mut body = concert(&venue_id, app.now());
    body["cancellation_policy"] = Value::Null;
    let (status, _, event) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &body)
        .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["cancellation_policy"], Value::Null);
    let perf = event["performances"][0]["id"].as_str().unwrap().to_owned();
    app.send(
        "POST",
        &format!("/api/v1/admin/performances/{perf}/publish"),
        Some(&token),
        &json!({}),
    )
    .await;
    let header = next_event(
        &mut sub,
        "performance.published",
        Uuid::parse_str(&perf).unwrap(),
    )
    .await;
    assert!(header.payload.get("cancellation_policy").is_none());
    app.finish().await;
}

#[tokio::test]
async fn a_bad_policy_is_refused_naming_the_field_and_nothing_is_written() {
    let app = spawn("cat_policy_bad").await;
    let token = app.token(&[Role::Organizer]);
    let mut sub = app.subscribe().await;
    let venue_id = venue(&app, &token).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!("opera"), "cancellation_policy"),
        (json!(42), "cancellation_policy"),
        (json!([]), "cancellation_policy"),
        (json!({"preset": 1}), "cancellation_policy.preset"),
        (
            json!({"refund_everything": true}),
            "cancellation_policy.refund_everything",
        ),
        (
            json!({"free_days_after_booking": -1}),
            "cancellation_policy.free_days_after_booking",
        ),
        (
            json!({"free_days_after_booking": 367}),
            "cancellation_policy.free_days_after_booking",
        ),
        (
            json!({"flat_fee_krw": -1}),
            "cancellation_policy.flat_fee_krw",
        ),
        (
            json!({"flat_fee_krw": 2.5}),
            "cancellation_policy.flat_fee_krw",
        ),
        (
            json!({"flat_fee_krw": "4000"}),
            "cancellation_policy.flat_fee_krw",
        ),
        (
            json!({"flat_fee_from_days": -3}),
            "cancellation_policy.flat_fee_from_days",
        ),
        (
            json!({"cutoff_hour": 24}),
            "cancellation_policy.cutoff_hour",
        ),
        (
            json!({"cutoff_hour": -1}),
            "cancellation_policy.cutoff_hour",
        ),
        (
            json!({"saturday_cutoff_hour": 99}),
            "cancellation_policy.saturday_cutoff_hour",
        ),
        (json!({"tiers": "10%"}), "cancellation_policy.tiers"),
        (json!({"tiers": [7]}), "cancellation_policy.tiers[0]"),
        (
            json!({"tiers": [{"days_before": 5, "percent": 101}]}),
            "cancellation_policy.tiers[0].percent",
        ),
        (
            json!({"tiers": [{"days_before": 5, "percent": -1}]}),
            "cancellation_policy.tiers[0].percent",
        ),
        (
            json!({"tiers": [{"days_before": -1, "percent": 10}]}),
            "cancellation_policy.tiers[0].days_before",
        ),
        (
            json!({"tiers": [{"percent": 10}]}),
            "cancellation_policy.tiers[0].days_before",
        ),
        (
            json!({"tiers": [{"days_before": 5, "percent": 10, "cap": 1}]}),
            "cancellation_policy.tiers[0].cap",
        ),
        // Duplicated, out of order, or beyond the flat fee's start (it would never apply).
        (
            json!({"tiers": [{"days_before": 5, "percent": 10}, {"days_before": 5, "percent": 20}]}),
            "cancellation_policy.tiers[1].days_before",
        ),
        (
            json!({"tiers": [{"days_before": 2, "percent": 30}, {"days_before": 6, "percent": 20}]}),
            "cancellation_policy.tiers[1].days_before",
        ),
        (
            json!({"flat_fee_from_days": 5, "tiers": [{"days_before": 5, "percent": 10}]}),
            "cancellation_policy.tiers[0].days_before",
        ),
        (
            json!({"flat_fee_from_days": 100, "tiers": (0..21).map(|i| json!({"days_before": 50 - i, "percent": 1})).collect::<Vec<_>>()}),
            "cancellation_policy.tiers",
        ),
    ];
    let events_before = count(&app, "events").await;
    let perfs_before = count(&app, "performances").await;
    for (policy, field) in &cases {
        let mut body = concert(&venue_id, app.now());
        body["cancellation_policy"] = policy.clone();
        let (status, ctype, problem) = app
            .send("POST", "/api/v1/admin/events", Some(&token), &body)
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("validation_failed")),
            "{policy}: {problem}"
        );
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(fields(&problem), vec![field.to_string()], "{policy}");
    }
    // Nothing half-written: no event, no performance.
    assert_eq!(count(&app, "events").await, events_before);
    assert_eq!(count(&app, "performances").await, perfs_before);

    // An edit: refused whole (the other changes in it too), nothing re-published.
    let mut body = concert(&venue_id, app.now());
    body["cancellation_policy"] = json!("musical");
    let (status, _, event) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &body)
        .await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let perf = event["performances"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let perf = Uuid::parse_str(&perf).unwrap();
    next_publication(&mut sub, perf).await;
    for (policy, field) in &cases {
        let (status, _, problem) = app
            .send(
                "PATCH",
                &format!("/api/v1/admin/events/{event_id}"),
                Some(&token),
                &json!({"title": "바뀐 제목 Changed", "cancellation_policy": policy}),
            )
            .await;
        assert_eq!(status, 400, "{policy}: {problem}");
        assert_eq!(fields(&problem), vec![field.to_string()], "{policy}");
    }
    let (_, after) = app
        .get_as(&token, &format!("/api/v1/admin/events/{event_id}"))
        .await;
    assert_eq!(after["title"], event["title"]);
    assert_eq!(
        after["cancellation_policy"],
        serde_json::to_value(CancellationPolicy::standard(4_000)).unwrap()
    );
    assert_eq!(after["performances"][0]["revision"], 1);
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM performances WHERE id = $1")
        .bind(perf)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(revision, 1);
    app.finish().await;
}
