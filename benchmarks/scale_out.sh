#!/usr/bin/env bash
# The control plane's share of an HPA scale-out, on a real kube-apiserver +
# kube-controller-manager (../shared/REAL-CONTROL-PLANE.md; never in CI), operator with
# the chart's RBAC: the scale subresource of a TRTModel is set (what an HPA does), and the
# script times until the operator has patched the Deployment and the ReplicaSet controller
# has created the pods. No scheduler or kubelet: what follows (scheduling, image pulls, the
# converter's cache hit or conversion, TF Serving's load) is measured elsewhere
# (docs/admin.md, "Scale-out and the converted-model cache").
#
#   benchmarks/scale_out.sh [FROM] [TO] [ROUNDS] [REALK8S_SH]     (default 1 4 5)
set -euo pipefail
cd "$(dirname "$0")/.."
from=${1:-1}; to=${2:-4}; rounds=${3:-5}
# shellcheck source=scripts/lib/control-plane.sh
. scripts/lib/control-plane.sh
cp_start "${4:-../shared/tools/realk8s.sh}" || exit 1
trap 'kill "${operator_pid:-0}" 2>/dev/null; rk_stop' EXIT
operator_run "$RK_DIR/operator.kubeconfig" "$RK_DIR/operator.log"
operator_pid=$!
kubectl apply -f - >/dev/null <<EOF
apiVersion: trtserve.io/v1alpha1
kind: TRTModel
metadata: {name: scaled}
spec:
  source: {uri: "s3://models/resnet50"}
  serving: {replicas: $from}
EOF
pods() { kubectl get pods -l app.kubernetes.io/instance=scaled --no-headers 2>/dev/null | grep -vc Terminating || true; }
until [ "$(pods)" -ge "$from" ]; do sleep 0.2; done
now() { date +%s.%N; }
echo "round  deployment_patched_s  pods_created_s  operator_writes"
for round in $(seq 1 "$rounds"); do
  before=$(grep -c '"username":"trtserve-operator"' "$RK_AUDIT" || true)
  t0=$(now)
  kubectl scale trtm scaled --replicas="$to" >/dev/null
  until [ "$(kubectl get deploy scaled -o jsonpath='{.spec.replicas}')" = "$to" ]; do sleep 0.05; done
  t1=$(now)
  until [ "$(pods)" -ge "$to" ]; do sleep 0.05; done
  t2=$(now)
  sleep 2
  writes=$(python3 - "$RK_AUDIT" "$before" <<'PY'
import json, sys
n = 0
seen = 0
for line in open(sys.argv[1]):
    if '"username":"trtserve-operator"' not in line:
        continue
    seen += 1
    if seen <= int(sys.argv[2]):
        continue
    e = json.loads(line)
    if e.get("stage") == "ResponseComplete" and e.get("verb") in ("create", "update", "patch", "delete"):
        n += 1
print(n)
PY
)
  printf '%5d  %20.2f  %14.2f  %15s\n' "$round" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)" "$writes"
  kubectl scale trtm scaled --replicas="$from" >/dev/null
  until [ "$(kubectl get deploy scaled -o jsonpath='{.spec.replicas}')" = "$from" ]; do sleep 0.05; done
  until [ "$(pods)" -le "$from" ]; do sleep 0.1; done
  sleep 1
done
