//! The seat service's hold path and seat map under a sale-opening load; figures go to
//! docs/benchmarks.md ("Seat holds") with these commands:
//!
//! `cargo run --release -p bench --bin seat_holds -- --seconds 5` (closed loop: capacity)
//! `cargo run --release -p bench --bin seat_holds -- --seconds 5 --rate 2000` (open loop)
//!
//! 1. Holds: `--buyers` buyers on one stadium (25,000 seats), each asking for 2–4 adjacent seats
//!    in a random row and releasing what it got — through the Redis hold store, the in-memory
//!    one, and a naive baseline in the same run: the same all-or-nothing hold as one PostgreSQL
//!    transaction (`SELECT … FOR UPDATE` on the rows, check, `UPDATE`, commit). These are direct
//!    store calls (no HTTP, token, admission pass or outbox write: `seat_http` measures those).
//!    With `--rate 0` the buyers loop back to back (closed loop, capacity); with `--rate R` the
//!    attempts are due on a fixed schedule at R/s in all (open loop, see [`bench::open_loop`]),
//!    latency from the intended send time. Hold latency excludes the release (its own column).
//! 2. Seat map: the service in process (in-memory store), `--readers` clients on
//!    `GET .../seats` while `--streams` SSE streams stay open and holds keep changing the map.

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use bench::{
    open_loop::{self, Figures, Instant, Outcome, Plan, Sample},
    stadium::{stadium, wish},
};
use clap::Parser;
use seat::store::{Hold, HoldError, HoldStatus, HoldStore, memory::MemoryStore, redis::RedisStore};
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Buyers in the hold scenarios.
    #[arg(long, default_value_t = 2000)]
    buyers: usize,
    /// Offered hold attempts per second over all buyers, on a fixed schedule (open loop);
    /// 0 = closed loop (each buyer back to back, no think time).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Concurrent seat-map readers.
    #[arg(long, default_value_t = 1000)]
    readers: usize,
    /// Open SSE streams during the seat-map scenario.
    #[arg(long, default_value_t = 5000)]
    streams: usize,
    /// PostgreSQL connections of the baseline's pool.
    #[arg(long, default_value_t = 40)]
    pg_pool: u32,
    /// Which scenarios: all, holds (postgres, redis and memory), redis, memory, postgres,
    /// seatmap.
    #[arg(long, default_value = "all")]
    only: String,
}

impl Args {
    fn plan(&self) -> Plan {
        if self.rate > 0.0 {
            Plan::open(self.rate, self.buyers, self.seconds)
        } else {
            Plan::closed(self.buyers, self.seconds)
        }
    }
}

/// Holds and releases on `store`, straight through the trait.
async fn store_scenario(store: Arc<dyn HoldStore>, args: &Args) -> anyhow::Result<(Figures, Uuid)> {
    let p = stadium();
    let perf = p.performance_id;
    let layout = seat::map::Layout::from_published(&p);
    store
        .install(&layout.inventory())
        .await
        .context("install")?;
    let buyers: Arc<Vec<Uuid>> = Arc::new((0..args.buyers).map(|_| Uuid::now_v7()).collect());
    let figures = open_loop::run(args.plan(), move |shot| {
        let (store, buyers) = (store.clone(), buyers.clone());
        async move {
            let hold = Hold {
                hold_id: Uuid::now_v7(),
                performance_id: perf,
                buyer_id: buyers[shot.user],
                seat_ids: wish(),
                areas: Vec::new(),
                amount_krw: 0,
                expires_at_ms: i64::MAX / 4,
                status: HoldStatus::Active,
                presale_limit: None,
            };
            let result = store.hold(&hold).await;
            let end = Instant::now();
            let (outcome, second) = match result {
                Ok(_) => {
                    let released = store
                        .release(perf, hold.hold_id, HoldStatus::Released)
                        .await;
                    let outcome = if released.is_ok() {
                        Outcome::Ok
                    } else {
                        Outcome::Failed
                    };
                    (outcome, Some(end.elapsed()))
                }
                Err(HoldError::Unavailable { .. }) => (Outcome::Refused, None),
                Err(_) => (Outcome::Failed, None),
            };
            Sample {
                outcome,
                end,
                second,
            }
        }
    })
    .await;
    Ok((figures, perf))
}

async fn postgres_scenario(args: &Args) -> anyhow::Result<Figures> {
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
    let p = pool.clone();
    let figures = open_loop::run(args.plan(), move |_| {
        let pool = p.clone();
        async move {
            let (hold_id, seats) = (Uuid::now_v7(), wish());
            let result = pg_hold(&pool, perf, hold_id, &seats).await;
            let end = Instant::now();
            let (outcome, second) = match result {
                Ok(true) => {
                    let released = sqlx::query(
                        "UPDATE seats SET hold_id = NULL WHERE performance_id = $1 AND hold_id = $2",
                    )
                    .bind(perf)
                    .bind(hold_id)
                    .execute(&pool)
                    .await;
                    let outcome = if released.is_ok() {
                        Outcome::Ok
                    } else {
                        Outcome::Failed
                    };
                    (outcome, Some(end.elapsed()))
                }
                Ok(false) => (Outcome::Refused, None),
                Err(_) => (Outcome::Failed, None),
            };
            Sample {
                outcome,
                end,
                second,
            }
        }
    })
    .await;
    pool.close().await;
    db.drop_database().await;
    Ok(figures)
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
        let run = |s: &str| {
            args.only == "all" || args.only == s || (args.only == "holds" && s != "seatmap")
        };
        let any_holds = ["postgres", "redis", "memory"].iter().any(|s| run(s));
        let plan = args.plan();
        let mode = if plan.is_open() {
            format!(
                "open loop, {} hold attempts/s offered on a fixed schedule",
                args.rate
            )
        } else {
            "closed loop (no think time)".to_owned()
        };
        if any_holds {
            println!(
                "{} buyers, {mode}, {} s per scenario, one stadium of 25,000 seats; load \
                 average before: {}\n",
                args.buyers,
                args.seconds,
                open_loop::load_average()
            );
            println!("{}", open_loop::header("hold store"));
        }
        let mut rows: Vec<(&str, Figures)> = Vec::new();
        if run("postgres") {
            let f = postgres_scenario(&args).await?;
            rows.push(("PostgreSQL `SELECT … FOR UPDATE` (baseline)", f));
            print_last(&rows);
        }
        if run("redis") {
            let url = platform::testing::redis_url();
            let store = Arc::new(RedisStore::connect(&url).await?);
            let (f, perf) = store_scenario(store, &args).await?;
            rows.push(("Redis (Lua script)", f));
            bench::cleanup::forget_performances(&url, &[perf]).await?;
            print_last(&rows);
        }
        if run("memory") {
            let store = Arc::new(MemoryStore::new());
            rows.push(("in-memory", store_scenario(store, &args).await?.0));
            print_last(&rows);
        }
        if !rows.is_empty() {
            println!("\n| hold store | release p50 ms | release p99 ms |\n|---|---|---|");
            for (name, f) in &rows {
                println!(
                    "| {name} | {:.2} | {:.2} |",
                    f.second_ms(0.5),
                    f.second_ms(0.99)
                );
            }
        }
        if let Some(((_, base), others)) = rows.split_first()
            && run("postgres")
        {
            println!();
            for (name, f) in others {
                println!(
                    "{name}: {:.1}× the baseline's achieved attempts/s, p99 {:.0}× lower",
                    f.achieved / base.achieved.max(1e-9),
                    base.ms(0.99) / f.ms(0.99).max(1e-9)
                );
            }
        }
        println!(
            "\nload average after the holds: {}",
            open_loop::load_average()
        );
        if run("seatmap") {
            bench::seat_map::run(stadium(), args.readers, args.streams, args.seconds).await?;
        }
        Ok(())
    })
}

fn print_last(rows: &[(&str, Figures)]) {
    if let Some((name, f)) = rows.last() {
        println!("{}", open_loop::row(name, f));
    }
}
