//! Outbox relay throughput: how fast a backlog of outbox rows reaches the bus, with keys
//! published concurrently within a batch (the default) against one row at a time (the baseline,
//! `relay_concurrency = 1`), in the same run, on the in-memory transport and on a Kafka-protocol
//! broker. Every run starts from the same backlog (`--events` rows over `--keys` keys) in a
//! fresh database. The rate is the backlog ÷ the real time it took to drain (nothing is counted
//! after the clock stops).

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use clap::Parser;
use contracts::Envelope;
use platform::{
    bus::{
        BusSettings, Transport, kafka::KafkaTransport, memory::MemoryTransport, outbox,
        relay::Relay,
    },
    testing::{TestDb, kafka_brokers},
};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Outbox rows in the backlog.
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Distinct keys (aggregates) the rows belong to.
    #[arg(long, default_value_t = 200)]
    keys: usize,
    /// Skip the Kafka runs.
    #[arg(long)]
    no_kafka: bool,
}

fn envelope(key: usize, n: usize) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: "bench.event".into(),
        version: 1,
        occurred_at: chrono::Utc::now(),
        key: format!("perf-{key}"),
        payload: serde_json::json!({ "n": n, "seat_ids": ["A-1-1", "A-1-2"] }),
    }
}

/// Seconds to drain the backlog with the given concurrency.
async fn drain(
    args: &Args,
    transport: Arc<dyn Transport>,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let topic = format!("bench-relay-{}", Uuid::new_v4().simple());
    transport.ensure_topics(&[&topic]).await?;
    let db = TestDb::new("bench_relay", None).await;
    let mut tx = db.pool.begin().await?;
    for n in 0..args.events {
        outbox::enqueue_envelope(&mut tx, &topic, &envelope(n % args.keys, n)).await?;
    }
    tx.commit().await?;
    let settings = BusSettings {
        relay_concurrency: concurrency,
        ..BusSettings::default()
    };
    let relay = Relay::new("bench", db.pool.clone(), transport, &settings);
    let started = Instant::now();
    let mut total = 0;
    while total < args.events {
        let n = relay.run_once().await.context("relay batch")?;
        anyhow::ensure!(n > 0, "relay made no progress at {total}");
        total += n;
    }
    let secs = started.elapsed().as_secs_f64();
    db.drop_database().await;
    Ok(secs)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "outbox relay: {} rows over {} keys, batch {} rows; load average before: {}\n",
        args.events,
        args.keys,
        BusSettings::default().relay_batch,
        bench::open_loop::load_average()
    );
    println!("| transport | relay | rows/s | seconds | speed-up |");
    println!("|---|---|---|---|---|");
    let mut transports: Vec<(&str, Arc<dyn Transport>)> =
        vec![("in-memory", Arc::new(MemoryTransport::new(4)))];
    if !args.no_kafka {
        transports.push((
            "Kafka (tansu)",
            Arc::new(KafkaTransport::new(&kafka_brokers(), 4)?),
        ));
    }
    let concurrent = BusSettings::default().relay_concurrency;
    for (name, transport) in transports {
        let base = drain(&args, transport.clone(), 1).await?;
        let fast = drain(&args, transport, concurrent).await?;
        let rate = |s: f64| args.events as f64 / s;
        println!(
            "| {name} | one row at a time (baseline) | {:.0} | {base:.2} | 1.0× |",
            rate(base)
        );
        println!(
            "| {name} | {concurrent} keys concurrently | {:.0} | {fast:.2} | {:.1}× |",
            rate(fast),
            base / fast
        );
    }
    println!("\nload average after: {}", bench::open_loop::load_average());
    Ok(())
}
