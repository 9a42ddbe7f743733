//! The race: 1,000 concurrent buyers, each asking for 2–4 random seats among 200, against the
//! real Redis hold store and PostgreSQL. No seat is held or sold twice, every seat is accounted
//! for, and each buyer got all the seats asked for or none.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use contracts::events::{OrderConfirmed, SaleRejectReason, SaleRejected};
use platform::testing;
use rand::{Rng, seq::IndexedRandom};
use seat::Config;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, Observer, performance, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_never_share_a_seat() {
    let app = spawn(Backend::Redis, Config::default()).await;
    let mut seat_events = Observer::seats(&app).await;
    let p = performance(10, 20, 0);
    let perf = p.performance_id;
    app.publish_performance(&p).await;
    let all: Vec<String> = p.seats.iter().map(|s| s.seat_id.clone()).collect();

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let buyer = Uuid::now_v7();
        let wanted: Vec<String> = {
            let mut rng = rand::rng();
            let n = rng.random_range(2..=4);
            all.choose_multiple(&mut rng, n).cloned().collect()
        };
        let (client, url, token) = (
            app.server.client.clone(),
            app.server.url("/api/v1/holds"),
            app.token(buyer),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"performance_id": perf, "seat_ids": wanted}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (buyer, wanted, status, body)
        }));
    }
    let mut owner: HashMap<String, Uuid> = HashMap::new();
    let mut granted = Vec::new();
    for t in tasks {
        let (buyer, wanted, status, body) = t.await.unwrap();
        match status {
            201 => {
                let got: BTreeSet<String> =
                    serde_json::from_value(body["seat_ids"].clone()).unwrap();
                assert_eq!(
                    got,
                    wanted.iter().cloned().collect(),
                    "all requested seats or none"
                );
                for s in &got {
                    assert!(
                        owner.insert(s.clone(), buyer).is_none(),
                        "seat {s} held twice"
                    );
                }
                let hold_id: Uuid = serde_json::from_value(body["hold_id"].clone()).unwrap();
                granted.push((hold_id, buyer, got));
            }
            409 => {
                assert_eq!(body["code"], "seat_unavailable");
                let taken: Vec<String> = serde_json::from_value(body["seat_ids"].clone()).unwrap();
                assert!(!taken.is_empty() && taken.iter().all(|s| wanted.contains(s)));
            }
            // An abandoned request (the server's timeout, on a loaded machine) holds nothing:
            // the service releases what the store granted once nobody waits for the answer.
            503 => assert_eq!(body["code"], "timeout"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(!granted.is_empty());
    // The store agrees with the answers, seat by seat.
    let expected: BTreeSet<String> = owner.keys().cloned().collect();
    testing::eventually(
        "the store to hold exactly the granted seats",
        Duration::from_secs(10),
        || {
            let (store, expected) = (app.store.clone(), expected.clone());
            async move {
                let snap = store.snapshot(perf).await.unwrap().unwrap();
                snap.taken
                    .iter()
                    .map(|(s, _)| s.clone())
                    .collect::<BTreeSet<_>>()
                    == expected
            }
        },
    )
    .await;

    // Every granted hold is bought; one forged order tries to buy a sold seat again.
    for (hold_id, buyer, seats) in &granted {
        app.publish(&OrderConfirmed {
            order_id: Uuid::now_v7(),
            buyer_id: *buyer,
            hold_id: *hold_id,
            performance_id: perf,
            seat_ids: seats.iter().cloned().collect(),
            areas: Vec::new(),
            amount_krw: 0,
            ticket_ids: Vec::new(),
        })
        .await;
    }
    let (_, _, first) = &granted[0];
    let forged = Uuid::now_v7();
    app.publish(&OrderConfirmed {
        order_id: forged,
        buyer_id: Uuid::now_v7(),
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        seat_ids: first.iter().cloned().collect(),
        areas: Vec::new(),
        amount_krw: 0,
        ticket_ids: Vec::new(),
    })
    .await;
    let sold_total = owner.len() as i64;
    let pool = seat_pool(&app).await;
    testing::eventually("every granted seat sold", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sold_seats")
                .fetch_one(&pool)
                .await
                .unwrap();
            let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_dead_letters")
                .fetch_one(&pool)
                .await
                .unwrap();
            n == sold_total && dead == 0
        }
    })
    .await;
    // The forged double sale is refused with an answer the order side can refund on.
    let rejected = seat_events
        .next(|e: &SaleRejected| e.order_id == forged)
        .await;
    // SeatDB finds its seats sold (when the real sale came first) or the store finds no hold.
    assert!(
        matches!(
            rejected.reason,
            SaleRejectReason::SeatsTaken | SaleRejectReason::UnknownHold
        ),
        "{rejected:?}"
    );
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT (performance_id, seat_id)) FROM sold_seats")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(distinct, sold_total);
    // Every seat accounted for: sold or available, none left held.
    let map = app.seats(perf).await;
    assert_eq!(map["counts"]["sold"].as_i64().unwrap(), sold_total);
    assert_eq!(map["counts"]["held"].as_i64().unwrap(), 0);
    assert_eq!(
        map["counts"]["available"].as_i64().unwrap(),
        200 - sold_total + 50 // plus the 50 general-admission places
    );
    for seat in map["seats"].as_array().unwrap() {
        let id = seat["id"].as_str().unwrap();
        let expected = if owner.contains_key(id) {
            "sold"
        } else {
            "available"
        };
        assert_eq!(seat["status"], expected, "seat {id}");
    }
    pool.close().await;
}

/// A pool on the service's own test database.
pub async fn seat_pool(app: &crate::helpers::App) -> sqlx::PgPool {
    let url = format!(
        "{}/{}seat",
        app.infra.database_url.clone().unwrap(),
        app.infra.database.name_prefix
    );
    sqlx::PgPool::connect(&url).await.unwrap()
}
