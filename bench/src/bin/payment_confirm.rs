//! The payment confirm under load: `--payers` buyers (default 500) confirm payments back to back
//! (closed loop: that many confirms in flight at once) or on a fixed schedule (`--rate`, open
//! loop), through the payment service's HTTP API, against the sandbox PG answering every call
//! after `--latency-ms` (default 300, a realistic PG). Reports p50/p90/p99/max and the service's
//! own overhead (latency minus the PG's), then checks the books: every approved confirm is one
//! `DONE` payment at the PG and one `payment.approved` in the outbox, none charged twice.
//!
//! The payment service, the sandbox PG and the load generator share this process (and its cores);
//! PayDB is on the test PostgreSQL (`BOXOFFICE_TEST_DATABASE_URL`). Orders and checkouts are
//! prepared before the clock starts (the orders straight into PayDB through the service's store,
//! not through `order.created`): only the confirm is measured.
//!
//! ```text
//! cargo run --release -p bench --bin payment_confirm -- --payers 500 --latency-ms 300 --seconds 20
//! ```

#![allow(clippy::print_stdout, reason = "the report is the program's output")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use bench::open_loop::{self, Outcome, Plan, Sample};
use clap::Parser;
use futures::StreamExt;
use platform::{auth::Role, testing::TestIssuer};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Concurrent payers.
    #[arg(long, default_value_t = 500)]
    payers: usize,
    /// The PG's latency on every call, ms.
    #[arg(long, default_value_t = 300)]
    latency_ms: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Offered confirms/s over all payers on a fixed schedule (open loop); 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// PayDB connections.
    #[arg(long, default_value_t = 40)]
    db_connections: u32,
}

/// A checkout done and waiting for its confirm.
struct Ready {
    order_id: Uuid,
    payment_key: String,
}

const SECRET: &str = "test_sk_bench_payment";
const AMOUNT: i64 = 132_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let latency = Duration::from_millis(args.latency_ms);
    let mut options = fakes::pg::Options::default();
    options.secret_keys.push(SECRET.to_owned());
    options.latency = latency;
    options.max_payments = 1_000_000;
    options.max_idempotency_keys = 1_000_000;
    let pg = fakes::pg::spawn(options).await?;

    let mut infra = platform::testing::infra("bench_payment");
    infra.database.max_connections = args.db_connections;
    infra.bus.ensure_topics(contracts::topics::ALL).await?;
    let issuer = TestIssuer::default();
    let mut config = payment::Config::default();
    config.pg.base_url = Some(pg.base_url.clone());
    config.pg.secret_key = Some(SECRET.to_owned());
    config.pg.max_in_flight = args.payers * 2;
    let overrides = payment::Overrides {
        verifier: Some(issuer.verifier()),
        gateway: None,
    };
    let service = payment::start_with(&config, &infra, overrides).await?;
    let server = platform::testing::serve(service, infra.shutdown.clone()).await;
    let paydb = sqlx::PgPool::connect(&format!(
        "{}/{}payment",
        infra.database_url.clone().unwrap_or_default(),
        infra.database.name_prefix
    ))
    .await?;

    // Enough checkouts for every payer to keep confirming until the deadline.
    let per_payer = if args.rate > 0.0 {
        (args.rate * args.seconds / args.payers as f64).ceil() as usize + 2
    } else {
        // A confirm takes at least the PG's latency (and a few ms of ours).
        (args.seconds * 1000.0 / args.latency_ms.max(5) as f64).ceil() as usize + 10
    };
    let buyers: Vec<Uuid> = (0..args.payers).map(|_| Uuid::now_v7()).collect();
    let tokens: Arc<Vec<String>> = Arc::new(
        buyers
            .iter()
            .map(|b| issuer.token(*b, &[Role::Buyer]))
            .collect(),
    );
    println!(
        "preparing {} orders and checkouts ({per_payer} per payer)…",
        args.payers * per_payer
    );
    let mut orders = Vec::with_capacity(args.payers * per_payer);
    let mut tx = paydb.begin().await?;
    for (payer, buyer) in buyers.iter().enumerate() {
        for _ in 0..per_payer {
            let order = payment::store::Order {
                order_id: Uuid::now_v7(),
                buyer_id: *buyer,
                amount_krw: AMOUNT,
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
                cancelled_at: None,
            };
            payment::store::save_order(&mut tx, &order).await?;
            orders.push((payer, order.order_id));
        }
    }
    tx.commit().await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.payers + 16)
        .timeout(Duration::from_secs(30))
        .build()?;
    let checkout_url = pg.url("/v1/sandbox/checkouts");
    let ready: Vec<Mutex<Vec<Ready>>> = (0..args.payers).map(|_| Mutex::new(Vec::new())).collect();
    let done: Vec<anyhow::Result<(usize, Ready)>> = futures::stream::iter(orders)
        .map(|(payer, order_id)| {
            let (http, url) = (http.clone(), checkout_url.clone());
            async move {
                let r: Value = http
                    .post(url)
                    .json(&json!({"orderId": order_id.to_string(), "amount": AMOUNT, "outcome": "approved"}))
                    .send()
                    .await?
                    .json()
                    .await?;
                let payment_key = r["paymentKey"]
                    .as_str()
                    .context("a checkout without a paymentKey")?
                    .to_owned();
                Ok((payer, Ready { order_id, payment_key }))
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    for d in done {
        let (payer, r) = d?;
        if let Some(slot) = ready.get(payer) {
            slot.lock().unwrap_or_else(|p| p.into_inner()).push(r);
        }
    }
    let ready = Arc::new(ready);

    let url = server.url("/api/v1/payments/confirm");
    let plan = if args.rate > 0.0 {
        Plan::open(args.rate, args.payers, args.seconds)
    } else {
        Plan::closed(args.payers, args.seconds)
    };
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let (client, fails) = (http.clone(), failures.clone());
    println!("measuring {:?}…", plan);
    let figures = open_loop::run(plan, move |shot| {
        let (client, url, ready, tokens, fails) = (
            client.clone(),
            url.clone(),
            ready.clone(),
            tokens.clone(),
            fails.clone(),
        );
        async move {
            let next = ready
                .get(shot.user)
                .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).pop());
            let Some(next) = next else {
                return Sample::now(Outcome::Refused);
            };
            let token = tokens.get(shot.user).cloned().unwrap_or_default();
            let r = client
                .post(&url)
                .bearer_auth(token)
                .header("Idempotency-Key", format!("bench-{}", next.order_id))
                .json(&json!({"payment_key": next.payment_key, "order_id": next.order_id, "amount": AMOUNT}))
                .send()
                .await;
            let outcome = match r {
                Ok(r) if r.status() == 200 => Outcome::Ok,
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    let mut f = fails.lock().unwrap_or_else(|p| p.into_inner());
                    if f.len() < 5 {
                        f.push(format!("{status}: {body}"));
                    }
                    Outcome::Failed
                }
                Err(e) => {
                    let mut f = fails.lock().unwrap_or_else(|p| p.into_inner());
                    if f.len() < 5 {
                        f.push(e.to_string());
                    }
                    Outcome::Failed
                }
            };
            Sample::now(outcome)
        }
    })
    .await;

    let pg_ms = args.latency_ms as f64;
    println!();
    println!(
        "| payers | PG latency | mode | confirms/s | p50 | p90 | p99 | max | p99 − PG | ok / out of checkouts / failed / unfinished / dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} ms | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
        args.payers,
        args.latency_ms,
        if args.rate > 0.0 {
            format!("open {} /s", args.rate)
        } else {
            "closed".to_owned()
        },
        figures.achieved,
        figures.ms(0.5),
        figures.ms(0.9),
        figures.ms(0.99),
        figures.latency.max() as f64 / 1000.0,
        figures.ms(0.99) - pg_ms,
        figures.counts_cell()
    );
    for f in failures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("failure: {f}");
    }

    // The books: one approved payment, one PG charge and one event per successful confirm.
    let approved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'approved'")
            .fetch_one(&paydb)
            .await?;
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bus_outbox WHERE envelope->>'type' = 'payment.approved'",
    )
    .fetch_one(&paydb)
    .await?;
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT envelope->>'key' FROM bus_outbox \
         WHERE envelope->>'type' = 'payment.approved' GROUP BY 1 HAVING count(*) > 1) t",
    )
    .fetch_one(&paydb)
    .await?;
    println!(
        "books: {} ok confirms, {approved} approved payments, {events} payment.approved events, \
         {twice} orders approved twice",
        figures.ok
    );
    let consistent = approved == events && twice == 0 && approved >= figures.ok as i64;
    paydb.close().await;
    drop(server);
    infra.shutdown.cancel();
    bench::cleanup::drop_databases(&infra, &["payment"]).await;
    anyhow::ensure!(consistent, "the books do not add up");
    Ok(())
}
