//! The notification service's integration tests: one binary, one module per topic, against real
//! PostgreSQL, the Kafka-protocol broker (fresh topics and a fresh consumer group per test), the
//! mail catcher of `fakes/` (a real SMTP server) and the SMS sandbox.

// Test code: a failed step should panic with its error, wherever the helper lives.
#![allow(clippy::unwrap_used)]

mod abuse;
mod admin;
mod events;
mod helpers;
mod marketing;
mod reliability;
mod reminder;
mod upkeep;
