//! The seat service's hold path and seat map under a sale-opening load; figures go to
//! docs/benchmarks.md ("Seat holds") with this command:
//!
//! `cargo run --release -p bench --bin seat_holds -- --seconds 5`
//!
//! 1. Holds: `--buyers` closed-loop buyers on one stadium (25,000 seats), each asking for 2–4
//!    adjacent seats in a random row, releasing what it got, again and again — through the Redis
//!    hold store, the in-memory one, and a naive baseline in the same run: the same
//!    all-or-nothing hold as one PostgreSQL transaction (`SELECT … FOR UPDATE` on the rows, check,
//!    `UPDATE`, commit). Hold latency excludes the release.
//! 2. Seat map: the service in process (in-memory store), `--readers` clients looping on
//!    `GET .../seats` while `--streams` SSE streams stay open and holds keep changing the map.

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use contracts::events::{PerformancePublished, PriceSpec, SeatSpec};
use hdrhistogram::Histogram;
use rand::Rng;
use seat::store::{Hold, HoldError, HoldStatus, HoldStore, memory::MemoryStore, redis::RedisStore};
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent buyers in the hold scenarios.
    #[arg(long, default_value_t = 2000)]
    buyers: usize,
    /// Concurrent seat-map readers.
    #[arg(long, default_value_t = 1000)]
    readers: usize,
    /// Open SSE streams during the seat-map scenario.
    #[arg(long, default_value_t = 5000)]
    streams: usize,
    /// Mean pause of a buyer between two hold attempts, in ms (uniform in 0..2×; 0 = closed
    /// loop, no think time). With think time the offered load is about buyers ÷ think.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// PostgreSQL connections of the baseline's pool.
    #[arg(long, default_value_t = 40)]
    pg_pool: u32,
    /// Which scenarios: all, redis, memory, postgres, seatmap.
    #[arg(long, default_value = "all")]
    only: String,
}

const SECTIONS: usize = 20;
const ROWS: usize = 25;
const PER_ROW: usize = 50;

fn seat_id(section: usize, row: usize, n: usize) -> String {
    format!("S{section:02}-{row:02}-{n:02}")
}

/// 25,000 seats: 20 sections × 25 rows × 50 seats.
fn stadium() -> PerformancePublished {
    let mut seats = Vec::with_capacity(SECTIONS * ROWS * PER_ROW);
    for s in 1..=SECTIONS {
        for r in 1..=ROWS {
            for n in 1..=PER_ROW {
                seats.push(SeatSpec {
                    seat_id: seat_id(s, r, n),
                    section: format!("S{s:02}"),
                    row: format!("{r:02}"),
                    number: n as i32,
                    grade: if r <= 5 { "vip".into() } else { "r".into() },
                    rank: r as i32,
                    wheelchair: false,
                });
            }
        }
    }
    let now = chrono::Utc::now();
    PerformancePublished {
        performance_id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        venue_id: Uuid::now_v7(),
        starts_at: now,
        ticket_limit: 0,
        waiting_room: false,
        sale_opens_at: now,
        sale_closes_at: now,
        seats,
        areas: Vec::new(),
        prices: vec![PriceSpec {
            grade: "r".into(),
            name: "R".into(),
            price_krw: 1,
        }],
        revision: 1,
    }
}

/// 2–4 adjacent seats in a random row.
fn wish() -> Vec<String> {
    let mut rng = rand::rng();
    let (s, r) = (rng.random_range(1..=SECTIONS), rng.random_range(1..=ROWS));
    let n = rng.random_range(2..=4);
    let start = rng.random_range(1..=PER_ROW - n + 1);
    (start..start + n).map(|i| seat_id(s, r, i)).collect()
}

/// Latencies and counts of one scenario.
struct Tally {
    hist: Mutex<Histogram<u64>>,
    granted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            hist: Mutex::new(
                Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|_| {
                    Histogram::new(3)
                        .unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
                }),
            ),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    async fn record(&self, started: Instant) {
        let us = started.elapsed().as_micros().max(1) as u64;
        let _ = self
            .hist
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(us.min(120_000_000));
    }

    async fn report(&self, name: &str, seconds: f64) -> (f64, f64) {
        let h = self.hist.lock().unwrap_or_else(|p| p.into_inner());
        let attempts = h.len() as f64;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {} / {} / {} |",
            attempts / seconds,
            self.granted.load(Ordering::Relaxed) as f64 / seconds,
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0,
            self.granted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        (attempts / seconds, ms(0.99))
    }
}

/// A buyer's pause before its next attempt (none in closed loop).
async fn think(mean_ms: u64) {
    if mean_ms > 0 {
        let ms = rand::rng().random_range(0..=2 * mean_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

async fn store_scenario(
    store: Arc<dyn HoldStore>,
    args: &Args,
    name: &str,
) -> anyhow::Result<(f64, f64)> {
    let p = stadium();
    let perf = p.performance_id;
    let layout = seat::map::Layout::from_published(&p);
    store
        .install(&layout.inventory())
        .await
        .context("install")?;
    let tally = Tally::new();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    let think_ms = args.think_ms;
    for _ in 0..args.buyers {
        let (store, tally) = (store.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let buyer = Uuid::now_v7();
            while Instant::now() < deadline {
                think(think_ms).await;
                let hold = Hold {
                    hold_id: Uuid::now_v7(),
                    performance_id: perf,
                    buyer_id: buyer,
                    seat_ids: wish(),
                    areas: Vec::new(),
                    amount_krw: 0,
                    expires_at_ms: i64::MAX / 4,
                    status: HoldStatus::Active,
                };
                let started = Instant::now();
                let result = store.hold(&hold).await;
                tally.record(started).await;
                match result {
                    Ok(_) => {
                        tally.granted.fetch_add(1, Ordering::Relaxed);
                        let _ = store
                            .release(perf, hold.hold_id, HoldStatus::Released)
                            .await;
                    }
                    Err(HoldError::Unavailable { .. }) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(tally.report(name, args.seconds as f64).await)
}

async fn postgres_scenario(args: &Args) -> anyhow::Result<(f64, f64)> {
    let db = platform::testing::TestDb::new("bench_seat_holds", None).await;
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(args.pg_pool)
        .acquire_timeout(Duration::from_secs(120))
        .connect_with(platform::db::server_options(&db.server_url)?.database(&db.name))
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE seats (performance_id UUID NOT NULL, seat_id TEXT NOT NULL, hold_id UUID, \
         PRIMARY KEY (performance_id, seat_id))",
    )
    .execute(&pool)
    .await?;
    let perf = Uuid::now_v7();
    let ids: Vec<String> = stadium().seats.into_iter().map(|s| s.seat_id).collect();
    sqlx::query("INSERT INTO seats (performance_id, seat_id) SELECT $1, unnest($2::text[])")
        .bind(perf)
        .bind(&ids)
        .execute(&pool)
        .await?;
    let tally = Tally::new();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    let think_ms = args.think_ms;
    for _ in 0..args.buyers {
        let (pool, tally) = (pool.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                think(think_ms).await;
                let (hold_id, seats) = (Uuid::now_v7(), wish());
                let started = Instant::now();
                let result = pg_hold(&pool, perf, hold_id, &seats).await;
                tally.record(started).await;
                match result {
                    Ok(true) => {
                        tally.granted.fetch_add(1, Ordering::Relaxed);
                        let _ = sqlx::query("UPDATE seats SET hold_id = NULL WHERE performance_id = $1 AND hold_id = $2")
                            .bind(perf)
                            .bind(hold_id)
                            .execute(&pool)
                            .await;
                    }
                    Ok(false) => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let out = tally
        .report(
            "PostgreSQL `SELECT … FOR UPDATE` (baseline)",
            args.seconds as f64,
        )
        .await;
    pool.close().await;
    db.drop_database().await;
    Ok(out)
}

/// The naive hold: lock the rows, check them, update them, commit.
async fn pg_hold(
    pool: &PgPool,
    perf: Uuid,
    hold: Uuid,
    seats: &[String],
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<Option<Uuid>> = sqlx::query_scalar(
        "SELECT hold_id FROM seats WHERE performance_id = $1 AND seat_id = ANY($2) \
         ORDER BY seat_id FOR UPDATE",
    )
    .bind(perf)
    .bind(seats)
    .fetch_all(&mut *tx)
    .await?;
    if rows.len() != seats.len() || rows.iter().any(Option::is_some) {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE seats SET hold_id = $3 WHERE performance_id = $1 AND seat_id = ANY($2)")
        .bind(perf)
        .bind(seats)
        .bind(hold)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let run = |s: &str| args.only == "all" || args.only == s;
        println!("{} buyers, {} ms mean think time, {} s per scenario, one stadium of 25,000 seats\n", args.buyers, args.think_ms, args.seconds);
        println!("| hold store | attempts/s | granted/s | p50 ms | p99 ms | max ms | granted / refused / failed |");
        println!("|---|---|---|---|---|---|---|");
        let mut base = None;
        if run("postgres") {
            base = Some(postgres_scenario(&args).await?);
        }
        let mut others = Vec::new();
        if run("redis") {
            let store = Arc::new(RedisStore::connect(&platform::testing::redis_url()).await?);
            others.push(("Redis", store_scenario(store, &args, "Redis (Lua script)").await?));
        }
        if run("memory") {
            let store = Arc::new(MemoryStore::new());
            others.push(("in-memory", store_scenario(store, &args, "in-memory").await?));
        }
        if let Some((base_rate, base_p99)) = base {
            println!();
            for (name, (rate, p99)) in others {
                println!(
                    "{name}: {:.1}× the baseline's attempts/s, p99 {:.0}× lower",
                    rate / base_rate.max(1e-9),
                    base_p99 / p99.max(1e-9)
                );
            }
        }
        if run("seatmap") {
            bench::seat_map::run(stadium(), args.readers, args.streams, args.seconds).await?;
        }
        Ok(())
    })
}
