//! The organizer/admin API: create → publish → event emitted, later changes and cancellation,
//! role checks and invalid input.

use contracts::events::PerformanceCancelled;
use platform::auth::Role;
use serde_json::json;
use uuid::Uuid;

use catalog::Clock;

use crate::support::{
    concert, fields, hall, next_event, next_publication, saturday_noon, spawn, spawn_with,
};

#[tokio::test]
async fn create_publish_emits_the_seat_map_and_prices() {
    // Statuses depend on the clock: pinned, so "on sale" is checked at a known time.
    let app = spawn_with("cat_publish", Clock::fixed(saturday_noon())).await;
    let organizer = Uuid::now_v7();
    let token = app.token_for(organizer, &[Role::Organizer]);
    let mut sub = app.subscribe().await;

    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    assert_eq!(venue["capacity"], 128);
    let venue_id = venue["id"].as_str().unwrap().to_owned();
    let rows = venue["areas"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["seats"][0]["id"], "a-B-1");
    assert_eq!(rows[1]["seats"][0]["wheelchair"], true);
    assert_eq!(venue["areas"][1]["kind"], "standing");

    let (status, _, event) = app
        .send(
            "POST",
            "/api/v1/admin/events",
            Some(&token),
            &concert(&venue_id, app.now()),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["status"], "draft");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let perf_id = event["performances"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(event["performances"][0]["status"], "draft");
    assert_eq!(
        event["performances"][0]["sale_windows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A draft is invisible to buyers.
    assert_eq!(app.get(&format!("/api/v1/events/{event_id}")).await.0, 404);
    let (_, list) = app.get("/api/v1/events?kind=concert").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);

    let (status, _, perf) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{perf}");
    assert_eq!(perf["revision"], 1);
    assert_eq!(perf["status"], "on_sale");

    let perf_uuid = Uuid::parse_str(&perf_id).unwrap();
    let (published, envelopes) = next_publication(&mut sub, perf_uuid).await;
    // A small hall's 28 seats fit one chunk; the header comes after it.
    let types: Vec<&str> = envelopes.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["performance.seats", "performance.published"]);
    assert_eq!(envelopes[1].version, 2);
    assert_eq!(published.event_id.to_string(), event_id);
    assert_eq!(published.venue_id.to_string(), venue_id);
    assert_eq!(published.seats.len(), 28);
    assert_eq!(published.areas.len(), 1);
    assert_eq!(published.areas[0].capacity, 100);
    assert_eq!(published.ticket_limit, 2);
    assert!(published.waiting_room);
    assert_eq!(published.revision, 1);
    let r = published.prices.iter().find(|p| p.grade == "r").unwrap();
    assert_eq!((r.name.as_str(), r.price_krw), ("R석", 99_000));
    assert!(published.seats.iter().any(|s| s.wheelchair && s.row == "B"));

    // Now buyers see it, with venue, tiers and windows.
    let (status, detail) = app.get(&format!("/api/v1/events/{event_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["venue"]["name_en"], "Test Hall");
    assert_eq!(detail["price_tiers"][0]["price_krw"], 99_000);
    let (_, list) = app.get("/api/v1/events?kind=concert&on_sale=true").await;
    assert_eq!(list["items"][0]["id"], event_id.as_str());
    assert_eq!(list["items"][0]["price_range"], json!([88_000, 99_000]));

    // Publishing twice is a conflict.
    let (status, ctype, problem) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("already_published"))
    );
    assert_eq!(ctype, "application/problem+json");

    // A price change re-publishes with a higher revision. The sale has opened, so it is an
    // admin's (the organizer is refused: tests/api/permissions.rs).
    let admin = app.token(&[Role::Admin]);
    let patch = json!({"price_tiers": [{"grade": "r", "price_krw": 110000}, {"grade": "floor", "price_krw": 88000}]});
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{event_id}"),
            Some(&admin),
            &patch,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (again, _) = next_publication(&mut sub, perf_uuid).await;
    assert_eq!(again.revision, 2);
    assert_eq!(
        again.seats, published.seats,
        "a price change keeps the seats"
    );
    assert_eq!(
        again
            .prices
            .iter()
            .find(|p| p.grade == "r")
            .unwrap()
            .price_krw,
        110_000
    );

    // So does a new start time (an admin's too, once the sale opened).
    let later = (app.now() + chrono::Duration::days(8)).to_rfc3339();
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/performances/{perf_id}"),
            Some(&admin),
            &json!({"starts_at": later}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 3);
    let (third, _) = next_publication(&mut sub, perf_uuid).await;
    assert_eq!(third.revision, 3);

    // Cancelling emits its own event.
    let (status, _, body) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/cancel"),
            Some(&token),
            &json!({"reason": "우천 취소 Rain"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    let env = next_event(&mut sub, "performance.cancelled", perf_uuid).await;
    assert_eq!(
        env.decode::<PerformanceCancelled>().unwrap().reason,
        "우천 취소 Rain"
    );
    let (status, _, problem) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("performance_cancelled"))
    );
    app.finish().await;
}

#[tokio::test]
async fn only_organizers_and_admins_may_change_the_catalog() {
    let app = spawn("cat_roles").await;
    let owner = app.token(&[Role::Organizer]);
    let other = app.token(&[Role::Organizer]);
    let buyer = app.token(&[Role::Buyer]);
    let admin = app.token(&[Role::Admin]);

    let (status, ctype, problem) = app
        .send("POST", "/api/v1/admin/venues", None, &hall())
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(ctype, "application/problem+json");
    let (status, _, problem) = app
        .send("POST", "/api/v1/admin/venues", Some("not-a-token"), &hall())
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, problem) = app
        .send("POST", "/api/v1/admin/venues", Some(&buyer), &hall())
        .await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("forbidden")));

    let (_, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(&owner), &hall())
        .await;
    let venue_id = venue["id"].as_str().unwrap().to_owned();
    let (_, _, event) = app
        .send(
            "POST",
            "/api/v1/admin/events",
            Some(&owner),
            &concert(&venue_id, app.now()),
        )
        .await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    let perf_id = event["performances"][0]["id"].as_str().unwrap().to_owned();

    let rename = json!({"title": "남의 공연"});
    for token in [&other, &buyer] {
        let (status, _, _) = app
            .send(
                "PATCH",
                &format!("/api/v1/admin/events/{event_id}"),
                Some(token),
                &rename,
            )
            .await;
        assert_eq!(status, 403);
        let (status, _, _) = app
            .send(
                "POST",
                &format!("/api/v1/admin/performances/{perf_id}/publish"),
                Some(token),
                &json!({}),
            )
            .await;
        assert_eq!(status, 403);
        let (status, _, _) = app
            .send(
                "PATCH",
                &format!("/api/v1/admin/venues/{venue_id}"),
                Some(token),
                &json!({"city": "x"}),
            )
            .await;
        assert_eq!(status, 403);
        assert_eq!(
            app.get_as(token, &format!("/api/v1/admin/events/{event_id}"))
                .await
                .0,
            403
        );
    }
    // The owner sees the draft; an admin may change anything.
    assert_eq!(
        app.get_as(&owner, &format!("/api/v1/admin/events/{event_id}"))
            .await
            .0,
        200
    );
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{event_id}"),
            Some(&admin),
            &rename,
        )
        .await;
    assert_eq!((status, body["title"].as_str()), (200, Some("남의 공연")));
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/venues/{venue_id}"),
            Some(&admin),
            &json!({"name": "새 이름 Hall"}),
        )
        .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("새 이름 Hall")));
    app.finish().await;
}

#[tokio::test]
async fn invalid_input_is_a_problem_naming_each_field() {
    let app = spawn("cat_invalid").await;
    let token = app.token(&[Role::Organizer]);

    let bad_venue = json!({
        "kind": "castle",
        "plan": {"width": -1},
        "grades": [{"code": "Bad Code", "name": ""}, {"code": "ok", "name": "OK", "color": "red"}],
        "areas": [
            {"code": "a", "name": "A", "grade": "nope", "geometry": {"polygon": [[0, 0]]}, "rows": [{"label": "A", "seats": 0}]},
            {"code": "a", "name": "B", "grade": "ok", "kind": "standing", "geometry": {"position": {"x": 1, "y": 1}}}
        ]
    });
    let (status, ctype, problem) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &bad_venue)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed")),
        "{problem}"
    );
    assert_eq!(ctype, "application/problem+json");
    let f = fields(&problem);
    for want in [
        "name",
        "kind",
        "plan",
        "grades[0].code",
        "grades[0].name",
        "grades[1].color",
        "areas[0].grade",
        "areas[0].geometry",
        "areas[0].rows[0].seats",
        "areas[1].code",
        "areas[1].capacity",
    ] {
        assert!(f.contains(&want.to_owned()), "{want} missing from {f:?}");
    }

    let (_, _, venue) = app
        .send(
            "POST",
            "/api/v1/admin/venues",
            Some(&token),
            &crate::support::hall(),
        )
        .await;
    let venue_id = venue["id"].as_str().unwrap().to_owned();
    let now = app.now();
    let bad_event = json!({
        "kind": "opera-ish",
        "title": " ",
        "venue_id": venue_id,
        "home_team": "yankees",
        "ticket_limit": 0,
        "price_tiers": [{"grade": "vip", "price_krw": 1000}, {"grade": "r", "price_krw": -5}],
        "performances": [{"sale_windows": [{"opens_at": now.to_rfc3339(), "closes_at": (now - chrono::Duration::hours(1)).to_rfc3339()}]}]
    });
    let (status, _, problem) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &bad_event)
        .await;
    assert_eq!(status, 400, "{problem}");
    let f = fields(&problem);
    for want in [
        "kind",
        "title",
        "home_team",
        "ticket_limit",
        "price_tiers[0].grade",
        "price_tiers[1].price_krw",
        "performances[0].starts_at",
        "performances[0].sale_windows[0].closes_at",
    ] {
        assert!(f.contains(&want.to_owned()), "{want} missing from {f:?}");
    }
    let (status, _, problem) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &json!({"kind": "concert", "title": "x", "venue_id": Uuid::now_v7(), "price_tiers": [{"grade": "r", "price_krw": 1}]}))
        .await;
    assert_eq!(status, 400);
    assert!(
        fields(&problem).contains(&"venue_id".to_owned()),
        "{problem}"
    );

    // A grade without a price cannot be published.
    let mut partial = crate::support::concert(&venue_id, app.now());
    partial["price_tiers"] = json!([{"grade": "r", "price_krw": 1000}]);
    let (_, _, event) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &partial)
        .await;
    let perf_id = event["performances"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, problem) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed")),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("floor"));

    // Unknown fields, wrong types, broken JSON, bad ids, unknown things.
    let (status, _, problem) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/venues/{venue_id}"),
            Some(&token),
            &json!({"colour": 1}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let (status, _, problem) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/venues/{venue_id}"),
            Some(&token),
            &json!({"name": 5}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let r = app
        .server
        .client
        .post(app.server.url("/api/v1/admin/events"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "malformed_json"
    );
    let (status, _, problem) = app
        .send(
            "POST",
            "/api/v1/admin/performances/12/publish",
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (400, vec!["performance_id".to_owned()])
    );
    let (status, _, problem) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{}/publish", Uuid::now_v7()),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let (status, _, problem) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/cancel"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!((status, fields(&problem)), (400, vec!["reason".to_owned()]));
    let (status, _, problem) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{}", event["id"].as_str().unwrap()),
            Some(&token),
            &json!({"ticket_limit": 99, "price_tiers": [{"grade": "zzz", "price_krw": 1}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        fields(&problem),
        vec!["ticket_limit".to_owned(), "price_tiers[0].grade".to_owned()]
    );
    app.finish().await;
}
