//! Catalog listing under load: N closed-loop clients (default 200) send `GET /api/v1/events`
//! with a realistic mix of queries (kinds, teams, venues, date ranges, search, pages, on-sale)
//! for a fixed time against a running platform, and report throughput and latency percentiles.
//!
//! `--distinct` makes every request's query string unique (an ignored `_n` parameter), so the
//! one-second listing cache never answers: every request reaches PostgreSQL.
//!
//! `--rate R` sends the requests on a fixed schedule at R/s over all clients instead (open loop,
//! latency from the intended send time; see `bench::open_loop`). Requests count in the rate only
//! if they completed by the deadline.
//!
//! ```text
//! cargo run --release -p bench --bin catalog_listing -- --url http://127.0.0.1:8080 --clients 200 --seconds 20
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bench::open_loop::{self, Outcome, Plan, Sample};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Base URL of the gateway (or of the catalog service).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Measured seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Offered requests/s over all clients on a fixed schedule (open loop); 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
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
    let plan = |seconds: f64| {
        if args.rate > 0.0 {
            Plan::open(args.rate, args.clients, seconds)
        } else {
            Plan::closed(args.clients, seconds)
        }
    };
    let counter = Arc::new(AtomicU64::new(0));
    let attempt = {
        let (base, distinct) = (args.url.clone(), args.distinct);
        move |shot: open_loop::Shot| {
            let (client, base, counter) = (client.clone(), base.clone(), counter.clone());
            async move {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let q = QUERIES[(shot.user + 7 * n as usize) % QUERIES.len()];
                let url = if distinct {
                    format!("{base}/api/v1/events?{q}&_n={n}")
                } else {
                    format!("{base}/api/v1/events?{q}")
                };
                let ok = match client.get(url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                Sample::now(if ok { Outcome::Ok } else { Outcome::Failed })
            }
        }
    };
    let before = open_loop::load_average();
    let _warm_up = open_loop::run(plan(2.0), attempt.clone()).await;
    let f = open_loop::run(plan(args.seconds), attempt).await;
    println!(
        "catalog listing: {} clients, {} s{}; load average before {before}, after {}\n",
        args.clients,
        args.seconds,
        if args.distinct {
            ", every query distinct (no listing cache)"
        } else {
            ""
        },
        open_loop::load_average(),
    );
    println!("{}", open_loop::header("target"));
    println!("{}", open_loop::row(&args.url, &f));
    println!(
        "\np90 {:.2} ms, p99.9 {:.2} ms; {} requests completed, {} errors",
        f.ms(0.9),
        f.ms(0.999),
        f.ok + f.failed,
        f.failed + f.unfinished
    );
    Ok(())
}
