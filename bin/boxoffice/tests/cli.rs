//! The `boxoffice` binary from the outside, as a user runs it: standalone comes up, answers
//! health and readiness for every service, stops cleanly on Ctrl-C with no process left behind,
//! and keeps its data for the next run; bad config and missing PostgreSQL binaries each give one
//! clear message.

#![allow(clippy::unwrap_used)] // test helpers may panic on broken set-ups

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use platform::testing::eventually;

const BIN: &str = env!("CARGO_BIN_EXE_boxoffice");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `boxoffice standalone` with its stderr collected line by line.
struct Standalone {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

/// A test that panics before stopping its standalone must not leave it running (holding ports and
/// connections to the shared test server): Ctrl-C it, give it 10 s, then kill it.
impl Drop for Standalone {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Standalone {
    fn start(data_dir: &Path) -> Self {
        Self::spawn(data_dir, |c| {
            c.env_remove("BOXOFFICE_DATABASE__URL");
        })
    }

    /// `boxoffice standalone --port <free> --data-dir <data_dir>` with JSON logs, as `configure`
    /// adds to it, its stderr collected line by line.
    fn spawn(data_dir: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .args(["standalone", "--port", &port.to_string(), "--data-dir"])
            .arg(data_dir)
            .env("BOXOFFICE_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, port, lines }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn private_pg_port(&self) -> u16 {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.contains("private PostgreSQL started"))
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v["port"].as_u64().map(|p| p as u16)
            })
            .expect("the log names the private PostgreSQL's port")
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let url = self.url("/healthz");
        let child = &mut self.child;
        let lines = self.lines.clone();
        eventually(
            "standalone answers /healthz",
            Duration::from_secs(120),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "standalone exited early with {status}: {:?}",
                        lines.lock().unwrap()
                    );
                }
                let req = client.get(&url).send();
                async move { req.await.is_ok_and(|r| r.status() == 200) }
            },
        )
        .await;
    }

    /// Sends Ctrl-C (SIGINT) and waits for a clean exit.
    fn interrupt(mut self) -> Vec<String> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "standalone ignored Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let lines = self.lines.lock().unwrap().clone();
        assert!(status.success(), "exit status {status}; log: {lines:#?}");
        lines
    }
}

/// Processes whose command line mentions `needle` (e.g. the data folder).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

/// Runs `sql` in the catalog database of the private cluster in `data` (listening on port `port`),
/// over its Unix socket: it has no TCP listener.
async fn psql(data: &Path, port: u16, sql: &str) -> Vec<String> {
    use sqlx::{ConnectOptions, Row};
    let socket_dir = data.canonicalize().unwrap().join("postgres");
    let url = platform::private_pg::socket_url(&socket_dir, port);
    let mut conn = platform::db::server_options(&url)
        .unwrap()
        .database("boxoffice_catalog")
        .connect()
        .await
        .unwrap();
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect()
}

#[tokio::test]
async fn standalone_serves_stops_cleanly_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // First run: comes up, every service ready, data written.
    let mut run = Standalone::start(&data);
    run.wait_healthy().await;
    let client = reqwest::Client::new();
    let ready = client.get(run.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let services = [
        "user",
        "catalog",
        "seat",
        "admission",
        "order",
        "payment",
        "notification",
    ];
    let body = readiness_when(&run, |body| {
        services
            .iter()
            .all(|s| body["checks"][*s]["status"] == "up")
    })
    .await;
    for service in services {
        assert_eq!(
            body["checks"][service]["status"], "up",
            "{service} in {body}"
        );
    }
    let unknown = client.get(run.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    assert!(unknown.headers().contains_key("x-request-id"));
    let port = run.private_pg_port();
    psql(
        &data,
        port,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')",
    )
    .await;
    assert!(run.log_contains("initializing private PostgreSQL"));

    let data_str = data.canonicalize().unwrap().to_string_lossy().into_owned();
    assert!(
        !processes_mentioning(&data_str).is_empty(),
        "postgres runs from the data folder"
    );
    let log = run.interrupt();
    assert!(
        log.iter().any(|l| l.contains("private PostgreSQL stopped")),
        "{log:#?}"
    );
    assert!(
        processes_mentioning(&data_str).is_empty(),
        "no process left behind: {:?}",
        processes_mentioning(&data_str)
    );

    // Second run: the same cluster, the same data.
    let mut again = Standalone::start(&data);
    again.wait_healthy().await;
    assert!(!again.log_contains("initializing private PostgreSQL"));
    let port = again.private_pg_port();
    assert_eq!(
        psql(&data, port, "SELECT v FROM kept").await,
        vec!["survives".to_owned()]
    );
    again.interrupt();
    assert!(processes_mentioning(&data_str).is_empty());
}

#[test]
fn bad_config_is_one_clear_message() {
    let out = Command::new(BIN)
        .args(["standalone", "--port", "0"])
        .env("BOXOFFICE_HTTP__REQUEST_TIMEOUT_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("BOXOFFICE_HTTP__REQUEST_TIMEOUT_MS"),
        "{stderr}"
    );
    assert!(stderr.contains("http.request_timeout_ms"), "{stderr}");

    let out = Command::new(BIN)
        .args(["standalone"])
        .env("BOXOFFICE_HTTP__NO_SUCH_SETTING", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_setting"), "{stderr}");
}

#[test]
fn missing_postgres_binaries_name_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("BOXOFFICE_PG_BINDIR", dir.path().join("no-postgres-here"))
        .env_remove("BOXOFFICE_DATABASE__URL")
        .env("BOXOFFICE_LOG__FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("boxoffice: "), "{stderr}");
    assert!(last.contains("apt-get install postgresql"), "{stderr}");
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["standalone", "--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn unknown_services_and_fakes_are_named() {
    for (name, listed) in [("nope", "catalog"), ("fake-nope", "fake-oauth")] {
        let out = Command::new(BIN)
            .args(["serve", name, "--port", "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.trim().lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!("`{name}`")) && last.contains(listed),
            "{stderr}"
        );
    }
}

/// `boxoffice migrate` against a server: every service's database is created and migrated, and
/// an event waiting in an outbox is left for the service's own relay (a one-off command has no
/// reader on its bus: publishing there would lose the event).
#[tokio::test]
async fn migrate_creates_every_database_and_leaves_outboxes_alone() {
    use sqlx::{ConnectOptions, Connection};
    let server = platform::testing::database_url();
    let prefix = platform::testing::database_prefix("migrate");
    let migrate = || {
        Command::new(BIN)
            .arg("migrate")
            .env("BOXOFFICE_DATABASE__URL", &server)
            .env("BOXOFFICE_DATABASE__NAME_PREFIX", &prefix)
            .output()
            .unwrap()
    };
    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opts = platform::db::server_options(&server).unwrap();
    let mut admin = opts.clone().database("postgres").connect().await.unwrap();
    let made: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(&prefix)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for service in [
        "user",
        "catalog",
        "seat",
        "order",
        "payment",
        "notification",
    ] {
        assert!(
            made.contains(&format!("{prefix}{service}")),
            "{service}: {made:?}"
        );
    }

    let mut user = opts
        .database(&format!("{prefix}user"))
        .connect()
        .await
        .unwrap();
    let waiting = contracts::Envelope::new(&contracts::events::UserRegistered {
        user_id: uuid::Uuid::now_v7(),
        email: "waiting@example.kr".into(),
        name: "W".into(),
        phone: None,
    })
    .unwrap();
    platform::bus::outbox::enqueue_envelope(&mut user, contracts::topics::USERS, &waiting)
        .await
        .unwrap();
    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT published_at FROM bus_outbox WHERE id = $1")
            .bind(waiting.id)
            .fetch_one(&mut user)
            .await
            .unwrap();
    assert_eq!(
        published, None,
        "the waiting event is still the relay's to publish"
    );
    user.close().await.unwrap();
    for db in made {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{db}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// A standalone on the test PostgreSQL server (no private cluster to initialise), with `args`.
fn standalone_on_server(prefix: &str, data_dir: &Path, args: &[&str]) -> Standalone {
    standalone_on_server_with(prefix, data_dir, args, &[])
}

/// [`standalone_on_server`] with more environment variables.
fn standalone_on_server_with(
    prefix: &str,
    data_dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Standalone {
    Standalone::spawn(data_dir, |c| {
        c.args(args)
            .envs(envs.iter().copied())
            .env("BOXOFFICE_DATABASE__URL", platform::testing::database_url())
            .env("BOXOFFICE_DATABASE__NAME_PREFIX", prefix)
            .env("BOXOFFICE_CATALOG__SEED_ON_EMPTY", "false")
            // A shared test server: a few connections per service are plenty here.
            .env("BOXOFFICE_DATABASE__MAX_CONNECTIONS", "3")
            .env_remove("BOXOFFICE_SANDBOX")
            .env_remove("BOXOFFICE_PUBLIC_URL");
    })
}

/// Drops the databases whose names start with `prefix`.
async fn drop_databases(prefix: &str) {
    use sqlx::{ConnectOptions, Connection};
    let opts = platform::db::server_options(&platform::testing::database_url()).unwrap();
    let mut admin = opts.database("postgres").connect().await.unwrap();
    let made: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(prefix)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for db in made {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{db}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    admin.close().await.unwrap();
}

/// The gateway's readiness with its details: from its ops listener when the start banner names
/// one (the public `/readyz` then says only ready or not), else from the public port.
async fn readiness_details(run: &Standalone) -> serde_json::Value {
    let ops = run
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("Boxoffice standalone is up"))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["ops"].as_str().map(str::to_owned)
        });
    let url = match ops {
        Some(ops) => format!("{}/readyz", ops.trim_end_matches('/')),
        None => run.url("/readyz"),
    };
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The readiness details once `ok` holds of them, or the last ones read after 60 s. Each
/// upstream's check has a short timeout: on a loaded machine a service busy at start (the
/// catalog seeding, consumers catching up) may miss one; it must come up within the deadline,
/// and one that never does fails the caller's assertions.
async fn readiness_when(
    run: &Standalone,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body = readiness_details(run).await;
        if ok(&body) || std::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn problem_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

/// `--no-sandbox`: no fake is started, no `/sandbox/*` route is served, no provider is offered,
/// and neither the banner nor `/readyz` claims a sandbox.
#[tokio::test]
async fn standalone_without_sandbox_serves_no_fake_and_offers_no_provider() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = platform::testing::database_prefix("nosandbox");
    let mut run = standalone_on_server(&prefix, dir.path(), &["--no-sandbox"]);
    run.wait_healthy().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/sandbox/oauth/kakao/authorize",
        "/sandbox/oauth/google/jwks.json",
        "/sandbox/pg/v1/sandbox/checkouts",
    ] {
        let r = client.get(run.url(path)).send().await.unwrap();
        assert_eq!(problem_code(r).await, (404, "not_found".into()), "{path}");
    }
    let r = client
        .get(run.url("/api/v1/auth/oauth/providers"))
        .send()
        .await
        .unwrap();
    let offered: serde_json::Value = r.json().await.unwrap();
    assert_eq!(offered, serde_json::json!({"providers": []}));
    for provider in ["kakao", "naver", "google"] {
        let r = client
            .get(run.url(&format!("/api/v1/auth/oauth/{provider}/authorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(problem_code(r).await, (404, "provider_disabled".into()));
    }
    let ready = readiness_details(&run).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(ready["checks"]["user"].is_object(), "details, {ready}");
    assert!(ready["checks"].get("sandbox").is_none(), "{ready}");
    let log = run.interrupt();
    let banner = log
        .iter()
        .find(|l| l.contains("Boxoffice standalone is up"))
        .unwrap();
    assert!(banner.contains("\"sandbox\":false"), "{banner}");
    assert!(
        !log.iter()
            .any(|l| l.contains("\"listening\"") && l.contains("\"service\":\"fake\"")),
        "a fake was started: {log:#?}"
    );
    drop_databases(&prefix).await;
}

/// Sandbox mode (the default) is announced in the banner and on `/readyz`; the OAuth redirect
/// follows `--port`; the sandbox signs in a new account end to end but not the administrator
/// (the attack of issue 9), and sends browsers nowhere else.
#[tokio::test]
async fn standalone_sandbox_is_announced_follows_the_port_and_hands_out_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = platform::testing::database_prefix("sandbox");
    let admin = "root@example.com";
    let mut run = standalone_on_server(
        &prefix,
        dir.path(),
        &[
            "--admin-email",
            admin,
            "--admin-password",
            "a long admin passphrase",
        ],
    );
    run.wait_healthy().await;
    let port = run.port;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ready = readiness_when(&run, |r| r["checks"]["sandbox"]["status"] == "up").await;
    assert_eq!(ready["checks"]["sandbox"]["status"], "up", "{ready}");
    assert!(run.log_contains("SANDBOX MODE"));
    let loopback = |url: &str| url.replace("//localhost:", "//127.0.0.1:");
    let sign_in = |email: String| {
        let client = client.clone();
        let url = run.url("/api/v1/auth/oauth/kakao/authorize");
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            let cookie = r.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let to = r.headers()["location"].to_str().unwrap().to_owned();
            let own = format!("http://localhost:{port}/sandbox/oauth/kakao/authorize?");
            assert!(to.starts_with(&own), "{to}");
            let callback = format!("http://localhost:{port}/api/v1/auth/oauth/kakao/callback");
            let encoded = callback.replace(':', "%3A").replace('/', "%2F");
            assert!(to.contains(&format!("redirect_uri={encoded}")), "{to}");
            let r = client
                .get(format!("{}&auto=1&login_hint={email}", loopback(&to)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302);
            let back = r.headers()["location"].to_str().unwrap().to_owned();
            assert!(back.starts_with(&format!("{callback}?code=")), "{back}");
            client
                .get(loopback(&back))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let r = sign_in("fan@example.com".into()).await;
    assert_eq!(r.status(), 200);
    let signed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(signed["user"]["created"], true);
    // The new account's welcome mail went to the sandbox's mail catcher, in Mailpit's shape,
    // with links to this platform's own address.
    let mail = run.url("/sandbox/mail/api/v1/messages");
    let found = std::sync::Mutex::new(serde_json::Value::Null);
    platform::testing::eventually("the welcome mail", Duration::from_secs(30), || async {
        let Ok(r) = client.get(&mail).send().await else {
            return false;
        };
        let list: serde_json::Value = r.json().await.unwrap_or_default();
        let hit = list["messages"].as_array().and_then(|m| {
            m.iter()
                .find(|m| m["To"][0]["Address"] == "fan@example.com")
                .cloned()
        });
        match hit {
            Some(m) => {
                *found.lock().unwrap() = m;
                true
            }
            None => false,
        }
    })
    .await;
    let welcome = found.into_inner().unwrap();
    assert_eq!(
        welcome["Subject"], "Boxoffice에 오신 것을 환영합니다",
        "{welcome}"
    );
    assert!(
        welcome["Snippet"]
            .as_str()
            .unwrap()
            .contains(&format!("http://localhost:{port}")),
        "{welcome}"
    );
    let r = sign_in(admin.into()).await;
    assert_eq!(problem_code(r).await, (403, "sandbox_refused".into()));
    // The fake behind the gateway redirects only to the platform's own callbacks.
    let r = client
        .get(run.url(
            "/sandbox/oauth/kakao/authorize?response_type=code&client_id=boxoffice-kakao\
             &redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s&code_challenge=abc\
             &code_challenge_method=S256&auto=1&login_hint=x%40example.com",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.headers().contains_key("location"));
    run.interrupt();
    drop_databases(&prefix).await;
}

/// The private cluster of the standalone running on `data`, as its `postmaster.pid` describes it.
fn running_cluster(data: &Path) -> platform::private_pg::RunningCluster {
    let cluster = data.canonicalize().unwrap().join("postgres");
    platform::private_pg::RunningCluster::read(&cluster).expect("a ready private PostgreSQL")
}

/// `boxoffice <command> --data-dir <data>` on the private cluster, as a user runs it.
fn one_off(command: &str, data: &Path) -> std::process::Output {
    Command::new(BIN)
        .arg(command)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BOXOFFICE_DATABASE__URL")
        .output()
        .unwrap()
}

/// GET `path` on the standalone, answering its status.
async fn status_of(run: &Standalone, path: &str) -> u16 {
    reqwest::get(run.url(path)).await.unwrap().status().as_u16()
}

/// `migrate` and `seed` on the data folder of a running standalone use that standalone's private
/// PostgreSQL and leave it running (they used to stop it: 503s afterwards); a second standalone
/// on the folder is refused, naming the first, and the first keeps serving.
#[tokio::test]
async fn one_off_commands_and_a_second_standalone_leave_a_running_standalone_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut run = Standalone::start(&data);
    run.wait_healthy().await;
    assert_eq!(status_of(&run, "/api/v1/events").await, 200);
    let before = running_cluster(&data);

    for command in ["migrate", "seed"] {
        let out = one_off(command, &data);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("connecting to that standalone's PostgreSQL"),
            "{command} shares the running cluster: {stderr}"
        );
        assert_eq!(status_of(&run, "/healthz").await, 200, "after {command}");
        assert_eq!(
            status_of(&run, "/api/v1/events").await,
            200,
            "the database still answers after {command}"
        );
        assert_eq!(
            running_cluster(&data),
            before,
            "{command} left the standalone's cluster as it was"
        );
    }

    let second = Command::new(BIN)
        .args([
            "standalone",
            "--port",
            &free_port().to_string(),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("BOXOFFICE_DATABASE__URL")
        .output()
        .unwrap();
    assert_ne!(second.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&second.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    let holder = format!("in use by `boxoffice standalone` (pid {})", run.child.id());
    assert!(last.starts_with("boxoffice: "), "{stderr}");
    assert!(last.contains(&holder), "{stderr}");
    assert!(last.contains("--data-dir"), "{stderr}");
    assert_eq!(status_of(&run, "/api/v1/events").await, 200);
    assert_eq!(status_of(&run, "/readyz").await, 200);
    assert_eq!(running_cluster(&data), before);

    let data_str = data.canonicalize().unwrap().to_string_lossy().into_owned();
    let log = run.interrupt();
    assert!(
        log.iter().any(|l| l.contains("private PostgreSQL stopped")),
        "{log:#?}"
    );
    assert!(
        processes_mentioning(&data_str).is_empty(),
        "no process left behind: {:?}",
        processes_mentioning(&data_str)
    );
    // The folder is free again: a one-off command now runs its own cluster and stops it.
    let out = one_off("migrate", &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(processes_mentioning(&data_str).is_empty());
}

/// Inodes of the TCP sockets listening on this machine (`/proc/net/tcp` and `tcp6`, state 0A).
fn listening_tcp_inodes() -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) == Some(&"0A")
                && let Some(inode) = fields.get(9)
            {
                inodes.push((*inode).to_owned());
            }
        }
    }
    inodes
}

/// Inodes of the sockets process `pid` has open.
fn socket_inodes_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let target = target.to_string_lossy();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect()
}

/// The private PostgreSQL listens on a Unix socket in its 0700 cluster folder only: nothing
/// accepts TCP connections on its port (it used to be `trust` on 127.0.0.1, every local user a
/// superuser), it has no listening TCP socket at all, and the platform works over the socket.
#[tokio::test]
async fn private_postgres_listens_on_its_socket_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut run = Standalone::start(&data);
    run.wait_healthy().await;
    assert_eq!(status_of(&run, "/api/v1/events").await, 200);

    let cluster = running_cluster(&data);
    assert_eq!(
        cluster.port,
        run.private_pg_port(),
        "the log names the port"
    );
    assert_eq!(cluster.listen_address, "", "no listen_addresses");
    let folder = data.canonicalize().unwrap().join("postgres");
    assert_eq!(cluster.socket_dir, folder);
    for addr in [
        std::net::SocketAddr::from(([127, 0, 0, 1], cluster.port)),
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, cluster.port)),
    ] {
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "something accepts TCP on {addr}"
        );
    }
    let listening = listening_tcp_inodes();
    let tcp: Vec<String> = socket_inodes_of(cluster.pid)
        .into_iter()
        .filter(|i| listening.contains(i))
        .collect();
    assert!(tcp.is_empty(), "the postmaster listens on TCP: {tcp:?}");

    let meta = std::fs::metadata(&folder).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "cluster folder mode"
    );
    if nix::unistd::Uid::effective().is_root() {
        let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        assert_eq!(meta.uid(), postgres.uid.as_raw(), "owned by postgres");
    }
    let hba = std::fs::read_to_string(folder.join("pg_hba.conf")).unwrap();
    assert!(
        !hba.lines()
            .any(|l| l.starts_with("host") && l.trim_end().ends_with("trust")),
        "no trusted TCP entry: {hba}"
    );
    assert_eq!(
        psql(&data, cluster.port, "SELECT 'over the socket'").await,
        vec!["over the socket".to_owned()]
    );
    run.interrupt();
}

/// `serve` with the in-memory bus would publish a service's events into its own memory and mark
/// them published: every service that has events refuses it before starting anything (one line,
/// exit 2), and `serve --help` says so.
#[test]
fn serve_refuses_the_in_memory_bus() {
    for service in ["seat", "order", "catalog"] {
        let out = Command::new(BIN)
            .args(["serve", service, "--port", "0"])
            .env_remove("BOXOFFICE_BUS__TRANSPORT")
            .env("BOXOFFICE_DATABASE__URL", "postgres://postgres@127.0.0.1:1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{service}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("`serve {service}` refuses bus.transport = memory"))
                && stderr.contains("BOXOFFICE_BUS__TRANSPORT=kafka"),
            "{stderr}"
        );
    }
    let help = Command::new(BIN).args(["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("bus.transport = kafka"), "{help}");
}

/// Every `.route("<path>", ...)` of the services' sources: the paths their routers serve.
fn routed_paths() -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, found: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices(".route(") {
                    let rest = text[at + ".route(".len()..].trim_start();
                    if let Some(literal) = rest.strip_prefix('"')
                        && let Some(end) = literal.find('"')
                    {
                        found.insert(literal[..end].to_owned());
                    }
                }
            }
        }
    }
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services");
    let mut found = std::collections::BTreeSet::new();
    for service in std::fs::read_dir(&services).unwrap() {
        let src = service.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut found);
        }
    }
    found
}

/// The OpenAPI document the gateway serves holds every path a service routes through the gateway;
/// each documented path routes exactly its documented methods (the upstream's 405 `Allow` for a
/// method nobody serves); and each documented operation, called without a token and again as an
/// administrator with an empty body, answers with a status the document lists for it.
#[tokio::test]
async fn the_openapi_document_matches_what_the_platform_serves() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = platform::testing::database_prefix("openapi");
    let password = "openapi-admin-secret-1";
    // One account makes every call here: no per-account limit.
    let mut run = standalone_on_server_with(
        &prefix,
        dir.path(),
        &[
            "--admin-email",
            "docs-admin@example.kr",
            "--admin-password",
            password,
        ],
        &[("BOXOFFICE_GATEWAY__RATE_LIMIT__PER_ACCOUNT", "0")],
    );
    run.wait_healthy().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = client
        .get(run.url("/api/docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();

    // Every route a service serves through the gateway is documented.
    let routed = routed_paths();
    assert!(
        routed.contains("/api/v1/holds"),
        "the scan finds routes: {routed:?}"
    );
    let undocumented: Vec<&String> = routed
        .iter()
        .filter(|p| !p.starts_with("/api/docs/") && gateway::upstream_for(p).is_some())
        .filter(|p| !paths.contains_key(p.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routed but not documented: {undocumented:?}"
    );
    // Nothing is documented that no service routes (the gateway's own paths aside).
    let phantom: Vec<&String> = paths
        .keys()
        .filter(|p| !routed.contains(p.as_str()))
        .filter(|p| {
            !["/healthz", "/readyz", "/api/docs", "/api/docs/openapi.json"].contains(&p.as_str())
        })
        .collect();
    assert!(
        phantom.is_empty(),
        "documented but routed by no service: {phantom:?}"
    );

    let login = client
        .post(run.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "docs-admin@example.kr", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = login.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let concrete = |path: &str| {
        path.split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "0190a1b2-0000-7000-8000-000000000000"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut wrong = Vec::new();
    for (path, item) in paths {
        let url = run.url(&concrete(path));
        let documented: std::collections::BTreeSet<String> =
            ["get", "put", "post", "delete", "patch"]
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .map(str::to_uppercase)
                .collect();
        if path.starts_with("/api/v1/") || path.starts_with("/.well-known/") {
            let r = client
                .request(reqwest::Method::TRACE, &url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let allow: std::collections::BTreeSet<String> = r
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty() && m != "HEAD")
                .collect();
            if r.status() != 405 || allow != documented {
                wrong.push(format!(
                    "{path}: TRACE answered {} allowing {allow:?}, documented {documented:?}",
                    r.status()
                ));
            }
        }
        for method in &documented {
            let op = &item[method.to_lowercase()];
            let listed: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            for as_admin in [false, true] {
                let mut req = client.request(method.parse().unwrap(), &url);
                if as_admin {
                    req = req.bearer_auth(&token);
                }
                if ["POST", "PUT", "PATCH"].contains(&method.as_str())
                    && op.get("requestBody").is_some()
                {
                    req = req.json(&serde_json::json!({}));
                }
                let status = req.send().await.unwrap().status().as_u16().to_string();
                if !listed.contains(&&status) && status != "429" {
                    wrong.push(format!(
                        "{method} {path} ({}) answered {status}, documented {listed:?}",
                        if as_admin { "admin" } else { "no token" }
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    run.interrupt();
    drop_databases(&prefix).await;
}
