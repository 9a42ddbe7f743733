//! The seat service's integration tests: one binary, one module per topic. They need
//! PostgreSQL (`BOXOFFICE_TEST_DATABASE_URL`), Redis (`BOXOFFICE_TEST_REDIS_URL`) and the test
//! Redis Cluster (`BOXOFFICE_TEST_REDIS_CLUSTER`); the failover test starts a cluster of its own
//! (`redis-server`, `redis-cli` on the PATH).

// Test code: a failed step should panic with its error, wherever the helper lives.
#![allow(clippy::unwrap_used)]

mod availability;
mod cluster;
mod connection_loss;
mod contract;
mod helpers;
mod holds;
mod load;
mod orders;
mod outbox;
mod property;
mod publication;
mod race;
mod recovery;
mod sales;
mod seat_map;
mod stream;
mod tables;
mod withheld;
