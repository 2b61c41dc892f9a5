#!/usr/bin/env bash
# The serving pods' PodDisruptionBudget on a real kube-apiserver + kube-controller-manager
# (../shared/REAL-CONTROL-PLANE.md; never in CI), with the chart's RBAC for the operator:
# what the CRD rejects, the rendered examples through the API server's validation
# (server-side dry-run), and what the eviction API (kubectl drain's) allows while pods are
# ready, unavailable or stuck. No kubelet: scripts/lib/fake-kubelet.sh writes the pods'
# statuses; the disruption controller computes the budget from them.
#
#   scripts/disruption-demo.sh [REALK8S_SH]     (default ../shared/tools/realk8s.sh)
#
# docs/admin.md ("Rollouts, scale-down and node drains") has the output of one run. Needs
# `make setup` (the operator in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/control-plane.sh
. scripts/lib/control-plane.sh
cp_start "${1:-../shared/tools/realk8s.sh}" || exit 1
trap 'kill "${operator_pid:-0}" 2>/dev/null; rk_stop' EXIT
echo "# RBAC: ${RK_RBAC}"
# shellcheck source=scripts/lib/fake-kubelet.sh
. scripts/lib/fake-kubelet.sh

echo; echo "## the CRD rejects a budget that would block drains"; echo '```'
for value in 0 '"0%"' '"101%"' '"1"' true '"25%"'; do
  printf 'maxUnavailable: %-7s -> ' "$value"
  kubectl apply --dry-run=server -f - 2>&1 <<EOF | grep -v 'rules were not checked' | tail -1 | cut -c1-260 || true
apiVersion: trtserve.io/v1alpha1
kind: TRTModel
metadata: {name: budget}
spec:
  source: {uri: "s3://models/resnet50"}
  serving: {disruptionBudget: {maxUnavailable: $value}}
EOF
done
echo '```'

echo; echo "## every example's rendered children through the API server's validation"; echo '```'
for example in examples/*.yaml; do
  out=$(TRTSERVE_CONVERTER_IMAGE=registry.example/trtserve-converter:0.1.0 \
    .venv/bin/trtserve-operator render -f "$example" --namespace default \
    | kubectl apply --dry-run=server -f - -o name 2>&1) || { echo "$example: $out"; continue; }
  echo "$(basename "$example"): $(printf '%s\n' "$out" | sed 's|/.*||' | sort | uniq -c | tr -s ' ' | tr '\n' ',' | sed 's/,$//')"
done
echo '```'

operator_run "$RK_DIR/operator.kubeconfig" "$RK_DIR/operator.log" TRTSERVE_STATUS_INTERVAL=0.2
operator_pid=$!

evict() {  # evict POD: what kubectl drain asks for; prints the API server's answer
  local out
  if out=$(printf '{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"%s","namespace":"default"}}' "$1" \
      | kubectl create --raw "/api/v1/namespaces/default/pods/$1/eviction" -f - 2>&1); then
    echo "evicted"
  else
    echo "refused: ${out#Error from server }" | cut -c1-200
  fi
}
budget() {  # budget NAME: the disruption controller's view
  kubectl get pdb "$1" -o jsonpath='maxUnavailable={.spec.maxUnavailable} currentHealthy={.status.currentHealthy} desiredHealthy={.status.desiredHealthy} disruptionsAllowed={.status.disruptionsAllowed} expectedPods={.status.expectedPods}'
}
wait_allowed() {  # wait_allowed NAME N: until the controller allows N disruptions
  local i
  for i in $(seq 1 60); do
    [ "$(kubectl get pdb "$1" -o jsonpath='{.status.disruptionsAllowed}' 2>/dev/null)" = "$2" ] && return 0
    sleep 0.5
  done
  echo "budget $1 never allowed $2: $(budget "$1")" >&2; return 1
}
wait_budget() {  # wait_budget NAME: until the operator has made it
  local i
  for i in $(seq 1 60); do kubectl get pdb "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "no budget $1" >&2; return 1
}
ok=$(report Succeeded 0 'converted to FP16' FP16)

echo; echo "## two replicas, both ready: one eviction at a time"; echo '```'
model pair FP16 2
wait_pods pair current 2
for pod in $(pods_of pair current); do serving "$pod" "$ok"; done
wait_budget pair
wait_allowed pair 1
kubectl get pdb pair
echo "budget: $(budget pair)"
read -r first second <<<"$(pods_of pair current | tr '\n' ' ')"
echo "evict $first: $(evict "$first")"
wait_pods pair current 2   # the ReplicaSet controller replaces it; the new pod converts
replacement=$(pods_of pair current | grep -v "^$second$")
converting "$replacement"
wait_allowed pair 0
echo "budget: $(budget pair)"
echo "evict $second (the only ready pod) while $replacement converts: $(evict "$second")"
echo "evict $replacement (not ready; AlwaysAllow): $(evict "$replacement")"
wait_pods pair current 2
replacement=$(pods_of pair current | grep -v "^$second$")
serving "$replacement" "$ok"
wait_allowed pair 1
echo "$replacement ready; budget: $(budget pair)"
echo "evict $second: $(evict "$second")"
echo '```'

echo; echo "## one replica: always evictable (the budget never blocks a drain)"; echo '```'
model single FP16 1
wait_pods single current 1
serving "$(pods_of single current)" "$ok"
wait_budget single
wait_allowed single 1
echo "budget: $(budget single)"
pod=$(pods_of single current)
echo "evict $pod: $(evict "$pod")"
echo '```'

echo; echo "## a stuck rollout does not hold up a drain"; echo '```'
model stuck FP16 2
wait_pods stuck current 2
read -r a b <<<"$(pods_of stuck current | tr '\n' ' ')"
serving "$a" "$ok"
converter_failed "$b" "$(report AccuracyGateFailed 40 'converted model differs from the original')" 40
wait_budget stuck
wait_allowed stuck 0
echo "budget: $(budget stuck)"
echo "evict $b (crash-looping converter): $(evict "$b")"
echo '```'

echo; echo "## spec.serving.disruptionBudget.enabled: false"; echo '```'
kubectl patch trtm pair --type=merge -p '{"spec":{"serving":{"disruptionBudget":{"enabled":false}}}}' >/dev/null
for i in $(seq 1 40); do kubectl get pdb pair >/dev/null 2>&1 || break; sleep 0.5; done
kubectl get pdb
echo '```'
echo; echo "# operator writes to poddisruptionbudgets (audit log):"
python3 - "$RK_AUDIT" <<'PY'
import collections, json, sys
counts = collections.Counter()
for line in open(sys.argv[1]):
    e = json.loads(line)
    ref = e.get("objectRef") or {}
    if (e.get("user", {}).get("username") == "trtserve-operator"
            and ref.get("resource") == "poddisruptionbudgets"
            and e.get("verb") in ("create", "update", "patch", "delete")
            and e.get("stage") == "ResponseComplete"):
        counts[(e["verb"], ref.get("name"), e.get("responseStatus", {}).get("code"))] += 1
for (verb, name, code), n in sorted(counts.items()):
    print(f"  {verb} {name} -> {code} x{n}")
PY
echo; echo "# operator warnings/errors:"; grep -E "WARNING|ERROR" "$RK_DIR/operator.log" | cut -c1-200 | head -10 || true
exit 0
