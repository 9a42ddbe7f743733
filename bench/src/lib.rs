//! Load simulations and benchmarks; each lives in `src/bin/` and writes its figures with the
//! command that produced them (see docs/benchmarks.md).

pub mod seat_map;
