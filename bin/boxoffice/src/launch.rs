//! Starting the platform: every service in one process (standalone), one service (serve), or
//! only the migrations.

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures::future::BoxFuture;
use platform::{
    bus::{self, TransportKind},
    http::{self, HttpSettings},
    private_pg::{self, DataDirClaim, DataDirLock, PrivatePostgres},
    service::{Directory, Infra, Mode, Service, StartError, Tasks},
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::AppConfig;

/// Services in start order (the gateway starts last, in front of them).
pub const SERVICES: &[&str] = &[
    "user",
    "catalog",
    "seat",
    "admission",
    "order",
    "payment",
    "notification",
];

#[derive(Args)]
pub struct StandaloneArgs {
    /// Port of the gateway (the platform's public address).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address the gateway listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Folder for the private PostgreSQL's files (reused on the next run).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Administrator account to create (or reset) at start.
    #[arg(long, requires = "admin_password")]
    admin_email: Option<String>,
    /// Password of that administrator.
    #[arg(long, requires = "admin_email")]
    admin_password: Option<String>,
    /// Runs without sandboxes: no fake is started, nothing is served under /sandbox/, and only
    /// providers configured for real are offered (sandbox mode is on by default in standalone).
    #[arg(long)]
    no_sandbox: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The service to run: gateway, user, catalog, seat, admission, order, payment, notification,
    /// or a third party's fake (fake-oauth).
    service: String,
    /// Port to listen on (overrides BOXOFFICE_HTTP__PORT).
    #[arg(long)]
    port: Option<u16>,
}

impl ServeArgs {
    /// The service this process runs.
    pub fn service_name(&self) -> &str {
        &self.service
    }
}

#[derive(Args)]
pub struct MigrateArgs {
    /// Only this service (default: every service with a database).
    #[arg(long)]
    service: Option<String>,
    /// Folder of the private PostgreSQL, used when BOXOFFICE_DATABASE__URL is not set.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct SeedArgs {
    /// Date the season is laid out around, YYYY-MM-DD (default: catalog.seed_start_date, else
    /// today in Seoul).
    #[arg(long)]
    start_date: Option<String>,
    /// Folder of the private PostgreSQL, used when BOXOFFICE_DATABASE__URL is not set.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
}

/// Passes the platform-wide settings down into each service's: sandbox mode (the user service's
/// OAuth providers, the gateway's /sandbox/ routes, the payment service's PG) and the public URL.
fn pass_down(cfg: &mut AppConfig, sandbox: bool, public_url: Option<String>) {
    if let Some(url) = &public_url {
        // Links in mail and SMS lead to the platform's own address.
        cfg.notification.public_url = url.clone();
    }
    cfg.user.sandbox = sandbox;
    cfg.user.public_url = public_url;
    cfg.gateway.sandbox = sandbox;
    cfg.payment.sandbox = sandbox;
}

/// How the fakes are set up: the OAuth provider sends browsers back only to the platform's own
/// callbacks (following its public URL) and to `fakes.oauth.redirect_uris`; the PG's checkout
/// only to the public URL's origin and `fakes.pg.redirect_origins`, with the rest of
/// `fakes.pg.*` (keys, latency, faults); its webhooks go to `fakes.pg.webhook_url`, else to the
/// payment service's Toss webhook through the public URL.
fn fake_options(cfg: &AppConfig) -> fakes::Options {
    let mut redirect_uris = user::oauth::providers::callback_urls(&cfg.user);
    redirect_uris.extend(cfg.fakes.oauth.redirect_uris.iter().cloned());
    let public_url = cfg
        .user
        .public_url
        .clone()
        .unwrap_or_else(|| "http://localhost:8080".to_owned());
    let mut pg = cfg.fakes.pg.options(fakes::pg::origin_of(&public_url));
    pg.webhooks.url.get_or_insert_with(|| {
        format!(
            "{}/api/v1/payments/webhooks/toss",
            public_url.trim_end_matches('/')
        )
    });
    fakes::Options {
        oauth: fakes::oauth::Options::with_redirect_uris(redirect_uris),
        pg,
        ..fakes::Options::default()
    }
}

/// The public URL of a standalone whose gateway listens on `addr`: `localhost` for loopback and
/// unspecified addresses (what a browser on the machine uses), the address otherwise.
fn local_public_url(addr: std::net::SocketAddr) -> String {
    let ip = addr.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// The file in the data folder that keeps standalone's key-encryption key.
const KEK_FILE: &str = "user-key-encryption-key";

/// Unless `user.tokens.key_encryption_key` is configured, standalone seals the signing keys with
/// a key it keeps in its data folder (made on first start): a dump or an SQL read of UserDB
/// alone cannot mint tokens, though whoever can read the folder can.
fn seal_keys_in(cfg: &mut AppConfig, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if cfg.user.tokens.key_encryption_key.is_none() {
        let kek = user::keys::Kek::load_or_create(&data_dir.join(KEK_FILE))
            .map_err(|e| anyhow!("the signing keys' key-encryption key: {e}"))?;
        cfg.user.tokens.key_encryption_key = Some(kek);
    }
    Ok(())
}

async fn start_service(name: &str, cfg: &AppConfig, infra: &Infra) -> Result<Service, StartError> {
    match name {
        "gateway" => {
            let mut gateway = cfg.gateway.clone();
            gateway.api_docs =
                crate::docs::api_docs().map_err(|e| StartError::Config(format!("{e:#}")))?;
            gateway::start(&gateway, infra).await
        }
        "user" => user::start(&cfg.user, infra).await,
        "catalog" => catalog::start(&cfg.catalog, infra).await,
        "seat" => seat::start(&cfg.seat, infra).await,
        "admission" => admission::start(&cfg.admission, infra).await,
        "order" => order::start(&cfg.order, infra).await,
        "payment" => payment::start(&cfg.payment, infra).await,
        "notification" => notification::start(&cfg.notification, infra).await,
        other => Err(StartError::Config(format!(
            "unknown service `{other}`; one of: gateway, {}",
            SERVICES.join(", ")
        ))),
    }
}

/// The data folder as this process uses it.
enum DataDir {
    /// Not used for the database: a server URL is configured (one-off commands).
    Unused,
    /// Locked by this process for its life: only it starts or stops the private PostgreSQL there.
    Locked(DataDirLock),
    /// A running standalone holds it: this one-off command uses that standalone's private
    /// PostgreSQL (over its socket) and leaves it running.
    Shared { url: String, holder: String },
}

/// Standalone's hold on its data folder for the life of the process: a second standalone, or a
/// one-off command that would start its own cluster there, is refused or shares ours.
async fn lock_data_dir(cfg: &AppConfig, data_dir: &std::path::Path) -> anyhow::Result<DataDir> {
    let dir = data_dir.to_path_buf();
    let private = cfg.database.url.is_none();
    let lock =
        tokio::task::spawn_blocking(move || DataDirLock::acquire(&dir, "standalone", private))
            .await
            .context("locking the data folder")??;
    Ok(DataDir::Locked(lock))
}

/// A one-off command's use of the data folder: none with a configured server; else the folder
/// locked when free, or a running standalone's cluster shared.
async fn claim_data_dir(
    cfg: &AppConfig,
    data_dir: &std::path::Path,
    command: &'static str,
) -> anyhow::Result<DataDir> {
    if cfg.database.url.is_some() {
        return Ok(DataDir::Unused);
    }
    let dir = data_dir.to_path_buf();
    let claim = tokio::task::spawn_blocking(move || private_pg::claim_data_dir(&dir, command))
        .await
        .context("claiming the data folder")??;
    Ok(match claim {
        DataDirClaim::Locked(lock) => DataDir::Locked(lock),
        DataDirClaim::Shared { url, holder } => DataDir::Shared {
            url,
            holder: holder.to_string(),
        },
    })
}

/// Brings up the private PostgreSQL unless a server URL is configured (or a running standalone's
/// is shared).
async fn database(
    cfg: &AppConfig,
    data: &DataDir,
) -> anyhow::Result<(String, Option<PrivatePostgres>)> {
    if let Some(url) = &cfg.database.url {
        platform::db::ping(url).await?;
        return Ok((url.clone(), None));
    }
    match data {
        DataDir::Locked(lock) => {
            let lock = lock.clone();
            let pg = tokio::task::spawn_blocking(move || PrivatePostgres::start(&lock))
                .await
                .context("starting the private PostgreSQL")??;
            Ok((pg.url(), Some(pg)))
        }
        DataDir::Shared { url, holder } => {
            platform::db::ping(url)
                .await
                .with_context(|| format!("connecting to the private PostgreSQL of {holder}"))?;
            Ok((url.clone(), None))
        }
        DataDir::Unused => bail!("no database: set BOXOFFICE_DATABASE__URL or use --data-dir"),
    }
}

type Server = BoxFuture<'static, (String, std::io::Result<()>)>;

/// Drain delay at shutdown in distributed mode when `http.drain_delay_ms` is unset: long enough
/// for a load balancer (a Kubernetes endpoint update) to stop sending.
const DISTRIBUTED_DRAIN_MS: u64 = 5_000;

/// The gateway's ops listener port in distributed mode when `gateway.ops_port` is unset (and the
/// main port is not 0, which picks a free port for both).
const DISTRIBUTED_OPS_PORT: u16 = 9090;

/// Serves `service` on `listener` until `shutdown` (drain, close, finish in-flight requests);
/// its tasks come back, watched, to join once every server has stopped.
fn server(
    name: &str,
    listener: TcpListener,
    service: Service,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> (Server, Tasks) {
    let (service, tasks) = service.supervised();
    let label = name.to_owned();
    let fut = Box::pin(async move {
        let result = http::serve_on(
            listener,
            service.name,
            service.router,
            service.readiness,
            &settings,
            shutdown,
        )
        .await;
        (label, result)
    });
    (fut, tasks)
}

/// The gateway's ops listener: `/readyz` with every detail, and `/metrics`.
fn ops_server(
    listener: TcpListener,
    readiness: http::Readiness,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> Server {
    Box::pin(async move {
        let result =
            http::serve_ops_on(listener, gateway::NAME, readiness, &settings, shutdown).await;
        ("gateway ops".to_owned(), result)
    })
}

/// Binds the gateway's ops listener.
async fn bind_ops(cfg: &AppConfig, host: IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    let settings = HttpSettings {
        host: cfg.gateway.ops_host.unwrap_or(host),
        port: cfg.gateway.ops_port.unwrap_or(port),
        ..cfg.http.clone()
    };
    http::bind(&settings).await.with_context(|| {
        format!(
            "cannot listen on {}:{} (the gateway's ops listener, gateway.ops_port)",
            settings.host, settings.port
        )
    })
}

/// Adds the checks of the shared infrastructure a service uses in distributed mode: the broker
/// for a service with background tasks (relay, consumers), Redis for the seat service.
fn infrastructure_checks(name: &str, cfg: &AppConfig, mut service: Service) -> Service {
    if cfg.bus.transport == TransportKind::Kafka && !service.tasks.is_empty() {
        service.readiness = service.readiness.broker(&cfg.bus);
    }
    // The hold store and the waiting rooms' queues are in Redis when it is configured.
    if let Some(url) = &cfg.redis.url
        && matches!(name, "seat" | "admission")
    {
        service.readiness = service.readiness.redis(url);
    }
    service
}

pub async fn standalone(mut cfg: AppConfig, args: StandaloneArgs) -> anyhow::Result<()> {
    let shutdown = http::shutdown_on_signals();
    if let (Some(email), Some(password)) = (args.admin_email, args.admin_password) {
        cfg.user.admin_email = Some(email);
        cfg.user.admin_password = Some(password);
    }
    // Bind the public port first: a taken port should fail before anything else starts.
    let public = HttpSettings {
        host: args.host,
        port: args.port,
        ..cfg.http.clone()
    };
    let gateway_listener = http::bind(&public)
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let sandbox = !args.no_sandbox && cfg.sandbox.unwrap_or(true);
    let public_url = match &cfg.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => local_public_url(gateway_listener.local_addr()?),
    };
    pass_down(&mut cfg, sandbox, Some(public_url));

    // Held until this function returns, after the private PostgreSQL has stopped.
    let data = lock_data_dir(&cfg, &args.data_dir).await?;
    seal_keys_in(&mut cfg, &args.data_dir)?;
    let (db_url, private_pg) = database(&cfg, &data).await?;
    let result = run_standalone(&cfg, db_url, gateway_listener, public, shutdown).await;
    if let Some(pg) = private_pg {
        tokio::task::spawn_blocking(move || pg.stop())
            .await
            .context("stopping the private PostgreSQL")??;
    }
    result
}

/// Standalone stops in order: on `shutdown` the gateway drains and finishes its requests (the
/// services behind it still answer), then the services do, then the background tasks stop and
/// are joined, all together, within `http.tasks_grace_ms`.
async fn run_standalone(
    cfg: &AppConfig,
    db_url: String,
    gateway_listener: TcpListener,
    public: HttpSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // No load balancer in front of standalone: no drain delay unless configured.
    let public = HttpSettings {
        drain_delay_ms: Some(public.drain_delay_ms.unwrap_or(0)),
        ..public
    };
    let internal_stop = CancellationToken::new();
    let tasks_stop = CancellationToken::new();
    let mut bus_settings = cfg.bus.clone();
    bus_settings.transport = TransportKind::Memory;
    // The in-memory bus dies with the process: each relay publishes again at start every row a
    // consumer group had not committed. Sealed once every service (so every consumer) started.
    let memory_bus = bus::connect_memory(&bus_settings, contracts::topics::ALL).await?;
    let bus: Arc<dyn bus::Transport> = Arc::new(memory_bus.clone());
    let internal = HttpSettings {
        host: IpAddr::from([127, 0, 0, 1]),
        port: 0,
        ..public.clone()
    };
    let ops_listener = bind_ops(cfg, internal.host, 0).await?;
    let ops_url = format!("http://{}", ops_listener.local_addr()?);

    let mut listeners = Vec::new();
    let mut directory = Directory::default();
    for name in SERVICES {
        let l = http::bind(&internal).await?;
        directory
            .0
            .insert((*name).to_owned(), format!("http://{}", l.local_addr()?));
        listeners.push((*name, l));
    }
    // Sandbox mode starts the fakes; without it there is none, and the gateway serves no
    // /sandbox/ route.
    let fake_opts = fake_options(cfg);
    let fakes = if cfg.gateway.sandbox {
        fakes::all(&fake_opts)
    } else {
        Vec::new()
    };
    let mut fake_listeners = Vec::new();
    for fake in fakes {
        let l = http::bind(&internal).await?;
        directory.0.insert(
            format!("fake-{}", fake.name),
            format!("http://{}", l.local_addr()?),
        );
        fake_listeners.push((fake, l));
    }
    // In sandbox mode the notification service sends to the sandboxes, so every mail and SMS
    // the platform sends shows at /sandbox/mail/ and /sandbox/sms/: the catcher's SMTP side
    // listens on a loopback port of its own.
    let mut sandboxed = cfg.clone();
    if cfg.gateway.sandbox {
        let smtp = TcpListener::bind((internal.host, 0))
            .await
            .context("binding the mail catcher's SMTP port")?;
        let smtp_addr = smtp.local_addr()?;
        tokio::spawn(fakes::mail::smtp::serve(
            smtp,
            fake_opts.mail.clone(),
            internal_stop.clone(),
        ));
        let n = &mut sandboxed.notification;
        n.smtp.host = smtp_addr.ip().to_string();
        n.smtp.port = smtp_addr.port();
        n.smtp.tls = notification::config::SmtpTls::None;
        n.smtp.username = None;
        n.smtp.password = None;
        n.sms.url = directory.0.get("fake-sms").cloned();
        n.sms.api_key = fakes::sms::SANDBOX_API_KEY.to_owned();
        n.sms.api_secret = fakes::sms::SANDBOX_API_SECRET.to_owned();
    }
    let cfg = &sandboxed;

    let infra = Infra {
        mode: Mode::Standalone,
        database_url: Some(db_url),
        database: cfg.database.clone(),
        bus,
        bus_settings,
        redis: Default::default(),
        directory,
        shutdown: tasks_stop.clone(),
    };

    let mut servers: Vec<Server> = Vec::new();
    let mut front: Vec<Server> = Vec::new();
    let mut tasks = Vec::new();
    let started = async {
        // The gateway calls the services of this process in process (gateway.in_process):
        // each app without the middleware the gateway's own stack already runs around the
        // call (`http::in_process`), so nothing changes but the loopback hop.
        let mut local = gateway::proxy::LocalUpstreams::default();
        for (name, listener) in listeners {
            let service = start_service(name, cfg, &infra)
                .await
                .with_context(|| format!("starting the {name} service"))?;
            local.0.insert(
                (*name).to_owned(),
                http::in_process(
                    service.name,
                    service.router.clone(),
                    service.readiness.clone(),
                    &internal,
                ),
            );
            let (s, t) = server(
                name,
                listener,
                service,
                internal.clone(),
                internal_stop.clone(),
            );
            servers.push(s);
            tasks.push(t);
        }
        for (fake, listener) in fake_listeners {
            let service = Service {
                name: "fake",
                router: fake.router,
                readiness: Default::default(),
                tasks: Vec::new(),
            };
            local.0.insert(
                format!("fake-{}", fake.name),
                http::in_process(
                    service.name,
                    service.router.clone(),
                    Default::default(),
                    &internal,
                ),
            );
            let (s, _) = server(
                fake.name,
                listener,
                service,
                internal.clone(),
                internal_stop.clone(),
            );
            servers.push(s);
        }
        let gw = if cfg.gateway.in_process {
            let mut with_local = cfg.clone();
            with_local.gateway.local_upstreams = local;
            start_service("gateway", &with_local, &infra).await?
        } else {
            start_service("gateway", cfg, &infra).await?
        };
        front.push(ops_server(
            ops_listener,
            gw.readiness.clone(),
            public.clone(),
            shutdown.clone(),
        ));
        let (s, t) = server(
            "gateway",
            gateway_listener,
            gw,
            public.clone(),
            shutdown.clone(),
        );
        front.push(s);
        tasks.push(t);
        anyhow::Ok(())
    }
    .await;
    let stop = Stopping {
        front,
        internal: servers,
        internal_stop,
        tasks,
        tasks_stop,
        tasks_grace: Duration::from_millis(cfg.http.tasks_grace_ms),
    };
    if let Err(e) = started {
        shutdown.cancel();
        stop.run().await;
        return Err(e);
    }
    // Every consumer is announced: from now on commits settle outbox rows.
    memory_bus.seal();
    let url = cfg.user.public_url.clone().unwrap_or_default();
    if cfg.gateway.sandbox {
        tracing::info!(
            %url,
            listen = %format!("{}:{}", public.host, public.port),
            ops = %ops_url,
            sandbox = true,
            "Boxoffice standalone is up in SANDBOX MODE: fake third parties (OAuth providers) \
             stand in for real ones at {url}/sandbox/ and sign in anyone; --no-sandbox turns \
             them off. Readiness details and metrics: {ops_url}/readyz, {ops_url}/metrics. \
             Ctrl-C stops it"
        );
    } else {
        tracing::info!(
            %url,
            listen = %format!("{}:{}", public.host, public.port),
            ops = %ops_url,
            sandbox = false,
            "Boxoffice standalone is up without sandboxes: only third parties configured for \
             real are used. Readiness details and metrics: {ops_url}/readyz, \
             {ops_url}/metrics. Ctrl-C stops it"
        );
    }
    stop.run().await;
    tracing::info!("every service stopped");
    Ok(())
}

/// What runs until shutdown, and the order it stops in: the front servers (on the signal) first,
/// then the internal ones, then the background tasks.
struct Stopping {
    /// Stop on the shutdown signal (the gateway and its ops listener).
    front: Vec<Server>,
    /// Stop on `internal_stop`, cancelled once every front server has returned.
    internal: Vec<Server>,
    internal_stop: CancellationToken,
    /// Stop on `tasks_stop`, cancelled once every server has returned.
    tasks: Vec<Tasks>,
    tasks_stop: CancellationToken,
    tasks_grace: Duration,
}

impl Stopping {
    async fn run(self) {
        let internal_stop = self.internal_stop.clone();
        let front = async move {
            run_servers(self.front).await;
            internal_stop.cancel();
        };
        futures::join!(front, run_servers(self.internal));
        self.tasks_stop.cancel();
        join_tasks(self.tasks, self.tasks_grace).await;
    }
}

async fn run_servers(servers: Vec<Server>) {
    let mut set = JoinSet::new();
    for s in servers {
        set.spawn(s);
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok((name, Err(e))) => tracing::error!(service = %name, error = %e, "server failed"),
            Ok((name, Ok(()))) => tracing::debug!(service = %name, "server stopped"),
            Err(e) => tracing::error!(error = %e, "server task failed"),
        }
    }
}

/// Joins every service's background tasks together within `budget`.
async fn join_tasks(tasks: Vec<Tasks>, budget: Duration) {
    let late: Vec<String> = futures::future::join_all(tasks.into_iter().map(|t| t.join(budget)))
        .await
        .into_iter()
        .flatten()
        .collect();
    if !late.is_empty() {
        tracing::warn!(tasks = ?late, ?budget, "background tasks aborted at shutdown");
    }
}

pub async fn serve(mut cfg: AppConfig, args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = http::shutdown_on_signals();
    // Distributed mode uses a sandbox only when it is configured explicitly.
    let sandbox = cfg.sandbox.unwrap_or(false);
    let public_url = cfg.public_url.clone();
    pass_down(&mut cfg, sandbox, public_url);
    let name = args.service.as_str();
    if sandbox && !name.starts_with("fake-") {
        tracing::warn!(
            service = name,
            "sandbox mode is on (sandbox = true): fake third parties stand in for the ones not \
             configured for real; never in production"
        );
    }
    if let Some(sandbox) = name.strip_prefix("fake-") {
        return serve_fake(&cfg, sandbox, args.port, shutdown).await;
    }
    if name != "gateway" && !SERVICES.contains(&name) {
        bail!(
            "unknown service `{name}`; one of: gateway, {}, or a fake ({})",
            SERVICES.join(", "),
            fake_names().join(", ")
        );
    }
    // main refuses this before anything starts (exit 2); kept for other callers.
    if cfg.bus.transport == TransportKind::Memory && name != "gateway" {
        bail!(bus::memory_refusal(name));
    }
    let bus = bus::connect(&cfg.bus, contracts::topics::ALL).await?;
    // Background tasks stop once the server has drained and finished its requests.
    let tasks_stop = CancellationToken::new();
    let infra = Infra {
        mode: Mode::Distributed,
        database_url: cfg.database.url.clone(),
        database: cfg.database.clone(),
        bus,
        bus_settings: cfg.bus.clone(),
        redis: cfg.redis.clone(),
        directory: cfg.services.clone(),
        shutdown: tasks_stop.clone(),
    };
    let settings = HttpSettings {
        port: args.port.unwrap_or(cfg.http.port),
        drain_delay_ms: Some(cfg.http.drain_delay_ms.unwrap_or(DISTRIBUTED_DRAIN_MS)),
        ..cfg.http.clone()
    };
    let listener = http::bind(&settings)
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let ops_listener = match name {
        "gateway" => {
            let port = match settings.port {
                0 => 0,
                _ => DISTRIBUTED_OPS_PORT,
            };
            Some(bind_ops(&cfg, settings.host, port).await?)
        }
        _ => None,
    };
    let service = start_service(name, &cfg, &infra)
        .await
        .with_context(|| format!("starting the {name} service"))?;
    let service = infrastructure_checks(name, &cfg, service);
    let mut front = Vec::new();
    if let Some(ops) = ops_listener {
        front.push(ops_server(
            ops,
            service.readiness.clone(),
            settings.clone(),
            shutdown.clone(),
        ));
    }
    let (s, t) = server(name, listener, service, settings, shutdown);
    front.push(s);
    Stopping {
        front,
        internal: Vec::new(),
        internal_stop: CancellationToken::new(),
        tasks: vec![t],
        tasks_stop,
        tasks_grace: Duration::from_millis(cfg.http.tasks_grace_ms),
    }
    .run()
    .await;
    Ok(())
}

fn fake_names() -> Vec<String> {
    fakes::NAMES.iter().map(|f| format!("fake-{f}")).collect()
}

/// Serves one third-party fake on its own port (distributed mode's sandboxes).
async fn serve_fake(
    cfg: &AppConfig,
    sandbox: &str,
    port: Option<u16>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let options = fake_options(cfg);
    let Some(fake) = fakes::all(&options).into_iter().find(|f| f.name == sandbox) else {
        bail!(
            "unknown fake `fake-{sandbox}`; one of: {}",
            fake_names().join(", ")
        );
    };
    let settings = HttpSettings {
        port: port.unwrap_or(cfg.http.port),
        ..cfg.http.clone()
    };
    let listener = http::bind(&settings)
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    if sandbox == "mail" {
        // The catcher's SMTP side, beside its HTTP API.
        let port = cfg.fakes.mail.smtp_port;
        let smtp = TcpListener::bind((settings.host, port))
            .await
            .with_context(|| format!("cannot listen for SMTP on {}:{port}", settings.host))?;
        tokio::spawn(fakes::mail::smtp::serve(
            smtp,
            options.mail.clone(),
            shutdown.clone(),
        ));
    }
    let service = Service {
        name: "fake",
        router: fake.router,
        readiness: Default::default(),
        tasks: Vec::new(),
    };
    let (s, _) = server(sandbox, listener, service, settings, shutdown);
    run_servers(vec![s]).await;
    Ok(())
}

/// The infrastructure of a one-off command (migrate, seed): the database, an in-process bus nobody
/// reads, and a shutdown already signalled, so no relay, consumer or sweeper a service starts
/// does any work — outbox rows stay in the database for the running services' relays (a relay
/// here would publish them into this bus and mark them published: lost).
fn offline_infra(cfg: &AppConfig, db_url: String) -> Infra {
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    // Services build clients of each other at start (e.g. the JWKS verifier) without calling
    // them; a one-off command never serves a request, so unknown addresses are placeholders.
    let mut directory = cfg.services.clone();
    for name in SERVICES {
        directory
            .0
            .entry((*name).to_owned())
            .or_insert_with(|| "http://127.0.0.1:9".to_owned());
    }
    Infra {
        mode: Mode::Distributed,
        database_url: Some(db_url),
        database: cfg.database.clone(),
        bus: Arc::new(bus::memory::MemoryTransport::new(1)),
        bus_settings: cfg.bus.clone(),
        redis: cfg.redis.clone(),
        directory,
        shutdown,
    }
}

pub async fn migrate(mut cfg: AppConfig, args: MigrateArgs) -> anyhow::Result<()> {
    let sandbox = cfg.sandbox.unwrap_or(false);
    let public_url = cfg.public_url.clone();
    pass_down(&mut cfg, sandbox, public_url);
    // Migrating only migrates: seeding is `boxoffice seed`'s job.
    cfg.catalog.seed_on_empty = false;
    let targets: Vec<&str> = match &args.service {
        Some(s) if SERVICES.contains(&s.as_str()) => vec![s.as_str()],
        Some(s) => return Err(anyhow!("unknown service `{s}`")),
        None => SERVICES.to_vec(),
    };
    let data = claim_data_dir(&cfg, &args.data_dir, "migrate").await?;
    // The user service opens its (sealed) signing keys even to migrate.
    if cfg.database.url.is_none() {
        seal_keys_in(&mut cfg, &args.data_dir)?;
    }
    let (db_url, private_pg) = database(&cfg, &data).await?;
    let infra = offline_infra(&cfg, db_url);
    let mut result = Ok(());
    for name in targets {
        match start_service(name, &cfg, &infra).await {
            Ok(service) => {
                tracing::info!(service = name, "migrated");
                for t in service.tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
                }
            }
            Err(e) => {
                result = Err(anyhow!("migrating {name}: {e}"));
                break;
            }
        }
    }
    if let Some(pg) = private_pg {
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    result
}

pub async fn seed(cfg: AppConfig, args: SeedArgs) -> anyhow::Result<()> {
    let data = claim_data_dir(&cfg, &args.data_dir, "seed").await?;
    let (db_url, private_pg) = database(&cfg, &data).await?;
    let infra = offline_infra(&cfg, db_url);
    let result = catalog::seed::command(&cfg.catalog, &infra, args.start_date.as_deref()).await;
    if let Some(pg) = private_pg {
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    let report = result.context("seeding the catalog")?;
    tracing::info!(?report, "seeded the catalog");
    Ok(())
}
