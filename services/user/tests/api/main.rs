//! The user service's integration tests: the real service on a random port against a fresh
//! PostgreSQL database, the sandbox OAuth provider from `fakes/` on another, spoken to over HTTP.

// Helpers shared by the tests panic like the tests do.
#![allow(clippy::unwrap_used)]

mod helpers;
mod login;
mod logs;
mod profile;
mod roles;
mod sandbox;
mod sessions;
mod signup;
mod social;
mod throttle;
mod tokens;
