//! `boxoffice cluster`: distributed mode on one machine. Every service is its own
//! `boxoffice serve <service>` process — the seat and order services with several replicas —
//! behind the gateway, on the PostgreSQL, Redis and Kafka-protocol broker the settings name
//! (`make cluster` starts them with `scripts/infra.sh`). The gateway balances over the replicas;
//! each order replica calls every seat replica in turn. A process that dies is reported and the
//! rest keep serving (so a replica can be killed to watch the others take over); Ctrl-C or
//! SIGTERM stops all of them, the gateway first.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;

/// Longest wait for one process to listen and then be ready (migrations, topics, consumer join).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// Longest wait for every process to stop after SIGTERM before the rest are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(12);
/// The sandboxes, started first in sandbox mode.
const FAKES: &[&str] = &["fake-pg", "fake-oauth", "fake-mail", "fake-sms"];

#[derive(Args)]
pub struct ClusterArgs {
    /// Port of the gateway (the platform's public address); 0 = a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address every process listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Replicas of the seat service.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    seat_replicas: u8,
    /// Replicas of the order service.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    order_replicas: u8,
    /// Administrator account to create (or reset) at start.
    #[arg(long, requires = "admin_password")]
    admin_email: Option<String>,
    /// Password of that administrator.
    #[arg(long, requires = "admin_email")]
    admin_password: Option<String>,
    /// Runs without sandboxes (sandbox mode is on by default here, as in standalone): no fake is
    /// started, and only providers configured for real are offered.
    #[arg(long)]
    no_sandbox: bool,
}

/// One running process of the cluster.
struct Proc {
    /// `seat-2`, `gateway`, ...
    name: String,
    /// Its base URL.
    url: String,
    child: Child,
    /// Set once it has stopped.
    exited: bool,
}

/// A free port on `host` (bound and let go: the process it is meant for binds it next).
fn free_port(host: IpAddr) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((host, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A process to start: its name, its service, its own settings.
type Step<'a> = (String, &'a str, Vec<(String, String)>);

/// The base URL other processes reach a process listening on `host`:`port` at.
fn base_url(host: IpAddr, port: u16) -> String {
    let reach = if host.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host
    };
    match reach {
        IpAddr::V6(ip) => format!("http://[{ip}]:{port}"),
        IpAddr::V4(ip) => format!("http://{ip}:{port}"),
    }
}

/// The settings every process gets, beside what it inherits from this one's environment.
struct Plan {
    exe: PathBuf,
    config: Option<PathBuf>,
    host: IpAddr,
    env: Vec<(String, String)>,
}

impl Plan {
    /// `boxoffice serve <service> --port <port>` with the shared settings, the addresses in
    /// `directory` and `extra`; its output read line by line (JSON logs).
    fn command(
        &self,
        service: &str,
        port: u16,
        directory: &BTreeMap<String, Vec<String>>,
        extra: &[(String, String)],
    ) -> Command {
        let mut cmd = Command::new(&self.exe);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["serve", service, "--port", &port.to_string()])
            .env("BOXOFFICE_HTTP__HOST", self.host.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        for (name, urls) in directory {
            cmd.env(
                format!("BOXOFFICE_SERVICES__{}", name.to_uppercase()),
                urls.join(","),
            );
        }
        for (key, value) in extra {
            cmd.env(key, value);
        }
        cmd
    }
}

/// Writes one line of a process's output to stderr after its name (a closed stderr loses it
/// rather than stopping the cluster).
fn show(name: &str, line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{name:>14} | {line}");
}

/// Copies a process's output to this one's stderr, each line after its name.
fn relay_output(name: &str, child: &mut Child) {
    let streams: [Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as _),
        child.stderr.take().map(|s| Box::new(s) as _),
    ];
    for stream in streams.into_iter().flatten() {
        let tag = name.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                show(&tag, &line);
            }
        });
    }
}

/// Starts `service` as `name` on `port` (0: a free one) and waits until its `/readyz` answers
/// 200. (Readiness, not its log: the log level is the caller's to choose.)
async fn start(
    plan: &Plan,
    name: &str,
    service: &str,
    port: u16,
    directory: &BTreeMap<String, Vec<String>>,
    extra: &[(String, String)],
    stop: &CancellationToken,
) -> anyhow::Result<Proc> {
    let port = match port {
        0 => free_port(plan.host)?,
        port => port,
    };
    let mut child = plan
        .command(service, port, directory, extra)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    relay_output(name, &mut child);
    let url = base_url(plan.host, port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            status = child.wait() => bail!(
                "{name} exited with {} before it was ready (its output is above)", status?
            ),
            () = stop.cancelled() => bail!("stopped while starting {name}"),
        }
        match client.get(format!("{url}/readyz")).send().await {
            Ok(r) if r.status().is_success() => break,
            Ok(r) if started.elapsed() > START_DEADLINE => bail!(
                "{name} not ready within {START_DEADLINE:?}: /readyz answered {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) if started.elapsed() > START_DEADLINE => {
                bail!("{name} not ready within {START_DEADLINE:?}: {e}")
            }
            _ => {}
        }
    }
    tracing::info!(process = name, url = %url, pid = child.id(), "cluster process ready");
    Ok(Proc {
        name: name.to_owned(),
        url,
        child,
        exited: false,
    })
}

/// SIGTERM to every process still running, the last started first; SIGKILL to those still
/// running after [`STOP_DEADLINE`]. Returns the names of those that had to be killed.
async fn stop_all(procs: &mut [Proc]) -> Vec<String> {
    for p in procs.iter_mut().rev() {
        if !p.exited
            && let Some(pid) = p.child.id()
        {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
    let mut killed = Vec::new();
    for p in procs.iter_mut() {
        if p.exited {
            continue;
        }
        match tokio::time::timeout_at(deadline, p.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = p.child.kill().await;
                killed.push(p.name.clone());
            }
        }
        p.exited = true;
    }
    killed
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub async fn run(cfg: AppConfig, config: Option<PathBuf>, args: ClusterArgs) -> anyhow::Result<()> {
    let stop = platform::http::shutdown_on_signals();
    if cfg.database.url.is_none() {
        bail!(
            "the cluster runs on a PostgreSQL server: set BOXOFFICE_DATABASE__URL (`make cluster` \
             starts PostgreSQL, Redis and a Kafka-protocol broker with scripts/infra.sh and sets it)"
        );
    }
    if cfg.redis.url.is_none() {
        bail!(
            "the cluster keeps holds and queues in Redis: set BOXOFFICE_REDIS__URL (`make cluster` \
             sets it)"
        );
    }
    let host = args.host;
    let gateway_port = match args.port {
        0 => free_port(host)?,
        port => port,
    };
    let sandbox = !args.no_sandbox && cfg.sandbox.unwrap_or(true);
    let public_url = cfg.public_url.clone().unwrap_or_else(|| {
        if host.is_loopback() || host.is_unspecified() {
            format!("http://localhost:{gateway_port}")
        } else {
            format!("http://{host}:{gateway_port}")
        }
    });
    let mut env = vec![
        ("BOXOFFICE_BUS__TRANSPORT".to_owned(), "kafka".to_owned()),
        ("BOXOFFICE_SANDBOX".to_owned(), sandbox.to_string()),
        ("BOXOFFICE_PUBLIC_URL".to_owned(), public_url.clone()),
        // One line per event, shown after the process's name.
        ("BOXOFFICE_LOG__FORMAT".to_owned(), "json".to_owned()),
    ];
    let smtp_port = free_port(host)?;
    if sandbox {
        env.push((
            "BOXOFFICE_FAKES__MAIL__SMTP_PORT".to_owned(),
            smtp_port.to_string(),
        ));
    }
    let plan = Plan {
        exe: std::env::current_exe().context("finding the boxoffice binary")?,
        config,
        host,
        env,
    };

    let mut order: Vec<Step> = Vec::new();
    if sandbox {
        for fake in FAKES {
            order.push(((*fake).to_owned(), fake, Vec::new()));
        }
    }
    let mut user_extra = Vec::new();
    if let (Some(email), Some(password)) = (&args.admin_email, &args.admin_password) {
        user_extra.push(("BOXOFFICE_USER__ADMIN_EMAIL".to_owned(), email.clone()));
        user_extra.push((
            "BOXOFFICE_USER__ADMIN_PASSWORD".to_owned(),
            password.clone(),
        ));
    }
    order.push(("user".to_owned(), "user", user_extra));
    // The seat replicas start after the admission service (they check its passes), which reads
    // their load reports (automatic mode): their ports are chosen now, so it knows them.
    let seat_ports = (0..args.seat_replicas)
        .map(|_| free_port(host))
        .collect::<anyhow::Result<Vec<u16>>>()?;
    let seat_urls: Vec<String> = seat_ports.iter().map(|p| base_url(host, *p)).collect();
    order.push((
        "admission".to_owned(),
        "admission",
        vec![("BOXOFFICE_SERVICES__SEAT".to_owned(), seat_urls.join(","))],
    ));
    order.push(("catalog".to_owned(), "catalog", Vec::new()));
    for i in 1..=args.seat_replicas {
        order.push((format!("seat-{i}"), "seat", Vec::new()));
    }
    for i in 1..=args.order_replicas {
        order.push((format!("order-{i}"), "order", Vec::new()));
    }
    order.push(("payment".to_owned(), "payment", Vec::new()));
    let mut notification_extra = Vec::new();
    if sandbox {
        // The notification service sends to the sandboxes, as in standalone.
        notification_extra.extend([
            (
                "BOXOFFICE_NOTIFICATION__SMTP__HOST".to_owned(),
                host.to_string(),
            ),
            (
                "BOXOFFICE_NOTIFICATION__SMTP__PORT".to_owned(),
                smtp_port.to_string(),
            ),
            (
                "BOXOFFICE_NOTIFICATION__SMTP__TLS".to_owned(),
                "none".to_owned(),
            ),
        ]);
    }
    order.push((
        "notification".to_owned(),
        "notification",
        notification_extra,
    ));

    let mut directory: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut procs: Vec<Proc> = Vec::new();
    let mut started = Ok(());
    for (name, service, mut extra) in order {
        if service == "notification"
            && sandbox
            && let Some(sms) = directory.get("fake-sms").and_then(|u| u.first())
        {
            extra.push(("BOXOFFICE_NOTIFICATION__SMS__URL".to_owned(), sms.clone()));
        }
        // A seat replica on the port chosen for it above (`seat-<n>`).
        let port = name
            .strip_prefix("seat-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| seat_ports.get(n.wrapping_sub(1)).copied())
            .unwrap_or(0);
        match start(&plan, &name, service, port, &directory, &extra, &stop).await {
            Ok(p) => {
                directory
                    .entry(service.to_owned())
                    .or_default()
                    .push(p.url.clone());
                procs.push(p);
            }
            Err(e) => {
                started = Err(e);
                break;
            }
        }
    }
    if started.is_ok() {
        match start(
            &plan,
            "gateway",
            "gateway",
            gateway_port,
            &directory,
            &[],
            &stop,
        )
        .await
        {
            Ok(p) => procs.push(p),
            Err(e) => started = Err(e),
        }
    }
    if let Err(e) = started {
        let killed = stop_all(&mut procs).await;
        if !killed.is_empty() {
            tracing::warn!(killed = ?killed, "killed after ignoring SIGTERM");
        }
        return Err(e);
    }
    let gateway = procs
        .last()
        .map(|p| p.url.clone())
        .unwrap_or_else(|| public_url.clone());
    tracing::info!(
        gateway = %gateway,
        public_url = %public_url,
        processes = procs.len(),
        sandbox,
        "Boxoffice cluster is up: every service its own process, seat x{} and order x{} behind the \
         gateway; Ctrl-C stops it",
        args.seat_replicas,
        args.order_replicas
    );
    show(
        "cluster",
        &format!(
            "Boxoffice cluster: {public_url} (gateway {gateway}), {} processes; Ctrl-C stops it",
            procs.len()
        ),
    );

    // Watch: a process that stops on its own is reported; the others keep serving.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        for p in procs.iter_mut().filter(|p| !p.exited) {
            if let Ok(Some(status)) = p.child.try_wait() {
                p.exited = true;
                tracing::error!(process = %p.name, %status,
                    "a cluster process stopped on its own; the others keep running");
            }
        }
        if procs.iter().all(|p| p.exited) {
            bail!("every process of the cluster has stopped");
        }
    }
    tracing::info!("stopping the cluster");
    let killed = stop_all(&mut procs).await;
    if killed.is_empty() {
        Ok(())
    } else {
        bail!("killed after ignoring SIGTERM for {STOP_DEADLINE:?}: {killed:?}")
    }
}
