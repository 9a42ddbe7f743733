//! Publications in pieces: `performance.seats` chunks and the `performance.published` header
//! that counts them. A revision is installed once its header and every chunk are in, whatever
//! order they come in and however often; never over a newer revision; never from pieces that do
//! not fit together. Version 1 events (the whole in one) still install.

use contracts::{
    Envelope, Event,
    events::{PerformancePublished, PerformanceSeats, PerformanceSpec},
    topics,
};
use seat::Config;
use uuid::Uuid;

use crate::{
    helpers::{App, Backend, Handled, performance, spawn, wait_handled},
    race::seat_pool,
};

/// A performance of `rows` × 100 seats: 2,000 seats make two chunks or more.
fn big(rows: i32) -> PerformanceSpec {
    performance(rows, 100, 0)
}

/// The chunk envelopes and the header envelope of `p`.
fn pieces(p: &PerformanceSpec) -> (Vec<Envelope>, Envelope) {
    let mut envelopes = p.envelopes().unwrap();
    let header = envelopes.pop().unwrap();
    assert!(header.is::<PerformancePublished>());
    (envelopes, header)
}

/// Publishes `env` and waits until the consumer applied it (or says why not).
async fn deliver(app: &App, pool: &sqlx::PgPool, env: &Envelope) -> Handled {
    app.publish_envelope(topics::CATALOG, env).await;
    wait_handled(pool, env.id).await
}

/// Publishes all of `p`, in order, and waits until the consumer has applied its header (the map
/// may serve a revision a moment before SeatDB's transaction commits it).
async fn publish_all(app: &App, pool: &sqlx::PgPool, p: &PerformanceSpec) {
    let header = app.publish_spec(p).await;
    assert_eq!(wait_handled(pool, header.id).await, Handled::Applied);
}

/// The revision SeatDB installed and how many seats its spec has.
async fn installed(pool: &sqlx::PgPool, perf: Uuid) -> Option<(i64, i64)> {
    sqlx::query_as(
        "SELECT revision, jsonb_array_length(spec->'seats')::bigint FROM performances \
         WHERE performance_id = $1",
    )
    .bind(perf)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Rows kept in the staging tables for `perf` (chunks, headers).
async fn staged(pool: &sqlx::PgPool, perf: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM publication_chunks WHERE performance_id = $1), \
                (SELECT count(*) FROM publication_headers WHERE performance_id = $1)",
    )
    .bind(perf)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The seat ids the map serves, in its order.
async fn served_seats(app: &App, perf: Uuid) -> Vec<String> {
    app.seats(perf).await["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_publication_in_chunks_installs_every_seat() {
    for backend in [Backend::Memory, Backend::Redis] {
        let app = spawn(backend, Config::default()).await;
        let pool = seat_pool(&app).await;
        let p = big(30);
        let (chunks, _) = pieces(&p);
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        publish_all(&app, &pool, &p).await;
        assert_eq!(installed(&pool, p.performance_id).await, Some((1, 3_000)));
        let map = app.seats(p.performance_id).await;
        assert_eq!(map["seats"].as_array().unwrap().len(), 3_000, "{backend:?}");
        assert_eq!(
            staged(&pool, p.performance_id).await,
            (0, 0),
            "staging kept"
        );
        pool.close().await;
    }
}

#[tokio::test]
async fn a_header_before_its_chunks_waits_and_redeliveries_change_nothing() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let pool = seat_pool(&app).await;
    let p = big(30);
    let perf = p.performance_id;
    let (chunks, header) = pieces(&p);
    let n = chunks.len();
    assert!(n >= 2);

    // The header first: kept, nothing installed, the partition goes on.
    assert_eq!(deliver(&app, &pool, &header).await, Handled::Applied);
    assert_eq!(installed(&pool, perf).await, None);
    assert_eq!(staged(&pool, perf).await, (0, 1));
    // The chunks backwards; one of them twice: once as the same envelope (a transport
    // redelivery, skipped by the inbox), once re-sent as a new envelope (kept once).
    let last = &chunks[0];
    for c in chunks[1..].iter().rev() {
        assert_eq!(deliver(&app, &pool, c).await, Handled::Applied);
    }
    app.publish_envelope(topics::CATALOG, &chunks[n - 1]).await;
    let again = Envelope::new(&chunks[n - 1].decode::<PerformanceSeats>().unwrap()).unwrap();
    assert_eq!(deliver(&app, &pool, &again).await, Handled::Applied);
    assert_eq!(
        installed(&pool, perf).await,
        None,
        "installed without chunk 0"
    );
    assert_eq!(staged(&pool, perf).await, (n as i64 - 1, 1));

    // The last missing chunk completes the revision.
    assert_eq!(deliver(&app, &pool, last).await, Handled::Applied);
    assert_eq!(installed(&pool, perf).await, Some((1, 3_000)));
    assert_eq!(staged(&pool, perf).await, (0, 0));
    let mut want: Vec<String> = p.seats.iter().map(|s| s.seat_id.clone()).collect();
    want.sort();
    assert_eq!(served_seats(&app, perf).await, want);

    // The whole publication again, pieces and header (a relay that crashed before marking
    // them): nothing changes, nothing is kept.
    let version = app.seats(perf).await["version"].clone();
    for e in p.envelopes().unwrap() {
        assert_eq!(deliver(&app, &pool, &e).await, Handled::Applied);
    }
    assert_eq!(app.seats(perf).await["version"], version);
    assert_eq!(staged(&pool, perf).await, (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn an_older_revision_arriving_late_changes_nothing() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let pool = seat_pool(&app).await;
    let old = big(30);
    let perf = old.performance_id;
    let mut new = big(20);
    new.performance_id = perf;
    new.revision = 2;
    publish_all(&app, &pool, &new).await;
    assert_eq!(installed(&pool, perf).await, Some((2, 2_000)));

    // Revision 1 overtaken on the way (say, a re-published partition): its header first, then
    // its chunks, then the header again.
    let (chunks, header) = pieces(&old);
    assert_eq!(deliver(&app, &pool, &header).await, Handled::Applied);
    for c in &chunks {
        assert_eq!(deliver(&app, &pool, c).await, Handled::Applied);
    }
    let again = Envelope::new(&header.decode::<PerformancePublished>().unwrap()).unwrap();
    assert_eq!(deliver(&app, &pool, &again).await, Handled::Applied);
    assert_eq!(installed(&pool, perf).await, Some((2, 2_000)));
    assert_eq!(app.seats(perf).await["revision"], 2);
    assert_eq!(served_seats(&app, perf).await.len(), 2_000);
    assert_eq!(
        staged(&pool, perf).await,
        (0, 0),
        "an old revision was kept"
    );
    pool.close().await;
}

#[tokio::test]
async fn a_republication_with_fewer_seats_installs_exactly_its_seats() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let pool = seat_pool(&app).await;
    let first = big(30);
    let perf = first.performance_id;
    publish_all(&app, &pool, &first).await;

    // Revision 2 never completes (one of its chunks is lost); revision 3, with fewer seats and
    // fewer chunks, overtakes it. None of revision 1's or 2's seats may be mixed in.
    let mut second = big(25);
    second.performance_id = perf;
    second.revision = 2;
    let (chunks2, header2) = pieces(&second);
    assert!(chunks2.len() >= 2);
    for c in &chunks2[1..] {
        assert_eq!(deliver(&app, &pool, c).await, Handled::Applied);
    }
    assert_eq!(deliver(&app, &pool, &header2).await, Handled::Applied);
    assert_eq!(installed(&pool, perf).await, Some((1, 3_000)));

    let mut third = performance(3, 10, 0);
    third.performance_id = perf;
    third.revision = 3;
    third.seats.retain(|s| s.number <= 7);
    let (chunks3, _) = pieces(&third);
    assert_eq!(chunks3.len(), 1);
    publish_all(&app, &pool, &third).await;
    assert_eq!(installed(&pool, perf).await, Some((3, 21)));
    let mut want: Vec<String> = third.seats.iter().map(|s| s.seat_id.clone()).collect();
    want.sort();
    assert_eq!(served_seats(&app, perf).await, want);
    assert_eq!(
        staged(&pool, perf).await,
        (0, 0),
        "revision 2's pieces kept"
    );

    // Revision 2's lost chunk turns up at last: too late, ignored.
    assert_eq!(deliver(&app, &pool, &chunks2[0]).await, Handled::Applied);
    assert_eq!(installed(&pool, perf).await, Some((3, 21)));
    assert_eq!(staged(&pool, perf).await, (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn pieces_that_do_not_fit_together_are_dead_lettered() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let pool = seat_pool(&app).await;

    // A header whose digest is not that of its chunks.
    let p = big(20);
    let (chunks, header) = pieces(&p);
    for c in &chunks {
        assert_eq!(deliver(&app, &pool, c).await, Handled::Applied);
    }
    let mut wrong: PerformancePublished = header.decode().unwrap();
    wrong.seat_digest = "0".repeat(64);
    let wrong = Envelope::new(&wrong).unwrap();
    match deliver(&app, &pool, &wrong).await {
        Handled::DeadLettered(why) => assert!(why.contains("digest"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(installed(&pool, p.performance_id).await, None);

    // A chunk that names itself past its own count.
    let mut past: PerformanceSeats = chunks[0].decode().unwrap();
    past.performance_id = Uuid::now_v7();
    past.chunk = past.chunks;
    match deliver(&app, &pool, &Envelope::new(&past).unwrap()).await {
        Handled::DeadLettered(why) => assert!(why.contains("chunk"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(staged(&pool, past.performance_id).await, (0, 0));

    // A header announcing no seat and no area.
    let mut empty = performance(1, 1, 0);
    empty.seats.clear();
    empty.areas.clear();
    let (none, header) = pieces(&empty);
    assert!(none.is_empty());
    match deliver(&app, &pool, &header).await {
        Handled::DeadLettered(why) => assert!(why.contains("without seats"), "{why}"),
        other => panic!("{other:?}"),
    }

    // The right header still installs the first publication afterwards.
    assert_eq!(deliver(&app, &pool, &header_of(&p)).await, Handled::Applied);
    assert_eq!(installed(&pool, p.performance_id).await, Some((1, 2_000)));
    pool.close().await;
}

/// A fresh envelope of `p`'s header.
fn header_of(p: &PerformanceSpec) -> Envelope {
    Envelope::new(&p.split().unwrap().1).unwrap()
}

#[tokio::test]
async fn a_version_1_event_carrying_everything_still_installs() {
    let app = spawn(Backend::Memory, Config::default()).await;
    let pool = seat_pool(&app).await;
    let p = performance(3, 10, 2);
    let v1 = Envelope {
        version: 1,
        payload: serde_json::to_value(&p).unwrap(),
        ..header_of(&p)
    };
    assert_eq!(v1.event_type, PerformancePublished::TYPE);
    assert_eq!(deliver(&app, &pool, &v1).await, Handled::Applied);
    assert_eq!(installed(&pool, p.performance_id).await, Some((1, 30)));
    assert_eq!(served_seats(&app, p.performance_id).await.len(), 30);
    let limit: i64 = sqlx::query_scalar(
        "SELECT (spec->>'ticket_limit')::bigint FROM performances WHERE performance_id = $1",
    )
    .bind(p.performance_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(limit, 2, "the spec keeps version 1's shape");
    pool.close().await;
}
