#!/usr/bin/env bash
# Brings up what the tests and distributed mode need, reusing what already runs:
#   PostgreSQL on 127.0.0.1:5432 (trust auth for user postgres), Redis on 127.0.0.1:6379,
#   a Redis Cluster of 3 masters and 3 replicas on 127.0.0.1:7001-7006, and a Kafka-protocol
#   broker (tansu) on 127.0.0.1:9092.
# Missing packages are installed with apt-get; the broker is built with `cargo install` once and
# cached in $BOXOFFICE_TOOLS_DIR. Prints `export ...` lines for the addresses it settled on.
#   scripts/infra.sh up      start what is missing
#   scripts/infra.sh down    stop what this script started (the broker, a private test cluster, a
#                            Redis, the Redis Cluster), unless another test run on this machine
#                            still uses it
#   scripts/infra.sh clean   drop the test_* databases older than a day (left by crashed runs)
#   scripts/infra.sh clean-run RUN   drop the test_RUN_* databases (what test run RUN created)
# Every service is checked by its protocol (psql `select 1`, Redis PING, CLUSTER INFO reporting
# cluster_state:ok on every cluster node, a Kafka ApiVersions request), not by an open port: a port taken by something else, a server that does not come up or
# a broker that dies right after starting stops `up` at once with the reason (and the end of the
# service's log), never a test suite failing later for no visible reason.
# Several test runs may share one machine and one server: a run registers itself with `up` (a lease
# named by BOXOFFICE_TEST_LEASE, the test script's pid) and `down` stops a service only when no
# other live run holds a lease, so one run never pulls the broker from under another's suite.
source "$(dirname "$0")/lib.sh"

PG_URL_GIVEN="${BOXOFFICE_TEST_DATABASE_URL:-}"
PG_URL="${BOXOFFICE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
# Other ports only to try the script itself beside the standard ones (tests use the exports below).
REDIS_PORT="${BOXOFFICE_INFRA_REDIS_PORT:-6379}"
# The Redis Cluster's first port: its six nodes listen on it and the five after it.
CLUSTER_PORT="${BOXOFFICE_INFRA_REDIS_CLUSTER_PORT:-7001}"
CLUSTER_PORTS=$(seq "$CLUSTER_PORT" $((CLUSTER_PORT + 5)))
KAFKA_PORT="${BOXOFFICE_INFRA_KAFKA_PORT:-9092}"
TANSU_VERSION=0.6.0
TANSU="$TOOLS_DIR/bin/tansu"
RUN_DIR="$STATE_DIR/run"
LEASES="$RUN_DIR/leases"
mkdir -p "$RUN_DIR" "$LEASES"

# One `up` or `down` at a time on this machine (two runs must not both start a broker). Every
# process started below closes fd 8, so a daemon never inherits the lock.
exec 8>"$RUN_DIR/.lock"
flock -w 900 8 || die "another run held $RUN_DIR/.lock for 15 minutes"

# alive_as PIDFILE NAME: true when the pid in PIDFILE is a live process whose command names NAME
# (a stale pid file after a reboot may point at an unrelated process).
alive_as() {
  [ -f "$1" ] || return 1
  local pid; pid=$(cat "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2"
}

# Leases of runs whose process has ended are dropped; prints how many live ones remain.
live_leases() {
  local n=0 f
  for f in "$LEASES"/*; do
    [ -e "$f" ] || continue
    if kill -0 "$(basename "$f")" 2>/dev/null; then n=$((n + 1)); else rm -f "$f"; fi
  done
  echo "$n"
}

pg_ok() { [ "$(psql "$1/postgres" -XtAc 'select 1' 2>/dev/null)" = 1 ]; }

# redis_ok HOST PORT: a Redis answers PING there (+PONG).
redis_ok() {
  local reply
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; printf "PING\r\n" >&3; head -c 5 <&3' \
    _ "$1" "$2" 2>/dev/null) || return 1
  [ "$reply" = "+PONG" ]
}

# redis_cluster_node_ok HOST PORT: a Redis Cluster node there reports cluster_state:ok (every slot
# has a master it knows of) in CLUSTER INFO, whose first line that is.
redis_cluster_node_ok() {
  local reply
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; printf "CLUSTER INFO\r\n" >&3; head -c 40 <&3' \
    _ "$1" "$2" 2>/dev/null) || return 1
  [[ "$reply" == \$*$'\r\n'cluster_state:ok$'\r\n'* ]]
}

# redis_cluster_ok: every node of the test cluster reports cluster_state:ok.
redis_cluster_ok() {
  local port
  for port in $CLUSTER_PORTS; do redis_cluster_node_ok 127.0.0.1 "$port" || return 1; done
}

# kafka_ok HOST PORT: a Kafka-protocol broker answers an ApiVersions v0 request there (correlation
# id 1234 echoed, error code 0).
kafka_ok() {
  local reply
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x04\xd2\x00\x04test" >&3
    head -c 10 <&3 | od -An -tx1' _ "$1" "$2" 2>/dev/null) || return 1
  reply=$(echo $reply)
  [[ "$reply" =~ ^([0-9a-f]{2}\ ){4}00\ 00\ 04\ d2\ 00\ 00$ ]]
}

# log_tail FILE: the end of a service's log, for an error message.
log_tail() { if [ -s "$1" ]; then printf '\n--- end of %s ---\n%s' "$1" "$(tail -n 15 "$1")"; fi; }

# wait_until SECONDS WHAT PIDFILE LOG CHECK...: runs CHECK until it succeeds; dies at once (with
# the end of LOG) when the process named in PIDFILE has ended, or after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2 pidfile=$3 logfile=$4 pid; shift 4
  until "$@"; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      die "$what exited right after starting$(log_tail "$logfile")"
    fi
    [ $SECONDS -ge $deadline ] && die "$what did not answer within $1 s$(log_tail "$logfile")"
    sleep 0.2
  done
}

postgres_up() {
  command -v psql >/dev/null || apt_install postgresql-client
  if pg_ok "$PG_URL"; then log "PostgreSQL: using $PG_URL"; return; fi
  # A server named explicitly is not replaced by another one.
  if [ -n "$PG_URL_GIVEN" ]; then
    die "PostgreSQL at BOXOFFICE_TEST_DATABASE_URL=$PG_URL_GIVEN does not answer 'select 1': $(psql "$PG_URL_GIVEN/postgres" -XtAc 'select 1' 2>&1 | head -3)"
  fi
  # Our own test cluster, still running from an earlier `up`.
  local dir="$RUN_DIR/pg"
  if [ -f "$dir/postmaster.pid" ]; then
    local running; running="postgres://postgres@127.0.0.1:$(sed -n 4p "$dir/postmaster.pid")"
    if pg_ok "$running"; then PG_URL=$running; log "PostgreSQL: using the test cluster at $PG_URL"; return; fi
  fi
  # A Debian cluster that is installed but stopped (e.g. after a reboot).
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    for v in /etc/postgresql/*; do
      as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start >/dev/null 2>&1 8>&- || true
    done
    pg_ok "$PG_URL" && { log "PostgreSQL: started the system cluster"; return; }
  fi
  # Otherwise our own trust-auth cluster for tests, on 5432 if free, else 55432.
  ensure_pg_binaries
  local bindir; bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1) || true
  [ -x "$bindir/initdb" ] || die "PostgreSQL: no server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
  local port=5432
  if port_open 127.0.0.1 5432; then
    log "PostgreSQL: 127.0.0.1:5432 is taken by something that does not answer as PostgreSQL; using 55432"
    port=55432
    if port_open 127.0.0.1 $port; then
      die "PostgreSQL: 127.0.0.1:5432 and :$port are both taken by something that does not answer as PostgreSQL (ss -ltnp shows what); free one, or set BOXOFFICE_TEST_DATABASE_URL"
    fi
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; chmod o+x "$STATE_DIR" "$RUN_DIR" "$HOME" 2>/dev/null || true; fi
    local out
    out=$(run_pg "$bindir/initdb" -D "$dir" -A trust -U postgres -E UTF8 --locale=C.UTF-8 2>&1) \
      || die "PostgreSQL: initdb of the test cluster in $dir failed: $out"
  fi
  if ! run_pg "$bindir/pg_ctl" -D "$dir" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
    -l "$dir/server.log" -w -t 60 start >/dev/null 8>&-; then
    die "PostgreSQL: the test cluster in $dir did not start$(log_tail "$dir/server.log")"
  fi
  PG_URL="postgres://postgres@127.0.0.1:$port"
  echo "$bindir" > "$RUN_DIR/pg.bindir"
  pg_ok "$PG_URL" || die "PostgreSQL: the test cluster started but does not answer 'select 1' at $PG_URL$(log_tail "$dir/server.log")"
  log "PostgreSQL: started a test cluster at $PG_URL"
}

run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

redis_up() {
  if redis_ok 127.0.0.1 $REDIS_PORT; then log "Redis: using 127.0.0.1:$REDIS_PORT"; return; fi
  if port_open 127.0.0.1 $REDIS_PORT; then
    die "Redis: 127.0.0.1:$REDIS_PORT is taken by something that does not answer PING as Redis (ss -ltnp shows what); stop it"
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  rm -f "$RUN_DIR/redis.pid"
  : >"$RUN_DIR/redis.log"
  redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT --save "" --appendonly no \
    --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" --pidfile "$RUN_DIR/redis.pid" 8>&- \
    || die "Redis: redis-server did not start$(log_tail "$RUN_DIR/redis.log")"
  wait_until 20 Redis "$RUN_DIR/redis.pid" "$RUN_DIR/redis.log" redis_ok 127.0.0.1 $REDIS_PORT
  log "Redis: started on 127.0.0.1:$REDIS_PORT"
}

# The Redis Cluster for the cluster tests: 3 masters, each with a replica, on six loopback ports,
# each node with its own folder under $RUN_DIR/redis-cluster (nothing persisted: no RDB, no AOF;
# the node's cluster state file goes with the folder, so every start is a fresh cluster).
redis_cluster_up() {
  local first=$CLUSTER_PORT last=$((CLUSTER_PORT + 5)) dir="$RUN_DIR/redis-cluster" port nodes=()
  if redis_cluster_ok; then log "Redis Cluster: using 127.0.0.1:$first-$last"; return; fi
  # Ours from an earlier `up` that is not ok (a node died): started afresh. Anything else on these
  # ports is not replaced.
  for port in $CLUSTER_PORTS; do
    if alive_as "$dir/$port/redis.pid" redis-server; then
      kill "$(cat "$dir/$port/redis.pid")" 2>/dev/null || true
      wait_gone "$dir/$port/redis.pid"
    fi
  done
  for port in $CLUSTER_PORTS; do
    if port_open 127.0.0.1 "$port"; then
      die "Redis Cluster: 127.0.0.1:$port is taken by something that is not a Redis Cluster node of an ok cluster on 127.0.0.1:$first-$last (ss -ltnp shows what); stop it, or move the test cluster with BOXOFFICE_INFRA_REDIS_CLUSTER_PORT"
    fi
  done
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
  for port in $CLUSTER_PORTS; do
    rm -rf "${dir:?}/$port"; mkdir -p "$dir/$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --cluster-enabled yes --cluster-node-timeout 1000 --cluster-config-file "$dir/$port/nodes.conf" \
      --dir "$dir/$port" --logfile "$dir/$port/redis.log" --pidfile "$dir/$port/redis.pid" 8>&- \
      || die "Redis Cluster: the node on port $port did not start$(log_tail "$dir/$port/redis.log")"
    nodes+=("127.0.0.1:$port")
  done
  for port in $CLUSTER_PORTS; do
    wait_until 20 "Redis Cluster node $port" "$dir/$port/redis.pid" "$dir/$port/redis.log" redis_ok 127.0.0.1 "$port"
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 8>&- \
    || die "Redis Cluster: redis-cli --cluster create failed$(log_tail "$dir/create.log")"
  # Every node learns the slot map over the cluster bus: asked until each one says ok.
  wait_until 30 "the Redis Cluster on 127.0.0.1:$first-$last" "$dir/$first/redis.pid" "$dir/create.log" redis_cluster_ok
  log "Redis Cluster: started 3 masters and 3 replicas on 127.0.0.1:$first-$last"
}

# wait_gone PIDFILE: waits up to 5 s for the process to end.
wait_gone() {
  local pid; pid=$(cat "$1" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
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
  if kafka_ok 127.0.0.1 $KAFKA_PORT; then log "Kafka broker: using 127.0.0.1:$KAFKA_PORT"; return; fi
  if port_open 127.0.0.1 $KAFKA_PORT; then
    die "Kafka broker: 127.0.0.1:$KAFKA_PORT is taken by something that does not answer a Kafka ApiVersions request (ss -ltnp shows what); stop it"
  fi
  tansu_install
  nohup "$TANSU" broker --listener-url tcp://127.0.0.1:$KAFKA_PORT \
    --advertised-listener-url tcp://127.0.0.1:$KAFKA_PORT \
    --storage-engine memory://tansu/ >"$RUN_DIR/tansu.log" 2>&1 8>&- &
  echo $! > "$RUN_DIR/tansu.pid"
  wait_until 60 "the tansu broker" "$RUN_DIR/tansu.pid" "$RUN_DIR/tansu.log" kafka_ok 127.0.0.1 $KAFKA_PORT
  log "Kafka broker: started tansu on 127.0.0.1:$KAFKA_PORT"
}

# Once everything is up, each service is asked again: one that died right after answering (a
# broker crashing on its first requests) stops the run here.
verify_up() {
  local pglog=/dev/null
  [ -f "$RUN_DIR/pg.bindir" ] && pglog="$RUN_DIR/pg/server.log"
  pg_ok "$PG_URL" || die "PostgreSQL at $PG_URL stopped answering$(log_tail "$pglog")"
  redis_ok 127.0.0.1 $REDIS_PORT || die "Redis on 127.0.0.1:$REDIS_PORT stopped answering$(log_tail "$RUN_DIR/redis.log")"
  redis_cluster_ok || die "the Redis Cluster on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + 5)) is no longer ok (a node stopped or lost its master)"
  kafka_ok 127.0.0.1 $KAFKA_PORT || die "the Kafka broker on 127.0.0.1:$KAFKA_PORT stopped answering$(log_tail "$RUN_DIR/tansu.log")"
}

down() {
  [ -n "${BOXOFFICE_TEST_LEASE:-}" ] && rm -f "$LEASES/$BOXOFFICE_TEST_LEASE"
  local others; others=$(live_leases)
  if [ "$others" -gt 0 ]; then
    log "leaving the test infrastructure running: $others other test run(s) on this machine use it"
    return 0
  fi
  if alive_as "$RUN_DIR/tansu.pid" tansu; then
    local pid; pid=$(cat "$RUN_DIR/tansu.pid")
    # tansu does not stop promptly on SIGTERM: give it 3 s, then SIGKILL.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped the tansu broker"
  fi
  rm -f "$RUN_DIR/tansu.pid"
  if [ -f "$RUN_DIR/pg.bindir" ]; then
    run_pg "$(cat "$RUN_DIR/pg.bindir")/pg_ctl" -D "$RUN_DIR/pg" -m fast stop >/dev/null 2>&1 || true
    rm -f "$RUN_DIR/pg.bindir"
    log "stopped the test PostgreSQL"
  fi
  if alive_as "$RUN_DIR/redis.pid" redis-server; then
    kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null || true
    log "stopped the test Redis"
  fi
  rm -f "$RUN_DIR/redis.pid"
  local port stopped=0
  for port in $CLUSTER_PORTS; do
    if alive_as "$RUN_DIR/redis-cluster/$port/redis.pid" redis-server; then
      kill "$(cat "$RUN_DIR/redis-cluster/$port/redis.pid")" 2>/dev/null || true
      stopped=1
    fi
    rm -f "$RUN_DIR/redis-cluster/$port/redis.pid"
  done
  [ "$stopped" -eq 1 ] && log "stopped the test Redis Cluster"
  return 0
}

# drop_where CONDITION WHAT: drops the test databases matching a SQL condition on pg_database.
drop_where() {
  local url="${BOXOFFICE_TEST_DATABASE_URL:-$PG_URL}" n=0 db
  pg_ok "$url" || return 0
  for db in $(psql "$url/postgres" -XtAc "SELECT datname FROM pg_database d WHERE datname LIKE 'test\_%' AND $1" 2>/dev/null); do
    psql "$url/postgres" -XtAqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 && n=$((n + 1))
  done
  log "dropped $n $2"
}

# Databases left by runs that crashed: older than a day, by the creation time of the database's
# PG_VERSION file (needs superuser, as the trust-auth test server gives; otherwise drops nothing).
# A database of a run still going is never that old, so concurrent runs are safe.
clean() {
  drop_where "(pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification < now() - interval '1 day'" \
    "test databases older than a day"
}

# What one run created: test_<RUN>_* (platform::testing names databases after BOXOFFICE_TEST_RUN).
clean_run() {
  local run="$1"
  [[ "$run" =~ ^[a-z0-9]{1,12}$ ]] || die "clean-run takes the run's tag (letters and digits), got '$run'"
  drop_where "datname LIKE 'test\_${run}\_%'" "test databases of run $run"
}

case "${1:-up}" in
  up)
    [ -n "${BOXOFFICE_TEST_LEASE:-}" ] && : >"$LEASES/$BOXOFFICE_TEST_LEASE"
    postgres_up; redis_up; redis_cluster_up; kafka_up; verify_up
    echo "export BOXOFFICE_TEST_DATABASE_URL=$PG_URL"
    echo "export BOXOFFICE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export BOXOFFICE_TEST_REDIS_CLUSTER=$(for p in $(seq "$CLUSTER_PORT" $((CLUSTER_PORT + 2))); do printf 'redis://127.0.0.1:%s,' "$p"; done | sed 's/,$//')"
    echo "export BOXOFFICE_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
    ;;
  down) down ;;
  clean) clean ;;
  clean-run) clean_run "${2:-}" ;;
  *) die "usage: $0 up|down|clean" ;;
esac
