//! Catalog listing under load: N closed-loop clients (default 200) send `GET /api/v1/events`
//! with a realistic mix of queries (kinds, teams, venues, date ranges, search, pages, on-sale)
//! for a fixed time against a running platform, and report throughput and latency percentiles.
//!
//! `--distinct` makes every request's query string unique (an ignored `_n` parameter), so the
//! one-second listing cache never answers: every request reaches PostgreSQL.
//!
//! ```text
//! cargo run --release -p bench --bin catalog_listing -- --url http://127.0.0.1:8080 --clients 200 --seconds 20
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    /// Base URL of the gateway (or of the catalog service).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Measured seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Make every query string unique (bypasses the listing cache).
    #[arg(long)]
    distinct: bool,
}

/// The query mix, as a buyer's browser would send it.
const QUERIES: &[&str] = &[
    "kind=baseball",
    "kind=baseball&limit=50",
    "kind=baseball&on_sale=true",
    "opening_soon=true",
    "team=doosan",
    "team=lg&kind=baseball",
    "team=%EB%A1%AF%EB%8D%B0",
    "q=%EC%9E%A0%EC%8B%A4",
    "q=%EB%91%90%EC%82%B0",
    "q=LG%20%ED%8A%B8%EC%9C%88%EC%8A%A4",
    "q=musical",
    "q=muscial",
    "kind=musical",
    "kind=exhibition&limit=50",
    "kind=concert",
    "on_sale=true&limit=30",
    "",
    "limit=100",
];

#[tokio::main]
#[allow(clippy::print_stdout)] // a benchmark reports its figures on stdout
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(10))
        .build()?;
    // Check the target answers before loading it.
    let probe = client
        .get(format!("{}/api/v1/events?kind=baseball", args.url))
        .send()
        .await?;
    anyhow::ensure!(
        probe.status().is_success(),
        "the listing answered {}",
        probe.status()
    );

    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let warmup_until = Instant::now() + Duration::from_secs(2);
    let end = warmup_until + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let client = client.clone();
        let base = args.url.clone();
        let counter = counter.clone();
        let errors = errors.clone();
        let distinct = args.distinct;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut i = c;
            while Instant::now() < end {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let q = QUERIES[i % QUERIES.len()];
                i += 7;
                let url = if distinct {
                    format!("{base}/api/v1/events?{q}&_n={n}")
                } else {
                    format!("{base}/api/v1/events?{q}")
                };
                let started = Instant::now();
                let ok = match client.get(url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if started >= warmup_until {
                    if ok {
                        hist.record(
                            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                        )?;
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(hist)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        total.add(t.await??)?;
    }
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "catalog listing: {} clients, {} s{}: {} requests ({:.0}/s), {} errors; latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        args.clients,
        args.seconds,
        if args.distinct {
            ", every query distinct (no listing cache)"
        } else {
            ""
        },
        total.len(),
        total.len() as f64 / args.seconds as f64,
        errors.load(Ordering::Relaxed),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        total.max() as f64 / 1000.0,
    );
    Ok(())
}
