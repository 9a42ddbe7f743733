//! The payment service's integration tests: one binary, one module per topic, against real
//! PostgreSQL (`BOXOFFICE_TEST_DATABASE_URL`) and the sandbox PG of `fakes/` on a real port.

// Test code: a failed step should panic with its error, wherever the helper lives.
#![allow(clippy::unwrap_used)]

mod confirm;
mod events;
mod faults;
mod helpers;
mod ledger;
mod money_path;
mod refunds;
mod review_fixes;
mod sandbox;
mod webhooks;
