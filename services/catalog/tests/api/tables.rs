//! Tables (테이블석) and companion seats (동반석) in a venue's rows (issue 16): each bad shape
//! refused naming its field with nothing written, the venue detail showing them, and the
//! publication carrying them to the seat service.

use platform::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use catalog::Clock;

use crate::support::{App, concert, fields, hall, next_publication, saturday_noon, spawn_with};

/// The test hall with tables in row A (1–4, 5–6) and row B's wheelchair seat 1 paired with 2.
fn grouped_hall() -> Value {
    let mut body = hall();
    body["areas"][0]["rows"][0]["tables"] = json!([[1, 2, 3, 4], [5, 6]]);
    body["areas"][0]["rows"][1]["companions"] = json!([[1, 2]]);
    body
}

async fn venue_count(app: &App) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM venues")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn bad_tables_and_pairs_are_refused_naming_the_field() {
    let app = spawn_with("cat_tables_bad", Clock::fixed(saturday_noon())).await;
    let token = app.token(&[Role::Organizer]);
    let a = "areas[0].rows[0]";
    let b = "areas[0].rows[1]";
    // (row, field, value, why); row 0 is A (10 seats), row 1 is B (10 seats, wheelchair [1]).
    let cases: Vec<(usize, &str, Value, &str)> = vec![
        (0, "tables", json!([[1]]), "a table of one"),
        (
            0,
            "tables",
            json!([[1, 2, 3, 4, 5, 6, 7, 8, 9]]),
            "a table of nine",
        ),
        (0, "tables", json!([[9, 11]]), "a seat past the row"),
        (0, "tables", json!([[0, 1]]), "a seat before the row"),
        (0, "tables", json!([[1, 2], [2, 3]]), "a seat at two tables"),
        (0, "tables", json!([[1, 1]]), "a seat twice at one table"),
        (
            0,
            "tables",
            json!(
                (0..6)
                    .map(|i| json!([i * 2 + 1, i * 2 + 2]))
                    .collect::<Vec<_>>()
            ),
            "more tables than the row holds",
        ),
        (
            0,
            "companions",
            json!([[1, 2]]),
            "no wheelchair seat in the row",
        ),
        (
            1,
            "companions",
            json!([[2, 3]]),
            "the first is not a wheelchair seat",
        ),
        (
            1,
            "companions",
            json!([[1, 1]]),
            "the companion is the wheelchair seat",
        ),
        (
            1,
            "companions",
            json!([[1, 11]]),
            "a companion past the row",
        ),
        (1, "companions", json!([[1]]), "half a pair"),
        (1, "companions", json!([[1, 2, 3]]), "three in a pair"),
        (
            1,
            "companions",
            json!([[1, 2], [1, 3]]),
            "a wheelchair seat in two pairs",
        ),
    ];
    for (row, field, value, why) in cases {
        let mut body = hall();
        if row == 1 && field == "companions" && why == "a wheelchair seat in two pairs" {
            body["areas"][0]["rows"][1]["wheelchair"] = json!([1, 4]);
        }
        body["areas"][0]["rows"][row][field] = value;
        let (status, _, problem) = app
            .send("POST", "/api/v1/admin/venues", Some(&token), &body)
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("validation_failed")),
            "{why}: {problem}"
        );
        let prefix = if row == 0 { a } else { b };
        assert_eq!(fields(&problem), vec![format!("{prefix}.{field}")], "{why}");
    }
    // A seat paired twice, as a companion of two wheelchair seats.
    let mut body = hall();
    body["areas"][0]["rows"][1]["wheelchair"] = json!([1, 4]);
    body["areas"][0]["rows"][1]["companions"] = json!([[1, 2], [4, 2]]);
    let (status, _, problem) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &body)
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(fields(&problem), vec![format!("{b}.companions")]);
    assert_eq!(venue_count(&app).await, 0, "nothing written");
    app.finish().await;
}

#[tokio::test]
async fn the_venue_and_its_publication_carry_tables_and_companions() {
    let app = spawn_with("cat_tables_publish", Clock::fixed(saturday_noon())).await;
    let organizer = Uuid::now_v7();
    let token = app.token_for(organizer, &[Role::Organizer]);
    let mut sub = app.subscribe().await;
    let (status, _, venue) = app
        .send(
            "POST",
            "/api/v1/admin/venues",
            Some(&token),
            &grouped_hall(),
        )
        .await;
    assert_eq!(status, 201, "{venue}");
    assert_eq!(venue["capacity"], 128, "tables change no count");
    let row = |r: usize| {
        venue["areas"][0]["rows"][r]["seats"]
            .as_array()
            .unwrap()
            .clone()
    };
    let a = row(0);
    let tables: Vec<&Value> = a.iter().map(|s| &s["table"]).collect();
    assert_eq!(
        tables,
        [
            &json!("a-A-1"),
            &json!("a-A-1"),
            &json!("a-A-1"),
            &json!("a-A-1"),
            &json!("a-A-5"),
            &json!("a-A-5"),
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &Value::Null,
        ]
    );
    let b = row(1);
    assert_eq!(b[1]["companion_of"], "a-B-1");
    assert!(b[0].get("companion_of").is_none() && b[0]["wheelchair"] == true);
    assert!(b[2].get("companion_of").is_none() && b[2].get("table").is_none());
    // The public detail says the same.
    let venue_id = venue["id"].as_str().unwrap().to_owned();
    let (status, public) = app.get(&format!("/api/v1/venues/{venue_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(public["areas"][0]["rows"], venue["areas"][0]["rows"]);

    let (status, _, event) = app
        .send(
            "POST",
            "/api/v1/admin/events",
            Some(&token),
            &concert(&venue_id, app.now()),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    let perf_id = event["performances"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, perf) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf_id}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{perf}");
    let (published, _) = next_publication(&mut sub, Uuid::parse_str(&perf_id).unwrap()).await;
    let seat = |id: &str| published.seats.iter().find(|s| s.seat_id == id).unwrap();
    for n in 1..=4 {
        assert_eq!(seat(&format!("a-A-{n}")).table.as_deref(), Some("a-A-1"));
    }
    assert_eq!(seat("a-A-6").table.as_deref(), Some("a-A-5"));
    assert_eq!(seat("a-A-7").table, None);
    assert_eq!(seat("a-B-2").companion_of.as_deref(), Some("a-B-1"));
    assert_eq!(
        published.seats.iter().filter(|s| s.table.is_some()).count(),
        6
    );
    assert_eq!(
        published
            .seats
            .iter()
            .filter(|s| s.companion_of.is_some())
            .count(),
        1
    );
    app.finish().await;
}
