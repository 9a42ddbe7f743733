#!/usr/bin/env bash
# The run command (`make run`): installs the PostgreSQL binaries when missing, builds the release
# binary and runs the whole platform in standalone mode on http://localhost:8080.
# Extra arguments go to `boxoffice standalone` (e.g. --port 9000 --data-dir /var/lib/boxoffice).
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ensure_build_deps
ensure_pg_binaries
log "building boxoffice (release)"
cargo build --release --locked -p boxoffice
bin="${CARGO_TARGET_DIR:-target}/release/boxoffice"
exec "$bin" standalone "$@"
