//! Redis connections for the stores that live in Redis (the seat service's hold store, the
//! admission service's queue store): one server, or a Redis Cluster found through seed nodes,
//! behind one connection type ([`RedisConn`]) that the stores' scripts and commands run on
//! unchanged. On a cluster each command goes to the master of its key's slot, and the client
//! follows the cluster's slot map by itself (`MOVED`/`ASK`, a failover, a resharding); a store
//! only has to keep every key of one command or script in one slot (a shared hash tag).

use std::time::Duration;

use redis::{
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};

use super::{Infra, RedisSettings, StartError};
use crate::config::ConfigError;

/// Where a Redis store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, `redis://[user:password@]host[:port][/db]`.
    Single(String),
    /// A Redis Cluster, found through these seed nodes (any one that answers will do: the client
    /// learns the others and the slot map from it).
    Cluster(Vec<String>),
}

/// How long a connection waits.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    /// For a connection (to each node, on a cluster).
    pub connect: Duration,
    /// For one reply (a blocking read needs longer than it blocks).
    pub response: Duration,
}

impl RedisTarget {
    /// `url` as one server, or with `cluster` as comma-separated seed URLs; the error says what
    /// is wrong (for the `redis.url` setting).
    pub fn parse(url: &str, cluster: bool) -> Result<Self, String> {
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
        {
            return Err(if bad.is_empty() {
                format!("`{url}` has an empty entry")
            } else {
                format!("`{bad}` is not a redis:// URL")
            });
        }
        match (cluster, urls.as_slice()) {
            (false, [one]) => Ok(Self::Single((*one).to_owned())),
            (false, _) => Err(format!(
                "`{url}` lists several servers: set redis.cluster = true for a Redis Cluster"
            )),
            (true, seeds) => Ok(Self::Cluster(
                seeds.iter().map(|s| (*s).to_owned()).collect(),
            )),
        }
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The server's URL, or the cluster's seed URLs.
    pub fn urls(&self) -> Vec<&str> {
        match self {
            Self::Single(url) => vec![url.as_str()],
            Self::Cluster(seeds) => seeds.iter().map(String::as_str).collect(),
        }
    }

    /// A connection to share between tasks: it reconnects by itself after a failure (one
    /// server), or follows the cluster's slots and retries through a failover (a cluster).
    pub async fn connect(&self, timeouts: RedisTimeouts) -> RedisResult<RedisConn> {
        match self {
            Self::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeouts.response))
                    .set_connection_timeout(Some(timeouts.connect));
                let client = redis::Client::open(url.as_str())?;
                Ok(RedisConn::Managed(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
            Self::Cluster(seeds) => Ok(RedisConn::Cluster(
                cluster_client(seeds, timeouts)?
                    .get_async_connection()
                    .await?,
            )),
        }
    }

    /// A connection of its own, for blocking reads that must not stall a shared one (a blocking
    /// command holds its connection until it answers): a plain connection to the server, or a
    /// cluster connection of its own. It does not reconnect by itself on one server: drop it
    /// after an error.
    pub async fn dedicated(&self, timeouts: RedisTimeouts) -> RedisResult<RedisConn> {
        match self {
            Self::Single(url) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(timeouts.response))
                    .set_connection_timeout(Some(timeouts.connect));
                let client = redis::Client::open(url.as_str())?;
                Ok(RedisConn::Direct(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Self::Cluster(_) => self.connect(timeouts).await,
        }
    }
}

/// The cluster client: redirections and failovers are retried from 50 ms, doubling to 1 s
/// between tries, for about 10 s (a failover with the usual `cluster-node-timeout` of a few
/// seconds fits), all within the response timeout.
fn cluster_client(seeds: &[String], timeouts: RedisTimeouts) -> RedisResult<ClusterClient> {
    ClusterClient::builder(seeds.iter().map(String::as_str))
        .connection_timeout(timeouts.connect)
        .response_timeout(timeouts.response)
        .retries(14)
        .min_retry_wait(50)
        .max_retry_wait(1000)
        .build()
}

impl RedisSettings {
    /// Settings for one server at `url`.
    pub fn single(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            cluster: false,
        }
    }

    /// Settings for a Redis Cluster with seed nodes `seeds` (comma-separated URLs).
    pub fn cluster(seeds: impl Into<String>) -> Self {
        Self {
            url: Some(seeds.into()),
            cluster: true,
        }
    }

    /// Where the Redis stores live; `None` when `redis.url` is unset (in-memory stores).
    pub fn target(&self) -> Result<Option<RedisTarget>, ConfigError> {
        match &self.url {
            None if self.cluster => Err(ConfigError::setting(
                "redis.cluster",
                "needs redis.url: the cluster's seed nodes (redis://host:port,redis://host:port)",
            )),
            None => Ok(None),
            Some(url) => RedisTarget::parse(url, self.cluster)
                .map(Some)
                .map_err(|e| ConfigError::setting("redis.url", e)),
        }
    }

    /// Checks the settings (at load, so a bad value stops the process with a configuration
    /// error).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.target().map(|_| ())
    }
}

impl Infra {
    /// Where this process's Redis stores live (`redis.*`); `None`: in memory.
    pub fn redis_target(&self) -> Result<Option<RedisTarget>, StartError> {
        self.redis
            .target()
            .map_err(|e| StartError::Config(e.message))
    }
}

/// A connection to Redis: one server or a cluster. Commands and scripts run on it as on any
/// redis-rs connection; on a cluster, a pipeline must keep to one slot.
#[derive(Clone)]
pub enum RedisConn {
    /// One server, reconnecting by itself.
    Managed(ConnectionManager),
    /// One server, a connection of its own.
    Direct(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Whether this is a connection to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Managed(c) => c.req_packed_command(cmd),
            Self::Direct(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Managed(c) => c.get_db(),
            Self::Direct(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!(RedisSettings::default().target().unwrap(), None);
        assert_eq!(
            RedisSettings::single("redis://cache:6380/1")
                .target()
                .unwrap(),
            Some(RedisTarget::Single("redis://cache:6380/1".into()))
        );
        let seeds = RedisSettings::cluster("redis://a:7001, redis://b:7002")
            .target()
            .unwrap()
            .unwrap();
        assert!(seeds.is_cluster());
        assert_eq!(seeds.urls(), ["redis://a:7001", "redis://b:7002"]);
        // A single seed is a cluster too when so configured.
        assert!(
            RedisSettings::cluster("redis://a:7001")
                .target()
                .unwrap()
                .unwrap()
                .is_cluster()
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let message = |s: RedisSettings| s.validate().unwrap_err().message;
        assert!(message(RedisSettings::single("http://cache")).contains("`redis.url`"));
        assert!(
            message(RedisSettings::single("redis://a:1,redis://b:2")).contains("redis.cluster")
        );
        assert!(message(RedisSettings::cluster("redis://a:1,")).contains("empty entry"));
        assert!(message(RedisSettings::cluster("redis://a:1,b:2")).contains("`b:2`"));
        let unset = RedisSettings {
            url: None,
            cluster: true,
        };
        assert!(message(unset).contains("`redis.cluster`"));
    }
}
