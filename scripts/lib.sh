#!/usr/bin/env bash
# Shared helpers for the project's scripts: logging, apt installs, waiting on ports.
set -euo pipefail
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

STATE_DIR="${BOXOFFICE_STATE_DIR:-$HOME/.cache/boxoffice}"
TOOLS_DIR="${BOXOFFICE_TOOLS_DIR:-$STATE_DIR/tools}"
mkdir -p "$STATE_DIR" "$TOOLS_DIR"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root for: $* (run as root or install sudo)"; fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT SECONDS WHAT
wait_port() {
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    [ $SECONDS -ge $deadline ] && die "$4 did not come up on $1:$2 within $3 s"
    sleep 0.2
  done
}

# Build prerequisites: a C toolchain and make for the bundled librdkafka, pkg-config, zlib, and
# OpenSSL's headers for outgoing HTTPS (OAuth providers, the payment gateway).
ensure_build_deps() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs) first"
  local need=()
  command -v cc >/dev/null || need+=(gcc libc6-dev)
  command -v c++ >/dev/null || need+=(g++)
  command -v make >/dev/null || need+=(make)
  command -v pkg-config >/dev/null || need+=(pkg-config)
  [ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
  pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
  command -v psql >/dev/null || need+=(postgresql-client)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}

# PostgreSQL server binaries (initdb, pg_ctl, postgres) for the private cluster.
ensure_pg_binaries() {
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then return 0; fi
  apt_install postgresql
}
