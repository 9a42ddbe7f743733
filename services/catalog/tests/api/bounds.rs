//! Bad input: every bound on what grows (docs/services/catalog.md, "Bounds"), just over it and
//! at it; the body that describes millions of seats in a few kilobytes; control characters in
//! names, titles and seat codes; and a listing cursor that keeps its first page's window.

use catalog::Clock;
use chrono::{DateTime, Duration, Utc};
use platform::auth::Role;
use serde_json::{Value, json};

use crate::support::{App, concert, fields, hall, saturday_noon, spawn, spawn_with};

/// Sends `body` to create a venue → (status, body).
async fn venue(app: &App, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = app
        .send("POST", "/api/v1/admin/venues", Some(token), body)
        .await;
    (status, body)
}

/// Sends `body` to create an event → (status, body).
async fn event(app: &App, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = app
        .send("POST", "/api/v1/admin/events", Some(token), body)
        .await;
    (status, body)
}

/// Asserts a 400 `validation_failed` naming `field` (and only it).
#[track_caller]
fn refused(answer: (u16, Value), field: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed")),
        "{what}: {body}"
    );
    assert_eq!(fields(&body), vec![field.to_owned()], "{what}: {body}");
}

/// Asserts a 201.
#[track_caller]
fn created(answer: &(u16, Value), what: &str) {
    assert_eq!(answer.0, 201, "{what}: {}", answer.1);
}

/// A seated area `code` of `rows` rows of `seats` seats each.
fn block(code: &str, rows: usize, seats: i32) -> Value {
    let rows: Vec<Value> = (0..rows)
        .map(|r| json!({"label": r.to_string(), "seats": seats}))
        .collect();
    json!({"code": code, "name": code, "grade": "r", "rows": rows,
           "geometry": {"polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}})
}

/// A standing area `code`.
fn standing(code: &str) -> Value {
    json!({"code": code, "name": code, "grade": "r", "kind": "standing", "capacity": 1,
           "geometry": {"position": {"x": 1, "y": 1}}})
}

/// A venue of one grade `r` and `areas`.
fn with_areas(areas: Vec<Value>) -> Value {
    json!({"name": "경계 Bounds", "kind": "arena",
           "grades": [{"code": "r", "name": "R"}], "areas": areas})
}

async fn venue_count(app: &App) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM venues")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_small_body_describing_millions_of_seats_is_refused_before_any_layout() {
    let app = spawn("cat_bounds_expand").await;
    let token = app.token(&[Role::Organizer]);
    // 40 areas of 200 rows of 500 seats: four million seats in about 220 KiB, under the body
    // limit. Before the bound, every one of them was laid out, copied and inserted.
    let body = with_areas((0..40).map(|i| block(&format!("b{i}"), 200, 500)).collect());
    let bytes = serde_json::to_vec(&body).expect("json").len();
    assert!(bytes < 256 * 1024, "{bytes} bytes");
    let (status, problem) = venue(&app, &token, &body).await;
    refused((status, problem.clone()), "areas", "4,000,000 seats");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("100000") && m.contains("4000000")),
        "{problem}"
    );
    assert_eq!(venue_count(&app).await, 0, "nothing written");
    app.finish().await;
}

#[tokio::test]
async fn seats_rows_and_areas_of_a_venue_are_bounded() {
    let app = spawn("cat_bounds_venue").await;
    let token = app.token(&[Role::Organizer]);
    // Seats: 100,000 in all is accepted (one area of 200 rows of 500), one more is not.
    let at = venue(&app, &token, &with_areas(vec![block("a", 200, 500)])).await;
    created(&at, "100,000 seats");
    let seats: usize = at.1["areas"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["seats"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(seats, 100_000);
    refused(
        venue(
            &app,
            &token,
            &with_areas(vec![block("a", 200, 500), block("b", 1, 1)]),
        )
        .await,
        "areas",
        "100,001 seats",
    );
    // Rows per area: 200 accepted above; 201 are not.
    refused(
        venue(&app, &token, &with_areas(vec![block("a", 201, 1)])).await,
        "areas[0].rows",
        "201 rows",
    );
    // Seats per row.
    refused(
        venue(&app, &token, &with_areas(vec![block("a", 1, 501)])).await,
        "areas[0].rows[0].seats",
        "501 seats in a row",
    );
    // Areas: 1000 accepted, 1001 not.
    let areas = |n: usize| with_areas((0..n).map(|i| standing(&format!("s{i}"))).collect());
    created(&venue(&app, &token, &areas(1000)).await, "1000 areas");
    refused(
        venue(&app, &token, &areas(1001)).await,
        "areas",
        "1001 areas",
    );
    // Wheelchair spaces must be seats of their row.
    let mut body = hall();
    body["areas"][0]["rows"][0]["wheelchair"] = json!([11]);
    refused(
        venue(&app, &token, &body).await,
        "areas[0].rows[0].wheelchair",
        "a wheelchair seat past the row",
    );
    app.finish().await;
}

#[tokio::test]
async fn grades_ranks_coordinates_and_lengths_are_bounded() {
    let app = spawn("cat_bounds_fields").await;
    let token = app.token(&[Role::Organizer]);
    let grades = |n: usize| {
        let mut body = with_areas(vec![standing("s")]);
        body["grades"] = (0..n)
            .map(|i| json!({"code": if i == 0 { "r".to_owned() } else { format!("g{i}") }, "name": "G"}))
            .collect();
        body
    };
    created(&venue(&app, &token, &grades(50)).await, "50 grades");
    refused(
        venue(&app, &token, &grades(51)).await,
        "grades",
        "51 grades",
    );

    let ranked = |rank: i64| {
        let mut body = hall();
        body["grades"][0]["rank"] = json!(rank);
        body
    };
    created(&venue(&app, &token, &ranked(1000)).await, "rank 1000");
    refused(
        venue(&app, &token, &ranked(1001)).await,
        "grades[0].rank",
        "rank 1001",
    );
    refused(
        venue(&app, &token, &ranked(-1)).await,
        "grades[0].rank",
        "rank -1",
    );

    // Coordinates: ±1,000,000 in a polygon, a position and the plan.
    let polygon = |edge: f64| {
        let mut body = hall();
        body["areas"][0]["geometry"] =
            json!({"polygon": [[-edge, 0], [edge, 0], [edge, edge], [0, edge]]});
        body
    };
    created(
        &venue(&app, &token, &polygon(1e6)).await,
        "a polygon at 1e6",
    );
    refused(
        venue(&app, &token, &polygon(1e6 + 1.0)).await,
        "areas[0].geometry",
        "a polygon past 1e6",
    );
    refused(
        venue(&app, &token, &polygon(1e300)).await,
        "areas[0].geometry",
        "a polygon at 1e300",
    );
    let mut body = hall();
    body["areas"][1]["geometry"] = json!({"position": {"x": -2e6, "y": 0}});
    refused(
        venue(&app, &token, &body).await,
        "areas[1].geometry",
        "a position past -1e6",
    );
    let planned = |width: f64, extra: Value| {
        let mut body = hall();
        body["plan"] = json!({"width": width, "height": 10, "stage": extra});
        body
    };
    created(
        &venue(&app, &token, &planned(1e6, json!([[0, -1e6]]))).await,
        "a plan at 1e6",
    );
    refused(
        venue(&app, &token, &planned(1e6 + 1.0, json!([]))).await,
        "plan",
        "a plan wider than 1e6",
    );
    refused(
        venue(&app, &token, &planned(10.0, json!([[0, 1e7]]))).await,
        "plan",
        "a plan's stage past 1e6",
    );
    // Polygon points: 1000 accepted, 1001 not.
    let pointed = |n: usize| {
        let mut body = hall();
        let points: Vec<Value> = (0..n).map(|i| json!([i, i % 7])).collect();
        body["areas"][0]["geometry"] = json!({ "polygon": points });
        body
    };
    created(&venue(&app, &token, &pointed(1000)).await, "1000 points");
    refused(
        venue(&app, &token, &pointed(1001)).await,
        "areas[0].geometry",
        "1001 points",
    );

    // Lengths: 200 characters of a name, 200 of a city.
    for field in ["name", "name_en", "city", "address"] {
        let mut body = hall();
        body[field] = json!("가".repeat(200));
        created(&venue(&app, &token, &body).await, field);
        body[field] = json!("가".repeat(201));
        refused(venue(&app, &token, &body).await, field, field);
    }
    let mut body = hall();
    body["areas"][0]["code"] = json!("c".repeat(41));
    refused(
        venue(&app, &token, &body).await,
        "areas[0].code",
        "a code of 41",
    );
    app.finish().await;
}

/// `n` performances starting daily from a week after `now`, each with one window.
fn performances(n: usize, now: DateTime<Utc>) -> Value {
    (0..n)
        .map(|i| {
            let starts = now + Duration::days(7 + i64::try_from(i).unwrap_or(0));
            json!({"starts_at": starts.to_rfc3339(), "sale_windows": [
                {"opens_at": now.to_rfc3339(), "closes_at": starts.to_rfc3339()}]})
        })
        .collect()
}

#[tokio::test]
async fn performances_windows_and_prices_of_an_event_are_bounded() {
    let app = spawn_with("cat_bounds_event", Clock::fixed(saturday_noon())).await;
    let token = app.token(&[Role::Organizer]);
    let (_, hall) = venue(&app, &token, &hall()).await;
    let venue_id = hall["id"].as_str().expect("venue id").to_owned();
    let now = app.now();

    let mut body = concert(&venue_id, now);
    body["performances"] = performances(1001, now);
    refused(event(&app, &token, &body).await, "performances", "1001");
    body["performances"] = performances(1000, now);
    let full = event(&app, &token, &body).await;
    created(&full, "1000 performances");
    let event_id = full.1["id"].as_str().expect("event id");
    // The 1001st cannot be added one by one either.
    let one = &performances(1, now)[0];
    let (status, _, problem) = app
        .send(
            "POST",
            &format!("/api/v1/admin/events/{event_id}/performances"),
            Some(&token),
            one,
        )
        .await;
    refused((status, problem), "performances", "the 1001st added");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM performances")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 1000);

    // Sale windows: 10 per performance, not 11.
    let windows = |n: usize| {
        let starts = now + Duration::days(7);
        let w: Vec<Value> = (0..n)
            .map(|i| {
                let opens = now + Duration::hours(i64::try_from(i).unwrap_or(0));
                json!({"opens_at": opens.to_rfc3339(), "closes_at": starts.to_rfc3339()})
            })
            .collect();
        let mut body = concert(&venue_id, now);
        body["performances"] = json!([{"starts_at": starts.to_rfc3339(), "sale_windows": w}]);
        body
    };
    created(&event(&app, &token, &windows(10)).await, "10 windows");
    refused(
        event(&app, &token, &windows(11)).await,
        "performances[0].sale_windows",
        "11 windows",
    );
    // Price tiers: at most 50 (one per grade).
    let mut body = concert(&venue_id, now);
    body["price_tiers"] = (0..51)
        .map(|_| json!({"grade": "r", "price_krw": 1000}))
        .collect();
    refused(event(&app, &token, &body).await, "price_tiers", "51 tiers");
    // Lengths: a title of 200, a description of 10,000.
    let mut body = concert(&venue_id, now);
    body["title"] = json!("가".repeat(200));
    body["description"] = json!("가".repeat(10_000));
    created(
        &event(&app, &token, &body).await,
        "the longest title and text",
    );
    body["title"] = json!("가".repeat(201));
    refused(event(&app, &token, &body).await, "title", "a title of 201");
    body["title"] = json!("t");
    body["description"] = json!("가".repeat(10_001));
    refused(
        event(&app, &token, &body).await,
        "description",
        "a description of 10,001",
    );
    app.finish().await;
}

#[tokio::test]
async fn control_characters_in_names_titles_and_seat_codes_are_refused() {
    let app = spawn_with("cat_bounds_controls", Clock::fixed(saturday_noon())).await;
    let token = app.token(&[Role::Organizer]);
    for (what, edit, field) in [
        (
            "a venue name with U+0001",
            json!({"name": "Hall\u{1}One"}),
            "name",
        ),
        (
            "a venue name with ESC",
            json!({"name": "Hall\u{1b}[31m"}),
            "name",
        ),
        (
            "a venue name with DEL",
            json!({"name": "Hall\u{7f}"}),
            "name",
        ),
        (
            "a venue name with a right-to-left override",
            json!({"name": "Hall \u{202E}enO"}),
            "name",
        ),
        (
            "an English name with a line feed",
            json!({"name_en": "Test\nHall"}),
            "name_en",
        ),
        (
            "a city with an isolate",
            json!({"city": "Seoul\u{2066}"}),
            "city",
        ),
    ] {
        let mut body = hall();
        for (k, v) in edit.as_object().expect("object") {
            body[k] = v.clone();
        }
        refused(venue(&app, &token, &body).await, field, what);
    }
    // Seat codes (`<area>-<row>-<number>`): the area code and the row label.
    let mut body = hall();
    body["areas"][0]["rows"][0]["label"] = json!("A\u{7}");
    refused(
        venue(&app, &token, &body).await,
        "areas[0].rows[0].label",
        "a row label with BEL",
    );
    let mut body = hall();
    body["areas"][0]["code"] = json!("a\u{1f}");
    refused(
        venue(&app, &token, &body).await,
        "areas[0].code",
        "an area code with U+001F",
    );
    let mut body = hall();
    body["grades"][0]["name"] = json!("R\u{2067}석");
    refused(
        venue(&app, &token, &body).await,
        "grades[0].name",
        "a grade name with an isolate",
    );
    assert_eq!(venue_count(&app).await, 0, "nothing written");

    // Events: the title refuses every control character; the description keeps tab and line
    // breaks, and refuses the others.
    let (status, hall) = venue(&app, &token, &hall()).await;
    assert_eq!(status, 201, "{hall}");
    let venue_id = hall["id"].as_str().expect("venue id");
    let mut body = concert(venue_id, app.now());
    body["title"] = json!("Concert\u{8}");
    refused(
        event(&app, &token, &body).await,
        "title",
        "a title with backspace",
    );
    body["title"] = json!("\u{202D}Concert");
    refused(
        event(&app, &token, &body).await,
        "title",
        "a title with a left-to-right override",
    );
    body["title"] = json!("Concert");
    body["description"] = json!("Doors 18:00\r\n\tEnd 21:00\u{1b}");
    refused(
        event(&app, &token, &body).await,
        "description",
        "a description with ESC",
    );
    body["description"] = json!("Doors 18:00\r\n\tEnd 21:00");
    let (status, created) = event(&app, &token, &body).await;
    assert_eq!(status, 201, "tab and line breaks are fine: {created}");
    // A rename goes through the same check.
    let (status, _, problem) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/venues/{venue_id}"),
            Some(&token),
            &json!({"name": "New\u{85}Name"}),
        )
        .await;
    refused((status, problem), "name", "a rename with NEL (C1)");
    app.finish().await;
}

/// Creates and publishes an event at `venue_id` with performances starting at `starts`.
async fn published(
    app: &App,
    token: &str,
    venue_id: &str,
    title: &str,
    starts: &[DateTime<Utc>],
) -> String {
    let now = app.now();
    let mut body = concert(venue_id, now);
    body["title"] = json!(title);
    body["performances"] = starts
        .iter()
        .map(|s| {
            json!({"starts_at": s.to_rfc3339(), "sale_windows": [
                {"opens_at": (now - Duration::days(1)).to_rfc3339(), "closes_at": s.to_rfc3339()}]})
        })
        .collect();
    let (status, event) = self::event(app, token, &body).await;
    assert_eq!(status, 201, "{event}");
    for perf in event["performances"].as_array().expect("performances") {
        let id = perf["id"].as_str().expect("performance id");
        let (status, _, body) = app
            .send(
                "POST",
                &format!("/api/v1/admin/performances/{id}/publish"),
                Some(token),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    event["id"].as_str().expect("event id").to_owned()
}

async fn page(server: &platform::testing::TestServer, query: &str) -> (u16, Value) {
    let r = server
        .client
        .get(server.url(&format!("/api/v1/events?{query}")))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_next_page_keeps_the_window_of_the_first_when_the_clock_moves() {
    let first_at = saturday_noon();
    let app = spawn_with("cat_bounds_cursor", Clock::fixed(first_at)).await;
    let token = app.token(&[Role::Admin]);
    let (_, hall) = venue(&app, &token, &hall()).await;
    let venue_id = hall["id"].as_str().expect("venue id");
    // `a` plays in an hour and again in ten days; `b` and `c` in two and three days.
    let a = published(
        &app,
        &token,
        venue_id,
        "A",
        &[first_at + Duration::hours(1), first_at + Duration::days(10)],
    )
    .await;
    let b = published(&app, &token, venue_id, "B", &[first_at + Duration::days(2)]).await;
    let c = published(&app, &token, venue_id, "C", &[first_at + Duration::days(3)]).await;

    // Page 1 now, `from` defaulting to the clock.
    let (status, first) = page(&app.server, "limit=1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), vec![a.clone()]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();

    // Five hours later (another replica, or this one later), `a`'s first game has started: a
    // listing from now starts with `b` and shows `a` by its game in ten days.
    let later = app
        .replica(Clock::fixed(first_at + Duration::hours(5)))
        .await;
    let (_, fresh) = page(&later, "limit=10").await;
    assert_eq!(ids(&fresh), vec![b.clone(), c.clone(), a.clone()]);
    // Page 2 is still the rest of page 1's listing: `a` is not listed twice.
    let (status, second) = page(&later, &format!("limit=10&cursor={cursor}")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(ids(&second), vec![b.clone(), c.clone()]);
    assert!(second["next_cursor"].is_null());
    // The same `from` given again is fine; another one is not this cursor's listing.
    let from = first_at.to_rfc3339().replace('+', "%2B");
    let (status, same) = page(&later, &format!("from={from}&limit=10&cursor={cursor}")).await;
    assert_eq!((status, ids(&same)), (200, vec![b, c]));
    refused(
        page(&later, &format!("from=2026-05-01&limit=10&cursor={cursor}")).await,
        "cursor",
        "another from",
    );
    app.finish().await;
}

#[tokio::test]
async fn a_garbage_or_tampered_cursor_is_a_validation_error() {
    use base64::Engine;
    let app = spawn("cat_bounds_garbage").await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let id = uuid::Uuid::now_v7();
    let now = Utc::now().timestamp_micros();
    let cases = [
        "garbage".to_owned(),
        b64("not a cursor"),
        // The format before `from` and `now` were carried.
        b64(&format!("{now}:{id}")),
        // Times no listing can have: past chrono's range, past year 9999, a clock to come.
        b64(&format!("1:{}:{now}:{now}:{id}", i64::MAX)),
        b64(&format!("1:253402300800000000:{now}:{now}:{id}")),
        b64(&format!("1:{now}:{}:{now}:{id}", now + 86_400_000_000)),
        // A position before its own `from`.
        b64(&format!("1:{now}:{now}:{}:{id}", now - 1)),
        b64(&format!("1:{now}:{now}:{now}:not-a-uuid")),
        b64(&format!("1:{now}:{now}:{now}:{id}:more")),
        "A".repeat(5000),
    ];
    for c in cases {
        refused(
            app.get(&format!("/api/v1/events?cursor={c}")).await,
            "cursor",
            &c,
        );
    }
    app.finish().await;
}
