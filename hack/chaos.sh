#!/usr/bin/env bash
# The chaos suite (README "Chaos suite"): the operator (release build) against ecs-sim
# on the local control plane while it is SIGKILLed, its leader killed, its leader
# black-holed from the API server, and SIGKILLed around a schedule window's edges.
# Builds the control plane first if it is not cached.
#
#   hack/chaos.sh                              # cells a, b, c and d (a few minutes)
#   hack/chaos.sh --cells c --seed 42          # one cell, a given kill schedule
#   hack/chaos.sh --json chaos.json            # also write the figures as JSON
#   hack/chaos.sh --help                       # every option
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
hack/cplane/cplane.sh build >&2
exec cargo bench --bench chaos -- "$@"
