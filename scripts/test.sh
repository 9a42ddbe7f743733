#!/usr/bin/env bash
# The test command (`make test`): installs what the tests need, brings up PostgreSQL, Redis and the
# Kafka-protocol broker, then runs formatting, lints and every test (nextest + doc tests) against
# them, then the web UI's browser tests (scripts/browser-tests.sh). Stops what it started when done.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

ensure_build_deps
command -v cargo-nextest >/dev/null || { log "installing cargo-nextest"; cargo install cargo-nextest --locked; }
ensure_pg_binaries   # the standalone tests start a private cluster from these
scripts/validate-manifests.sh   # the Dockerfile and every rendered Kubernetes overlay, offline

# This run's tag: every test database it creates is named test_<tag>_* (platform::testing), so at
# the end it drops exactly those, never another run's on a shared server.
BOXOFFICE_TEST_RUN="r$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
BOXOFFICE_TEST_LEASE=$$
export BOXOFFICE_TEST_RUN BOXOFFICE_TEST_LEASE

log "starting the infrastructure (test run $BOXOFFICE_TEST_RUN)"
trap 'scripts/infra.sh clean-run "$BOXOFFICE_TEST_RUN"; scripts/infra.sh down' EXIT
# `eval "$(...)"` would carry on when `up` fails; the assignment stops the run with its reason.
infra_env=$(scripts/infra.sh up) || die "the test infrastructure did not come up (the reason is above); no test was run"
eval "$infra_env"
scripts/infra.sh clean

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "OpenAPI document (openapi-spec-validator)"
scripts/validate-openapi.sh
log "doc tests"
cargo test --workspace --doc --locked
log "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast "$@"
scripts/browser-tests.sh   # the web UI in headless Chromium (installs chromium and npm packages when missing)
log "all tests passed"
