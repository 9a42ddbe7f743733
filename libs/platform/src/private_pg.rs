//! A private PostgreSQL cluster for standalone mode: found among the installed binaries, created
//! with `initdb` in the data folder on first run, started listening on a Unix socket in its own
//! cluster folder only (no TCP: a `trust` cluster on a loopback port would make every local user
//! its superuser), stopped on exit, and reused (data and all) on the next run.
//!
//! The data folder is locked (an `flock` on `<data-dir>/boxoffice.lock`) for the life of the process
//! that uses it: only the lock's holder starts or stops the cluster. A one-off command (`migrate`,
//! `seed`) beside a running standalone connects to that standalone's cluster instead
//! ([`claim_data_dir`]), found through its `postmaster.pid`, and never stops it.
//!
//! PostgreSQL refuses to run as root; when we are root, `initdb`, `pg_ctl` and the server run as
//! the unprivileged `postgres` user (created by Debian's package), which owns the cluster folder
//! (mode 0700, so only that user and root reach the socket).

use std::{
    fs::File,
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

/// Why the private PostgreSQL could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum PrivatePgError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in pg_config's \
         bindir, /usr/lib/postgresql/*/bin or PATH. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`), or point BOXOFFICE_DATABASE__URL at a running server"
    )]
    BinariesNotFound,
    /// Running as root without an unprivileged user to run the server as.
    #[error(
        "running as root, and PostgreSQL refuses to run as root: no `postgres` user exists to run \
         it as. Install Debian's `postgresql` package (it creates the user) or run as another user"
    )]
    NoUnprivilegedUser,
    /// A step failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// Output of the failed command.
        detail: String,
    },
    /// Another process holds the data folder.
    #[error("the data folder {} is in use by {holder}; {advice}", data_dir.display())]
    InUse {
        /// The data folder.
        data_dir: PathBuf,
        /// Who holds it, e.g. "`boxoffice standalone` (pid 4242)".
        holder: String,
        /// What to do about it.
        advice: String,
    },
    /// The socket's path would not fit in a Unix socket address.
    #[error(
        "the private PostgreSQL's socket {} would be {len} bytes long, over the {max} a Unix \
         socket path may have: use a data folder with a shorter path (--data-dir)",
        path.display(),
        max = MAX_SOCKET_PATH
    )]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Filesystem trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where the PostgreSQL binaries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// Folder holding `initdb`, `pg_ctl` and `postgres`.
    pub bindir: PathBuf,
}

impl PgBinaries {
    /// Finds the binaries: only in `$BOXOFFICE_PG_BINDIR` when it is set (an explicit choice is
    /// not second-guessed); otherwise `pg_config --bindir`, the newest
    /// `/usr/lib/postgresql/*/bin`, then `PATH`.
    pub fn find() -> Result<Self, PrivatePgError> {
        if let Some(dir) = std::env::var_os("BOXOFFICE_PG_BINDIR") {
            return Self::find_in(
                Some(PathBuf::from(dir)),
                None,
                Path::new("/nonexistent"),
                std::ffi::OsStr::new(""),
            );
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        Self::find_in(
            None,
            pg_config_bindir(),
            Path::new("/usr/lib/postgresql"),
            &path,
        )
    }

    /// [`Self::find`] with every source given explicitly (testable).
    pub fn find_in(
        env_dir: Option<PathBuf>,
        pg_config_dir: Option<PathBuf>,
        versions_root: &Path,
        path: &std::ffi::OsStr,
    ) -> Result<Self, PrivatePgError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        candidates.extend(env_dir);
        candidates.extend(pg_config_dir);
        if let Ok(entries) = std::fs::read_dir(versions_root) {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versions.into_iter().map(|(_, p)| p));
        }
        candidates.extend(std::env::split_paths(path));
        candidates
            .into_iter()
            .find(|dir| {
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|b| dir.join(b).is_file())
            })
            .map(|bindir| Self { bindir })
            .ok_or(PrivatePgError::BinariesNotFound)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The lock file in the data folder.
pub const LOCK_FILE: &str = "boxoffice.lock";

/// Longest path of a Unix socket (`sun_path` holds 108 bytes with the closing NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How long a one-off command waits for a starting standalone's cluster to become ready.
const SHARED_READY_WAIT: Duration = Duration::from_secs(60);

/// This process's exclusive hold on a data folder: an `flock` on [`LOCK_FILE`], released when the
/// last clone is dropped (or the process dies, however it dies). The file names the holder (pid,
/// command, whether it runs the private PostgreSQL) for a second process's message.
#[derive(Debug, Clone)]
pub struct DataDirLock(Arc<LockInner>);

#[derive(Debug)]
struct LockInner {
    file: File,
    data_dir: PathBuf,
}

impl Drop for LockInner {
    fn drop(&mut self) {
        // Closing the file releases the lock; emptying it first leaves no stale holder behind.
        let _ = self.file.set_len(0);
    }
}

/// What a data folder's lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// The `boxoffice` command it runs (`standalone`, `migrate`, `seed`).
    pub command: String,
    /// Whether it runs (or is starting) the data folder's private PostgreSQL for its own use.
    pub private_postgres: bool,
}

impl Holder {
    fn parse(text: &str) -> Option<Self> {
        let mut pid = None;
        let mut command = None;
        let mut private_postgres = false;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("command", v)) => command = Some(v.trim().to_owned()),
                Some(("private_postgres", v)) => private_postgres = v.trim() == "true",
                _ => {}
            }
        }
        Some(Self {
            pid: pid?,
            command: command?,
            private_postgres,
        })
    }

    fn is_alive(&self) -> bool {
        pid_alive(self.pid)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`boxoffice {}` (pid {})", self.command, self.pid)
    }
}

fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// What trying the lock found.
enum Attempt {
    Locked(DataDirLock),
    /// Held by this (live) process.
    Held(Holder),
    /// Held, but the holder has not written its name yet (or is not visible from here).
    HeldByUnknown,
}

impl DataDirLock {
    /// Locks `data_dir` (created when missing) for this process, which runs `boxoffice
    /// <command>`; `private_postgres` says whether it will run the private PostgreSQL there.
    /// Fails with [`PrivatePgError::InUse`], naming the holder, when another process has it.
    pub fn acquire(
        data_dir: &Path,
        command: &str,
        private_postgres: bool,
    ) -> Result<Self, PrivatePgError> {
        let data_dir = prepare_data_dir(data_dir)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match Self::attempt(&data_dir, command, private_postgres)? {
                Attempt::Locked(lock) => return Ok(lock),
                Attempt::Held(holder) => {
                    return Err(in_use(
                        &data_dir,
                        Some(&holder),
                        "one process at a time runs the platform on a data folder: stop that one \
                         first, or give this one another --data-dir",
                    ));
                }
                Attempt::HeldByUnknown if Instant::now() >= deadline => {
                    return Err(in_use(
                        &data_dir,
                        None,
                        "stop it first, or give this one another --data-dir",
                    ));
                }
                Attempt::HeldByUnknown => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn attempt(
        data_dir: &Path,
        command: &str,
        private_postgres: bool,
    ) -> Result<Attempt, PrivatePgError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |context: String| move |source| PrivatePgError::Io { context, source };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                return Ok(match Holder::parse(&text) {
                    Some(holder) if holder.is_alive() => Attempt::Held(holder),
                    _ => Attempt::HeldByUnknown,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(PrivatePgError::Io {
                    context: format!("locking {}", path.display()),
                    source,
                });
            }
        }
        file.set_len(0)
            .and_then(|()| {
                write!(
                    file,
                    "pid={}\ncommand={command}\nprivate_postgres={private_postgres}\n",
                    std::process::id()
                )
            })
            .and_then(|()| file.flush())
            .map_err(io(format!("writing {}", path.display())))?;
        Ok(Attempt::Locked(Self(Arc::new(LockInner {
            file,
            data_dir: data_dir.to_path_buf(),
        }))))
    }

    /// The (canonical) data folder.
    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }
}

fn in_use(data_dir: &Path, holder: Option<&Holder>, advice: &str) -> PrivatePgError {
    PrivatePgError::InUse {
        data_dir: data_dir.to_path_buf(),
        holder: holder.map_or_else(|| "another process".to_owned(), Holder::to_string),
        advice: advice.to_owned(),
    }
}

fn prepare_data_dir(data_dir: &Path) -> Result<PathBuf, PrivatePgError> {
    std::fs::create_dir_all(data_dir).map_err(|source| PrivatePgError::Io {
        context: format!("creating data folder {}", data_dir.display()),
        source,
    })?;
    data_dir
        .canonicalize()
        .map_err(|source| PrivatePgError::Io {
            context: format!("resolving {}", data_dir.display()),
            source,
        })
}

/// How a one-off command (`migrate`, `seed`) uses a data folder's private PostgreSQL.
#[derive(Debug)]
pub enum DataDirClaim {
    /// The folder was free and is now this process's: it starts the cluster and stops it after.
    Locked(DataDirLock),
    /// A running standalone holds the folder: this process connects to that standalone's cluster
    /// at `url` and leaves it running.
    Shared {
        /// The server URL (no database), over the cluster's Unix socket.
        url: String,
        /// Who holds the folder.
        holder: Holder,
    },
}

/// Claims `data_dir` for a one-off `boxoffice <command>`: locks it when free; beside a running
/// standalone, shares that standalone's cluster (waiting up to a minute for it to become ready
/// when the standalone is still starting); refuses, naming the holder, when another one-off
/// command or a standalone without a private PostgreSQL holds it.
pub fn claim_data_dir(data_dir: &Path, command: &str) -> Result<DataDirClaim, PrivatePgError> {
    let data_dir = prepare_data_dir(data_dir)?;
    let cluster = data_dir.join("postgres");
    let deadline = Instant::now() + SHARED_READY_WAIT;
    loop {
        let waited_out = Instant::now() >= deadline;
        match DataDirLock::attempt(&data_dir, command, true)? {
            Attempt::Locked(lock) => return Ok(DataDirClaim::Locked(lock)),
            Attempt::Held(holder) if holder.command == "standalone" && holder.private_postgres => {
                if let Some(running) = RunningCluster::read(&cluster) {
                    tracing::info!(
                        holder = %holder,
                        socket = %running.socket_dir.display(),
                        "the data folder is in use: connecting to that standalone's PostgreSQL"
                    );
                    return Ok(DataDirClaim::Shared {
                        url: running.url(),
                        holder,
                    });
                }
                if waited_out {
                    return Err(in_use(
                        &data_dir,
                        Some(&holder),
                        "its private PostgreSQL did not become ready within a minute (see \
                         postgres/server.log in the data folder)",
                    ));
                }
            }
            Attempt::Held(holder) => {
                let advice = if holder.command == "standalone" {
                    "it runs no private PostgreSQL to share (it uses BOXOFFICE_DATABASE__URL): \
                     run this command with the same BOXOFFICE_DATABASE__URL, or stop it first"
                } else {
                    "run this command again when that one has finished"
                };
                return Err(in_use(&data_dir, Some(&holder), advice));
            }
            Attempt::HeldByUnknown if waited_out => {
                return Err(in_use(
                    &data_dir,
                    None,
                    "run this command again when it has finished",
                ));
            }
            Attempt::HeldByUnknown => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cluster as its `postmaster.pid` describes it: running, ready, and where its socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningCluster {
    /// The postmaster's process id.
    pub pid: u32,
    /// The port (with a Unix socket only, just part of the socket's name `.s.PGSQL.<port>`).
    pub port: u16,
    /// The folder holding the socket.
    pub socket_dir: PathBuf,
    /// What it listens on over TCP (`listen_addresses`'s first entry; empty: no TCP).
    pub listen_address: String,
}

impl RunningCluster {
    /// Reads `cluster/postmaster.pid`: `None` unless a live postmaster there is ready for
    /// connections on a Unix socket.
    pub fn read(cluster: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(cluster.join("postmaster.pid")).ok()?;
        let running = Self::parse(&text)?;
        pid_alive(running.pid).then_some(running)
    }

    /// Parses a `postmaster.pid` (pid, data folder, start time, port, socket folder, listen
    /// address, shared memory key, status), ready ones only.
    fn parse(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().collect();
        let status = lines.get(7)?.trim();
        let socket_dir = lines.get(4)?.trim();
        if status != "ready" || socket_dir.is_empty() {
            return None;
        }
        Some(Self {
            pid: lines.first()?.trim().parse().ok()?,
            port: lines.get(3)?.trim().parse().ok()?,
            socket_dir: PathBuf::from(socket_dir),
            listen_address: lines
                .get(5)
                .map(|l| l.trim().to_owned())
                .unwrap_or_default(),
        })
    }

    /// The server URL over the Unix socket.
    pub fn url(&self) -> String {
        socket_url(&self.socket_dir, self.port)
    }
}

/// `postgres://boxoffice@localhost:<port>?host=<socket folder>`: the superuser over the socket in
/// `socket_dir` (the folder is percent-encoded; sqlx takes a `host` starting with `/` as a
/// socket folder).
pub fn socket_url(socket_dir: &Path, port: u16) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut host = String::new();
    for &b in socket_dir.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            host.push(char::from(b));
        } else {
            host.push_str(&format!("%{b:02X}"));
        }
    }
    format!("postgres://{SUPERUSER}@localhost:{port}?host={host}")
}

/// `s` quoted for `/bin/sh` (pg_ctl hands `-o` to a shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A running private cluster; [`PrivatePostgres::stop`] (or drop) shuts it down.
#[derive(Debug)]
pub struct PrivatePostgres {
    bins: PgBinaries,
    cluster: PathBuf,
    port: u16,
    run_as: Option<String>,
    stopped: bool,
    /// The data folder stays locked at least as long as the cluster this process started runs.
    _lock: DataDirLock,
}

/// The superuser the private cluster is created with.
pub const SUPERUSER: &str = "boxoffice";

impl PrivatePostgres {
    /// Starts (creating on first use) the cluster under `<data-dir>/postgres` of the data folder
    /// this process has locked, listening on a Unix socket in the cluster folder only.
    pub fn start(lock: &DataDirLock) -> Result<Self, PrivatePgError> {
        let bins = PgBinaries::find()?;
        let run_as = if nix::unistd::Uid::effective().is_root() {
            match nix::unistd::User::from_name("postgres") {
                Ok(Some(_)) => Some("postgres".to_owned()),
                _ => return Err(PrivatePgError::NoUnprivilegedUser),
            }
        } else {
            None
        };
        let cluster = lock.data_dir().join("postgres");
        let mut pg = Self {
            bins,
            cluster,
            port: 0,
            run_as,
            stopped: false,
            _lock: lock.clone(),
        };
        pg.prepare()?;
        // We hold the data folder's lock, so a cluster running here was left by a killed earlier
        // run (no live process uses it): stop it first, so we own it.
        if pg.is_running() {
            tracing::warn!(cluster = %pg.cluster.display(), "stopping a PostgreSQL left running by an earlier run");
            pg.pg_ctl_stop()?;
        }
        // With no TCP listener the port only names the socket (`.s.PGSQL.<port>`); a free one
        // keeps it from ever matching a TCP server's port in logs and probes.
        pg.port = free_port()?;
        let socket = pg.cluster.join(format!(".s.PGSQL.{}", pg.port));
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(PrivatePgError::SocketPathTooLong { path: socket, len });
        }
        pg.pg_ctl_start()?;
        Ok(pg)
    }

    /// The server URL (no database), over the Unix socket, for [`crate::db::connect`].
    pub fn url(&self) -> String {
        socket_url(&self.cluster, self.port)
    }

    /// The port in the socket's name (the server has no TCP listener).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster folder.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    fn command(&self, program: &Path) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn prepare(&self) -> Result<(), PrivatePgError> {
        let io = |context: String| move |source| PrivatePgError::Io { context, source };
        if !self.cluster.join("PG_VERSION").is_file() {
            std::fs::create_dir_all(&self.cluster)
                .map_err(io(format!("creating {}", self.cluster.display())))?;
            self.chown_cluster()?;
            tracing::info!(cluster = %self.cluster.display(), "initializing private PostgreSQL");
            let out = self
                .command(&self.bins.bin("initdb"))
                .arg("-D")
                .arg(&self.cluster)
                // Trust on the socket only: the 0700 cluster folder holding it admits only the
                // server's user (and root); TCP is refused even if someone turns it on.
                .args([
                    "--auth-local=trust",
                    "--auth-host=reject",
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ])
                .output()
                .map_err(io("running initdb".into()))?;
            if !out.status.success() {
                return Err(step_error("initdb", &out));
            }
        } else {
            self.chown_cluster()?;
        }
        // The socket lives here: nobody but the server's user may enter.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.cluster, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("restricting {}", self.cluster.display())))?;
        Ok(())
    }

    fn chown_cluster(&self) -> Result<(), PrivatePgError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:{user}"))
            .arg(&self.cluster)
            .output()
            .map_err(|source| PrivatePgError::Io {
                context: "running chown".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(step_error("chown of the cluster folder", &out));
        }
        // The server user must be able to reach the folder through its parents.
        let mut dir = self.cluster.parent();
        while let Some(d) = dir {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(d) {
                let mode = meta.permissions().mode();
                if mode & 0o001 == 0 {
                    let _ =
                        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o001));
                }
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.command(&self.bins.bin("pg_ctl"))
            .arg("status")
            .arg("-D")
            .arg(&self.cluster)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn pg_ctl_start(&self) -> Result<(), PrivatePgError> {
        // No TCP listener (listen_addresses=''): only the socket in the 0700 cluster folder.
        let options = format!(
            "-p {} -k {} -c listen_addresses='' -c unix_socket_permissions=0700 \
             -c max_connections=200",
            self.port,
            shell_quote(&self.cluster.to_string_lossy())
        );
        let out = self
            .command(&self.bins.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.cluster)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.cluster.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|source| PrivatePgError::Io {
                context: "running pg_ctl start".into(),
                source,
            })?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.cluster.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(PrivatePgError::Step {
                step: "starting the private PostgreSQL",
                detail: format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            });
        }
        tracing::info!(
            port = self.port,
            socket = %self.cluster.display(),
            cluster = %self.cluster.display(),
            "private PostgreSQL started (Unix socket only)"
        );
        Ok(())
    }

    fn pg_ctl_stop(&self) -> Result<(), PrivatePgError> {
        let out = self
            .command(&self.bins.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.cluster)
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .map_err(|source| PrivatePgError::Io {
                context: "running pg_ctl stop".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(step_error("stopping the private PostgreSQL", &out));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: sessions end, data is flushed).
    pub fn stop(mut self) -> Result<(), PrivatePgError> {
        self.stopped = true;
        let result = self.pg_ctl_stop();
        if result.is_ok() {
            tracing::info!("private PostgreSQL stopped");
        }
        result
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if !self.stopped && self.is_running() {
            let _ = self.pg_ctl_stop();
        }
    }
}

fn step_error(step: &'static str, out: &std::process::Output) -> PrivatePgError {
    PrivatePgError::Step {
        step,
        detail: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> Result<u16, PrivatePgError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| PrivatePgError::Io {
            context: "finding a free port".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_gives_the_package_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err =
            PgBinaries::find_in(None, None, empty.path(), std::ffi::OsStr::new("")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("apt-get install postgresql"), "{msg}");
    }

    #[test]
    fn newest_version_folder_wins() {
        let root = tempfile::tempdir().unwrap();
        for v in ["13", "15"] {
            let bin = root.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for b in ["initdb", "pg_ctl", "postgres"] {
                std::fs::write(bin.join(b), "").unwrap();
            }
        }
        let found = PgBinaries::find_in(None, None, root.path(), std::ffi::OsStr::new("")).unwrap();
        assert_eq!(found.bindir, root.path().join("15").join("bin"));
    }

    #[test]
    fn a_locked_data_dir_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path(), "standalone", true).unwrap();
        let err = DataDirLock::acquire(dir.path(), "standalone", true).unwrap_err();
        let msg = err.to_string();
        let me = format!("`boxoffice standalone` (pid {})", std::process::id());
        assert!(msg.contains(&me), "{msg}");
        assert!(msg.contains("--data-dir"), "{msg}");
        // A one-off command beside a standalone whose cluster is not up waits, so check one
        // holder it refuses at once: another one-off command.
        drop(lock);
        let migrate = DataDirLock::acquire(dir.path(), "migrate", true).unwrap();
        let err = claim_data_dir(dir.path(), "seed").unwrap_err().to_string();
        assert!(err.contains("`boxoffice migrate`"), "{err}");
        assert!(err.contains("finished"), "{err}");
        drop(migrate);
        // Released: the next process gets it, and the file no longer names the old holder.
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, "");
        assert!(matches!(
            claim_data_dir(dir.path(), "seed").unwrap(),
            DataDirClaim::Locked(_)
        ));
    }

    #[test]
    fn holder_files_parse_and_stale_ones_are_not_alive() {
        let h = Holder::parse("pid=12\ncommand=standalone\nprivate_postgres=true\n").unwrap();
        assert_eq!(
            h,
            Holder {
                pid: 12,
                command: "standalone".into(),
                private_postgres: true
            }
        );
        assert_eq!(Holder::parse(""), None);
        assert_eq!(Holder::parse("command=seed\n"), None);
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
    }

    #[test]
    fn postmaster_pid_gives_the_socket_of_a_ready_cluster_only() {
        let ready =
            "4242\n/data/postgres\n1700000000\n54321\n/data/postgres\n\n  1234  5678\nready   \n";
        let c = RunningCluster::parse(ready).unwrap();
        assert_eq!(c.pid, 4242);
        assert_eq!(c.port, 54321);
        assert_eq!(c.socket_dir, PathBuf::from("/data/postgres"));
        assert_eq!(c.listen_address, "");
        let starting = ready.replace("ready   ", "starting");
        assert_eq!(RunningCluster::parse(&starting), None);
        assert_eq!(RunningCluster::parse("4242\n/data/postgres\n"), None);
    }

    #[test]
    fn socket_urls_reach_the_socket_folder() {
        let dir = Path::new("/tmp/a dir/with?odd&chars/postgres");
        let url = socket_url(dir, 5433);
        let opts = crate::db::server_options(&url).unwrap();
        assert_eq!(opts.get_socket(), Some(&dir.to_path_buf()));
        assert_eq!(opts.get_port(), 5433);
        assert_eq!(opts.get_username(), SUPERUSER);
        let with_db = opts.database("boxoffice_catalog");
        assert_eq!(with_db.get_socket(), Some(&dir.to_path_buf()));
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn explicit_dir_comes_first() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mine");
        std::fs::create_dir_all(&dir).unwrap();
        for b in ["initdb", "pg_ctl", "postgres"] {
            std::fs::write(dir.join(b), "").unwrap();
        }
        let found = PgBinaries::find_in(
            Some(dir.clone()),
            Some(PathBuf::from("/nonexistent")),
            Path::new("/nonexistent"),
            std::ffi::OsStr::new(""),
        )
        .unwrap();
        assert_eq!(found.bindir, dir);
    }
}
