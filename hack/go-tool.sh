#!/usr/bin/env bash
# Builds one of the small Go test tools under hack/ (cached by a hash of its source,
# like hack/cplane) and runs it, or prints its path.
#   hack/go-tool.sh kstatus --kubeconfig FILE --namespace NS [NAME...]
#   hack/go-tool.sh argocd-health test deploy/argocd/resource_customizations/ecspower.dev/EcsPowerPolicy
#   hack/go-tool.sh build TOOL      # build or reuse; prints the binary's path
# Works from any cwd. Cache: ${EPO_CACHE:-$HOME/.cache/ecs-power-operator}/bin/TOOL/
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EPO_CACHE:-$HOME/.cache/ecs-power-operator}"
usage() { echo "usage: $0 {kstatus|argocd-health} ARGS... | $0 build {kstatus|argocd-health}" >&2; exit 2; }

print_path=false
[[ $# -ge 1 ]] || usage
if [[ "$1" == build ]]; then
  print_path=true
  shift
  [[ $# -eq 1 ]] || usage
fi
tool="$1"
shift
case "$tool" in kstatus|argocd-health) ;; *) usage ;; esac

if [[ -z "${GO:-}" ]]; then
  GO="$(command -v go 2>/dev/null || true)"
  [[ -n "$GO" ]] || GO=/usr/local/go/bin/go
fi
if ! command -v "$GO" >/dev/null 2>&1; then
  echo "$0: the Go toolchain is missing (no \`go\` on PATH nor /usr/local/go/bin/go): install Go >= 1.24 to build hack/$tool" >&2
  exit 127
fi

src="$HERE/$tool"
hash="$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
bin="$CACHE/bin/$tool/$tool-$hash"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$CACHE/bin/$tool"
  tmp="$(mktemp "$CACHE/bin/$tool/.$tool-XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  (cd "$src" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$tmp" .)
  mv -f "$tmp" "$bin"
  trap - EXIT
fi
if $print_path; then
  echo "$bin"
  exit 0
fi
exec "$bin" "$@"
