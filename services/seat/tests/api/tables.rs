//! Seats sold together (issue 16): a table (테이블석) is held whole or not at all, a companion
//! seat (동반석) only with its wheelchair seat; best available keeps both rules; two buyers
//! racing for the halves of one table cannot end with half each.

use contracts::events::PerformanceSpec;
use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{App, Backend, performance, spawn};

/// 3 rows × 6 seats (`performance`): `A-01-01`…`04` a table of four, `A-02-01` a wheelchair
/// seat (every seat 1 is) with its companion `A-02-02`, `A-03-05` and `06` a table of two.
fn grouped(ticket_limit: i32) -> PerformanceSpec {
    let mut p = performance(3, 6, ticket_limit);
    for s in &mut p.seats {
        match (s.row.as_str(), s.number) {
            ("01", 1..=4) => s.table = Some("A-01-01".into()),
            ("03", 5..=6) => s.table = Some("A-03-05".into()),
            ("02", 2) => s.companion_of = Some("A-02-01".into()),
            _ => {}
        }
    }
    p
}

async fn hold_seats(app: &App, buyer: Uuid, perf: Uuid, seats: &[&str]) -> (u16, Value) {
    let r = app
        .hold(buyer, json!({"performance_id": perf, "seat_ids": seats}))
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The seat map's statuses of `ids`.
async fn statuses(app: &App, perf: Uuid, ids: &[&str]) -> Vec<String> {
    let map = app.seats(perf).await;
    ids.iter()
        .map(|id| {
            map["seats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == *id)
                .map(|s| s["status"].as_str().unwrap().to_owned())
                .unwrap()
        })
        .collect()
}

const TABLE: [&str; 4] = ["A-01-01", "A-01-02", "A-01-03", "A-01-04"];

#[tokio::test]
async fn a_table_is_held_whole_or_not_at_all() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let p = grouped(4);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());

        // Half a table, alone or with other seats: refused, naming what is missing.
        let (status, problem) = hold_seats(&app, alice, perf, &["A-01-02", "A-01-01"]).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "table_sold_whole");
        assert_eq!(problem["table"], "A-01-01");
        assert_eq!(problem["missing_seat_ids"], json!(["A-01-03", "A-01-04"]));
        let (status, problem) = hold_seats(
            &app,
            alice,
            perf,
            &["A-01-05", "A-01-01", "A-01-02", "A-01-03"],
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(problem["missing_seat_ids"], json!(["A-01-04"]));
        let (status, problem) = hold_seats(&app, alice, perf, &["A-03-06"]).await;
        assert_eq!((status, &problem["table"]), (400, &json!("A-03-05")));
        // Nothing was held.
        assert_eq!(
            statuses(&app, perf, &TABLE).await,
            ["available"; 4],
            "{backend:?}"
        );

        // The whole table, in any order: held.
        let (status, held) = hold_seats(
            &app,
            alice,
            perf,
            &["A-01-04", "A-01-02", "A-01-03", "A-01-01"],
        )
        .await;
        assert_eq!(status, 201, "{held}");
        assert_eq!(held["seat_ids"].as_array().unwrap().len(), 4);
        assert_eq!(statuses(&app, perf, &TABLE).await, ["held"; 4]);
        // Someone else asking for it now is told it is taken, as for any seat.
        let (status, problem) = hold_seats(&app, bob, perf, &TABLE).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some("seat_unavailable"))
        );

        // The seat map tells which seats go together.
        let map = app.seats(perf).await;
        let seat = |id: &str| {
            map["seats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id)
                .cloned()
                .unwrap()
        };
        assert_eq!(seat("A-01-03")["table"], "A-01-01");
        assert_eq!(seat("A-02-02")["companion_of"], "A-02-01");
        assert!(seat("A-01-05").get("table").is_none());
        assert!(seat("A-01-05").get("companion_of").is_none());
    }
}

#[tokio::test]
async fn a_companion_seat_is_held_only_with_its_wheelchair_seat() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let p = grouped(4);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

        for seats in [&["A-02-02"][..], &["A-02-03", "A-02-02"]] {
            let (status, problem) = hold_seats(&app, alice, perf, seats).await;
            assert_eq!(status, 400, "{problem}");
            assert_eq!(problem["code"], "companion_requires_wheelchair");
            assert_eq!(problem["seat_id"], "A-02-02");
            assert_eq!(problem["wheelchair_seat_id"], "A-02-01");
        }
        assert_eq!(
            statuses(&app, perf, &["A-02-02", "A-02-03"]).await,
            ["available"; 2]
        );
        // The two together, and a wheelchair seat alone (another row's), are fine.
        let (status, held) = hold_seats(&app, alice, perf, &["A-02-02", "A-02-01"]).await;
        assert_eq!(status, 201, "{backend:?} {held}");
        let (status, held) = hold_seats(&app, bob, perf, &["A-03-01"]).await;
        assert_eq!(status, 201, "{held}");
        // With its wheelchair seat taken, the companion cannot be had alone either.
        let (status, problem) = hold_seats(&app, carol, perf, &["A-02-02"]).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("companion_requires_wheelchair"))
        );
    }
}

#[tokio::test]
async fn the_ticket_limit_still_counts_every_seat_of_a_table() {
    let app = spawn(Backend::Memory, Config::default()).await;
    // Limit 2: a table of four is more than one buyer may hold at all.
    let p = grouped(2);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let alice = Uuid::now_v7();
    let (status, problem) = hold_seats(&app, alice, perf, &TABLE).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed"))
    );
    assert_eq!(problem["errors"][0]["field"], "seat_ids");
    let r = app
        .hold(alice, json!({"performance_id": perf, "quantity": 4}))
        .await;
    assert_eq!(r.status(), 400);
    // Limit 4 with two seats held already: the table of four passes the limit.
    let p = grouped(4);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let (status, _) = hold_seats(&app, alice, perf, &["A-01-05", "A-01-06"]).await;
    assert_eq!(status, 201);
    let (status, problem) = hold_seats(&app, alice, perf, &TABLE).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "limit_exceeded");
    assert_eq!(
        (problem["limit"].as_i64(), problem["current"].as_i64()),
        (Some(4), Some(2))
    );
    assert_eq!(statuses(&app, perf, &TABLE).await, ["available"; 4]);
}

#[tokio::test]
async fn best_available_takes_tables_whole_and_companions_with_their_wheelchair_seat() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let p = grouped(10);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        // Four of the best grade: the table of four, the best block there is.
        let r = app
            .hold(
                Uuid::now_v7(),
                json!({"performance_id": perf, "grade": "vip", "quantity": 4}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let held: Value = r.json().await.unwrap();
        assert_eq!(held["seat_ids"], json!(TABLE), "{backend:?}");
        // Then pairs and singles until nothing fits: no pick ever splits a table or takes a
        // companion seat without its wheelchair seat.
        let mut taken: Vec<String> = Vec::new();
        for quantity in [3, 2, 1, 1, 1, 2, 3, 1, 1, 1, 1, 1, 1] {
            let r = app
                .hold(
                    Uuid::now_v7(),
                    json!({"performance_id": perf, "quantity": quantity}),
                )
                .await;
            if r.status() == 409 {
                continue;
            }
            assert_eq!(r.status(), 201);
            let held: Value = r.json().await.unwrap();
            let ids: Vec<String> = held["seat_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(ids.len(), quantity);
            let has = |id: &str| ids.iter().any(|s| s == id);
            assert!(!has("A-02-02") || has("A-02-01"), "lone companion: {ids:?}");
            assert_eq!(has("A-03-05"), has("A-03-06"), "half a table: {ids:?}");
            assert!(
                !has("A-03-05") || quantity == 2,
                "a table of two for {quantity}: {ids:?}"
            );
            taken.extend(ids);
        }
        // A table of two exactly fits a quantity of two: still there to be had whole.
        let left = statuses(&app, perf, &["A-03-05", "A-03-06"]).await;
        assert_eq!(left[0], left[1]);
        assert!(taken.len() > 6, "{taken:?}");
    }
}

#[tokio::test]
async fn buyers_racing_for_the_halves_of_a_table_never_end_with_half() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let p = grouped(4);
        let perf = p.performance_id;
        app.publish_performance(&p).await;
        // 30 buyers at once: a third want the front half, a third the back half, a third the
        // whole table.
        let asks: Vec<&[&str]> = (0..30)
            .map(|i| match i % 3 {
                0 => &TABLE[..2],
                1 => &TABLE[2..],
                _ => &TABLE[..],
            })
            .collect();
        let answers = futures::future::join_all(
            asks.iter()
                .map(|seats| hold_seats(&app, Uuid::now_v7(), perf, seats)),
        )
        .await;
        let won: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == 201)
            .map(|(_, held)| held)
            .collect();
        assert_eq!(won.len(), 1, "{backend:?}: {answers:?}");
        assert_eq!(won[0]["seat_ids"].as_array().unwrap().len(), 4);
        for ((status, problem), seats) in answers.iter().zip(&asks) {
            match (seats.len(), *status) {
                (2, s) => assert_eq!(
                    (s, problem["code"].as_str()),
                    (400, Some("table_sold_whole"))
                ),
                (4, 201) => {}
                (4, s) => assert_eq!(
                    (s, problem["code"].as_str()),
                    (409, Some("seat_unavailable"))
                ),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(statuses(&app, perf, &TABLE).await, ["held"; 4]);
    }
}
