//! The catalog's database (ProductDB): every query the service runs, grouped by aggregate.
//!
//! Lock order, for every writer: a venue, then its events (in id order), then their
//! performances. A writer that needs a later lock never waits for an earlier one while holding
//! it, so two writers cannot deadlock, and each re-reads under its locks what it writes back.

pub mod audit;
pub mod clubs;
pub mod events;
pub mod listing;
pub mod venues;

pub use sqlx::PgPool;
