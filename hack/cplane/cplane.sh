#!/usr/bin/env bash
# Builds the cplane harness (cached by source hash) and runs it: the one builder of
# every Go tool the tests use, each cached under $EPO_CACHE/bin/<name>-<version>/.
#   hack/cplane/cplane.sh build
#   hack/cplane/cplane.sh up --dir /tmp/x [--port N] [--timeout 90s]
#   hack/cplane/cplane.sh down --dir /tmp/x
#   hack/cplane/cplane.sh kubectl-path
#   hack/cplane/cplane.sh tool-path helm|promql-check|promtool|kubectl|kstatus|argocd-health
#   hack/cplane/cplane.sh run TOOL ARGS...   # build TOOL if needed and run it
# Works from any cwd. Cache: ${EPO_CACHE:-$HOME/.cache/ecs-power-operator}/bin/
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EPO_CACHE:-$HOME/.cache/ecs-power-operator}"
if [[ -z "${GO:-}" ]]; then
  GO="$(command -v go 2>/dev/null || true)"
  [[ -n "$GO" ]] || GO=/usr/local/go/bin/go
fi
if ! command -v "$GO" >/dev/null 2>&1; then
  echo "$0: the Go toolchain is missing (no \`go\` on PATH nor /usr/local/go/bin/go): install Go >= 1.24 to build the test tools" >&2
  exit 127
fi
export GO EPO_CACHE="$CACHE" CPLANE_SRC="$HERE"

hash="$(cd "$HERE" && cat go.mod ./*.go | sha256sum | cut -c1-16)"
bin="$CACHE/bin/cplane/cplane-$hash"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$CACHE/bin/cplane"
  tmp="$(mktemp "$CACHE/bin/cplane/.cplane-XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  (cd "$HERE" && GOWORK=off CGO_ENABLED=0 "$GO" build -trimpath -o "$tmp" .)
  mv -f "$tmp" "$bin"
  trap - EXIT
fi
if [[ "${1:-}" == run ]]; then
  [[ $# -ge 2 ]] || { echo "usage: $0 run TOOL ARGS..." >&2; exit 2; }
  tool="$("$bin" tool-path "$2")"
  shift 2
  exec "$tool" "$@"
fi
exec "$bin" "$@"
