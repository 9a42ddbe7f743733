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
use contracts::{Envelope, Event, events::PerformancePublished};
use hdrhistogram::Histogram;
use rand::Rng;
use seat::{
    Config, Overrides,
    store::{Hold, HoldStatus, HoldStore, memory::MemoryStore},
};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Runs the scenario for `seconds` per format and prints its figures.
pub async fn run(
    p: PerformancePublished,
    readers: usize,
    streams: usize,
    seconds: u64,
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
    infra
        .bus
        .publish(PerformancePublished::TOPIC, &Envelope::new(&p)?)
        .await?;
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
    let writer = {
        let (store, stop, seat_ids) = (store.clone(), stop.clone(), seat_ids.clone());
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
                };
                if store.hold(&hold).await.is_ok() {
                    changes += 1;
                }
            }
            changes
        })
    };

    println!(
        "\nseat map: {readers} readers, {opened} open streams, ~200 holds/s changing the map\n"
    );
    println!("| seat map | requests/s | p50 ms | p99 ms | max ms | body bytes | failed |");
    println!("|---|---|---|---|---|---|---|");
    let compact = format!("{url}?format=compact");
    let pace = Some(Duration::from_secs(1));
    read_loop(
        &client,
        &compact,
        "compact, {readers} readers back to back",
        readers,
        None,
        seconds,
    )
    .await?;
    read_loop(
        &client,
        &compact,
        "compact, {readers} readers, 1 request/s each",
        readers,
        pace,
        seconds,
    )
    .await?;
    // The plain JSON of a stadium is ~2.7 MB: a tenth of the readers, each once a second.
    let tenth = (readers / 10).max(1);
    read_loop(
        &client,
        &url,
        "plain JSON, {readers} readers, 1 request/s each",
        tenth,
        pace,
        seconds,
    )
    .await?;
    stop.cancel();
    let changes = writer.await.context("writer")?;
    println!(
        "\nstreams: {} events delivered over {opened} streams ({changes} holds placed, plus their \
         expiries)",
        events.load(Ordering::Relaxed)
    );
    infra.shutdown.cancel();
    Ok(())
}

async fn read_loop(
    client: &reqwest::Client,
    url: &str,
    name: &str,
    readers: usize,
    pace: Option<Duration>,
    seconds: u64,
) -> anyhow::Result<()> {
    let name = name.replace("{readers}", &readers.to_string());
    let statuses = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let bytes = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (client, url, hist, bytes) =
            (client.clone(), url.to_owned(), hist.clone(), bytes.clone());
        let failed = statuses.clone();
        tasks.push(tokio::spawn(async move {
            // Paced readers start spread over the first period, then keep their rhythm.
            if let Some(pace) = pace {
                let offset = rand::rng().random_range(0..pace.as_millis().max(1) as u64);
                tokio::time::sleep(Duration::from_millis(offset)).await;
            }
            while Instant::now() < deadline {
                let started = Instant::now();
                let body = match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => r.bytes().await.map(|b| b.len()).unwrap_or(0),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        0
                    }
                };
                let us = started.elapsed().as_micros().max(1) as u64;
                let _ = hist.lock().await.record(us);
                bytes.store(body as u64, Ordering::Relaxed);
                if let Some(pace) = pace {
                    tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let h = hist.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} |",
        h.len() as f64 / seconds as f64,
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0,
        bytes.load(Ordering::Relaxed),
        statuses.load(Ordering::Relaxed)
    );
    Ok(())
}
