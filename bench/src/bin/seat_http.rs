//! Holds and the seat map as a buyer sees them: over HTTP through the gateway, beside the direct
//! hold-store call measured in the same run. Figures go to docs/benchmarks.md ("Through the
//! gateway") with this command:
//!
//! `cargo run --release -p bench --bin seat_http -- --seconds 5 --rates 500,2000`
//!
//! In this one process (2 runtime threads, like `seat_holds`): the seat service (Redis hold
//! store, its SeatDB and outbox on PostgreSQL, the in-memory bus, tokens checked against a
//! [`TestIssuer`], admission passes against a key signed as the admission service does), and the
//! gateway in front of it (`services/gateway`, a real HTTP hop). The load generator shares the
//! process and its two cores.
//!
//! Holds, for each offered rate (open loop on a fixed schedule, latency from the intended send
//! time; `--buyers` buyers with their own token, each asking for 2–4 adjacent seats in a random
//! row), one fresh stadium per arm:
//! 1. the Redis hold store called directly (`HoldStore::hold`, then `release`): the baseline,
//! 2. `POST /api/v1/holds` then `DELETE /api/v1/holds/{id}` on the seat service itself,
//! 3. the same through the gateway,
//! 4. the same through the gateway on a performance with a waiting room: every hold carries an
//!    admission pass that the seat service verifies.
//!
//! Hold latency is the POST's (or the store call's); the release's has its own columns.
//!
//! Seat map: `GET /api/v1/performances/{id}/seats?format=compact`, `--readers` readers at
//! `--read-rate` requests/s in all (open loop), on the seat service and through the gateway,
//! while ~200 holds/s placed on the store change the map.

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use bench::{
    open_loop::{self, Figures, Instant, Outcome, Plan, Sample},
    stadium::{stadium, wish},
};
use clap::Parser;
use contracts::{admission::AdmissionClaims, events::PerformanceSpec, topics};
use platform::{
    auth::{Role, SigningKey},
    service::{Directory, Infra},
    testing::TestIssuer,
};
use seat::{
    Overrides,
    admission_pass::{self, PassVerifier},
    store::{Hold, HoldError, HoldStatus, HoldStore, redis::RedisStore},
};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Measured seconds per arm.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured seconds at the same plan before each arm (connections, caches).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Buyers, each with its own token.
    #[arg(long, default_value_t = 2000)]
    buyers: usize,
    /// Offered hold attempts per second over all buyers, one table per rate.
    #[arg(long, value_delimiter = ',', default_value = "500,2000")]
    rates: Vec<f64>,
    /// Seat-map readers.
    #[arg(long, default_value_t = 1000)]
    readers: usize,
    /// Offered seat-map reads per second over all readers.
    #[arg(long, default_value_t = 1000.0)]
    read_rate: f64,
    /// Most requests in flight at once; beyond it an attempt is not sent and counts as dropped.
    /// Through the gateway each costs four sockets in this process (20,000 files at most here).
    #[arg(long, default_value_t = 4000)]
    max_in_flight: u64,
    /// Which scenarios: all, holds, seatmap.
    #[arg(long, default_value = "all")]
    only: String,
}

/// Why attempts failed: HTTP status (0 = no answer: connection or timeout), and how often.
type Failures = Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>>;

fn failed(failures: &Failures, status: u16) {
    *failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(status)
        .or_default() += 1;
}

fn failures_cell(failures: &Failures) -> String {
    let f = failures.lock().unwrap_or_else(|p| p.into_inner());
    if f.is_empty() {
        return "none".into();
    }
    f.iter()
        .map(|(status, n)| match status {
            0 => format!("{n} without an answer"),
            s => format!("{n} × {s}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until the seat service answers `/readyz` within 20 ms three times in a row (the work
/// an earlier arm left behind is done), for at most 60 s.
async fn settle(client: &reqwest::Client, seat_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quick = 0;
    while quick < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let ok = client
            .get(format!("{seat_url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        quick = if ok && t.elapsed() < Duration::from_millis(20) {
            quick + 1
        } else {
            0
        };
    }
}

/// The buyers: ids and tokens.
struct Buyers {
    ids: Vec<Uuid>,
    tokens: Vec<String>,
}

/// The platform under test, in process.
struct Platform {
    infra: Infra,
    store: Arc<dyn HoldStore>,
    pass_key: SigningKey,
    seat_url: String,
    gateway_url: String,
    client: reqwest::Client,
    perfs: Vec<Uuid>,
    _servers: Vec<platform::testing::TestServer>,
}

impl Platform {
    async fn start(issuer: &TestIssuer) -> anyhow::Result<Self> {
        let infra = platform::testing::infra("bench_http");
        infra.bus.ensure_topics(contracts::topics::ALL).await?;
        let pass_key = SigningKey::generate(format!("bench-adm-{}", Uuid::now_v7().simple()));
        let store: Arc<dyn HoldStore> =
            Arc::new(RedisStore::connect(&platform::testing::redis_url()).await?);
        let overrides = Overrides {
            verifier: Some(issuer.verifier()),
            passes: Some(PassVerifier::from_jwks(&[pass_key.public_jwk()?])),
            store: Some(store.clone()),
        };
        let service = seat::start_with(&seat::Config::default(), &infra, overrides)
            .await
            .map_err(|e| anyhow::anyhow!("starting the seat service: {e}"))?;
        let seat = platform::testing::serve(service, infra.shutdown.clone()).await;
        let mut directory = Directory::default();
        directory.0.insert("seat".into(), seat.base_url.clone());
        let gateway_infra = Infra {
            directory,
            ..infra.clone()
        };
        let gateway = gateway::start(&gateway::Config::default(), &gateway_infra)
            .await
            .map_err(|e| anyhow::anyhow!("starting the gateway: {e}"))?;
        let gateway = platform::testing::serve(gateway, infra.shutdown.clone()).await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(8192)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self {
            infra,
            store,
            pass_key,
            seat_url: seat.base_url.clone(),
            gateway_url: gateway.base_url.clone(),
            client,
            perfs: Vec::new(),
            _servers: vec![seat, gateway],
        })
    }

    fn pass(&self, buyer: Uuid, perf: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        Ok(admission_pass::sign(
            &self.pass_key,
            &AdmissionClaims::new(buyer, perf, now, 3600),
        )?)
    }

    /// Publishes a fresh stadium and waits until the seat service serves it.
    async fn publish(&mut self, waiting_room: bool) -> anyhow::Result<PerformanceSpec> {
        let mut p = stadium();
        p.waiting_room = waiting_room;
        let perf = p.performance_id;
        self.perfs.push(perf);
        // As the catalog publishes it: seat chunks, then the header.
        for envelope in p.envelopes()? {
            self.infra.bus.publish(topics::CATALOG, &envelope).await?;
        }
        let url = format!("{}/api/v1/performances/{perf}/seats", self.seat_url);
        let pass = self.pass(Uuid::nil(), perf)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self
                .client
                .get(&url)
                .query(&[("format", "compact")])
                .header(contracts::admission::HEADER, &pass)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 200 {
                return Ok(p);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "performance {perf} was not served (last status {status})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.infra.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        bench::cleanup::drop_databases(&self.infra, &[seat::NAME]).await;
        bench::cleanup::forget_performances(&platform::testing::redis_url(), &self.perfs).await
    }
}

/// The store arm: the hold store called directly.
async fn store_arm(pf: &Platform, buyers: &Arc<Buyers>, plan: Plan) -> anyhow::Result<Figures> {
    let p = stadium();
    let perf = p.performance_id;
    pf.store
        .install(&seat::map::Layout::from_published(&p).inventory())
        .await
        .context("install")?;
    let (store, buyers) = (pf.store.clone(), buyers.clone());
    let figures = open_loop::run(plan, move |shot| {
        let (store, buyers) = (store.clone(), buyers.clone());
        async move {
            let hold = Hold {
                hold_id: Uuid::now_v7(),
                performance_id: perf,
                buyer_id: buyers.ids[shot.user],
                seat_ids: wish(),
                areas: Vec::new(),
                amount_krw: 0,
                expires_at_ms: chrono::Utc::now().timestamp_millis() + 600_000,
                status: HoldStatus::Active,
                presale_limit: None,
            };
            let result = store.hold(&hold).await;
            let end = Instant::now();
            let (outcome, second) = match result {
                Ok(_) => match store
                    .release(perf, hold.hold_id, HoldStatus::Released)
                    .await
                {
                    Ok(_) => (Outcome::Ok, Some(end.elapsed())),
                    Err(_) => (Outcome::Failed, Some(end.elapsed())),
                },
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
    bench::cleanup::forget_performances(&platform::testing::redis_url(), &[perf]).await?;
    Ok(figures)
}

/// An HTTP arm: `POST /api/v1/holds` then `DELETE /api/v1/holds/{id}` at `base`.
fn http_attempt(
    client: reqwest::Client,
    base: String,
    perf: Uuid,
    buyers: Arc<Buyers>,
    passes: Arc<Vec<String>>,
    failures: Failures,
) -> impl Fn(open_loop::Shot) -> std::pin::Pin<Box<dyn Future<Output = Sample> + Send>>
+ Send
+ Sync
+ Clone
+ 'static {
    move |shot| {
        let (client, base, buyers, passes, failures) = (
            client.clone(),
            base.clone(),
            buyers.clone(),
            passes.clone(),
            failures.clone(),
        );
        Box::pin(async move {
            let token = &buyers.tokens[shot.user];
            let mut post = client
                .post(format!("{base}/api/v1/holds"))
                .bearer_auth(token)
                .json(&serde_json::json!({ "performance_id": perf, "seat_ids": wish() }));
            if let Some(pass) = passes.get(shot.user) {
                post = post.header(contracts::admission::HEADER, pass);
            }
            let reply = post.send().await;
            let (status, body) = match reply {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json::<serde_json::Value>().await.ok())
                }
                Err(_) => (0, None),
            };
            let end = Instant::now();
            let hold_id = body
                .as_ref()
                .and_then(|b| b["hold_id"].as_str())
                .map(str::to_owned);
            let (outcome, second) = match (status, hold_id) {
                (201, Some(id)) => {
                    let released = client
                        .delete(format!("{base}/api/v1/holds/{id}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    let outcome = match released {
                        Ok(204) => Outcome::Ok,
                        Ok(status) => {
                            failed(&failures, status);
                            Outcome::Failed
                        }
                        Err(_) => {
                            failed(&failures, 0);
                            Outcome::Failed
                        }
                    };
                    (outcome, Some(end.elapsed()))
                }
                (409, _) => (Outcome::Refused, None),
                (status, _) => {
                    failed(&failures, status);
                    (Outcome::Failed, None)
                }
            };
            Sample {
                outcome,
                end,
                second,
            }
        })
    }
}

async fn measure<F, Fut>(args: &Args, plan: Plan, attempt: F) -> Figures
where
    F: Fn(open_loop::Shot) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Sample> + Send + 'static,
{
    if args.warmup > 0.0 {
        let warm = Plan {
            duration: Duration::from_secs_f64(args.warmup),
            ..plan
        };
        let _ = open_loop::run(warm, attempt.clone()).await;
    }
    open_loop::run(plan, attempt).await
}

async fn holds(
    args: &Args,
    pf: &mut Platform,
    buyers: &Arc<Buyers>,
    rate: f64,
) -> anyhow::Result<()> {
    let plan = Plan {
        max_in_flight: args.max_in_flight,
        ..Plan::open(rate, args.buyers, args.seconds)
    };
    println!(
        "\nholds: {} buyers, {rate} attempts/s offered (open loop), {} s per arm after {} s of \
         warm-up; load average before: {}\n",
        args.buyers,
        args.seconds,
        args.warmup,
        open_loop::load_average()
    );
    println!("{}", open_loop::header("hold path"));
    let mut rows: Vec<(String, Figures)> = Vec::new();
    let show = |rows: &[(String, Figures)]| {
        if let Some((name, f)) = rows.last() {
            println!("{}", open_loop::row(name, f));
        }
    };
    // The baseline: the same hold on the same store, no HTTP.
    let warm = Plan {
        duration: Duration::from_secs_f64(args.warmup),
        ..plan
    };
    if args.warmup > 0.0 {
        let _ = store_arm(pf, buyers, warm).await?;
    }
    rows.push((
        "Redis store, direct call (baseline)".into(),
        store_arm(pf, buyers, plan).await?,
    ));
    show(&rows);
    let none = Arc::new(Vec::new());
    let mut why = vec![(
        "Redis store, direct call (baseline)".to_owned(),
        "—".to_owned(),
    )];
    for (name, base, waiting_room) in [
        (
            "seat service over HTTP (token, outbox)",
            pf.seat_url.clone(),
            false,
        ),
        (
            "gateway → seat service (no waiting room)",
            pf.gateway_url.clone(),
            false,
        ),
        (
            "gateway → seat service, waiting room (pass checked)",
            pf.gateway_url.clone(),
            true,
        ),
    ] {
        settle(&pf.client, &pf.seat_url).await;
        let p = pf.publish(waiting_room).await?;
        let passes = if waiting_room {
            Arc::new(
                buyers
                    .ids
                    .iter()
                    .map(|b| pf.pass(*b, p.performance_id))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            )
        } else {
            none.clone()
        };
        let failures = Failures::default();
        let attempt = http_attempt(
            pf.client.clone(),
            base,
            p.performance_id,
            buyers.clone(),
            passes,
            failures.clone(),
        );
        if args.warmup > 0.0 {
            let warm = Plan {
                duration: Duration::from_secs_f64(args.warmup),
                ..plan
            };
            let _ = open_loop::run(warm, attempt.clone()).await;
            settle(&pf.client, &pf.seat_url).await;
        }
        // The warm-up's failures are not the arm's.
        failures.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let f = open_loop::run(plan, attempt).await;
        rows.push((name.to_owned(), f));
        why.push((name.to_owned(), failures_cell(&failures)));
        show(&rows);
    }
    settle(&pf.client, &pf.seat_url).await;
    println!(
        "\n| hold path | release p50 ms | release p99 ms | failures by status |\n|---|---|---|---|"
    );
    for ((name, f), (_, why)) in rows.iter().zip(&why) {
        println!(
            "| {name} | {:.2} | {:.2} | {why} |",
            f.second_ms(0.5),
            f.second_ms(0.99)
        );
    }
    ratios(&rows, "hold");
    println!("\nload average after: {}", open_loop::load_average());
    Ok(())
}

/// Each arm's p99 and achieved rate against the first (the baseline).
fn ratios(rows: &[(String, Figures)], what: &str) {
    let Some(((_, base), others)) = rows.split_first() else {
        return;
    };
    println!();
    for (name, f) in others {
        println!(
            "{name}: {what} p99 {:.1}× the baseline's ({:.2} ms against {:.2} ms), achieved {:.2}× \
             the baseline's",
            f.ms(0.99) / base.ms(0.99).max(1e-9),
            f.ms(0.99),
            base.ms(0.99),
            f.achieved / base.achieved.max(1e-9)
        );
    }
}

async fn seat_map(args: &Args, pf: &mut Platform) -> anyhow::Result<()> {
    let p = pf.publish(false).await?;
    let perf = p.performance_id;
    let seat_ids: Vec<String> = p.seats.iter().map(|s| s.seat_id.clone()).collect();
    let stop = tokio_util::sync::CancellationToken::new();
    // ~200 holds/s keep the map changing, each released 50 ms later by the expiry sweeper.
    let writer = bench::seat_map::spawn_churn(pf.store.clone(), perf, seat_ids, stop.clone());
    let plan = Plan {
        max_in_flight: args.max_in_flight,
        ..Plan::open(args.read_rate, args.readers, args.seconds)
    };
    println!(
        "\nseat map (compact): {} readers, {} reads/s offered (open loop), ~200 holds/s changing \
         the map, {} s per arm after {} s of warm-up; load average before: {}\n",
        args.readers,
        args.read_rate,
        args.seconds,
        args.warmup,
        open_loop::load_average()
    );
    println!("{}", open_loop::header("seat map"));
    let mut rows = Vec::new();
    for (name, base) in [
        ("seat service over HTTP (baseline)", &pf.seat_url),
        ("gateway → seat service", &pf.gateway_url),
    ] {
        let url = format!("{base}/api/v1/performances/{perf}/seats?format=compact");
        let client = pf.client.clone();
        let attempt = move |_: open_loop::Shot| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                Sample::now(if ok { Outcome::Ok } else { Outcome::Failed })
            }
        };
        let f = measure(args, plan, attempt).await;
        println!("{}", open_loop::row(name, &f));
        rows.push((name.to_owned(), f));
    }
    stop.cancel();
    let changes = writer.await.context("writer")?;
    ratios(&rows, "read");
    println!(
        "\n{changes} holds placed during the seat-map arms; load average after: {}",
        open_loop::load_average()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let issuer = TestIssuer::default();
        let ids: Vec<Uuid> = (0..args.buyers).map(|_| Uuid::now_v7()).collect();
        let tokens = ids
            .iter()
            .map(|id| issuer.token(*id, &[Role::Buyer]))
            .collect();
        let buyers = Arc::new(Buyers { ids, tokens });
        let mut pf = Platform::start(&issuer).await?;
        println!(
            "seat service (Redis store) and gateway in process; {} buyers with tokens; load \
             average at start: {}",
            args.buyers,
            open_loop::load_average()
        );
        let run = |s: &str| args.only == "all" || args.only == s;
        let mut result = Ok(());
        if run("holds") {
            for rate in &args.rates {
                result = holds(&args, &mut pf, &buyers, *rate).await;
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() && run("seatmap") {
            result = seat_map(&args, &mut pf).await;
        }
        pf.stop().await?;
        result
    })
}
