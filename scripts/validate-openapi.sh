#!/usr/bin/env bash
# Validates the platform's OpenAPI document (what the gateway serves at /api/docs/openapi.json,
# printed by `boxoffice openapi`) with openapi-spec-validator from PyPI, installed once into a
# virtual environment under the tools folder. Run by the test command; exits non-zero on an
# invalid document.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

VALIDATOR_VERSION=0.9.0
VENV="$TOOLS_DIR/openapi-venv-$VALIDATOR_VERSION"
if [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
  command -v python3 >/dev/null || apt_install python3
  log "installing openapi-spec-validator $VALIDATOR_VERSION (once) into $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV" || die "cannot make a Python virtual environment in $VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$VALIDATOR_VERSION" \
    || die "cannot install openapi-spec-validator from PyPI"
fi

doc="$(mktemp --suffix=.json)"
trap 'rm -f "$doc"' EXIT
cargo run --quiet --locked -p boxoffice -- openapi >"$doc" || die "boxoffice openapi failed"
"$VENV/bin/openapi-spec-validator" "$doc" || die "the OpenAPI document is invalid (boxoffice openapi)"
