#!/usr/bin/env bash
# Brings up what the tests and distributed mode need, reusing what already runs:
#   PostgreSQL on 127.0.0.1:5432 (trust auth for user postgres), Redis on 127.0.0.1:6379,
#   and a Kafka-protocol broker (tansu) on 127.0.0.1:9092.
# Missing packages are installed with apt-get; the broker is built with `cargo install` once and
# cached in $BOXOFFICE_TOOLS_DIR. Prints `export ...` lines for the addresses it settled on.
#   scripts/infra.sh up      start what is missing
#   scripts/infra.sh down    stop what this script started (the broker, a private test cluster)
#   scripts/infra.sh clean   drop the test_* databases earlier test runs left behind
source "$(dirname "$0")/lib.sh"

PG_URL="${BOXOFFICE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
REDIS_PORT=6379
KAFKA_PORT=9092
TANSU_VERSION=0.6.0
TANSU="$TOOLS_DIR/bin/tansu"
RUN_DIR="$STATE_DIR/run"
mkdir -p "$RUN_DIR"

pg_ok() { psql "$1/postgres" -XtAc 'select 1' >/dev/null 2>&1; }

postgres_up() {
  command -v psql >/dev/null || apt_install postgresql-client
  if pg_ok "$PG_URL"; then log "PostgreSQL: using $PG_URL"; return; fi
  # A Debian cluster that is installed but stopped (e.g. after a reboot).
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    for v in /etc/postgresql/*; do
      as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start >/dev/null 2>&1 || true
    done
    pg_ok "$PG_URL" && { log "PostgreSQL: started the system cluster"; return; }
  fi
  # Otherwise our own trust-auth cluster for tests, on 5432 if free, else 55432.
  ensure_pg_binaries
  local bindir; bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local dir="$RUN_DIR/pg" port=5432
  port_open 127.0.0.1 5432 && port=55432
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; chmod o+x "$STATE_DIR" "$RUN_DIR" "$HOME" 2>/dev/null || true; fi
    run_pg "$bindir/initdb" -D "$dir" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  run_pg "$bindir/pg_ctl" -D "$dir" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
    -l "$dir/server.log" -w start >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$port"
  echo "$bindir" > "$RUN_DIR/pg.bindir"
  pg_ok "$PG_URL" || die "PostgreSQL did not come up (see $dir/server.log)"
  log "PostgreSQL: started a test cluster at $PG_URL"
}

run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

redis_up() {
  if port_open 127.0.0.1 $REDIS_PORT; then log "Redis: using 127.0.0.1:$REDIS_PORT"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT --save "" --appendonly no \
    --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" --pidfile "$RUN_DIR/redis.pid"
  wait_port 127.0.0.1 $REDIS_PORT 20 Redis
  log "Redis: started on 127.0.0.1:$REDIS_PORT"
}

tansu_install() {
  if [ -x "$TANSU" ] && "$TANSU" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then return; fi
  ensure_build_deps
  log "building the tansu $TANSU_VERSION broker (once; about 13 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,postgres \
    --root "$TOOLS_DIR" --target-dir "$STATE_DIR/tansu-build" >"$STATE_DIR/tansu-install.log" 2>&1 \
    || { tail -20 "$STATE_DIR/tansu-install.log"; die "installing tansu failed"; }
}

kafka_up() {
  if port_open 127.0.0.1 $KAFKA_PORT; then log "Kafka broker: using 127.0.0.1:$KAFKA_PORT"; return; fi
  tansu_install
  nohup "$TANSU" broker --listener-url tcp://127.0.0.1:$KAFKA_PORT \
    --advertised-listener-url tcp://127.0.0.1:$KAFKA_PORT \
    --storage-engine memory://tansu/ >"$RUN_DIR/tansu.log" 2>&1 &
  echo $! > "$RUN_DIR/tansu.pid"
  wait_port 127.0.0.1 $KAFKA_PORT 60 "the tansu broker"
  log "Kafka broker: started tansu on 127.0.0.1:$KAFKA_PORT"
}

down() {
  if [ -f "$RUN_DIR/tansu.pid" ]; then
    local pid; pid=$(cat "$RUN_DIR/tansu.pid")
    # tansu does not stop promptly on SIGTERM: give it 3 s, then SIGKILL.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/tansu.pid"
    log "stopped the tansu broker"
  fi
  if [ -f "$RUN_DIR/pg.bindir" ]; then
    run_pg "$(cat "$RUN_DIR/pg.bindir")/pg_ctl" -D "$RUN_DIR/pg" -m fast stop >/dev/null 2>&1 || true
    rm -f "$RUN_DIR/pg.bindir"
    log "stopped the test PostgreSQL"
  fi
  if [ -f "$RUN_DIR/redis.pid" ]; then
    kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null || true
    rm -f "$RUN_DIR/redis.pid"
    log "stopped the test Redis"
  fi
}

# Drops the per-test databases (test_*) earlier runs left on the test server.
clean() {
  local url="${BOXOFFICE_TEST_DATABASE_URL:-$PG_URL}" n=0
  pg_ok "$url" || return 0
  for db in $(psql "$url/postgres" -XtAc "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'"); do
    psql "$url/postgres" -XtAqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 && n=$((n + 1))
  done
  log "dropped $n test databases left by earlier runs"
}

case "${1:-up}" in
  up)
    postgres_up; redis_up; kafka_up
    echo "export BOXOFFICE_TEST_DATABASE_URL=$PG_URL"
    echo "export BOXOFFICE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export BOXOFFICE_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
    ;;
  down) down ;;
  clean) clean ;;
  *) die "usage: $0 up|down|clean" ;;
esac
