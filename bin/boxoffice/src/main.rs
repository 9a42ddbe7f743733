//! `boxoffice`: the one binary. It only wires: every rule lives in a service crate.

mod cluster;
mod config;
mod docs;
mod launch;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Boxoffice: real-time ticket booking.
#[derive(Parser)]
#[command(name = "boxoffice", version, about, propagate_version = true)]
struct Cli {
    /// A TOML settings file (also BOXOFFICE_CONFIG); environment variables override it.
    #[arg(long, global = true, env = "BOXOFFICE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole platform in one process: every service, the gateway on --port, a private
    /// PostgreSQL in --data-dir (unless BOXOFFICE_DATABASE__URL is set), in-memory bus and stores.
    Standalone(launch::StandaloneArgs),
    /// Runs one service (distributed mode): PostgreSQL, Redis and Kafka from the settings. Every
    /// service but the gateway and the fakes needs bus.transport = kafka
    /// (BOXOFFICE_BUS__TRANSPORT=kafka): with the in-memory bus its events would never leave the
    /// process, so it refuses to start (exit 2).
    Serve(launch::ServeArgs),
    /// Runs distributed mode on this machine: every service its own `serve` process (the seat and
    /// order services with --seat-replicas/--order-replicas), the gateway on --port, on the
    /// PostgreSQL, Redis and Kafka broker of the settings (`make cluster` starts them).
    Cluster(cluster::ClusterArgs),
    /// Loads the settings (the --config file and the BOXOFFICE_* variables) and exits: 0 when
    /// they are valid, 2 with the setting at fault otherwise. For checking a deployment's
    /// settings before it rolls out; nothing is started.
    CheckConfig,
    /// Creates every service's database when missing and applies its migrations, then exits.
    Migrate(launch::MigrateArgs),
    /// Prints the platform's OpenAPI document (what the gateway serves at
    /// /api/docs/openapi.json) and exits; nothing is started.
    Openapi,
    /// Seeds the demo catalog (the KBO season on the nine stadiums, a concert, a musical, an
    /// exhibition) when missing, then exits. Safe to run twice.
    Seed(launch::SeedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match config::AppConfig::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("boxoffice: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Openapi) {
        return match docs::print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("boxoffice: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if matches!(cli.command, Command::CheckConfig) {
        eprintln!("boxoffice: the settings are valid");
        return ExitCode::SUCCESS;
    }
    let service = match &cli.command {
        Command::Serve(args) => args.service_name().to_owned(),
        _ => "boxoffice".to_owned(),
    };
    if matches!(cli.command, Command::Serve(_))
        && cfg.bus.transport == platform::bus::TransportKind::Memory
        && launch::SERVICES.contains(&service.as_str())
    {
        eprintln!("boxoffice: {}", platform::bus::memory_refusal(&service));
        return ExitCode::from(2);
    }
    let telemetry = platform::telemetry::init(&cfg.log, &service);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            telemetry.flush_logs();
            eprintln!("boxoffice: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_file = cli.config.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Standalone(args) => launch::standalone(cfg, args).await,
            Command::Serve(args) => launch::serve(cfg, args).await,
            Command::Migrate(args) => launch::migrate(cfg, args).await,
            Command::Seed(args) => launch::seed(cfg, args).await,
            Command::Cluster(args) => cluster::run(cfg, config_file, args).await,
            Command::CheckConfig | Command::Openapi => Ok(()),
        }
    });
    // Background tasks that ignore shutdown must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "boxoffice stopped with an error");
            // The logs first: the plain message stays the last line a person sees.
            telemetry.flush_logs();
            eprintln!("boxoffice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
