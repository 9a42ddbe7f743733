//! A private PostgreSQL cluster for standalone mode: found among the installed binaries, created
//! with `initdb` in the data folder on first run, started on a free loopback port, stopped on
//! exit, and reused (data and all) on the next run.
//!
//! PostgreSQL refuses to run as root; when we are root, `initdb`, `pg_ctl` and the server run as
//! the unprivileged `postgres` user (created by Debian's package), which owns the cluster folder.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
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

/// A running private cluster; [`PrivatePostgres::stop`] (or drop) shuts it down.
#[derive(Debug)]
pub struct PrivatePostgres {
    bins: PgBinaries,
    cluster: PathBuf,
    port: u16,
    run_as: Option<String>,
    stopped: bool,
}

/// The superuser the private cluster is created with.
pub const SUPERUSER: &str = "boxoffice";

impl PrivatePostgres {
    /// Starts (creating on first use) the cluster under `data_dir/postgres`.
    pub fn start(data_dir: &Path) -> Result<Self, PrivatePgError> {
        let bins = PgBinaries::find()?;
        let run_as = if nix::unistd::Uid::effective().is_root() {
            match nix::unistd::User::from_name("postgres") {
                Ok(Some(_)) => Some("postgres".to_owned()),
                _ => return Err(PrivatePgError::NoUnprivilegedUser),
            }
        } else {
            None
        };
        std::fs::create_dir_all(data_dir).map_err(|source| PrivatePgError::Io {
            context: format!("creating data folder {}", data_dir.display()),
            source,
        })?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|source| PrivatePgError::Io {
                context: format!("resolving {}", data_dir.display()),
                source,
            })?;
        let cluster = data_dir.join("postgres");
        let mut pg = Self {
            bins,
            cluster,
            port: 0,
            run_as,
            stopped: false,
        };
        pg.prepare()?;
        // A cluster left running by a killed earlier run is stopped first, so we own it.
        if pg.is_running() {
            tracing::warn!(cluster = %pg.cluster.display(), "stopping a PostgreSQL left running by an earlier run");
            pg.pg_ctl_stop()?;
        }
        pg.port = free_port()?;
        pg.pg_ctl_start()?;
        Ok(pg)
    }

    /// The server URL (no database), for [`crate::db::connect`].
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
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
                .args([
                    "-A",
                    "trust",
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
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.cluster.display()
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
        tracing::info!(port = self.port, cluster = %self.cluster.display(), "private PostgreSQL started");
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
