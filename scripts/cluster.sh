#!/usr/bin/env bash
# The local distributed cluster (`make cluster`): brings up PostgreSQL, Redis and the Kafka-protocol
# broker with scripts/infra.sh (reusing what already answers), builds the release binary and runs
# `boxoffice cluster`: every service its own process, two replicas of the seat and order services,
# the gateway on http://localhost:8080. Ctrl-C stops the processes; the infrastructure keeps
# running for the next start (`make infra-down` stops what infra.sh started).
# Extra arguments go to `boxoffice cluster` (e.g. --port 9000 --seat-replicas 3).
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ensure_build_deps
# infra.sh prints the addresses as `export NAME=value` lines.
infra_env="$(bash scripts/infra.sh up)"
eval "$infra_env"
export BOXOFFICE_DATABASE__URL="${BOXOFFICE_DATABASE__URL:-$BOXOFFICE_TEST_DATABASE_URL}"
export BOXOFFICE_REDIS__URL="${BOXOFFICE_REDIS__URL:-$BOXOFFICE_TEST_REDIS_URL}"
export BOXOFFICE_BUS__KAFKA_BROKERS="${BOXOFFICE_BUS__KAFKA_BROKERS:-$BOXOFFICE_TEST_KAFKA_BROKERS}"
log "building boxoffice (release)"
cargo build --release --locked -p boxoffice
bin="${CARGO_TARGET_DIR:-target}/release/boxoffice"
exec "$bin" cluster "$@"
