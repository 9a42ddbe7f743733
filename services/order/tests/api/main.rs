//! The order service's integration tests: one binary, one module per topic, against real
//! PostgreSQL, with the seat service, the payment service and the sandbox PG of `fakes/` started
//! in-process on real ports, all on one in-memory bus.

// Test code: a failed step should panic with its error, wherever the helper lives.
#![allow(clippy::unwrap_used)]

mod cancel_race;
mod helpers;
mod orders;
mod policy;
mod refund_failed;
mod saga;
mod ticket_types;
