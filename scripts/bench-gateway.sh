#!/usr/bin/env bash
# The gateway's overhead, measured from outside (docs/benchmarks.md, "Gateway overhead"): the
# catalog service (`boxoffice serve catalog`, seeded) and a gateway in front of it (`serve
# gateway`), each its own process, release build; the same requests sent straight to the
# catalog and through the gateway, in one run:
#   1. capacity: wrk, 2 threads, 200 connections, 10 s each, on the listing;
#   2. latency at a fixed rate: bench's catalog_listing, open loop at $RATE/s (default 1,000)
#      over 200 clients, latency counted from each request's intended send time.
# Needs PostgreSQL and the Kafka-protocol broker (`scripts/infra.sh up`); installs wrk when
# missing. Extra environment (e.g. BOXOFFICE_LOG__LEVEL=warn) goes to both servers.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

RATE="${RATE:-1000}"
ROUNDS="${ROUNDS:-1}"        # latency rounds, alternating catalog and gateway
CAPACITY="${CAPACITY:-1}"    # 0: skip the wrk capacity runs
SECONDS_EACH="${SECONDS_EACH:-10}"
TARGET="${CARGO_TARGET_DIR:-target}/release"
command -v wrk >/dev/null || apt_install wrk
[ -x "$TARGET/boxoffice" ] && [ -x "$TARGET/catalog_listing" ] \
  || die "build first: cargo build --release -p boxoffice -p bench (CARGO_TARGET_DIR=$TARGET/..)"
infra_env=$(scripts/infra.sh up) || die "the infrastructure did not come up"
eval "$infra_env"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CATALOG_PORT=$(free_port); GATEWAY_PORT=$(free_port); OPS_PORT=$(free_port)
LOGS="$(mktemp -d)"
cleanup() { kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
PIDS=()
export BOXOFFICE_DATABASE__URL="${BOXOFFICE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
export BOXOFFICE_DATABASE__NAME_PREFIX=benchgw_
export BOXOFFICE_BUS__TRANSPORT=kafka BOXOFFICE_BUS__KAFKA_BROKERS="${BOXOFFICE_TEST_KAFKA_BROKERS:-127.0.0.1:9092}"
BOXOFFICE_SERVICES__USER=http://127.0.0.1:9 \
  "$TARGET/boxoffice" serve catalog --port "$CATALOG_PORT" 2>"$LOGS/catalog.log" &
PIDS+=($!)
BOXOFFICE_SERVICES__CATALOG="http://127.0.0.1:$CATALOG_PORT" BOXOFFICE_GATEWAY__OPS_PORT="$OPS_PORT" \
  "$TARGET/boxoffice" serve gateway --port "$GATEWAY_PORT" 2>"$LOGS/gateway.log" &
PIDS+=($!)
for port in "$CATALOG_PORT" "$GATEWAY_PORT"; do
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$port/api/v1/events?kind=baseball" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$port/api/v1/events?kind=baseball" >/dev/null \
    || die "port $port does not serve the listing; logs in $LOGS"
done

PATH_Q="/api/v1/events?kind=baseball"
log "machine: $(nproc) cores, $(uname -r); commit $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes)"
for target in "catalog http://127.0.0.1:$CATALOG_PORT" "gateway http://127.0.0.1:$GATEWAY_PORT"; do
  [ "$CAPACITY" = 0 ] && break
  set -- $target
  wrk -t2 -c200 -d2s "$2$PATH_Q" >/dev/null   # warm-up
  log "capacity, $1: wrk -t2 -c200 -d${SECONDS_EACH}s --latency $PATH_Q (load $(cut -d' ' -f1-3 /proc/loadavg))"
  wrk -t2 -c200 -d"${SECONDS_EACH}s" --latency "$2$PATH_Q" | grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|75|90|99)%"
done
for round in $(seq 1 "$ROUNDS"); do
for target in "catalog http://127.0.0.1:$CATALOG_PORT" "gateway http://127.0.0.1:$GATEWAY_PORT"; do
  set -- $target
  log "round $round: latency at $RATE/s, $1: catalog_listing --clients 200 --rate $RATE --seconds $SECONDS_EACH (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$TARGET/catalog_listing" --url "$2" --clients 200 --rate "$RATE" --seconds "$SECONDS_EACH"
done
done
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
