//! Readiness checks for the shared infrastructure: Redis answers `PING` (and, a Redis Cluster
//! node, reports `cluster_state:ok`), the Kafka broker answers a metadata request. Each probe is
//! bounded by the readiness timeout (2 s).

use std::{sync::Arc, time::Duration};

use rdkafka::{ClientConfig, admin::AdminClient, client::DefaultClientContext};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{bus::BusSettings, http::Readiness};

impl Readiness {
    /// Adds a `redis` check: the server at `url` (`redis://[user:password@]host[:port][/db]`)
    /// answers `PING` (after `AUTH` when the URL has a password). `url` may list a Redis
    /// Cluster's seed nodes, comma-separated (`redis.url` with `redis.cluster`): the first seed
    /// that answers decides, and a cluster node must also report `cluster_state:ok` (every slot
    /// served; a failover under way reports `fail` until a replica took over). For `rediss://`
    /// (TLS) the probe only connects.
    pub fn redis(self, url: &str) -> Self {
        let targets: Result<Vec<RedisTarget>, String> = url
            .split(',')
            .map(|u| RedisTarget::parse(u.trim()))
            .collect();
        self.check("redis", move || {
            let targets = targets.clone();
            async move {
                let mut failure = "no redis.url".to_owned();
                for target in targets? {
                    match target.ping().await {
                        Ok(()) => return Ok(()),
                        // A node that answers decides; one that cannot be reached may be the
                        // one seed that is down.
                        Err(Probe::Answered(e)) => return Err(e),
                        Err(Probe::Unreachable(e)) => failure = e,
                    }
                }
                Err(failure)
            }
        })
    }

    /// Adds a `broker` check: the Kafka brokers of `settings` answer a metadata request (with the
    /// same pass-through client properties as the transport, so TLS and SASL apply).
    pub fn broker(self, settings: &BusSettings) -> Self {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &settings.kafka_brokers);
        for (key, value) in &settings.kafka_properties {
            config.set(crate::bus::kafka::property_name(key), value);
        }
        let client: Result<Arc<AdminClient<DefaultClientContext>>, String> = config
            .create()
            .map(Arc::new)
            .map_err(|e| format!("kafka client: {e}"));
        self.check("broker", move || {
            let client = client.clone();
            async move {
                let client = client?;
                // librdkafka's metadata call blocks: keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    client
                        .inner()
                        .fetch_metadata(None, Duration::from_millis(1500))
                        .map(|m| m.brokers().len())
                })
                .await
                .map_err(|e| format!("metadata probe: {e}"))?
                .map_err(|e| format!("metadata not reachable: {e}"))
                .and_then(|brokers| match brokers {
                    0 => Err("metadata lists no broker".to_owned()),
                    _ => Ok(()),
                })
            }
        })
    }
}

/// Where to PING, from a `redis://` URL.
#[derive(Debug, Clone)]
struct RedisTarget {
    addr: String,
    user: Option<String>,
    password: Option<String>,
    /// `rediss://`: this probe speaks no TLS, so it only connects.
    tls: bool,
}

impl RedisTarget {
    fn parse(url: &str) -> Result<Self, String> {
        let (rest, tls) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => return Err("redis.url is not a redis:// URL".to_owned()),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (credentials, host) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials.map(|c| c.split_once(':')) {
            Some(Some((u, p))) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            Some(None) => (None, None),
            None => (None, None),
        };
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        let addr = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        Ok(Self {
            addr,
            user,
            password,
            tls,
        })
    }

    async fn ping(&self) -> Result<(), Probe> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| Probe::Unreachable(format!("{}: {e}", self.addr)))?;
        if self.tls {
            return Ok(());
        }
        let mut stream = BufReader::new(stream);
        if let Some(password) = &self.password {
            let mut args = vec!["AUTH"];
            if let Some(user) = &self.user {
                args.push(user);
            }
            args.push(password);
            expect(&mut stream, &args, "+OK").await?;
        }
        expect(&mut stream, &["PING"], "+PONG").await?;
        // A cluster node says whether the cluster serves every slot; a server without cluster
        // support refuses the command (an error reply), which is fine.
        let line = send(&mut stream, &["CLUSTER", "INFO"]).await?;
        let Some(len) = line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
            return Ok(());
        };
        let mut info = vec![0u8; len + 2];
        stream
            .read_exact(&mut info)
            .await
            .map_err(|e| Probe::Unreachable(format!("reading from redis: {e}")))?;
        let info = String::from_utf8_lossy(&info);
        match info
            .lines()
            .find_map(|l| l.trim().strip_prefix("cluster_state:"))
        {
            Some("ok") | None => Ok(()),
            Some(state) => Err(Probe::Answered(format!(
                "{}: cluster_state:{state} (some slots have no master)",
                self.addr
            ))),
        }
    }
}

/// Why a probe failed: the server could not be reached, or it answered something else.
enum Probe {
    Unreachable(String),
    Answered(String),
}

/// Sends one command and checks the reply's first line.
async fn expect(stream: &mut BufReader<TcpStream>, args: &[&str], want: &str) -> Result<(), Probe> {
    let line = send(stream, args).await?;
    if line == want {
        Ok(())
    } else {
        // An error reply (`-NOAUTH ...`, `-LOADING ...`) says what is wrong; never echo a secret.
        Err(Probe::Answered(format!("{} answered {line}", args[0])))
    }
}

/// Sends one command; the reply's first line.
async fn send(stream: &mut BufReader<TcpStream>, args: &[&str]) -> Result<String, Probe> {
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream
        .get_mut()
        .write_all(command.as_bytes())
        .await
        .map_err(|e| Probe::Unreachable(format!("writing to redis: {e}")))?;
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .map_err(|e| Probe::Unreachable(format!("reading from redis: {e}")))?;
    let line = line.trim_end();
    if line.is_empty() {
        return Err(Probe::Unreachable("redis closed the connection".to_owned()));
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn redis_urls_parse() {
        let t = RedisTarget::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!((t.addr.as_str(), t.password), ("127.0.0.1:6380", None));
        let t = RedisTarget::parse("redis://:s3cret@cache").unwrap();
        assert_eq!(t.addr, "cache:6379");
        assert_eq!((t.user, t.password.as_deref()), (None, Some("s3cret")));
        let t = RedisTarget::parse("redis://me:pw@cache:1").unwrap();
        assert_eq!(t.user.as_deref(), Some("me"));
        assert!(RedisTarget::parse("rediss://cache").unwrap().tls);
        assert!(RedisTarget::parse("http://cache").is_err());
    }

    /// A Redis Cluster node on a free port that answers `PING` and then `CLUSTER INFO` with
    /// `state`; its address.
    async fn fake_cluster_node(state: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let info = format!("cluster_state:{state}\r\ncluster_slots_assigned:16384\r\n");
                let reply = format!("+PONG\r\n${}\r\n{info}\r\n", info.len());
                let mut buf = [0u8; 256];
                let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await;
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await;
            }
        });
        addr
    }

    fn dead_address() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        addr.to_string()
    }

    #[tokio::test]
    async fn a_cluster_is_ready_when_the_first_seed_that_answers_says_ok() {
        let dead = dead_address();
        let ok = fake_cluster_node("ok").await;
        let fail = fake_cluster_node("fail").await;
        let ready = |url: String| async move {
            let (up, checks) = Readiness::default().redis(&url).run().await;
            (up, checks["redis"].to_string())
        };
        // The seed that is down is passed over; the next one decides.
        let (up, checks) = ready(format!("redis://{dead},redis://{ok},redis://{fail}")).await;
        assert!(up, "{checks}");
        let (up, checks) = ready(format!("redis://{dead}, redis://{fail},redis://{ok}")).await;
        assert!(!up);
        assert!(checks.contains("cluster_state:fail"), "{checks}");
        let (up, _) = ready(format!("redis://{dead}")).await;
        assert!(!up);
    }

    /// The real test cluster and the real single server (`make test` starts both).
    #[tokio::test]
    async fn the_test_cluster_and_server_are_ready() {
        let seeds = std::env::var("BOXOFFICE_TEST_REDIS_CLUSTER").unwrap_or_else(|_| {
            "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
        });
        let single = std::env::var("BOXOFFICE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        for url in [seeds, single] {
            let (up, checks) = Readiness::default().redis(&url).run().await;
            assert!(up, "{url}: {checks:?}");
        }
    }
}
