#!/usr/bin/env bash
# The test command (`make test`): installs what the tests need, brings up PostgreSQL, Redis and the
# Kafka-protocol broker, then runs formatting, lints and every test (nextest + doc tests) against
# them. Stops what it started when done.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

ensure_build_deps
command -v cargo-nextest >/dev/null || { log "installing cargo-nextest"; cargo install cargo-nextest --locked; }
ensure_pg_binaries   # the standalone tests start a private cluster from these

log "starting the infrastructure"
eval "$(scripts/infra.sh up)"
trap 'scripts/infra.sh down' EXIT
scripts/infra.sh clean

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "doc tests"
cargo test --workspace --doc --locked
log "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast "$@"
log "all tests passed"
