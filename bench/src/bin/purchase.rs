//! A sold-out Jamsil game, bought end to end: `boxoffice standalone` (the release binary, its own
//! process) on the local PostgreSQL, with the sandbox PG answering at zero latency, and buyers
//! going through the gateway as a browser would:
//!
//! 1. `POST /api/v1/holds {performance_id, grade, quantity}` (best available),
//! 2. `POST /api/v1/orders {hold_id}` + `Idempotency-Key`,
//! 3. the PG checkout (`POST /sandbox/pg/v1/sandbox/checkouts`, the sandbox's call for automated
//!    buyers),
//! 4. `POST /api/v1/payments/confirm` + `Idempotency-Key` (retried on `order_not_ready`: the
//!    order's event has not reached the payment service yet),
//! 5. `GET /api/v1/orders/{id}?wait_ms=5000` until `confirmed` (the saga over the bus: tickets issued, seats
//!    sold).
//!
//! `--concurrency` buyers are in the journey at once (closed loop: each starts the next buyer's
//! journey when its own ends) until every seat of the seeded Jamsil Baseball Stadium (23,750) is
//! sold. Reports tickets/s from the first hold to the last confirmation, each step's p50/p99/max,
//! and then checks the books with `order::invariants` (no seat in two orders, every approved
//! payment confirmed or refunded, nothing stuck) and that the tickets OrderDB issued are exactly
//! the tickets buyers saw confirmed.
//!
//! Baseline in the same run: `GET /healthz` through the gateway at the same concurrency (what
//! this HTTP stack on this machine does with no work behind it).
//!
//! ```text
//! cargo build --release -p boxoffice -p bench
//! target/release/purchase --concurrency 100
//! target/release/purchase --concurrency 100 --max-orders 2000 --cluster  # distributed mode
//! ```
//!
//! Before the clock starts, and outside what is measured: buyers sign up and log in (argon2 made
//! cheap and the per-address sign-up limit lifted for the run, since every buyer comes from
//! 127.0.0.1), and the event is created and published. The run's databases are dropped at the end
//! (`--keep` keeps them).

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// The `boxoffice` binary (default: `$CARGO_TARGET_DIR/release/boxoffice`).
    #[arg(long)]
    boxoffice: Option<PathBuf>,
    /// Buyers in the journey at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Tickets per order (the event's ticket limit too).
    #[arg(long, default_value_t = 4)]
    tickets: u32,
    /// Stop after this many orders even if seats are left (0: until sold out).
    #[arg(long, default_value_t = 0)]
    max_orders: usize,
    /// The gateway's port.
    #[arg(long, default_value_t = 18_480)]
    port: u16,
    /// Seconds of the `GET /healthz` baseline.
    #[arg(long, default_value_t = 5.0)]
    baseline_seconds: f64,
    /// Keep the run's databases.
    #[arg(long)]
    keep: bool,
    /// Runs the platform as `boxoffice cluster` (distributed mode on this machine: every service
    /// its own process, seat and order x2) instead of standalone, on the Redis and broker of
    /// BOXOFFICE_TEST_REDIS_URL and BOXOFFICE_TEST_KAFKA_BROKERS (`scripts/infra.sh up` prints
    /// them). Its Redis keys stay behind.
    #[arg(long)]
    cluster: bool,
}

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench-admin-password-1";
const BUYER_PASSWORD: &str = "bench-buyer-password-1";

/// The steps of a purchase, in order.
const STEPS: [&str; 6] = [
    "hold",
    "order",
    "checkout",
    "confirm",
    "confirmed",
    "journey",
];

struct Stats {
    steps: Vec<Mutex<Histogram<u64>>>,
    orders: AtomicU64,
    tickets: AtomicU64,
    confirm_retries: AtomicU64,
    polls: AtomicU64,
    failures: Mutex<Vec<String>>,
    last_confirmed: Mutex<Option<Instant>>,
}

impl Stats {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            steps: STEPS
                .iter()
                .map(|_| histogram().map(Mutex::new))
                .collect::<anyhow::Result<_>>()?,
            orders: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            confirm_retries: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            last_confirmed: Mutex::new(None),
        })
    }

    fn record(&self, step: usize, d: Duration) {
        if let Ok(mut h) = self.steps[step].lock() {
            let _ = h.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
        }
    }

    fn fail(&self, what: String) {
        if let Ok(mut f) = self.failures.lock() {
            f.push(what);
        }
    }
}

/// Microseconds up to two minutes, three significant figures.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

/// The platform under test: a `boxoffice standalone` child, killed on drop.
struct Standalone {
    child: std::process::Child,
    base: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // SIGTERM first: `boxoffice cluster` stops its processes on it (on SIGKILL they would
        // live on); then SIGKILL whatever is left after 30 s.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await?;
        let status = res.status();
        let bytes = res.bytes().await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        Ok((status, value))
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": email, "password": password})),
                None,
            )
            .await?;
        if status != StatusCode::OK {
            bail!("login {email}: {status} {body}");
        }
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access_token")
    }
}

fn binary(args: &Args) -> PathBuf {
    args.boxoffice.clone().unwrap_or_else(|| {
        let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        PathBuf::from(dir).join("release").join("boxoffice")
    })
}

async fn start(
    args: &Args,
    db_url: &str,
    prefix: &str,
    data: &std::path::Path,
) -> anyhow::Result<Standalone> {
    let bin = binary(args);
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (`cargo build --release -p boxoffice`) or pass --boxoffice",
            bin.display()
        );
    }
    let log = std::fs::File::create(data.join("standalone.log"))?;
    let port = args.port.to_string();
    let data_dir = data.to_string_lossy();
    let mut cmd = std::process::Command::new(&bin);
    if args.cluster {
        cmd.args(["cluster", "--port", &port])
            .env(
                "BOXOFFICE_REDIS__URL",
                std::env::var("BOXOFFICE_TEST_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            )
            .env(
                "BOXOFFICE_BUS__KAFKA_BROKERS",
                std::env::var("BOXOFFICE_TEST_KAFKA_BROKERS")
                    .unwrap_or_else(|_| "127.0.0.1:9092".into()),
            );
    } else {
        cmd.args(["standalone", "--port", &port, "--data-dir", &data_dir]);
    }
    let child = cmd
        .args([
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
        ])
        .env("BOXOFFICE_DATABASE__URL", db_url)
        .env("BOXOFFICE_DATABASE__NAME_PREFIX", prefix)
        .env("BOXOFFICE_FAKES__PG__LATENCY_MS", "0")
        .env("BOXOFFICE_USER__ARGON2__MEMORY_KIB", "64")
        .env("BOXOFFICE_USER__ARGON2__ITERATIONS", "1")
        .env("BOXOFFICE_USER__THROTTLE__SIGNUP_PER_CLIENT", "10000000")
        .env("BOXOFFICE_LOG__LEVEL", "warn")
        .env("BOXOFFICE_LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Standalone {
        child,
        base: format!("http://127.0.0.1:{}", args.port),
    })
}

/// Waits until the gateway says ready.
async fn ready(
    api: &Api,
    standalone: &mut Standalone,
    data: &std::path::Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = standalone.child.try_wait()? {
            let log = std::fs::read_to_string(data.join("standalone.log")).unwrap_or_default();
            bail!("standalone exited with {status}:\n{log}");
        }
        if let Ok(res) = api.http.get(format!("{}/readyz", api.base)).send().await
            && res.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("standalone not ready after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates and publishes a game at the seeded Jamsil Baseball Stadium, on sale now, with every
/// grade priced; returns the performance id and the grades with their seat counts.
async fn game(
    api: &Api,
    admin: &str,
    tickets: u32,
) -> anyhow::Result<(String, Vec<(String, u64)>)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let venue = loop {
        let (status, venues) = api
            .call(Method::GET, "/api/v1/venues", None, None, None)
            .await?;
        let found = venues["items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|v| v["name_en"] == "Jamsil Baseball Stadium")
                .cloned()
        });
        if let Some(v) = found {
            break v;
        }
        if Instant::now() > deadline {
            bail!("no seeded Jamsil venue ({status}): {venues}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let venue_id = venue["id"].as_str().context("venue id")?.to_owned();
    let (status, detail) = api
        .call(
            Method::GET,
            &format!("/api/v1/venues/{venue_id}"),
            None,
            None,
            None,
        )
        .await?;
    if status != StatusCode::OK {
        bail!("venue: {status} {detail}");
    }
    let mut counts: Vec<(String, u64)> = Vec::new();
    for area in detail["areas"].as_array().context("areas")? {
        let grade = area["grade"].as_str().context("grade")?.to_owned();
        let n: u64 = if area["kind"] == "standing" {
            area["capacity"].as_u64().unwrap_or(0)
        } else {
            area["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| r["seats"].as_array().map_or(0, |s| s.len() as u64))
                        .sum()
                })
                .unwrap_or(0)
        };
        match counts.iter_mut().find(|(g, _)| *g == grade) {
            Some((_, c)) => *c += n,
            None => counts.push((grade, n)),
        }
    }
    let now = chrono::Utc::now();
    let starts = now + chrono::Duration::days(30);
    let tiers: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, (g, _))| json!({"grade": g, "price_krw": 8_000 + 1_000 * i as i64}))
        .collect();
    let event = json!({
        "kind": "baseball",
        "title": "벤치마크 매진 경기 Bench Sell-out Game",
        "venue_id": venue_id,
        "ticket_limit": tickets,
        "waiting_room": false,
        "price_tiers": tiers,
        "performances": [{
            "starts_at": starts.to_rfc3339(),
            "sale_windows": [{"kind": "general",
                "opens_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
                "closes_at": (starts - chrono::Duration::hours(1)).to_rfc3339()}]
        }]
    });
    let (status, created) = api
        .call(
            Method::POST,
            "/api/v1/admin/events",
            Some(admin),
            Some(&event),
            None,
        )
        .await?;
    if status != StatusCode::CREATED {
        bail!("creating the event: {status} {created}");
    }
    let perf = created["performances"][0]["id"]
        .as_str()
        .context("performance id")?
        .to_owned();
    let (status, published) = api
        .call(
            Method::POST,
            &format!("/api/v1/admin/performances/{perf}/publish"),
            Some(admin),
            Some(&json!({})),
            None,
        )
        .await?;
    if !status.is_success() {
        bail!("publishing: {status} {published}");
    }
    // The seat service has it once its map answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, _) = api
            .call(
                Method::GET,
                &format!("/api/v1/performances/{perf}/seats?format=compact"),
                None,
                None,
                None,
            )
            .await?;
        if status == StatusCode::OK {
            break;
        }
        if Instant::now() > deadline {
            bail!("the seat map of {perf} never answered ({status})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((perf, counts))
}

/// Signs up and logs in `n` buyers, `parallel` at a time.
async fn buyers(api: &Api, run: &str, n: usize, parallel: usize) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let made = AtomicUsize::new(0);
    let tokens: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let made = &made;
            async move {
                let email = format!("buyer-{run}-{i}@example.com");
                let (status, body) = api
                    .call(
                        Method::POST,
                        "/api/v1/users",
                        None,
                        Some(&json!({"email": email, "password": BUYER_PASSWORD, "name": format!("Buyer {i}")})),
                        None,
                    )
                    .await?;
                if status != StatusCode::CREATED {
                    bail!("sign-up {i}: {status} {body}");
                }
                let token = api.login(&email, BUYER_PASSWORD).await?;
                let done = made.fetch_add(1, Ordering::Relaxed) + 1;
                if done.is_multiple_of(1000) {
                    println!("  {done} buyers signed up");
                }
                Ok(token)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    tokens.into_iter().collect()
}

/// The journey's shared state.
struct Journey {
    api: Api,
    perf: String,
    tickets: u32,
    /// Grades with seats possibly left.
    grades: Mutex<Vec<String>>,
    stats: Stats,
    sold_out: AtomicBool,
}

enum End {
    Bought,
    GradeSoldOut(String),
}

impl Journey {
    fn pick_grade(&self) -> Option<String> {
        use rand::seq::IndexedRandom;
        let grades = self.grades.lock().ok()?;
        grades.choose(&mut rand::rng()).cloned()
    }

    fn drop_grade(&self, grade: &str) {
        if let Ok(mut g) = self.grades.lock() {
            g.retain(|x| x != grade);
            if g.is_empty() {
                self.sold_out.store(true, Ordering::Relaxed);
            }
        }
    }

    async fn buy(&self, token: &str, grade: &str) -> anyhow::Result<End> {
        let api = &self.api;
        let started = Instant::now();
        // 1. Hold.
        let t = Instant::now();
        let (status, hold) = api
            .call(
                Method::POST,
                "/api/v1/holds",
                Some(token),
                Some(
                    &json!({"performance_id": self.perf, "grade": grade, "quantity": self.tickets}),
                ),
                None,
            )
            .await?;
        if status == StatusCode::CONFLICT && hold["code"] == "seat_unavailable" {
            return Ok(End::GradeSoldOut(grade.to_owned()));
        }
        if status != StatusCode::CREATED {
            bail!("hold: {status} {hold}");
        }
        self.stats.record(0, t.elapsed());
        let hold_id = hold["hold_id"].as_str().context("hold_id")?;
        let seats = hold["seat_ids"].as_array().map_or(0, Vec::len) as u64;
        // 2. Order.
        let t = Instant::now();
        let key = Uuid::new_v4().to_string();
        let (status, order) = api
            .call(
                Method::POST,
                "/api/v1/orders",
                Some(token),
                Some(&json!({"hold_id": hold_id})),
                Some(&key),
            )
            .await?;
        if status != StatusCode::CREATED {
            bail!("order: {status} {order}");
        }
        self.stats.record(1, t.elapsed());
        let order_id = order["order_id"].as_str().context("order_id")?.to_owned();
        let amount = order["amount"].as_i64().context("amount")?;
        // 3. The PG checkout, as the buyer's browser would.
        let t = Instant::now();
        let (status, checkout) = api
            .call(
                Method::POST,
                "/sandbox/pg/v1/sandbox/checkouts",
                None,
                Some(&json!({"orderId": order_id, "amount": amount, "outcome": "approved"})),
                None,
            )
            .await?;
        if status != StatusCode::OK {
            bail!("checkout: {status} {checkout}");
        }
        self.stats.record(2, t.elapsed());
        let payment_key = checkout["paymentKey"].as_str().context("paymentKey")?;
        // 4. Confirm (the order's event may not have reached the payment service yet).
        let t = Instant::now();
        let key = Uuid::new_v4().to_string();
        let body = json!({"payment_key": payment_key, "order_id": order_id, "amount": amount});
        let mut wait = Duration::from_millis(5);
        loop {
            let (status, paid) = api
                .call(
                    Method::POST,
                    "/api/v1/payments/confirm",
                    Some(token),
                    Some(&body),
                    Some(&key),
                )
                .await?;
            if status.is_success() {
                break;
            }
            let code = paid["code"].as_str().unwrap_or_default();
            if (code == "order_not_ready" || code == "confirm_in_progress")
                && t.elapsed() < Duration::from_secs(30)
            {
                self.stats.confirm_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(100));
                continue;
            }
            bail!("confirm: {status} {paid}");
        }
        self.stats.record(3, t.elapsed());
        // 5. Confirmed: tickets issued, seats sold.
        let t = Instant::now();
        loop {
            self.stats.polls.fetch_add(1, Ordering::Relaxed);
            let (status, seen) = api
                .call(
                    Method::GET,
                    &format!("/api/v1/orders/{order_id}?wait_ms=5000"),
                    Some(token),
                    None,
                    None,
                )
                .await?;
            if status != StatusCode::OK {
                bail!("order {order_id}: {status} {seen}");
            }
            match seen["status"].as_str() {
                Some("confirmed") => break,
                // The service answered at a change or after its wait: ask again at once.
                Some("paid" | "pending_payment") if t.elapsed() < Duration::from_secs(60) => {}
                _ => bail!("order {order_id} ended {}", seen["status"]),
            }
        }
        let now = Instant::now();
        self.stats.record(4, t.elapsed());
        self.stats.record(5, started.elapsed());
        self.stats.orders.fetch_add(1, Ordering::Relaxed);
        self.stats.tickets.fetch_add(seats, Ordering::Relaxed);
        if let Ok(mut last) = self.stats.last_confirmed.lock() {
            *last = Some(last.map_or(now, |l| l.max(now)));
        }
        Ok(End::Bought)
    }
}

/// `GET /healthz` back to back at `concurrency` for `seconds`: requests/s and p99.
async fn baseline(api: &Api, concurrency: usize, seconds: f64) -> anyhow::Result<(f64, Duration)> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let hist = Arc::new(Mutex::new(histogram()?));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (api, hist, count) = (api.clone(), hist.clone(), count.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let t = Instant::now();
                if let Ok(res) = api.http.get(format!("{}/healthz", api.base)).send().await
                    && res.status().is_success()
                    && res.bytes().await.is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut h) = hist.lock() {
                        let _ = h.record(
                            u64::try_from(t.elapsed().as_micros())
                                .unwrap_or(u64::MAX)
                                .max(1),
                        );
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let p99 = hist.lock().map(|h| h.value_at_quantile(0.99)).unwrap_or(0);
    Ok((
        count.load(Ordering::Relaxed) as f64 / seconds,
        Duration::from_micros(p99),
    ))
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// A small pool on database `db` of the server of `db_url` (a TCP or a Unix-socket URL, such as
/// `postgres://postgres@localhost:5432/?host=/var/run/postgresql`).
async fn pool(db_url: &str, db: &str) -> anyhow::Result<sqlx::PgPool> {
    let opts = platform::db::server_options(db_url)?.database(db);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db_url = std::env::var("BOXOFFICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let prefix = format!("bench_purchase_{run}_");
    let data = std::env::temp_dir().join(format!("boxoffice-bench-purchase-{run}"));
    std::fs::create_dir_all(&data)?;
    println!(
        "starting {} {} (databases {prefix}*, log {})…",
        binary(&args).display(),
        if args.cluster {
            "cluster"
        } else {
            "standalone"
        },
        data.join("standalone.log").display()
    );
    let mut standalone = start(&args, &db_url, &prefix, &data).await?;
    let api = Api {
        base: standalone.base.clone(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency * 2)
            .timeout(Duration::from_secs(60))
            .build()?,
    };
    let result = bench(&args, &api, &mut standalone, &data, &db_url, &prefix, &run).await;
    drop(standalone);
    if !args.keep {
        if let Ok(opts) = platform::db::server_options(&db_url) {
            use sqlx::{ConnectOptions, Connection};
            if let Ok(mut conn) = opts.database("postgres").connect().await {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
                        .bind(format!("{prefix}%"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap_or_default();
                for name in names {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
                let _ = conn.close().await;
            }
        }
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

async fn bench(
    args: &Args,
    api: &Api,
    standalone: &mut Standalone,
    data: &std::path::Path,
    db_url: &str,
    prefix: &str,
    run: &str,
) -> anyhow::Result<()> {
    let boot = Instant::now();
    ready(api, standalone, data).await?;
    println!("ready in {:.1} s", boot.elapsed().as_secs_f64());
    let admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let (perf, counts) = game(api, &admin, args.tickets).await?;
    let seats: u64 = counts.iter().map(|(_, n)| n).sum();
    println!(
        "performance {perf}: {seats} seats in {} grades",
        counts.len()
    );
    let orders_needed = counts
        .iter()
        .map(|(_, n)| n.div_ceil(u64::from(args.tickets)) as usize)
        .sum::<usize>()
        + args.concurrency;
    let n_buyers = if args.max_orders > 0 {
        args.max_orders.min(orders_needed)
    } else {
        orders_needed
    };
    let t = Instant::now();
    let tokens = buyers(api, run, n_buyers, 8).await?;
    println!(
        "{} buyers signed up and logged in in {:.1} s",
        tokens.len(),
        t.elapsed().as_secs_f64()
    );

    let (healthz_rate, healthz_p99) =
        baseline(api, args.concurrency, args.baseline_seconds).await?;
    println!(
        "baseline: GET /healthz through the gateway, {} in flight: {healthz_rate:.0}/s, p99 {:?}",
        args.concurrency, healthz_p99
    );

    let journey = Arc::new(Journey {
        api: api.clone(),
        perf: perf.clone(),
        tickets: args.tickets,
        grades: Mutex::new(
            counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(g, _)| g.clone())
                .collect(),
        ),
        stats: Stats::new()?,
        sold_out: AtomicBool::new(false),
    });
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (journey, tokens, next) = (journey.clone(), tokens.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                if journey.sold_out.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { return };
                // A buyer whose grade is sold out tries another (each hold is its own attempt).
                loop {
                    let Some(grade) = journey.pick_grade() else {
                        return;
                    };
                    match journey.buy(token, &grade).await {
                        Ok(End::Bought) => break,
                        Ok(End::GradeSoldOut(g)) => journey.drop_grade(&g),
                        Err(e) => {
                            journey.stats.fail(format!("{e:#}"));
                            break;
                        }
                    }
                }
            }
        });
    }
    let progress = {
        let journey = journey.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let now = journey.stats.tickets.load(Ordering::Relaxed);
                println!(
                    "  {:>5.0} s: {now} tickets ({:.0}/s in the last 5 s)",
                    start.elapsed().as_secs_f64(),
                    (now - last) as f64 / 5.0
                );
                last = now;
            }
        })
    };
    while tasks.join_next().await.is_some() {}
    progress.abort();
    let stats = &journey.stats;
    let elapsed = stats
        .last_confirmed
        .lock()
        .ok()
        .and_then(|l| *l)
        .map_or(start.elapsed(), |l| l - start);
    let tickets = stats.tickets.load(Ordering::Relaxed);
    let orders = stats.orders.load(Ordering::Relaxed);
    let failures = stats.failures.lock().map(|f| f.clone()).unwrap_or_default();
    println!();
    println!(
        "sold {tickets} of {seats} seats in {orders} orders in {:.2} s: **{:.0} tickets/s** ({:.0} orders/s), {} in flight, {} failed",
        elapsed.as_secs_f64(),
        tickets as f64 / elapsed.as_secs_f64(),
        orders as f64 / elapsed.as_secs_f64(),
        args.concurrency,
        failures.len()
    );
    println!(
        "confirm retries (order not yet at the payment service): {}; order polls: {}",
        stats.confirm_retries.load(Ordering::Relaxed),
        stats.polls.load(Ordering::Relaxed)
    );
    println!();
    println!("| step | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (i, name) in STEPS.iter().enumerate() {
        if let Ok(h) = stats.steps[i].lock() {
            println!(
                "| {name} | {} | {} | {} | {} |",
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            );
        }
    }
    println!(
        "| baseline `GET /healthz` | {:.0}/s | | {} | |",
        healthz_rate,
        ms(u64::try_from(healthz_p99.as_micros()).unwrap_or(u64::MAX))
    );
    for f in failures.iter().take(10) {
        println!("failure: {f}");
    }

    // The books.
    let orders_db = pool(db_url, &format!("{prefix}order")).await?;
    let seats_db = pool(db_url, &format!("{prefix}seat")).await?;
    let payments_db = pool(db_url, &format!("{prefix}payment")).await?;
    let report = order::invariants::check(&orders_db, &seats_db, &payments_db, 30).await?;
    let issued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tickets t JOIN orders o ON o.order_id = t.order_id WHERE o.performance_id = $1::uuid AND o.status = 'confirmed'",
    )
    .bind(&perf)
    .fetch_one(&orders_db)
    .await?;
    println!();
    println!(
        "books: invariants {} ({} breaches); {issued} tickets issued in OrderDB, {tickets} seen confirmed by buyers",
        if report.ok() { "hold" } else { "BROKEN" },
        report.breaches.len()
    );
    for b in report.breaches.iter().take(10) {
        println!("breach: {b}");
    }
    if !report.ok() || u64::try_from(issued).unwrap_or(0) != tickets {
        bail!("the books do not balance");
    }
    Ok(())
}
