//! The seat-map scenario of `seat_holds`: the seat service in process (in-memory hold store,
//! in-memory bus, a fresh SeatDB), readers looping on `GET .../seats` while SSE streams stay
//! open and holds keep changing the map.

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use contracts::{events::PerformanceSpec, topics};
use rand::Rng;
use seat::{
    Config, Overrides,
    store::{Hold, HoldStatus, HoldStore, memory::MemoryStore},
};
use uuid::Uuid;

use crate::open_loop::{self, Figures, Outcome, Plan, Sample};

/// Runs the scenario for `seconds` per format and prints its figures.
pub async fn run(
    p: PerformanceSpec,
    readers: usize,
    streams: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let infra = platform::testing::infra("bench_seatmap");
    infra.bus.ensure_topics(contracts::topics::ALL).await?;
    let store: Arc<dyn HoldStore> = Arc::new(MemoryStore::new());
    let overrides = Overrides {
        verifier: Some(platform::auth::Verifier::from_jwks(Vec::new())),
        passes: None,
        store: Some(store.clone()),
    };
    let service = seat::start_with(&Config::default(), &infra, overrides).await?;
    let server = platform::testing::serve(service, infra.shutdown.clone()).await;
    let perf = p.performance_id;
    let seat_ids: Vec<String> = p.seats.iter().map(|s| s.seat_id.clone()).collect();
    // As the catalog publishes it: seat chunks, then the header.
    for envelope in p.envelopes()? {
        infra.bus.publish(topics::CATALOG, &envelope).await?;
    }
    let url = server.url(&format!("/api/v1/performances/{perf}/seats"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(readers + 16)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(&url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        anyhow::ensure!(Instant::now() < deadline, "the performance was not served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Open streams, each counting the events it receives.
    let events = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let stream_client = reqwest::Client::new();
    let mut opened = 0;
    for _ in 0..streams {
        let resp = stream_client.get(format!("{url}/stream")).send().await;
        let Ok(mut resp) = resp else { continue };
        opened += 1;
        let (events, stop) = (events.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    chunk = resp.chunk() => match chunk {
                        Ok(Some(c)) => {
                            let n = c.windows(3).filter(|w| w == b"id:").count();
                            events.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        _ => return,
                    },
                }
            }
        });
    }

    // Holds keep the map changing: about 200 per second, each expiring 50 ms later.
    let writer = spawn_churn(store.clone(), perf, seat_ids.clone(), stop.clone());

    println!(
        "\nseat map: {readers} readers, {opened} open streams, ~200 holds/s changing the map \
         (load average before: {})\n",
        open_loop::load_average()
    );
    println!("{}", open_loop::header("seat map"));
    let compact = format!("{url}?format=compact");
    let closed = Plan::closed(readers, seconds);
    let each_second = Plan::open(readers as f64, readers, seconds);
    read(
        &client,
        &compact,
        "compact, {readers} readers back to back",
        closed,
    )
    .await;
    read(
        &client,
        &compact,
        "compact, {readers} readers, 1 request/s each (open loop)",
        each_second,
    )
    .await;
    // The plain JSON of a stadium is ~2.7 MB: a tenth of the readers, each once a second.
    let tenth = (readers / 10).max(1);
    read(
        &client,
        &url,
        "plain JSON, {readers} readers, 1 request/s each (open loop)",
        Plan::open(tenth as f64, tenth, seconds),
    )
    .await;
    stop.cancel();
    let changes = writer.await.context("writer")?;
    println!(
        "\nstreams: {} events delivered over {opened} streams ({changes} holds placed, plus their \
         expiries); load average after: {}",
        events.load(Ordering::Relaxed),
        open_loop::load_average()
    );
    infra.shutdown.cancel();
    crate::cleanup::drop_databases(&infra, &["seat"]).await;
    Ok(())
}

/// Readers on `url` under `plan`; prints one row (and the body size).
pub async fn read(client: &reqwest::Client, url: &str, name: &str, plan: Plan) -> Figures {
    let name = name.replace("{readers}", &plan.users.to_string());
    let bytes = Arc::new(AtomicU64::new(0));
    let (c, u, b) = (client.clone(), url.to_owned(), bytes.clone());
    let f = open_loop::run(plan, move |_| {
        let (client, url, bytes) = (c.clone(), u.clone(), b.clone());
        async move {
            let outcome = match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => match r.bytes().await {
                    Ok(body) => {
                        bytes.store(body.len() as u64, Ordering::Relaxed);
                        Outcome::Ok
                    }
                    Err(_) => Outcome::Failed,
                },
                _ => Outcome::Failed,
            };
            Sample::now(outcome)
        }
    })
    .await;
    let name = format!("{name}; {} B a body", bytes.load(Ordering::Relaxed));
    println!("{}", open_loop::row(&name, &f));
    f
}

/// Keeps a seat map changing while it is read: a two-seat hold every 5 ms (about 200 per
/// second) at a random place among `seat_ids`, each expiring 50 ms later. Returns how many
/// holds were placed once `stop` is cancelled.
pub fn spawn_churn(
    store: Arc<dyn HoldStore>,
    perf: Uuid,
    seat_ids: Vec<String>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut changes = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while !stop.is_cancelled() {
            tick.tick().await;
            let i = rand::rng().random_range(0..seat_ids.len() - 1);
            let hold = Hold {
                hold_id: Uuid::now_v7(),
                performance_id: perf,
                buyer_id: Uuid::now_v7(),
                seat_ids: seat_ids[i..i + 2].to_vec(),
                areas: Vec::new(),
                amount_krw: 0,
                expires_at_ms: chrono::Utc::now().timestamp_millis() + 50,
                status: HoldStatus::Active,
                presale_limit: None,
            };
            if store.hold(&hold).await.is_ok() {
                changes += 1;
            }
        }
        changes
    })
}
