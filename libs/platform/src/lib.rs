//! What every Boxoffice service shares and nothing domain-specific: typed configuration,
//! telemetry, the HTTP bootstrap (health, readiness, metrics, problem+json errors, request ids),
//! the PostgreSQL pool and migrations, a private PostgreSQL for standalone mode, and the bus
//! (transactional outbox, relay, idempotent consumer over Kafka or in memory).
//!
//! A service builds its axum `Router`, hands it to [`http::serve`] with its readiness checks, and
//! gets the operational endpoints and middleware for free:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use platform::http::{HttpSettings, Readiness, serve};
//! let app = Router::new().route("/api/v1/hello", get(|| async { "hi" }));
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! serve("hello", app, Readiness::default(), &HttpSettings::default(), shutdown).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod bus;
pub mod config;
pub mod db;
pub mod http;
pub mod net;
pub mod openapi;
pub mod private_pg;
pub mod problem;
pub mod service;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wakeups;

pub use problem::ApiError;
