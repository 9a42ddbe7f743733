//! The sandbox PG over real HTTP: the Toss Payments flow, its error codes, idempotency,
//! cancels, expiry, webhooks and fault injection.

// Test helpers panic on what cannot happen in a passing test.
#![allow(clippy::unwrap_used)]

mod checkout;
mod faults;
mod flow;
mod helpers;
mod idempotency;
mod webhooks;
