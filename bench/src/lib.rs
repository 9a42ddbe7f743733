//! Load simulations and benchmarks; each lives in `src/bin/` and writes its figures with the
//! command that produced them (see docs/benchmarks.md).
//!
//! - [`open_loop`]: the load engine (open loop on a fixed schedule, or closed loop), shared by
//!   every scenario.
//! - [`stadium`]: the 25,000-seat performance and a buyer's wish.
//! - [`seat_map`]: the seat-map scenario of `seat_holds`.
//! - [`cleanup`]: dropping a run's databases and Redis keys.

pub mod cleanup;
pub mod open_loop;
pub mod seat_map;
pub mod stadium;
