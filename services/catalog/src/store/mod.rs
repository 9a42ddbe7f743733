//! The catalog's database (ProductDB): every query the service runs, grouped by aggregate.

pub mod events;
pub mod listing;
pub mod venues;

pub use sqlx::PgPool;
