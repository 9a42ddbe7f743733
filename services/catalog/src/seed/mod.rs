//! The demo catalog (`boxoffice seed`, and standalone's first start): the nine KBO home stadiums
//! with generated seat maps, a 720-game season laid out around a start date, and a concert, a
//! musical and a timed-entry exhibition. Idempotent: a catalog that has the seeded stadiums is
//! left alone (whatever the date asked for), every id is a hash of a natural key and every
//! insert skips existing rows, so a second run writes and publishes nothing.
//!
//! Publication is bounded: at seed time only performances that are on sale or open within the
//! next minutes (and start within [`PUBLISH_HORIZON`]) are published to the seat service —
//! about 30 games (each event carries its stadium's ~20,000 seats) plus the productions'
//! upcoming performances. Later games stay `announced` until published.

pub mod events;
pub mod games;
pub mod layout;
pub mod schedule;
pub mod stadiums;

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::{EventKind, PerformanceState},
    ids,
    model::VenueSummary,
    publish::{self, Inventory},
    search,
    store::{
        events::{self as store_events, EventRow, NewEvent, NewPerformance, PerformanceRow},
        venues::{self, NewArea, NewVenue},
    },
};

/// Performances starting later than this after `now` are never published at seed time.
pub const PUBLISH_HORIZON: Duration = Duration::days(14);

/// What a seed run wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Venues written (0 when they existed).
    pub venues: u64,
    /// Seats written.
    pub seats: u64,
    /// Events written.
    pub events: u64,
    /// Performances written.
    pub performances: u64,
    /// `performance.published` events enqueued.
    pub published: u64,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
}

/// Whether the catalog has no venue yet.
pub async fn is_empty(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM venues LIMIT 1")
        .fetch_optional(pool)
        .await?;
    Ok(any.is_none())
}

/// Today's date in Seoul (UTC+9, no daylight saving).
pub fn today_in_seoul(now: DateTime<Utc>) -> NaiveDate {
    (now + Duration::hours(9)).date_naive()
}

/// A performance to write and whether to publish it now.
struct Planned {
    perf: NewPerformance,
    publish: bool,
}

fn summary(v: &NewVenue) -> VenueSummary {
    VenueSummary {
        id: v.id,
        name: v.name.clone(),
        name_en: v.name_en.clone(),
        kind: v.kind.as_str().to_owned(),
        city: v.city.clone(),
        capacity: v.areas.iter().map(NewArea::places).sum(),
    }
}

/// Seeds the catalog around `start_date` with sale statuses relative to `now`, publishing what
/// is on sale or about to open.
pub async fn run(
    pool: &PgPool,
    start_date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<SeedReport, SeedError> {
    run_with(pool, start_date, now, true).await
}

/// [`run`], optionally without publishing (performances are then marked as published but no
/// event is sent: for tests of the catalog alone).
pub async fn run_with(
    pool: &PgPool,
    start_date: NaiveDate,
    now: DateTime<Utc>,
    publish: bool,
) -> Result<SeedReport, SeedError> {
    let mut report = SeedReport::default();
    let t0 = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    // Two seeds at once (two replicas starting on an empty database) take turns.
    sqlx::query("SELECT pg_advisory_xact_lock(7243001)")
        .execute(&mut *tx)
        .await?;
    // Seeded once: a second run, even for another date, leaves the catalog as it is.
    let seeded: Option<i32> = sqlx::query_scalar("SELECT 1 FROM venues WHERE id = $1")
        .bind(layout::venue_id(stadiums::STADIUMS[0].slug))
        .fetch_optional(&mut *tx)
        .await?;
    if seeded.is_some() {
        tracing::info!("the catalog is already seeded");
        return Ok(report);
    }

    let mut all_venues: Vec<NewVenue> = stadiums::STADIUMS.iter().map(layout::venue).collect();
    all_venues.extend(events::venues());
    let mut by_slug: HashMap<String, VenueSummary> = HashMap::new();
    for (slug, v) in stadiums::STADIUMS
        .iter()
        .map(|s| s.slug)
        .chain(["kspo-dome", "charlotte-theater", "national-museum-of-korea"])
        .zip(&all_venues)
    {
        if venues::insert(&mut tx, v).await? {
            report.venues += 1;
            report.seats += v.areas.iter().map(|a| a.seats.len() as u64).sum::<u64>();
        }
        by_slug.insert(slug.to_owned(), summary(v));
    }
    drop(all_venues);
    tracing::info!(
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "seed: venues written"
    );

    let (evs, planned) = baseball(start_date, now, &by_slug);
    let (more_evs, more_planned) = productions(start_date, now, &by_slug);
    let evs: Vec<NewEvent> = evs.into_iter().chain(more_evs).collect();
    let planned: Vec<Planned> = planned.into_iter().chain(more_planned).collect();
    report.events = store_events::insert_events(&mut tx, &evs).await?.len() as u64;
    let perfs: Vec<NewPerformance> = planned.iter().map(|p| p.perf.clone()).collect();
    let fresh: std::collections::HashSet<Uuid> = store_events::insert_performances(&mut tx, &perfs)
        .await?
        .into_iter()
        .collect();
    report.performances = fresh.len() as u64;
    tracing::info!(
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "seed: events written"
    );

    let events_by_id: HashMap<Uuid, &NewEvent> = evs.iter().map(|e| (e.id, e)).collect();
    let mut inventories: HashMap<Uuid, Inventory> = HashMap::new();
    for p in planned
        .iter()
        .filter(|p| publish && p.publish && fresh.contains(&p.perf.id))
    {
        let Some(e) = events_by_id.get(&p.perf.event_id) else {
            continue;
        };
        if p.perf.starts_at > now + PUBLISH_HORIZON {
            continue;
        }
        let inventory = match inventories.entry(e.venue_id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(venues::inventory(&mut tx, e.venue_id).await?)
            }
        };
        publish_new(&mut tx, e, &p.perf, inventory).await?;
        report.published += 1;
    }
    tx.commit().await?;
    if report.performances > 0 {
        // Fresh statistics, so the planner does not plan listings for empty tables.
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    tracing::info!(
        elapsed_ms = t0.elapsed().as_millis() as u64,
        ?report,
        "seed: committed"
    );
    Ok(report)
}

async fn publish_new(
    conn: &mut PgConnection,
    e: &NewEvent,
    p: &NewPerformance,
    inventory: &Inventory,
) -> Result<(), publish::PublishError> {
    let event = EventRow {
        id: e.id,
        kind: e.kind.clone(),
        title: e.title.clone(),
        description: e.description.clone(),
        venue_id: e.venue_id,
        home_team: e.home_team.clone(),
        away_team: e.away_team.clone(),
        ticket_limit: e.ticket_limit,
        waiting_room: e.waiting_room,
        free: e.free,
        status: e.status.clone(),
        organizer_id: e.organizer_id,
        cancellation_policy: e.cancellation_policy.clone().map(sqlx::types::Json),
    };
    let perf = PerformanceRow {
        id: p.id,
        event_id: p.event_id,
        starts_at: p.starts_at,
        status: p.state.as_str().to_owned(),
        sale_opens_at: p
            .windows
            .iter()
            .map(|w| w.opens_at)
            .min()
            .unwrap_or(p.starts_at),
        sale_closes_at: p
            .windows
            .iter()
            .map(|w| w.closes_at)
            .max()
            .unwrap_or(p.starts_at),
        revision: 0,
        cancel_reason: None,
    };
    publish::publish(conn, &event, &perf, inventory).await?;
    Ok(())
}

/// The season's games as events with one performance each.
fn baseball(
    start_date: NaiveDate,
    now: DateTime<Utc>,
    venues: &HashMap<String, VenueSummary>,
) -> (Vec<NewEvent>, Vec<Planned>) {
    let games = schedule::season(start_date);
    let sales = games::plan(&games, now);
    let mut evs = Vec::with_capacity(games.len());
    let mut planned = Vec::with_capacity(games.len());
    for (g, sale) in games.iter().zip(sales) {
        let (Some(stadium), Some(venue)) =
            (stadiums::by_slug(g.home.home), venues.get(g.home.home))
        else {
            continue;
        };
        let key = format!("kbo/{}/{}", g.date, g.home.code);
        let id = ids::stable("event", &key);
        let title = format!("{} vs {}", g.away.name, g.home.name);
        evs.push(NewEvent {
            id,
            kind: EventKind::Baseball.as_str().to_owned(),
            search_doc: search::event_document(
                EventKind::Baseball,
                &title,
                &[g.home, g.away],
                venue,
            ),
            title,
            description: format!(
                "KBO 리그 정규시즌 {} — {} at {}",
                g.date, g.away.name_en, g.home.name_en
            ),
            venue_id: venue.id,
            home_team: Some(g.home.code.to_owned()),
            away_team: Some(g.away.code.to_owned()),
            ticket_limit: games::TICKET_LIMIT,
            waiting_room: sale.waiting_room,
            free: false,
            status: "published".into(),
            organizer_id: None,
            // The platform's default schedule.
            cancellation_policy: None,
            tiers: stadium
                .grades
                .iter()
                .map(|gr| crate::model::PriceTier {
                    grade: gr.code.to_owned(),
                    name: gr.name.to_owned(),
                    price_krw: if g.weekend { gr.weekend } else { gr.weekday },
                })
                .collect(),
        });
        planned.push(Planned {
            perf: NewPerformance {
                id: ids::stable("performance", &key),
                event_id: id,
                starts_at: g.starts_at,
                state: sale.state,
                windows: sale.windows,
            },
            publish: sale.publish,
        });
    }
    (evs, planned)
}

/// The concert, the musical and the exhibition; every upcoming performance is published.
fn productions(
    start_date: NaiveDate,
    now: DateTime<Utc>,
    venues: &HashMap<String, VenueSummary>,
) -> (Vec<NewEvent>, Vec<Planned>) {
    let mut evs = Vec::new();
    let mut planned = Vec::new();
    for p in events::productions(start_date, now) {
        let Some(venue) = venues.get(p.venue) else {
            continue;
        };
        let kind = EventKind::parse(p.kind).unwrap_or(EventKind::Other);
        let id = ids::stable("event", p.key);
        evs.push(NewEvent {
            id,
            kind: kind.as_str().to_owned(),
            title: p.title.to_owned(),
            description: p.description.to_owned(),
            venue_id: venue.id,
            home_team: None,
            away_team: None,
            ticket_limit: p.ticket_limit,
            waiting_room: p.waiting_room,
            free: false,
            status: "published".into(),
            organizer_id: None,
            search_doc: search::event_document(kind, p.title, &[], venue),
            tiers: p.tiers,
            cancellation_policy: None,
        });
        for (starts_at, windows) in p.performances {
            planned.push(Planned {
                perf: NewPerformance {
                    id: ids::stable(
                        "performance",
                        &format!("{}/{}", p.key, starts_at.to_rfc3339()),
                    ),
                    event_id: id,
                    starts_at,
                    state: PerformanceState::Published,
                    windows,
                },
                publish: starts_at > now,
            });
        }
    }
    (evs, planned)
}

/// `boxoffice seed`: opens (creating and migrating) the catalog's database and seeds it around
/// `start_date` (`YYYY-MM-DD`; else the configured date; else today in Seoul).
pub async fn command(
    config: &crate::Config,
    infra: &platform::service::Infra,
    start_date: Option<&str>,
) -> Result<SeedReport, platform::service::StartError> {
    use platform::service::StartError;
    let date = match start_date {
        Some(s) => Some(
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
                StartError::Config(format!("--start-date `{s}` is not a YYYY-MM-DD date"))
            })?,
        ),
        None => config.seed_start_date,
    };
    let pool = infra.database(crate::NAME, &crate::MIGRATOR).await?;
    let now = config.clock.now();
    let report = run(&pool, date.unwrap_or_else(|| today_in_seoul(now)), now)
        .await
        .map_err(|e| StartError::Other(format!("seeding the catalog: {e}")))?;
    pool.close().await;
    Ok(report)
}
