#!/usr/bin/env bash
# The fleet benchmark (README "Benchmark"): the operator (release build) against
# ecs-sim on the local control plane, N servers over P policies, plus the naive
# one-server-per-call baseline. Builds the control plane first if it is not cached.
#
#   hack/bench.sh                                        # the full matrix (about 10 min)
#   hack/bench.sh --servers 1000,10000 --policies 1,100  # part of it
#   hack/bench.sh --starts --servers 10000 --policies 1 --window-ms 2000   # the start cell
#   hack/bench.sh --json bench.json                      # also write the figures as JSON
#   hack/bench.sh --help                                 # every option
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
hack/cplane/cplane.sh build >&2
exec cargo bench --bench fleet -- "$@"
