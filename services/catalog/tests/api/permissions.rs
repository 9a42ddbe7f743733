//! Organizers stay in their lane: a venue only with its owner's or an admin's consent, KBO team
//! codes only by admins and the clubs' accounts, a zero price only on a free event, and prices,
//! the ticket limit and start times after a sale opened only by admins, in the audit log. Each
//! rule: the allowed actor succeeds, another organizer is refused and nothing changes.

use catalog::Clock;
use platform::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{App, concert, fields, hall, saturday_noon, spawn_with};

async fn count(app: &App, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

async fn new_venue(app: &App, token: &str) -> String {
    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(token), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    assert_eq!(venue["shared"], false);
    venue["id"].as_str().expect("venue id").to_owned()
}

async fn new_event(app: &App, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = app
        .send("POST", "/api/v1/admin/events", Some(token), body)
        .await;
    (status, body)
}

fn refused(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
}

#[tokio::test]
async fn an_event_uses_a_venue_only_with_its_owners_or_an_admins_consent() {
    let app = spawn_with("cat_perm_venue", Clock::fixed(saturday_noon())).await;
    let (owner_id, other_id) = (Uuid::now_v7(), Uuid::now_v7());
    let owner = app.token_for(owner_id, &[Role::Organizer]);
    let other = app.token_for(other_id, &[Role::Organizer]);
    let third = app.token(&[Role::Organizer]);
    let admin = app.token(&[Role::Admin]);
    let venue = new_venue(&app, &owner).await;
    let body = concert(&venue, app.now());

    // Another organizer: refused, nothing written.
    let before = (
        count(&app, "events").await,
        count(&app, "performances").await,
    );
    refused(
        &new_event(&app, &other, &body).await,
        403,
        "venue_not_permitted",
    );
    assert_eq!(
        (
            count(&app, "events").await,
            count(&app, "performances").await
        ),
        before
    );
    // The owner may, and so may an admin.
    assert_eq!(new_event(&app, &owner, &body).await.0, 201);
    assert_eq!(new_event(&app, &admin, &body).await.0, 201);

    // Only the owner or an admin grants it; granted, the other organizer may.
    let grant = format!("/api/v1/admin/venues/{venue}/organizers/{other_id}");
    let (status, _, problem) = app.send("PUT", &grant, Some(&third), &json!({})).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(count(&app, "venue_organizers").await, 0);
    let (status, _, granted) = app.send("PUT", &grant, Some(&owner), &json!({})).await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["organizer_id"], other_id.to_string());
    assert_eq!(granted["granted_by"], owner_id.to_string());
    assert_eq!(new_event(&app, &other, &body).await.0, 201);
    let (status, list) = app
        .get_as(&owner, &format!("/api/v1/admin/venues/{venue}/organizers"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get_as(&third, &format!("/api/v1/admin/venues/{venue}/organizers"))
            .await
            .0,
        403
    );

    // Taken back: refused again; a third organizer cannot take it back for the owner.
    let (status, _, _) = app.send("DELETE", &grant, Some(&third), &json!({})).await;
    assert_eq!(status, 403);
    assert_eq!(count(&app, "venue_organizers").await, 1);
    let (status, _, _) = app.send("DELETE", &grant, Some(&owner), &json!({})).await;
    assert_eq!(status, 204);
    refused(
        &new_event(&app, &other, &body).await,
        403,
        "venue_not_permitted",
    );

    // Shared by its owner (not by another organizer): open to every organizer.
    let share = format!("/api/v1/admin/venues/{venue}");
    let (status, _, _) = app
        .send("PATCH", &share, Some(&third), &json!({"shared": true}))
        .await;
    assert_eq!(status, 403);
    refused(
        &new_event(&app, &third, &body).await,
        403,
        "venue_not_permitted",
    );
    let (status, _, shared) = app
        .send("PATCH", &share, Some(&owner), &json!({"shared": true}))
        .await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(shared["shared"], true);
    assert_eq!(new_event(&app, &third, &body).await.0, 201);

    // A venue without an owner (the seeded ones): only an admin consents.
    let admins_venue = new_venue(&app, &admin).await;
    sqlx::query("UPDATE venues SET organizer_id = NULL WHERE id = $1::uuid")
        .bind(&admins_venue)
        .execute(&app.pool)
        .await
        .expect("ownerless");
    let body = concert(&admins_venue, app.now());
    refused(
        &new_event(&app, &other, &body).await,
        403,
        "venue_not_permitted",
    );
    let grant = format!("/api/v1/admin/venues/{admins_venue}/organizers/{other_id}");
    assert_eq!(
        app.send("PUT", &grant, Some(&owner), &json!({})).await.0,
        403
    );
    assert_eq!(
        app.send("PUT", &grant, Some(&admin), &json!({})).await.0,
        200
    );
    assert_eq!(new_event(&app, &other, &body).await.0, 201);
    app.finish().await;
}

#[tokio::test]
async fn team_codes_are_put_on_events_only_by_admins_and_the_clubs_accounts() {
    let app = spawn_with("cat_perm_teams", Clock::fixed(saturday_noon())).await;
    let club_id = Uuid::now_v7();
    let club = app.token_for(club_id, &[Role::Organizer]);
    let other = app.token(&[Role::Organizer]);
    let admin = app.token(&[Role::Admin]);
    let venue = new_venue(&app, &admin).await;
    let grant_venue = |who: Uuid| format!("/api/v1/admin/venues/{venue}/organizers/{who}");
    assert_eq!(
        app.send("PUT", &grant_venue(club_id), Some(&admin), &json!({}))
            .await
            .0,
        200
    );
    let game = |home: &str, away: &str| {
        let mut body = concert(&venue, app.now());
        body["kind"] = json!("baseball");
        body["home_team"] = json!(home);
        body["away_team"] = json!(away);
        body
    };

    // Not (yet) the club's account: refused, nothing written.
    let before = count(&app, "events").await;
    refused(
        &new_event(&app, &club, &game("lg", "doosan")).await,
        403,
        "team_not_permitted",
    );
    assert_eq!(count(&app, "events").await, before);

    // Only an admin makes an account a club's.
    let grant = format!("/api/v1/admin/teams/lg/organizers/{club_id}");
    assert_eq!(
        app.send("PUT", &grant, Some(&other), &json!({})).await.0,
        403
    );
    assert_eq!(
        app.send("PUT", &grant, Some(&club), &json!({})).await.0,
        403
    );
    assert_eq!(count(&app, "team_organizers").await, 0);
    let (status, _, granted) = app.send("PUT", &grant, Some(&admin), &json!({})).await;
    assert_eq!(status, 200, "{granted}");
    let (status, accounts) = app
        .get_as(&admin, "/api/v1/admin/teams/LG 트윈스/organizers")
        .await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts["items"][0]["organizer_id"], club_id.to_string());
    assert_eq!(
        app.get_as(&other, "/api/v1/admin/teams/lg/organizers")
            .await
            .0,
        403
    );
    assert_eq!(
        app.get_as(&admin, "/api/v1/admin/teams/nope/organizers")
            .await
            .0,
        404
    );

    // The club names its home games with any visitor, not another club's home games.
    let (status, event) = new_event(&app, &club, &game("lg", "doosan")).await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["home_team"]["code"], "lg");
    refused(
        &new_event(&app, &club, &game("doosan", "lg")).await,
        403,
        "team_not_permitted",
    );
    // Another organizer with the venue granted is still refused the club's code.
    let other_id = Uuid::now_v7();
    let other = app.token_for(other_id, &[Role::Organizer]);
    app.send("PUT", &grant_venue(other_id), Some(&admin), &json!({}))
        .await;
    let before = count(&app, "events").await;
    refused(
        &new_event(&app, &other, &game("lg", "kia")).await,
        403,
        "team_not_permitted",
    );
    assert_eq!(count(&app, "events").await, before);
    // A concert without teams is fine for them; an admin names any team.
    assert_eq!(
        new_event(&app, &other, &concert(&venue, app.now())).await.0,
        201
    );
    assert_eq!(new_event(&app, &admin, &game("kia", "nc")).await.0, 201);

    // Taken back: the club's account is refused again.
    assert_eq!(
        app.send("DELETE", &grant, Some(&admin), &json!({})).await.0,
        204
    );
    refused(
        &new_event(&app, &club, &game("lg", "kt")).await,
        403,
        "team_not_permitted",
    );
    app.finish().await;
}

#[tokio::test]
async fn a_zero_price_only_on_an_event_marked_free() {
    let app = spawn_with("cat_perm_free", Clock::fixed(saturday_noon())).await;
    let token = app.token(&[Role::Organizer]);
    let venue = new_venue(&app, &token).await;
    let mut body = concert(&venue, app.now());
    body["price_tiers"][1]["price_krw"] = json!(0);

    let before = count(&app, "events").await;
    let (status, problem) = new_event(&app, &token, &body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed"))
    );
    assert_eq!(fields(&problem), vec!["price_tiers[1].price_krw"]);
    assert_eq!(count(&app, "events").await, before);

    body["free"] = json!(true);
    let (status, event) = new_event(&app, &token, &body).await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["free"], true);
    let id = event["id"].as_str().expect("id").to_owned();
    // Not free any more while a price is 0: refused, unchanged.
    let (status, _, problem) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{id}"),
            Some(&token),
            &json!({"free": false}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(fields(&problem), vec!["free"]);
    let (_, detail) = app
        .get_as(&token, &format!("/api/v1/admin/events/{id}"))
        .await;
    assert_eq!(detail["free"], true);
    // With prices above 0 in the same change, it may.
    let paid = json!({"free": false, "price_tiers": [{"grade": "r", "price_krw": 1000}, {"grade": "floor", "price_krw": 500}]});
    let (status, _, body) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{id}"),
            Some(&token),
            &paid,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["free"], false);
    // And a paid event cannot be given a price of 0.
    let zero = json!({"price_tiers": [{"grade": "r", "price_krw": 0}, {"grade": "floor", "price_krw": 500}]});
    let (status, _, problem) = app
        .send(
            "PATCH",
            &format!("/api/v1/admin/events/{id}"),
            Some(&token),
            &zero,
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(fields(&problem), vec!["price_tiers[0].price_krw"]);
    app.finish().await;
}

#[tokio::test]
async fn after_a_sale_opened_prices_limits_and_start_times_are_an_admins_and_audited() {
    let app = spawn_with("cat_perm_audit", Clock::fixed(saturday_noon())).await;
    let organizer = app.token(&[Role::Organizer]);
    let admin_id = Uuid::now_v7();
    let admin = app.token_for(admin_id, &[Role::Admin]);
    let venue = new_venue(&app, &organizer).await;
    let (status, event) = new_event(&app, &organizer, &concert(&venue, app.now())).await;
    assert_eq!(status, 201, "{event}");
    let id = event["id"].as_str().expect("id").to_owned();
    let perf = event["performances"][0]["id"]
        .as_str()
        .expect("perf")
        .to_owned();
    let event_url = format!("/api/v1/admin/events/{id}");
    let perf_url = format!("/api/v1/admin/performances/{perf}");
    let price = |r: i64| json!({"price_tiers": [{"grade": "r", "price_krw": r}, {"grade": "floor", "price_krw": 88000}]});

    // Before the sale: the organizer changes anything, nothing is audited.
    assert_eq!(
        app.send("PATCH", &event_url, Some(&organizer), &price(95000))
            .await
            .0,
        200
    );
    assert_eq!(count(&app, "catalog_audit").await, 0);
    // Published, its window open since an hour ago: the sale has opened.
    let (status, _, body) = app
        .send(
            "POST",
            &format!("{perf_url}/publish"),
            Some(&organizer),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let revision = |app: &App| {
        let pool = app.pool.clone();
        let perf = perf.clone();
        async move {
            let r: i64 =
                sqlx::query_scalar("SELECT revision FROM performances WHERE id = $1::uuid")
                    .bind(perf)
                    .fetch_one(&pool)
                    .await
                    .expect("revision");
            r
        }
    };
    assert_eq!(revision(&app).await, 1);

    // The organizer is refused each, and nothing changes (not even the title sent with it).
    let later = (app.now() + chrono::Duration::days(9)).to_rfc3339();
    for (url, body) in [
        (&event_url, price(120000)),
        (&event_url, json!({"ticket_limit": 8, "title": "바뀐 제목"})),
        (&perf_url, json!({"starts_at": later})),
    ] {
        refused(
            &{
                let (s, _, b) = app.send("PATCH", url, Some(&organizer), &body).await;
                (s, b)
            },
            403,
            "sale_opened",
        );
    }
    let (_, detail) = app.get_as(&organizer, &event_url).await;
    assert_eq!(detail["price_tiers"][0]["price_krw"], 95000);
    assert_eq!(detail["ticket_limit"], 2);
    assert_eq!(detail["title"], "테스트 콘서트 Test Concert");
    assert_eq!(
        detail["performances"][0]["starts_at"],
        event["performances"][0]["starts_at"]
    );
    assert_eq!(revision(&app).await, 1, "nothing re-published");
    assert_eq!(count(&app, "catalog_audit").await, 0);
    // What is not a price, a limit or a start is still theirs: a tier's name, the title.
    let renamed = json!({"title": "새 제목", "price_tiers": [{"grade": "r", "name": "R", "price_krw": 95000}, {"grade": "floor", "price_krw": 88000}]});
    assert_eq!(
        app.send("PATCH", &event_url, Some(&organizer), &renamed)
            .await
            .0,
        200
    );
    assert_eq!(count(&app, "catalog_audit").await, 0);

    // An admin may; each change is recorded: who, what, old → new.
    assert_eq!(
        app.send("PATCH", &event_url, Some(&admin), &price(120000))
            .await
            .0,
        200
    );
    assert_eq!(
        app.send(
            "PATCH",
            &event_url,
            Some(&admin),
            &json!({"ticket_limit": 6})
        )
        .await
        .0,
        200
    );
    let (status, _, body) = app
        .send(
            "PATCH",
            &perf_url,
            Some(&admin),
            &json!({"starts_at": later}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Only admins read the log, newest first.
    assert_eq!(app.get_as(&organizer, "/api/v1/admin/audit").await.0, 403);
    let (status, log) = app
        .get_as(&admin, &format!("/api/v1/admin/audit?event_id={id}"))
        .await;
    assert_eq!(status, 200, "{log}");
    let items = log["items"].as_array().expect("items");
    let fields_changed: Vec<&str> = items
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        fields_changed,
        vec!["starts_at", "ticket_limit", "price_tiers"]
    );
    let time = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
    };
    assert_eq!(
        time(&items[0]["old_value"]),
        time(&event["performances"][0]["starts_at"])
    );
    assert_eq!(time(&items[0]["new_value"]), time(&json!(later)));
    assert_eq!(
        (&items[1]["old_value"], &items[1]["new_value"]),
        (&json!(2), &json!(6))
    );
    assert_eq!(items[2]["old_value"], json!({"r": 95000, "floor": 88000}));
    assert_eq!(items[2]["new_value"], json!({"r": 120000, "floor": 88000}));
    assert!(items.iter().all(|e| e["actor_id"] == admin_id.to_string()));
    assert_eq!(items[0]["performance_id"], perf);
    // Paged by `before`.
    let (_, first) = app.get_as(&admin, "/api/v1/admin/audit?limit=2").await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let before = first["next_before"].as_i64().expect("a next page");
    let (_, rest) = app
        .get_as(
            &admin,
            &format!("/api/v1/admin/audit?limit=2&before={before}"),
        )
        .await;
    assert_eq!(rest["items"][0]["field"], "price_tiers");
    assert!(rest["next_before"].is_null());
    let (status, problem) = app
        .get_as(&admin, "/api/v1/admin/audit?limit=0&event_id=x")
        .await;
    assert_eq!(status, 400);
    assert_eq!(fields(&problem), vec!["event_id", "limit"]);
    app.finish().await;
}

/// Ticket-type prices are prices: once a sale opened, only an admin changes them, audited.
#[tokio::test]
async fn after_a_sale_opened_ticket_type_prices_are_an_admins_and_audited() {
    let app = spawn_with("cat_perm_types", Clock::fixed(saturday_noon())).await;
    let organizer = app.token(&[Role::Organizer]);
    let admin = app.token_for(Uuid::now_v7(), &[Role::Admin]);
    let venue = new_venue(&app, &organizer).await;
    let (status, event) = new_event(&app, &organizer, &concert(&venue, app.now())).await;
    assert_eq!(status, 201, "{event}");
    let id = event["id"].as_str().expect("id").to_owned();
    let perf = event["performances"][0]["id"]
        .as_str()
        .expect("perf")
        .to_owned();
    let url = format!("/api/v1/admin/events/{id}/ticket-prices");
    let youth =
        |p: i64| json!({"ticket_prices": [{"grade": "r", "ticket_type": "youth", "price_krw": p}]});
    // Before the sale: the organizer's, not audited.
    let (status, _, body) = app.send("PUT", &url, Some(&organizer), &youth(70000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&app, "catalog_audit").await, 0);
    let (status, _, body) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf}/publish"),
            Some(&organizer),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Opened: the organizer is refused and nothing changes.
    let (s, _, b) = app.send("PUT", &url, Some(&organizer), &youth(10000)).await;
    refused(&(s, b), 403, "sale_opened");
    let prices: Vec<i64> =
        sqlx::query_scalar("SELECT price_krw FROM ticket_type_prices WHERE event_id = $1::uuid")
            .bind(&id)
            .fetch_all(&app.pool)
            .await
            .expect("prices");
    assert_eq!(prices, [70000]);
    assert_eq!(count(&app, "catalog_audit").await, 0);
    // An admin may, and it is recorded.
    let (status, _, body) = app.send("PUT", &url, Some(&admin), &youth(60000)).await;
    assert_eq!(status, 200, "{body}");
    let fields: Vec<String> = sqlx::query_scalar("SELECT field FROM catalog_audit")
        .fetch_all(&app.pool)
        .await
        .expect("audit");
    assert_eq!(fields, ["ticket_prices"]);
}
