//! Ticket types (권종) and presales (선예매) end to end: an organizer sets up a musical in the
//! real catalog with adult and youth prices and a members' presale; the catalog publishes it to
//! the seat and order services over the bus; a member holds in the presale and orders one adult
//! and one youth ticket, priced by type and paid; a non-member is told when the general sale
//! opens. Then the attacks: presale limits over several holds, codes used by a second account,
//! guessed codes, someone else's group, unknown and unpriced types, a key reused with another
//! choice.

use chrono::{DateTime, Duration, Utc};
use contracts::tickets::{PresaleRules, presale_code_hash};
use platform::{
    auth::Role,
    http::Readiness,
    service::Service,
    testing::{self, TestServer},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{self, App, until};

/// The catalog on the app's bus, trusting its issuer, without the seed.
async fn catalog(app: &App) -> TestServer {
    let infra = testing::infra_with_bus("ordcat", app.bus.clone());
    let pool = infra
        .database(catalog::NAME, &catalog::MIGRATOR)
        .await
        .unwrap();
    let state = catalog::AppState::new(pool.clone(), app.issuer.verifier());
    let relay = infra.spawn_relay(catalog::NAME, pool.clone());
    let service = Service {
        name: catalog::NAME,
        router: catalog::router(state),
        readiness: Readiness::default().postgres(pool),
        tasks: vec![relay],
    };
    testing::serve(service, infra.shutdown.clone()).await
}

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let r = server
        .client
        .request(method.parse().unwrap(), server.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn hold(app: &App, buyer: Uuid, body: Value) -> (u16, Value) {
    let r = app
        .seat
        .client
        .post(app.seat.url("/api/v1/holds"))
        .bearer_auth(app.token(buyer))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn known(app: &App, perf: Uuid) {
    let url = app.seat.url(&format!("/api/v1/performances/{perf}/seats"));
    until("the seat service to serve the performance", || async {
        app.seat
            .client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    until("the order service to know its prices", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM performances WHERE performance_id = $1 AND prices IS NOT NULL",
        )
        .bind(perf)
        .fetch_one(&app.orderdb)
        .await
        .unwrap()
            == 1
    })
    .await;
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_members_presale_of_a_musical_with_adult_and_youth_prices() {
    let app = helpers::spawn().await;
    let catalog = catalog(&app).await;
    let organizer = Uuid::now_v7();
    let org = app.issuer.token(organizer, &[Role::Organizer]);
    let member = Uuid::now_v7();
    let outsider = Uuid::now_v7();
    let now = Utc::now();
    let starts = now + Duration::days(7);
    let general_opens = (now + Duration::hours(1)).with_nanosecond_zero();

    // The organizer: a hall, a musical with R and standing prices, a presale then the general sale.
    let (status, venue) = send(&catalog, "POST", "/api/v1/admin/venues", &org, &hall()).await;
    assert_eq!(status, 201, "{venue}");
    let musical = json!({
        "kind": "musical",
        "title": "뮤지컬 테스트 Test Musical",
        "venue_id": venue["id"],
        "ticket_limit": 4,
        "price_tiers": [{"grade": "r", "price_krw": 150000}, {"grade": "floor", "price_krw": 50000}],
        "performances": [{
            "starts_at": starts.to_rfc3339(),
            "sale_windows": [
                {"kind": "presale", "name": "회원 선예매", "opens_at": (now - Duration::hours(1)).to_rfc3339(), "closes_at": general_opens.to_rfc3339()},
                {"kind": "general", "opens_at": general_opens.to_rfc3339(), "closes_at": starts.to_rfc3339()}
            ]
        }]
    });
    let (status, event) = send(&catalog, "POST", "/api/v1/admin/events", &org, &musical).await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let perf: Uuid = event["performances"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Ticket types: youth for R; a grade without a tier, `adult`, an unknown type are refused.
    let prices_path = format!("/api/v1/admin/events/{event_id}/ticket-prices");
    for bad in [
        json!([{"grade": "vip", "ticket_type": "youth", "price_krw": 1}]),
        json!([{"grade": "r", "ticket_type": "adult", "price_krw": 1}]),
        json!([{"grade": "r", "ticket_type": "student", "price_krw": 1}]),
        json!([{"grade": "r", "ticket_type": "youth", "price_krw": -1}]),
    ] {
        let (status, problem) = send(
            &catalog,
            "PUT",
            &prices_path,
            &org,
            &json!({"ticket_prices": bad}),
        )
        .await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "validation_failed");
    }
    let (status, prices) = send(
        &catalog,
        "PUT",
        &prices_path,
        &org,
        &json!({"ticket_prices": [{"grade": "r", "ticket_type": "youth", "price_krw": 120000}]}),
    )
    .await;
    assert_eq!(status, 200, "{prices}");
    let youth = prices["ticket_prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["grade"] == "r" && p["ticket_type"] == "youth")
        .cloned()
        .unwrap();
    assert_eq!(youth["price_krw"], 120000);
    assert_eq!(youth["proof_required"], true);

    // The members: a group of the organizer's with one member. Another organizer's group is
    // refused as no group at all.
    let (status, group) = send(
        &catalog,
        "POST",
        "/api/v1/admin/member-groups",
        &org,
        &json!({"name": "팬클럽 Fan club"}),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (status, group) = send(
        &catalog,
        "POST",
        &format!("/api/v1/admin/member-groups/{group_id}/members"),
        &org,
        &json!({"account_ids": [member]}),
    )
    .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["member_count"], 1);
    let rival = app.issuer.token(Uuid::now_v7(), &[Role::Organizer]);
    let (status, _) = send(
        &catalog,
        "POST",
        &format!("/api/v1/admin/member-groups/{group_id}/members"),
        &rival,
        &json!({"account_ids": [outsider]}),
    )
    .await;
    assert_eq!(status, 403, "a rival adds no one to the group");
    let (_, rival_group) = send(
        &catalog,
        "POST",
        "/api/v1/admin/member-groups",
        &rival,
        &json!({"name": "rival"}),
    )
    .await;
    let presale_path = format!("/api/v1/admin/performances/{perf}/presale");
    let (status, problem) = send(
        &catalog,
        "PUT",
        &presale_path,
        &org,
        &json!({"group_id": rival_group["id"], "ticket_limit": 2}),
    )
    .await;
    assert_eq!(status, 400, "someone else's group: {problem}");
    let (status, presale) = send(
        &catalog,
        "PUT",
        &presale_path,
        &org,
        &json!({"group_id": group_id, "ticket_limit": 2}),
    )
    .await;
    assert_eq!(status, 200, "{presale}");
    assert_eq!(presale["audience"], "members");

    let (status, published) = send(
        &catalog,
        "POST",
        &format!("/api/v1/admin/performances/{perf}/publish"),
        &org,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{published}");

    // A buyer sees both windows, the presale's audience and when the general sale opens.
    let detail: Value = catalog
        .client
        .get(catalog.url(&format!("/api/v1/events/{event_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["performances"][0]["sale_windows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(detail["presales"][0]["audience"], "members");
    assert_eq!(
        time(&detail["presales"][0]["general_sale_opens_at"]),
        general_opens
    );
    assert!(
        detail["ticket_prices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ticket_type"] == "youth" && p["price_krw"] == 120000)
    );

    known(&app, perf).await;

    // Someone outside the group is told when the general sale opens.
    let (status, problem) = hold(
        &app,
        outsider,
        json!({"performance_id": perf, "seat_ids": ["a-A-1"]}),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "presale_only");
    assert_eq!(time(&problem["general_sale_opens_at"]), general_opens);

    // The member holds two seats, and not a third in a second hold: the presale's limit is 2.
    let (status, held) = hold(
        &app,
        member,
        json!({"performance_id": perf, "seat_ids": ["a-A-1", "a-A-2"]}),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["seats"][0]["grade"], "r");
    let hold_id = held["hold_id"].as_str().unwrap().to_owned();
    let (status, problem) = hold(
        &app,
        member,
        json!({"performance_id": perf, "seat_ids": ["a-A-3"]}),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "limit_exceeded");
    assert_eq!(problem["limit"], 2);

    // Types the seat is not sold as are refused, and no order is made.
    let token = app.token(member);
    for (key, kind) in [("bad-1", "student"), ("bad-2", "senior")] {
        let a = app
            .create_raw(
                Some(&token),
                Some(key),
                json!({"hold_id": hold_id, "tickets": [{"seat_id": "a-A-2", "ticket_type": kind}]}),
            )
            .await;
        assert_eq!(a.status, 400, "{a:?}");
        assert_eq!(a.body["code"], "ticket_type_unavailable");
        assert!(a.content_type.starts_with("application/problem+json"));
    }
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE hold_id = $1")
        .bind(Uuid::parse_str(&hold_id).unwrap())
        .fetch_one(&app.orderdb)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    // ...and the hold was not moved into checkout: its buyer can still let it go, and it lapses
    // at its own time (in checkout it would stay locked until the longer checkout deadline, and
    // each refused retry would stretch that again).
    let r = app
        .seat
        .client
        .get(app.seat.url(&format!("/api/v1/holds/{hold_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["status"], "active", "{seen}");
    assert_eq!(seen["expires_at"], held["expires_at"], "{seen}");

    // One adult and one youth ticket, priced by type, plus the booking fee per ticket.
    let choice =
        json!({"hold_id": hold_id, "tickets": [{"seat_id": "a-A-2", "ticket_type": "youth"}]});
    let a = app
        .create_raw(Some(&token), Some("order-1"), choice.clone())
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let fee = helpers::config().booking_fee_krw;
    assert_eq!(a.body["tickets_krw"], 270_000);
    assert_eq!(a.body["amount"], 270_000 + 2 * fee);
    let lines = a.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["ticket_type"], "adult");
    assert_eq!(lines[1]["ticket_type"], "youth");
    assert_eq!(lines[1]["unit_krw"], 120_000);
    let order: Uuid = a.body["order_id"].as_str().unwrap().parse().unwrap();
    let amount = a.body["amount"].as_i64().unwrap();

    // The same key with another choice is another body.
    let other =
        json!({"hold_id": hold_id, "tickets": [{"seat_id": "a-A-1", "ticket_type": "youth"}]});
    let a = app.create_raw(Some(&token), Some("order-1"), other).await;
    assert_eq!(a.status, 422, "{a:?}");
    assert_eq!(a.body["code"], "idempotency_key_reused");
    let replay = app.create_raw(Some(&token), Some("order-1"), choice).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body["order_id"], order.to_string());

    // Paid at that amount, the tickets carry their types and say when proof is needed.
    let paid = app.pay(member, order, amount).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    app.wait_status(order, "confirmed").await;
    let view = app.order(member, order).await;
    let tickets = view.body["tickets"].as_array().unwrap();
    let youth = tickets.iter().find(|t| t["seat_id"] == "a-A-2").unwrap();
    assert_eq!(youth["ticket_type"], "youth");
    assert_eq!(youth["proof_required"], true);
    let ticket = app
        .get(
            &token,
            &format!("/api/v1/tickets/{}", youth["ticket_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(ticket.status, 200, "{ticket:?}");
    assert_eq!(ticket.body["ticket_type"], "youth");
    assert_eq!(ticket.body["proof_required"], true);
    let mine = app.get(&token, "/api/v1/me/orders").await;
    assert_eq!(mine.body["orders"][0]["lines"][1]["ticket_type"], "youth");
    let report = app.invariants().await;
    assert!(report.ok(), "{report:?}");
}

#[tokio::test]
async fn an_access_code_opens_the_presale_to_one_account_and_guessing_is_cut_off() {
    let app = helpers::spawn().await;
    let mut p = helpers::performance(7);
    let code = "ABCD-EFGH-JKLM-NPQR";
    p.presale = Some(PresaleRules {
        windows: vec![],
        general_opens_at: Some(Utc::now() + Duration::hours(1)),
        ticket_limit: 1,
        group_id: None,
        members: vec![],
        codes: true,
        code_hashes: vec![presale_code_hash(p.performance_id, code)],
    });
    app.publish_performance(&p).await;
    let perf = p.performance_id;
    let (first, second, guesser) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

    let (status, problem) = hold(
        &app,
        first,
        json!({"performance_id": perf, "seat_ids": ["A-01-01"]}),
    )
    .await;
    assert_eq!(status, 403, "no code: {problem}");
    assert_eq!(problem["code"], "presale_only");
    assert!(problem["general_sale_opens_at"].is_string());

    // Typed in lower case with spaces, the code is the code.
    let (status, held) = hold(
        &app,
        first,
        json!({"performance_id": perf, "seat_ids": ["A-01-01"], "presale_code": "abcd efgh-jklm-npqr"}),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    // The code is the first account's now: a second account cannot use it.
    let (status, problem) = hold(
        &app,
        second,
        json!({"performance_id": perf, "seat_ids": ["A-01-02"], "presale_code": code}),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "presale_code_used");
    // The first account comes back without the code, and its presale limit (1) holds.
    let (status, problem) = hold(
        &app,
        first,
        json!({"performance_id": perf, "seat_ids": ["A-01-03"]}),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "limit_exceeded");

    // Guessing: ten wrong codes, then not even a right one is tried.
    for i in 0..seat::presale::MAX_FAILURES {
        let (status, problem) = hold(
            &app,
            guesser,
            json!({"performance_id": perf, "seat_ids": ["A-01-04"], "presale_code": format!("WRONG-{i}")}),
        )
        .await;
        assert_eq!(status, 403, "{problem}");
        assert_eq!(problem["code"], "presale_code_invalid");
    }
    let (status, problem) = hold(
        &app,
        guesser,
        json!({"performance_id": perf, "seat_ids": ["A-01-04"], "presale_code": code}),
    )
    .await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(problem["code"], "presale_code_attempts");
    // Only the code's hash is in SeatDB, bound to the first account.
    let bound: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT code_hash, account_id FROM presale_redemptions WHERE performance_id = $1",
    )
    .bind(perf)
    .fetch_all(&app.seatdb)
    .await
    .unwrap();
    assert_eq!(bound, vec![(presale_code_hash(perf, code), first)]);
}

#[tokio::test]
async fn after_the_presale_the_general_sale_is_open_to_anyone_at_the_general_limit() {
    let app = helpers::spawn().await;
    let mut p = helpers::performance(7);
    p.presale = Some(PresaleRules {
        windows: vec![],
        general_opens_at: Some(Utc::now() - Duration::minutes(1)),
        ticket_limit: 1,
        group_id: Some(Uuid::now_v7()),
        members: vec![],
        codes: false,
        code_hashes: vec![],
    });
    app.publish_performance(&p).await;
    let (status, held) = hold(
        &app,
        Uuid::now_v7(),
        json!({"performance_id": p.performance_id, "seat_ids": ["A-01-01", "A-01-02"]}),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    // A seat with no type chosen is the standard type at the hold's price.
    let buyer: Uuid = held["buyer_id"].as_str().unwrap().parse().unwrap();
    let hold_id: Uuid = held["hold_id"].as_str().unwrap().parse().unwrap();
    let a = app.create(buyer, "plain", hold_id).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["tickets_krw"], 300_000);
    assert_eq!(a.body["lines"][0]["ticket_type"], "adult");
}

/// The catalog tests' small hall: R seats `a-A-1`… and a standing floor.
fn hall() -> Value {
    json!({
        "name": "테스트홀 Test Hall",
        "kind": "concert_hall",
        "city": "서울 Seoul",
        "plan": {"width": 400, "height": 300},
        "grades": [
            {"code": "r", "name": "R석", "rank": 0},
            {"code": "floor", "name": "스탠딩", "rank": 1}
        ],
        "areas": [
            {"code": "a", "name": "A구역", "grade": "r", "geometry": {"polygon": [[0, 0], [200, 0], [200, 100], [0, 100]]},
             "rows": [{"label": "A", "seats": 10}]},
            {"code": "floor", "name": "스탠딩 구역", "grade": "floor", "kind": "standing", "capacity": 100,
             "geometry": {"position": {"x": 300, "y": 50}}}
        ]
    })
}

trait WholeSeconds {
    fn with_nanosecond_zero(self) -> Self;
}

impl WholeSeconds for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap()
    }
}
