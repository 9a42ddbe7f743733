//! The waiting room under a sale-opening burst; figures go to docs/benchmarks.md ("Waiting
//! room") with this command:
//!
//! `cargo run --release -p bench --bin admission_queue -- --fans 100000`
//!
//! 1. Store level, straight through the queue store trait (no HTTP, no token): `--fans` joins in
//!    one burst (`--concurrency` in flight) into one queue — the Redis store, the in-memory one,
//!    and in the same run a naive PostgreSQL baseline (`INSERT … ON CONFLICT … RETURNING id` as
//!    the place, `SELECT count(*) … WHERE id < $1` as the position). Then `--reads` position
//!    reads of random fans with the whole queue still waiting (closed loop, `--concurrency`
//!    readers), and the memory each queued fan costs (Redis: `used_memory` before and after;
//!    memory: the process's resident set before and after, nothing else running).
//! 2. Through HTTP: the admission service in process (its admitter running at `--rate` fans/s),
//!    on Redis and on memory. `--fans` fans each sign in (a token made beforehand), join in one
//!    burst, then poll as they are told (`poll_after_ms`) for `--poll-seconds`: joins/s, status
//!    latency (p50/p99/max) and the requests/s the pollers make, and the admission rate
//!    achieved against the set one.

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use admission::store::{Place, QueueStore, memory::MemoryQueueStore, redis::RedisQueueStore};
use anyhow::Context;
use clap::Parser;
use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use platform::{
    auth::Role,
    testing::{self, TestIssuer},
};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Fans in the burst.
    #[arg(long, default_value_t = 100_000)]
    fans: usize,
    /// Requests in flight during the burst and the store-level reads.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Store-level position reads.
    #[arg(long, default_value_t = 50_000)]
    reads: usize,
    /// The admission rate set for the HTTP scenarios (fans per second).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// How long the fans poll as told in the HTTP scenarios.
    #[arg(long, default_value_t = 40.0)]
    poll_seconds: f64,
    /// PostgreSQL connections of the baseline's pool.
    #[arg(long, default_value_t = 40)]
    pg_pool: u32,
    /// Which scenarios: all, store, http, redis, memory, postgres.
    #[arg(long, default_value = "all")]
    only: String,
}

impl Args {
    fn wants(&self, part: &str, backend: &str) -> bool {
        matches!(self.only.as_str(), "all") || self.only == part || self.only == backend
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn line(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A queue the store-level scenario fills and reads.
enum Queue {
    Store(Store),
    Postgres(Postgres),
}

impl Queue {
    async fn join(&self, account: Uuid, token: &str) -> anyhow::Result<u64> {
        match self {
            Self::Store(q) => q.join(account, token).await,
            Self::Postgres(q) => q.join(account, token).await,
        }
    }

    async fn ahead(&self, token: &str) -> anyhow::Result<u64> {
        match self {
            Self::Store(q) => q.ahead(token).await,
            Self::Postgres(q) => q.ahead(token).await,
        }
    }
}

struct Store {
    store: Arc<dyn QueueStore>,
    perf: Uuid,
}

impl Store {
    async fn join(&self, account: Uuid, token: &str) -> anyhow::Result<u64> {
        let j = self.store.join(self.perf, account, token, now_ms()).await?;
        match j.place {
            Place::Waiting { ahead } => Ok(ahead),
            other => anyhow::bail!("joined into {other:?}"),
        }
    }
    async fn ahead(&self, token: &str) -> anyhow::Result<u64> {
        match self
            .store
            .status(self.perf, token, now_ms())
            .await?
            .map(|f| f.place)
        {
            Some(Place::Waiting { ahead }) => Ok(ahead),
            other => anyhow::bail!("status {other:?}"),
        }
    }
}

/// The naive baseline: one table, the serial id as the place.
struct Postgres {
    pool: PgPool,
    perf: Uuid,
}

impl Postgres {
    async fn join(&self, account: Uuid, token: &str) -> anyhow::Result<u64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO queue (performance_id, account, token) VALUES ($1, $2, $3)
             ON CONFLICT (performance_id, account) DO UPDATE SET account = excluded.account
             RETURNING id",
        )
        .bind(self.perf)
        .bind(account)
        .bind(token)
        .fetch_one(&self.pool)
        .await?;
        Ok(id as u64)
    }
    async fn ahead(&self, token: &str) -> anyhow::Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM queue
             WHERE performance_id = $1
               AND id < (SELECT id FROM queue WHERE performance_id = $1 AND token = $2)",
        )
        .bind(self.perf)
        .bind(token)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

struct StoreFigures {
    joins_per_sec: f64,
    join: Histogram<u64>,
    read: Histogram<u64>,
    reads_per_sec: f64,
}

async fn store_level(queue: Arc<Queue>, args: &Args) -> anyhow::Result<StoreFigures> {
    let fans: Arc<Vec<(Uuid, String)>> = Arc::new(
        (0..args.fans)
            .map(|_| (Uuid::new_v4(), Uuid::new_v4().simple().to_string()))
            .collect(),
    );
    let join_h = Arc::new(Mutex::new(histogram()));
    let started = Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    stream::iter(0..args.fans)
        .for_each_concurrent(args.concurrency, |i| {
            let (queue, fans, join_h, errors) =
                (queue.clone(), fans.clone(), join_h.clone(), errors.clone());
            async move {
                let t = Instant::now();
                let r = queue.join(fans[i].0, &fans[i].1).await;
                let us = t.elapsed().as_micros() as u64;
                if r.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                let _ = join_h.lock().await.record(us.max(1));
            }
        })
        .await;
    let joins_per_sec = args.fans as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        errors.load(Ordering::Relaxed) == 0,
        "{} joins failed",
        errors.load(Ordering::Relaxed)
    );
    let read_h = Arc::new(Mutex::new(histogram()));
    let started = Instant::now();
    stream::iter(0..args.reads)
        .for_each_concurrent(args.concurrency, |_| {
            let (queue, fans, read_h, errors) =
                (queue.clone(), fans.clone(), read_h.clone(), errors.clone());
            async move {
                let i = rand::random::<u64>() as usize % fans.len();
                let t = Instant::now();
                let r = queue.ahead(&fans[i].1).await;
                let us = t.elapsed().as_micros() as u64;
                if r.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                let _ = read_h.lock().await.record(us.max(1));
            }
        })
        .await;
    let reads_per_sec = args.reads as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        errors.load(Ordering::Relaxed) == 0,
        "{} reads failed",
        errors.load(Ordering::Relaxed)
    );
    let join = join_h.lock().await.clone();
    let read = read_h.lock().await.clone();
    Ok(StoreFigures {
        joins_per_sec,
        join,
        read,
        reads_per_sec,
    })
}

fn report_store(name: &str, f: &StoreFigures, fans: usize, memory: Option<f64>) {
    println!(
        "store {name:<8} {fans} joins: {:>8.0}/s (join {}) | position reads at {fans} queued: {:>8.0}/s ({}){}",
        f.joins_per_sec,
        line(&f.join),
        f.reads_per_sec,
        line(&f.read),
        memory.map_or(String::new(), |b| format!(" | {b:.0} B per queued fan")),
    );
}

/// Opens a queue on `store` for the store-level scenario: an empty draw, so joins go in line.
async fn opened(store: &Arc<dyn QueueStore>) -> anyhow::Result<Uuid> {
    let perf = Uuid::now_v7();
    store.close_prequeue(perf).await?;
    store.commit_draw(perf, &[]).await?;
    Ok(perf)
}

async fn store_memory(args: &Args) -> anyhow::Result<()> {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueueStore::new());
    let perf = opened(&store).await?;
    // Memory: the store alone, joined from one task (nothing else allocating meanwhile).
    let before = rss_bytes();
    for _ in 0..args.fans {
        let t = Uuid::new_v4().simple().to_string();
        store.join(perf, Uuid::new_v4(), &t, now_ms()).await?;
    }
    let per_fan = (rss_bytes().saturating_sub(before)) as f64 / args.fans as f64;
    store.forget(perf).await?;
    let perf = opened(&store).await?;
    let f = store_level(Arc::new(Queue::Store(Store { store, perf })), args).await?;
    report_store("memory", &f, args.fans, Some(per_fan));
    Ok(())
}

async fn store_redis(args: &Args) -> anyhow::Result<()> {
    let ns = format!("bench-{}:", Uuid::new_v4().simple());
    let redis = Arc::new(RedisQueueStore::connect_in(&testing::redis_url(), &ns).await?);
    let store: Arc<dyn QueueStore> = redis.clone();
    let perf = opened(&store).await?;
    let before = redis.used_memory().await?;
    let f = store_level(
        Arc::new(Queue::Store(Store {
            store: store.clone(),
            perf,
        })),
        args,
    )
    .await?;
    let per_fan = (redis.used_memory().await?.saturating_sub(before)) as f64 / args.fans as f64;
    store.forget(perf).await?;
    report_store("redis", &f, args.fans, Some(per_fan));
    Ok(())
}

async fn store_postgres(args: &Args) -> anyhow::Result<()> {
    let db = testing::TestDb::new("bench_admission", None).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.pg_pool)
        .connect_with(platform::db::server_options(&db.server_url)?.database(&db.name))
        .await?;
    sqlx::query(
        "CREATE TABLE queue (id bigserial PRIMARY KEY, performance_id uuid NOT NULL,
                             account uuid NOT NULL, token text NOT NULL,
                             UNIQUE (performance_id, account))",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX ON queue (performance_id, token)")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE INDEX ON queue (performance_id, id)")
        .execute(&pool)
        .await?;
    let size = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT pg_total_relation_size('queue')")
            .fetch_one(&pool)
            .await
    };
    let before = size(pool.clone()).await?;
    let queue = Arc::new(Queue::Postgres(Postgres {
        pool: pool.clone(),
        perf: Uuid::now_v7(),
    }));
    let result = store_level(queue, args).await;
    let after = size(pool.clone()).await?;
    pool.close().await;
    db.drop_database().await;
    let f = result?;
    report_store(
        "postgres",
        &f,
        args.fans,
        Some((after - before) as f64 / args.fans as f64),
    );
    Ok(())
}

/// The HTTP scenario on `backend`.
async fn http(backend: &str, args: &Args) -> anyhow::Result<()> {
    let infra = testing::infra("bench_adm");
    infra.bus.ensure_topics(contracts::topics::ALL).await?;
    let issuer = TestIssuer::default();
    let ns = format!("bench-{}:", Uuid::new_v4().simple());
    let store: Arc<dyn QueueStore> = match backend {
        "redis" => Arc::new(RedisQueueStore::connect_in(&testing::redis_url(), &ns).await?),
        _ => Arc::new(MemoryQueueStore::new()),
    };
    let config = admission::Config {
        rate_per_sec: args.rate,
        join_limit_per_address: u64::MAX,
        ..admission::Config::default()
    };
    let service = admission::start_with(
        &config,
        &infra,
        admission::Overrides {
            verifier: Some(issuer.verifier()),
            store: Some(store.clone()),
        },
    )
    .await
    .context("starting the admission service")?;
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let result = http_run(backend, &server, &infra, &issuer, store.clone(), args).await;
    infra.shutdown.cancel();
    bench::cleanup::drop_databases(&infra, &[admission::NAME]).await;
    if let Ok(perf) = &result {
        store.forget(*perf).await?;
    }
    result.map(drop)
}

async fn http_run(
    backend: &str,
    server: &testing::TestServer,
    infra: &platform::service::Infra,
    issuer: &TestIssuer,
    store: Arc<dyn QueueStore>,
    args: &Args,
) -> anyhow::Result<Uuid> {
    // A room that opened a second ago, as the catalog publishes it.
    let now = chrono::Utc::now();
    let perf = Uuid::now_v7();
    // From JSON, so fields the header gains with defaults need no change here.
    let published: contracts::events::PerformancePublished =
        serde_json::from_value(serde_json::json!({
            "performance_id": perf,
            "event_id": Uuid::now_v7(),
            "venue_id": Uuid::now_v7(),
            "starts_at": now + chrono::Duration::days(7),
            "ticket_limit": 4,
            "waiting_room": true,
            "sale_opens_at": now - chrono::Duration::seconds(1),
            "sale_closes_at": now + chrono::Duration::days(6),
            "areas": [],
            "prices": [],
            "revision": 1,
            "seat_chunks": 0,
            "seat_count": 0,
            "seat_digest": "",
        }))?;
    let env = contracts::Envelope::new(&published)?;
    infra.bus.publish(contracts::topics::CATALOG, &env).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 4)
        .build()?;
    let draw = server.url(&format!("/api/v1/performances/{perf}/queue/draw"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(&draw)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
            && store.drawn(perf).await?
        {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the room never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Pause while the burst arrives, so every fan is still queued when the polling starts.
    let admin = issuer.token(Uuid::now_v7(), &[Role::Admin]);
    client
        .post(server.url(&format!("/api/v1/admin/rooms/{perf}/pause")))
        .bearer_auth(&admin)
        .send()
        .await?
        .error_for_status()?;
    let fans: Vec<(Uuid, String)> = (0..args.fans)
        .map(|_| {
            let id = Uuid::now_v7();
            (id, issuer.token(id, &[Role::Buyer]))
        })
        .collect();
    let fans = Arc::new(fans);
    let join_url = server.url(&format!("/api/v1/performances/{perf}/queue"));
    let join_h = Arc::new(Mutex::new(histogram()));
    // Each fan's place: its index, token and the pause it was told.
    let places: Arc<Mutex<Vec<(usize, String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    stream::iter(0..args.fans)
        .for_each_concurrent(args.concurrency, |i| {
            let (client, url, fans, join_h, places, errors) = (
                client.clone(),
                join_url.clone(),
                fans.clone(),
                join_h.clone(),
                places.clone(),
                errors.clone(),
            );
            async move {
                let t = Instant::now();
                let r = client.post(&url).bearer_auth(&fans[i].1).send().await;
                let body: Option<Value> = match r {
                    Ok(r) if r.status().is_success() => r.json().await.ok(),
                    _ => None,
                };
                let _ = join_h
                    .lock()
                    .await
                    .record((t.elapsed().as_micros() as u64).max(1));
                match body {
                    Some(b) => places.lock().await.push((
                        i,
                        b["queue_token"].as_str().unwrap_or_default().to_owned(),
                        b["poll_after_ms"].as_u64().unwrap_or(1000),
                    )),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .await;
    let joins_per_sec = args.fans as f64 / started.elapsed().as_secs_f64();
    let join_errors = errors.load(Ordering::Relaxed);
    // Resume at the set rate; every fan polls as told until the window ends.
    client
        .post(server.url(&format!("/api/v1/admin/rooms/{perf}/resume")))
        .bearer_auth(&admin)
        .send()
        .await?
        .error_for_status()?;
    // The room's counters on a client of their own (the pollers' pool may be busy), retried
    // across a connection the server closed as it was reused.
    let admin_client = reqwest::Client::new();
    let admitted_at = |_c: reqwest::Client, url: String, admin: String| {
        let c = admin_client.clone();
        async move {
            let mut last = None;
            for _ in 0..5 {
                match c.get(&url).bearer_auth(&admin).send().await {
                    Ok(r) => {
                        let r: Value = r.error_for_status()?.json().await?;
                        return anyhow::Ok(r["active"].as_u64().unwrap_or(0));
                    }
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(last.map_or_else(|| anyhow::anyhow!("no attempt"), anyhow::Error::from))
        }
    };
    // One machine cannot hold 100,000 connections: at most this many polls are in flight, and
    // a poll's latency is timed from when it goes out.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.concurrency * 4));
    let room_url = server.url(&format!("/api/v1/admin/rooms/{perf}"));
    let t0 = Instant::now();
    let a0 = admitted_at(client.clone(), room_url.clone(), admin.clone()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let status_h = Arc::new(Mutex::new(histogram()));
    let polls = Arc::new(AtomicU64::new(0));
    let poll_errors = Arc::new(AtomicU64::new(0));
    // Why polls failed: status code and problem code (or the transport error), counted.
    let why: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let window = Duration::from_secs_f64(args.poll_seconds);
    let mut tasks = Vec::new();
    for (i, token, told) in places.lock().await.drain(..) {
        // Fans already polling as told, seen at a moment: each one's next poll is somewhere in
        // its pause (a uniform phase), not all at once when the burst ended.
        let first_wait = rand::random_range(0..=told);
        let in_flight = in_flight.clone();
        let why = why.clone();
        let (client, fans, status_h, polls, poll_errors, stop) = (
            client.clone(),
            fans.clone(),
            status_h.clone(),
            polls.clone(),
            poll_errors.clone(),
            stop.clone(),
        );
        let url = server.url(&format!("/api/v1/performances/{perf}/queue/{token}"));
        tasks.push(tokio::spawn(async move {
            let mut wait = first_wait;
            loop {
                let left = window.saturating_sub(t0.elapsed());
                if Duration::from_millis(wait) >= left {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(wait)).await;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(permit) = in_flight.acquire().await else {
                    return;
                };
                let t = Instant::now();
                let r = client.get(&url).bearer_auth(&fans[i].1).send().await;
                let body: Option<Value> = match r {
                    Ok(r) if r.status().is_success() => r.json().await.ok(),
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let code = r.json::<Value>().await.ok().map(|b| b["code"].to_string());
                        *why.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(format!("{status} {}", code.unwrap_or_default()))
                            .or_default() += 1;
                        None
                    }
                    Err(e) => {
                        let kind = if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "transport"
                        };
                        *why.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(kind.to_owned())
                            .or_default() += 1;
                        None
                    }
                };
                let us = (t.elapsed().as_micros() as u64).max(1);
                drop(permit);
                polls.fetch_add(1, Ordering::Relaxed);
                let _ = status_h.lock().await.record(us);
                match body {
                    Some(b) if b["status"] == "waiting" => {
                        wait = b["poll_after_ms"].as_u64().unwrap_or(1000);
                    }
                    Some(_) => return,
                    None => {
                        poll_errors.fetch_add(1, Ordering::Relaxed);
                        wait = 1000;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(window).await;
    let t1 = Instant::now();
    let a1 = admitted_at(client.clone(), room_url.clone(), admin.clone()).await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let achieved = (a1 - a0) as f64 / (t1 - t0).as_secs_f64();
    let status = status_h.lock().await.clone();
    let join = join_h.lock().await.clone();
    println!(
        "http  {:<8} {} joins: {:>6.0}/s (join {}; {} failed) | polling as told for {:.0} s: {:>5.0} status/s ({}; {} failed) | admitted {:.1}/s at a set {:.0}/s ({:+.1} %)",
        backend,
        args.fans,
        joins_per_sec,
        line(&join),
        join_errors,
        args.poll_seconds,
        polls.load(Ordering::Relaxed) as f64 / args.poll_seconds,
        line(&status),
        poll_errors.load(Ordering::Relaxed),
        achieved,
        args.rate,
        (achieved / args.rate - 1.0) * 100.0,
    );
    let why = why.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !why.is_empty() {
        println!("      failed polls by answer: {why:?}");
    }
    Ok(perf)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("admission_queue {args:?}");
    if args.wants("store", "memory") {
        store_memory(&args).await?;
    }
    if args.wants("store", "redis") {
        store_redis(&args).await?;
    }
    if args.wants("store", "postgres") {
        store_postgres(&args).await?;
    }
    for backend in ["redis", "memory"] {
        if args.wants("http", backend) {
            http(backend, &args).await?;
        }
    }
    Ok(())
}
