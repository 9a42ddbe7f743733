//! The admission service over HTTP: the queue, the draw, the pass, the operators' controls, and
//! end to end with the seat service behind the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod auto;
mod end_to_end;
mod helpers;
mod queue;
