#!/usr/bin/env bash
# The operator's main job, end to end, on this machine: a local control plane (etcd +
# kube-apiserver), ecs-sim with a few thousand servers, the CRD, a Secret and a policy,
# the operator, and `kubectl get epp` printed as the policy moves to Stopped.
# Everything started here is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

servers=${DEMO_SERVERS:-3000}
window_ms=${DEMO_BUDGET_WINDOW_MS:-15000}   # the real API's window is 60 s; shortened for a demo
project=0123456789abcdef0123456789abcdef
access_key=DEMOACCESSKEY0000001
secret_key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
namespace=demo

state=$(mktemp -d -t epo-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  hack/cplane/cplane.sh down --dir "$state/cp" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building the operator and ecs-sim"
cargo build --quiet --bins
bin=${CARGO_TARGET_DIR:-$root/target}/debug

step "starting a local control plane (etcd + kube-apiserver)"
hack/cplane/cplane.sh build >/dev/null
kubeconfig=$(hack/cplane/cplane.sh up --dir "$state/cp" | tail -n 1)
# shellcheck disable=SC1091
source "$state/cp/env"
export KUBECONFIG=$kubeconfig
kubectl() { "$KUBECTL" "$@"; }

step "starting ecs-sim with $servers servers"
ECS_SIM_SECRET_KEY=$secret_key "$bin/ecs-sim" --listen 127.0.0.1:0 --project-id "$project" \
  --access-key "$access_key" --servers "$servers" --stop-duration-ms 4000 \
  --budget-window-ms "$window_ms" >"$state/sim.out" 2>"$state/sim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on ' "$state/sim.out" && break; sleep 0.1; done
sim_url=$(sed -n 's/^listening on //p' "$state/sim.out")
[ -n "$sim_url" ] || { echo "ecs-sim did not start:"; cat "$state/sim.log"; exit 1; }
echo "ecs-sim at $sim_url"

step "applying crds/, a Secret and a policy over all $servers servers"
kubectl apply -f crds/ecspowerpolicies.ecspower.dev.yaml
kubectl wait --for condition=established --timeout=30s crd/ecspowerpolicies.ecspower.dev >/dev/null
kubectl create namespace "$namespace"
kubectl -n "$namespace" create secret generic otc-credentials \
  --from-literal=accessKey="$access_key" --from-literal=secretKey="$secret_key"
{
  cat <<YAML
apiVersion: ecspower.dev/v1alpha1
kind: EcsPowerPolicy
metadata:
  name: nightly
  namespace: $namespace
spec:
  cloud:
    projectId: $project
    region: eu-de
    endpoint: $sim_url
    credentialsSecretRef:
      name: otc-credentials
  stopType: Soft
  servers:
YAML
  curl -fsS "$sim_url/_sim/servers" | python3 -c 'import json,sys; [print(f"    - id: {i}") for i in json.load(sys.stdin)["ids"]]'
} >"$state/policy.yaml"
kubectl apply -f "$state/policy.yaml"

step "running the operator"
"$bin/ecs-power-operator" run --http-addr 127.0.0.1:0 --watch-namespace "$namespace" \
  --lease-namespace "$namespace" --budget-window-ms "$window_ms" --drift-interval-ms 10000 2>"$state/operator.log" &
pids+=($!)

step "watching the policy (kubectl get epp -n $namespace), budget: 1000 servers per $((window_ms / 1000)) s"
started=$(date +%s)
kubectl get epp -n "$namespace"
while true; do
  sleep 3
  kubectl get epp -n "$namespace" --no-headers
  phase=$(kubectl get epp nightly -n "$namespace" -o jsonpath='{.status.phase}')
  [ "$phase" = Stopped ] && break
  if [ $(( $(date +%s) - started )) -gt 240 ]; then
    echo "not Stopped after 240 s; operator log tail:"; tail -n 30 "$state/operator.log"; exit 1
  fi
done

step "kubectl describe epp nightly (status)"
kubectl describe epp nightly -n "$namespace" | sed -n '/^Status:/,$p'
step "ecs-sim counters"
curl -fsS "$sim_url/_sim/stats" | python3 -m json.tool | head -40
step "done in $(( $(date +%s) - started )) s; tearing everything down"
