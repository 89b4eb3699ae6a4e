#!/usr/bin/env bash
# Installs the official Huawei Cloud Python SDK (pinned) into a virtualenv that
# tests/sim_python_sdk.rs uses to prove ecs-sim is faithful to the real client.
# Idempotent: when the venv already holds the pinned versions it returns at once.
# Prints the venv's python path on its last line.
set -euo pipefail

SDK_VERSION=3.1.219
cache="${EPO_CACHE:-$HOME/.cache/ecs-power-operator}"
venv="$cache/venv-sdk"
stamp="$venv/.sdk-$SDK_VERSION"

if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

command -v python3 >/dev/null || { echo "python3 is not installed" >&2; exit 2; }
mkdir -p "$cache"
python3 -m venv "$venv" >&2 || { echo "python3 -m venv failed (install python3-venv)" >&2; exit 2; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "huaweicloudsdkcore==$SDK_VERSION" "huaweicloudsdkecs==$SDK_VERSION" >&2
touch "$stamp"
echo "$venv/bin/python"
