#!/usr/bin/env bash
# The gateway's overhead in standalone, measured from outside (docs/benchmarks.md, "Gateway
# overhead in standalone"): one `boxoffice standalone` (release build, its own private
# PostgreSQL, seeded), the same requests sent to the services' own loopback ports ("direct") and
# through the gateway, first with the gateway calling them in process (gateway.in_process, the
# default), then, after a restart on the same data, over loopback HTTP (in_process = false):
#   wrk, 2 threads, 200 connections, $SECONDS_EACH s each (3 s warm-up), on the catalog listing
#   and on a seeded game's compact seat map.
# Installs wrk when missing. Needs nothing else running (the standalone brings its own database).
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

SECONDS_EACH="${SECONDS_EACH:-10}"
TARGET="${CARGO_TARGET_DIR:-target}/release"
command -v wrk >/dev/null || apt_install wrk
[ -x "$TARGET/boxoffice" ] || die "build first: cargo build --release -p boxoffice (CARGO_TARGET_DIR=$TARGET/..)"
ensure_pg_binaries

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA="$(mktemp -d)"
LOGS="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT

# Starts the standalone with `in_process` on the public port; sets PORT, CATALOG and SEAT (the
# services' own loopback addresses, read off the start log).
start() {
  PORT=$(free_port)
  BOXOFFICE_GATEWAY__IN_PROCESS="$1" BOXOFFICE_LOG__FORMAT=json \
    "$TARGET/boxoffice" standalone --port "$PORT" --data-dir "$DATA" >"$LOGS/run-$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 900); do
    curl -fsS "http://127.0.0.1:$PORT/api/v1/events?kind=baseball" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || die "the standalone exited; log: $LOGS/run-$1.log"
    sleep 0.2
  done
  addr_of() {
    grep '"listening"' "$LOGS/run-$1.log" | grep "\"service\":\"$2\"" | tail -1 \
      | sed -E 's/.*"addr":"([^"]+)".*/\1/'
  }
  CATALOG="http://$(addr_of "$1" catalog)"
  SEAT="http://$(addr_of "$1" seat)"
  curl -fsS "$CATALOG/api/v1/events?kind=baseball" >/dev/null || die "no catalog port in the log"
  # After a restart the seat service loads a map (and puts it back in its store) on first read.
  if [ -n "${PERF:-}" ]; then
    for _ in $(seq 1 120); do
      curl -fsS "$SEAT/api/v1/performances/$PERF/seats?format=compact" >/dev/null 2>&1 && break
      sleep 0.5
    done
  fi
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null; PID=""; }

bench() { # label url
  wrk -t2 -c200 -d3s "$2" >/dev/null
  log "$1 (load $(cut -d' ' -f1-3 /proc/loadavg)): wrk -t2 -c200 -d${SECONDS_EACH}s --latency"
  wrk -t2 -c200 -d"${SECONDS_EACH}s" --latency "$2" | grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%"
}

log "machine: $(nproc) cores, $(uname -r); commit $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes)"
LISTING="/api/v1/events?kind=baseball"
for mode in true false; do
  start "$mode"
  if [ -z "${PERF:-}" ]; then
    # A seated performance on sale without a waiting room (a guarded one answers 403 without a
    # pass): its map is what every buyer's browser reads.
    # (On a first start the seat service may still be installing the seed's publications.)
    CANDIDATES=$(curl -fsS "http://127.0.0.1:$PORT/api/v1/events?on_sale=true&limit=100" \
      | python3 -c 'import json,sys; print(" ".join(i["performance_id"] for i in json.load(sys.stdin)["items"] if not i["waiting_room"]))')
    for _ in $(seq 1 120); do
      for p in $CANDIDATES; do
        if curl -fsS "$SEAT/api/v1/performances/$p/seats?format=compact" 2>/dev/null | grep -q '"status":"[ahs]*a'; then
          PERF=$p; break 2
        fi
      done
      sleep 1
    done
    [ -n "${PERF:-}" ] || die "no seat map of an on-sale performance without a waiting room answers"
  fi
  MAP="/api/v1/performances/$PERF/seats?format=compact"
  if [ "$mode" = true ]; then
    bench "listing, direct to the catalog" "$CATALOG$LISTING"
    bench "compact seat map, direct to the seat service" "$SEAT$MAP"
  fi
  bench "listing, through the gateway (in_process=$mode)" "http://127.0.0.1:$PORT$LISTING"
  bench "compact seat map, through the gateway (in_process=$mode)" "http://127.0.0.1:$PORT$MAP"
  stop
done
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
