//! The seeded catalog: standalone's seed-on-empty, idempotency, the week's games, every listing
//! filter, Korean/English/typo search and pagination stability, and the publication of announced
//! games. Every test here pins the clock (the seed's date and `now`, the service's clock) to an
//! awkward time, Saturday noon in Seoul, and the time-dependent parts then step that clock
//! through each day of the following week at 00:00, 11:00 and 17:00.

use std::collections::{BTreeSet, HashSet};

use catalog::{
    Clock,
    domain::{PerformanceState, SaleStatus, status::OPENING_SOON, status::open_at},
    seed::{self, schedule},
    store::listing::{self, ListQuery},
};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use platform::{auth::Role, testing};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{self, App, saturday_noon};

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

fn plays(item: &Value, team: &str) -> bool {
    item["home_team"]["code"] == team || item["away_team"]["code"] == team
}

#[tokio::test]
async fn standalone_seeds_an_empty_catalog_once_and_publishes_a_bounded_set() {
    let mut infra = testing::infra("cat_seed");
    infra
        .directory
        .0
        .insert("user".into(), "http://127.0.0.1:9".into());
    let mut sub = infra
        .bus
        .subscribe("seed-test", &[contracts::topics::CATALOG])
        .await
        .unwrap();
    let now = saturday_noon();
    let config = catalog::Config {
        clock: Clock::fixed(now),
        ..catalog::Config::default()
    };
    let service = catalog::start(&config, &infra).await.unwrap();
    let pool = infra
        .database(catalog::NAME, &catalog::MIGRATOR)
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) FROM venues").await, 12);
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'baseball'").await,
        720
    );
    let seats = count("SELECT count(*) FROM venue_seats").await;
    assert!(seats > 170_000, "{seats}");
    let published = count(
        "SELECT count(*) FROM bus_outbox WHERE topic = 'boxoffice.catalog.v1'
         AND envelope->>'type' = 'performance.published'",
    )
    .await;
    let rows = count("SELECT count(*) FROM bus_outbox").await;
    let baseball_published = count(
        "SELECT count(*) FROM performances p JOIN events e ON e.id = p.event_id
         WHERE e.kind = 'baseball' AND p.revision > 0",
    )
    .await;
    assert!(
        (20..=45).contains(&baseball_published),
        "{baseball_published}"
    );
    assert!(
        published >= baseball_published && published < 300,
        "{published}"
    );

    // A second seed, and a second start, write nothing.
    let before = count("SELECT count(*) FROM performances").await;
    let report = seed::run(&pool, seed::today_in_seoul(now), now)
        .await
        .unwrap();
    assert_eq!(report, seed::SeedReport::default());
    drop(catalog::start(&config, &infra).await.unwrap());
    assert_eq!(count("SELECT count(*) FROM performances").await, before);
    assert_eq!(count("SELECT count(*) FROM bus_outbox").await, rows);
    // Every publication is its seats in chunks and a header; every row fits a broker's message.
    let chunks =
        count("SELECT count(*) FROM bus_outbox WHERE envelope->>'type' = 'performance.seats'")
            .await;
    assert_eq!(rows, published + chunks, "only chunks and headers");
    assert!(chunks > 10 * baseball_published, "{chunks} chunks");
    let largest = count("SELECT max(octet_length(envelope::text))::bigint FROM bus_outbox").await;
    assert!(
        largest <= platform::bus::outbox::MAX_ENVELOPE_BYTES as i64,
        "{largest} bytes"
    );

    // The relay delivers what the seed published, seats and prices included: the first
    // stadium's game comes whole, every seat of the venue.
    let (first, venue_seats): (Uuid, i64) = sqlx::query_as(
        "SELECT p.id, (SELECT count(*) FROM venue_seats s WHERE s.venue_id = e.venue_id)
         FROM performances p JOIN events e ON e.id = p.event_id
         WHERE e.kind = 'baseball' AND p.revision > 0 ORDER BY p.id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (event, envelopes) = support::next_publication(&mut sub, first).await;
    assert!(!event.prices.is_empty());
    assert_eq!(event.seats.len() as i64, venue_seats);
    assert!(venue_seats > 10_000, "{venue_seats}");
    assert!(envelopes.len() > 10, "{} envelopes", envelopes.len());
    assert!(
        serde_json::to_vec(&event).unwrap().len() > 1_000_000,
        "the whole would not fit one broker message"
    );

    // The week's games with their stadiums.
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let week =
        schedule::opening_day(seed::today_in_seoul(now)) + Duration::weeks(schedule::WEEKS_BEFORE);
    let from = schedule::seoul(week, 0, 0);
    let to = from + Duration::days(6);
    let url = server.url(&format!(
        "/api/v1/events?kind=baseball&from={}&to={}&limit=100",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    ));
    let body: Value = server
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let games = items(&body);
    assert_eq!(games.len(), 30, "Tuesday to Sunday, five games a day");
    assert!(
        games
            .iter()
            .all(|g| g["venue"]["kind"] == "stadium" && g["home_team"]["code"].is_string())
    );
    let body: Value = server
        .client
        .get(server.url("/api/v1/events?q=잠실&limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jamsil = items(&body);
    assert!(!jamsil.is_empty());
    assert!(
        jamsil.iter().all(|g| g["venue"]["name"] == "잠실야구장"),
        "{jamsil:?}"
    );
    infra.shutdown.cancel();
    pool.close().await;
    support::drop_database(&infra).await;
}

/// The catalog seeded on `now`'s date in Seoul with statuses as of `now`, its clock pinned there.
pub async fn seeded_at(label: &str, now: DateTime<Utc>) -> App {
    let app = support::spawn_with(label, Clock::fixed(now)).await;
    let started = std::time::Instant::now();
    // Without publishing: the seat maps sent through the bus are the standalone test's concern.
    let report = seed::run_with(&app.pool, seed::today_in_seoul(now), now, false)
        .await
        .expect("seed");
    eprintln!("seeded in {:?}: {report:?}", started.elapsed());
    app
}

#[tokio::test]
async fn every_filter_search_and_pagination() {
    let now = saturday_noon();
    let app = seeded_at("cat_listing", now).await;
    let anchor = seed::today_in_seoul(now);
    let from = schedule::seoul(schedule::opening_day(anchor), 0, 0);
    let range = format!(
        "from={}&to={}",
        from.to_rfc3339().replace('+', "%2B"),
        (from + Duration::days(70)).to_rfc3339().replace('+', "%2B")
    );
    let list = |q: String| {
        let app = &app;
        async move {
            let (status, body) = app.get(&format!("/api/v1/events?{q}")).await;
            assert_eq!(status, 200, "{q}: {body}");
            items(&body)
        }
    };

    // Kinds.
    for kind in ["baseball", "concert", "musical", "exhibition"] {
        let found = list(format!("kind={kind}&limit=100")).await;
        assert!(!found.is_empty(), "{kind}");
        assert!(found.iter().all(|i| i["kind"] == kind), "{kind}");
    }
    // Sorted by date.
    let all = list(format!("{range}&limit=100")).await;
    let starts: Vec<&str> = all
        .iter()
        .map(|i| i["starts_at"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);

    // Teams by code or by name; venues by id.
    let doosan = list(format!("{range}&team=doosan&limit=100")).await;
    assert!(doosan.len() >= 30 && doosan.iter().all(|i| plays(i, "doosan")));
    assert_eq!(
        list(format!("{range}&team=두산&limit=100")).await.len(),
        doosan.len()
    );
    let jamsil_id = catalog::seed::layout::venue_id("jamsil");
    let at_jamsil = list(format!("{range}&venue_id={jamsil_id}&limit=100")).await;
    assert!(
        !at_jamsil.is_empty()
            && at_jamsil
                .iter()
                .all(|i| i["venue"]["id"] == jamsil_id.to_string())
    );

    // Search: Korean, English, mixed, typos.
    let search = |q: &'static str| list(format!("{range}&q={}&limit=100", q.replace(' ', "%20")));
    let found = search("두산").await;
    assert_eq!(found.len(), doosan.len());
    assert!(found.iter().all(|i| plays(i, "doosan")));
    let lg = search("LG 트윈스").await;
    assert!(!lg.is_empty() && lg.iter().all(|i| plays(i, "lg")));
    for q in ["잠실", "Jamsil"] {
        let found = search(q).await;
        assert_eq!(found.len(), at_jamsil.len(), "{q}");
        assert!(
            found.iter().all(|i| i["venue"]["name"] == "잠실야구장"),
            "{q}"
        );
    }
    for q in ["musical", "뮤지컬", "muscial", "midsumer"] {
        let found = list(format!("q={q}&limit=5")).await;
        assert_eq!(
            found.first().map(|i| i["kind"].clone()),
            Some(json!("musical")),
            "{q}"
        );
    }
    let typo = search("뚜산").await;
    assert!(typo.iter().any(|i| plays(i, "doosan")), "{typo:?}");
    let typo = search("두산 베어즈").await;
    assert_eq!(typo.len(), doosan.len());
    let typo = search("Jamsl").await;
    assert!(!typo.is_empty() && typo.iter().all(|i| i["venue"]["name"] == "잠실야구장"));
    let typo = search("Lotte Gaints").await;
    assert!(!typo.is_empty() && typo.iter().all(|i| plays(i, "lotte")));
    assert!(search("zzqxv").await.is_empty());

    // On sale now, opening soon, sold out, ended.
    let on_sale = list("on_sale=true&limit=100".into()).await;
    assert!(on_sale.len() >= 20 && on_sale.iter().all(|i| i["status"] == "on_sale"));
    let soon = list("opening_soon=true&kind=baseball".into()).await;
    assert_eq!(soon.len(), 5, "{soon:?}");
    assert!(
        soon.iter()
            .all(|i| i["status"] == "scheduled" && i["waiting_room"] == true)
    );
    let week = list(format!(
        "kind=baseball&from={}&limit=100",
        now.to_rfc3339().replace('+', "%2B")
    ))
    .await;
    assert!(week.iter().any(|i| i["status"] == "sold_out"));
    let past = list(format!("kind=baseball&{range}&limit=5")).await;
    assert_eq!(past.len(), 5);
    assert!(past.iter().all(|i| i["status"] == "ended"), "{past:?}");

    // Pagination: pages of 7 add up to the whole list, and a page stays the same when an event
    // is added before it.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut second_page = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{range}&limit=7&cursor={c}"),
            None => format!("{range}&limit=7"),
        };
        let (_, body) = app.get(&format!("/api/v1/events?{q}")).await;
        paged.extend(items(&body));
        if paged.len() == 7 {
            second_page = body["next_cursor"].as_str().map(str::to_owned);
        }
        match body["next_cursor"].as_str() {
            Some(c) if paged.len() < 100 => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    paged.truncate(all.len());
    let ids: Vec<&Value> = paged.iter().map(|i| &i["id"]).collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<HashSet<_>>().len(),
        "no item twice"
    );
    assert_eq!(
        ids,
        all.iter()
            .map(|i| &i["id"])
            .take(ids.len())
            .collect::<Vec<_>>()
    );
    let cursor = second_page.unwrap();
    let (_, before) = app
        .get(&format!("/api/v1/events?{range}&limit=7&cursor={cursor}"))
        .await;
    insert_published_event_at(&app, from + Duration::minutes(1)).await;
    let (_, after) = app
        .get(&format!("/api/v1/events?{range}&limit=7&cursor={cursor}"))
        .await;
    assert_eq!(before["items"], after["items"]);
    assert_eq!(
        list(format!("{range}&limit=1")).await[0]["title"],
        "새 이벤트"
    );

    // Details.
    let game = &all[0];
    let (status, detail) = app
        .get(&format!("/api/v1/events/{}", game["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["performances"].as_array().unwrap().len(), 1);
    assert_eq!(
        detail["performances"][0]["sale_windows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(detail["price_tiers"].as_array().unwrap().len() >= 6);
    let (status, venue) = app.get(&format!("/api/v1/venues/{jamsil_id}")).await;
    assert_eq!(status, 200);
    let seats: usize = venue["areas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            a["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seats"].as_array().unwrap().len())
        })
        .sum();
    assert_eq!(seats, 23_750);
    assert_eq!(venue["grades"][0]["code"], "premium");
    let (_, venues) = app.get("/api/v1/venues").await;
    assert_eq!(
        items(&venues).len(),
        13,
        "the nine stadiums, three other venues and the test hall"
    );
    app.finish().await;
}

/// Adds and publishes an event starting at `at` through the admin API.
async fn insert_published_event_at(app: &App, at: chrono::DateTime<Utc>) {
    let token = app.token(&[Role::Admin]);
    let (_, _, venue) = app
        .send(
            "POST",
            "/api/v1/admin/venues",
            Some(&token),
            &support::hall(),
        )
        .await;
    let mut body = support::concert(venue["id"].as_str().expect("venue id"), app.now());
    body["title"] = json!("새 이벤트");
    body["performances"] = json!([{"starts_at": at.to_rfc3339(), "sale_windows": [
        {"opens_at": (at - Duration::days(30)).to_rfc3339(), "closes_at": at.to_rfc3339()}
    ]}]);
    let (status, _, event) = app
        .send("POST", "/api/v1/admin/events", Some(&token), &body)
        .await;
    assert_eq!(status, 201, "{event}");
    let perf = event["performances"][0]["id"]
        .as_str()
        .expect("performance id");
    let (status, _, _) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf}/publish"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
}

/// A seeded baseball performance with its sale windows, as stored.
struct Stored {
    id: Uuid,
    state: PerformanceState,
    starts_at: DateTime<Utc>,
    closes: DateTime<Utc>,
    windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Stored {
    fn status(&self, now: DateTime<Utc>) -> SaleStatus {
        SaleStatus::at(
            self.state,
            self.starts_at,
            self.closes,
            open_at(self.windows.iter().copied(), now),
            now,
        )
    }
}

async fn stored_baseball(pool: &sqlx::PgPool) -> Vec<Stored> {
    type Row = (
        Uuid,
        String,
        DateTime<Utc>,
        DateTime<Utc>,
        Vec<DateTime<Utc>>,
        Vec<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.id, p.status, p.starts_at, p.sale_closes_at,
                array_agg(w.opens_at ORDER BY w.opens_at), array_agg(w.closes_at ORDER BY w.opens_at)
         FROM performances p JOIN events e ON e.id = p.event_id
         JOIN sale_windows w ON w.performance_id = p.id
         WHERE e.kind = 'baseball' GROUP BY p.id",
    )
    .fetch_all(pool)
    .await
    .expect("performances");
    rows.into_iter()
        .map(|(id, state, starts_at, closes, opens, ends)| Stored {
            id,
            state: PerformanceState::parse(&state),
            starts_at,
            closes,
            windows: opens.into_iter().zip(ends).collect(),
        })
        .collect()
}

/// The `on_sale` and `opening_soon` filters, run at every hour of the week after a Saturday-noon
/// seed (straight against the store: the HTTP listing is cached by query string), agree with the
/// sale status each stored performance has at that time. The catalog publishes announced games
/// as their sale nears, as its autopublish loop does (only published ones are on sale).
#[tokio::test]
async fn sale_filters_agree_with_the_status_at_every_hour_of_a_week() {
    let seeded_now = saturday_noon();
    let app = seeded_at("cat_filters", seeded_now).await;
    assert_eq!(stored_baseball(&app.pool).await.len(), 720);
    let from = schedule::seoul(
        schedule::opening_day(seed::today_in_seoul(seeded_now)),
        0,
        0,
    );
    let week = support::week_of(seed::today_in_seoul(seeded_now) + Duration::days(1));
    assert_eq!(week.len(), 21);
    let mut conn = app.pool.acquire().await.expect("connection");
    for now in week {
        catalog::autopublish::publish_due(&app.pool, now)
            .await
            .expect("publish");
        let stored = stored_baseball(&app.pool).await;
        let query = |on_sale: bool, opening_soon: bool| ListQuery {
            from,
            to: from + Duration::days(366),
            kind: Some("baseball".into()),
            venue_id: None,
            team: None,
            terms: Vec::new(),
            on_sale,
            opening_soon,
            after: None,
            limit: 100,
            now,
        };
        let on_sale = listing::list(&mut conn, &query(true, false))
            .await
            .expect("on sale");
        let want: BTreeSet<Uuid> = stored
            .iter()
            .filter(|p| p.status(now) == SaleStatus::OnSale)
            .map(|p| p.id)
            .collect();
        assert!(want.len() >= 20, "{now}: {}", want.len());
        assert_eq!(
            on_sale
                .iter()
                .map(|i| i.performance_id)
                .collect::<BTreeSet<_>>(),
            want,
            "on sale at {now}"
        );
        assert!(on_sale.iter().all(|i| i.status == SaleStatus::OnSale));

        let soon = listing::list(&mut conn, &query(false, true))
            .await
            .expect("opening soon");
        let want: BTreeSet<Uuid> = stored
            .iter()
            .filter(|p| {
                p.status(now) == SaleStatus::Scheduled
                    && p.windows
                        .iter()
                        .any(|(o, _)| *o > now && *o <= now + OPENING_SOON)
            })
            .map(|p| p.id)
            .collect();
        assert_eq!(
            soon.iter()
                .map(|i| i.performance_id)
                .collect::<BTreeSet<_>>(),
            want,
            "opening soon at {now}"
        );
        assert!(soon.iter().all(|i| i.status == SaleStatus::Scheduled));
        // Presales open at 11:00 eight days before each game: none for Monday's games, and the
        // seed itself opened those of the Tuesday after next (ten minutes after it ran). So five
        // games open within the day from Monday 11:00 to Saturday 00:00, none otherwise.
        let seoul = now + Duration::hours(9);
        let expected = match (seoul.weekday(), seoul.hour()) {
            (Weekday::Sun, _) | (Weekday::Mon, 0) | (Weekday::Sat, 11 | 17) => 0,
            _ => 5,
        };
        assert_eq!(soon.len(), expected, "opening soon at {now}");
    }
    drop(conn);
    app.finish().await;
}

/// Seeded on a Saturday noon, the catalog then lives through the next week: at every step of the
/// clock (00:00, 10:30, 11:00 and 17:00 in Seoul each day), exactly the announced games whose
/// presale opens within the hour, and no started one, are published, each once.
#[tokio::test]
async fn announced_games_are_published_as_their_sale_nears() {
    let seeded_now = saturday_noon();
    let app = seeded_at("cat_autopublish", seeded_now).await;
    let mut sub = app.subscribe().await;
    let announced = |pool: sqlx::PgPool| async move {
        let rows: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, sale_opens_at, starts_at FROM performances WHERE status = 'announced'",
        )
        .fetch_all(&pool)
        .await
        .expect("announced");
        rows
    };
    let before = announced(app.pool.clone()).await;
    assert!(before.len() > 500, "{}", before.len());

    // After the last game, every sale has opened, but nothing that started is published.
    let last = before.iter().map(|a| a.2).max().expect("a last game");
    assert_eq!(
        catalog::autopublish::publish_due(&app.pool, last)
            .await
            .expect("publish"),
        0
    );

    let mut steps = Vec::new();
    for day in 1..=7 {
        let date = seed::today_in_seoul(seeded_now) + Duration::days(day);
        for (h, m) in [(0, 0), (10, 30), (11, 0), (17, 0)] {
            steps.push(schedule::seoul(date, h, m));
        }
    }
    let mut total = 0;
    let mut last_published = None;
    for now in steps {
        let waiting = announced(app.pool.clone()).await;
        let due: BTreeSet<Uuid> = waiting
            .iter()
            .filter(|(_, opens, starts)| {
                *opens <= now + catalog::autopublish::LEAD && *starts > now
            })
            .map(|a| a.0)
            .collect();
        let published = catalog::autopublish::publish_due(&app.pool, now)
            .await
            .expect("publish");
        assert_eq!(published, due.len() as u64, "at {now}");
        // Presales open at 11:00 eight days before each game, so with an hour's lead the five
        // games of Wednesday to Sunday week are published at 10:30 from Tuesday to Saturday;
        // Monday has no games, and the seed already published the Tuesday after next.
        let seoul = now + Duration::hours(9);
        let expected = match (seoul.weekday(), seoul.hour(), seoul.minute()) {
            (Weekday::Tue | Weekday::Wed | Weekday::Thu | Weekday::Fri | Weekday::Sat, 10, 30) => 5,
            _ => 0,
        };
        assert_eq!(published, expected, "at {now}");
        let left: BTreeSet<Uuid> = announced(app.pool.clone())
            .await
            .into_iter()
            .map(|a| a.0)
            .collect();
        assert!(due.iter().all(|id| !left.contains(id)), "at {now}");
        assert_eq!(left.len(), waiting.len() - due.len(), "at {now}");
        for id in &due {
            let (status, revision): (String, i64) =
                sqlx::query_as("SELECT status, revision FROM performances WHERE id = $1")
                    .bind(id)
                    .fetch_one(&app.pool)
                    .await
                    .expect("performance");
            assert_eq!((status.as_str(), revision), ("published", 1), "at {now}");
        }
        assert_eq!(
            catalog::autopublish::publish_due(&app.pool, now)
                .await
                .expect("publish"),
            0,
            "once: {now}"
        );
        total += published;
        last_published = due.last().copied().or(last_published);
    }
    assert_eq!(total, 25, "five dates of five games");
    let id = last_published.expect("something published");
    let (spec, _) = support::next_publication(&mut sub, id).await;
    assert_eq!(spec.revision, 1);
    assert!(!spec.seats.is_empty());
    app.finish().await;
}
