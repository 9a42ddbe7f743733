#!/usr/bin/env bash
# The web UI's end-to-end tests (tests/browser): Debian's chromium (and a CJK font, so that the
# screenshots show Korean) installed when missing, Node.js and npm when missing, `npm ci` when
# the lockfile changed, the debug `boxoffice` built, then the tests against a standalone on free
# ports. Screenshots go to docs/screenshots. Any failure fails the script.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

command -v chromium >/dev/null || apt_install chromium
apt_install fonts-noto-cjk
command -v npm >/dev/null || apt_install nodejs npm

cd tests/browser
# The lockfile's copy in node_modules says what was installed; reinstall when they differ.
if ! cmp -s package-lock.json node_modules/.boxoffice-installed-lock 2>/dev/null; then
  log "npm ci (tests/browser)"
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.boxoffice-installed-lock
fi
cd ../..

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
log "cargo build -p boxoffice (for the browser tests)"
cargo build -p boxoffice --locked
export E2E_BOXOFFICE="$CARGO_TARGET_DIR/debug/boxoffice"

log "browser tests (headless Chromium)"
cd tests/browser
npm test
