//! The sandbox PG over real HTTP: the Toss Payments flow, its error codes, idempotency,
//! cancels, expiry, webhooks and fault injection.

mod checkout;
mod faults;
mod flow;
mod helpers;
mod idempotency;
mod webhooks;
