//! The catalog's integration tests: the real service on a random port against a fresh
//! PostgreSQL database, talked to over HTTP, with the in-memory bus to watch its events.

mod admin;
mod availability;
mod bounds;
mod docs;
mod listing;
mod nul;
mod permissions;
mod policy;
mod presale_admin;
mod public;
mod safety;
mod search;
mod seeded;
mod support;
mod tables;
