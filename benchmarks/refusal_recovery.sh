#!/usr/bin/env bash
# Issue 15 on a real kube-apiserver + kube-controller-manager (../shared/REAL-CONTROL-PLANE.md;
# never in CI): N TRTModels whose Services an admission policy refuses (403, as RBAC or a
# policy would), the operator's write rate while refused, then the policy removed: how long
# until every model converges, with no restart and no spec change.
#
#   benchmarks/refusal_recovery.sh [N] [REFUSED_SECONDS] [REALK8S_SH]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
refused_for=${2:-90}
# shellcheck source=scripts/lib/control-plane.sh
. scripts/lib/control-plane.sh
cp_start "${3:-../shared/tools/realk8s.sh}" || exit 1
trap 'kill "${operator_pid:-0}" 2>/dev/null; rk_stop' EXIT
cat <<'YAML' | kubectl apply -f - >/dev/null
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: refuse-trtserve-services}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [services]}
  validations:
    - expression: "request.userInfo.username != 'trtserve-operator'"
      reason: Forbidden
      message: "services are refused for trtserve (benchmark)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: refuse-trtserve-services}
spec:
  policyName: refuse-trtserve-services
  validationActions: [Deny]
YAML
sleep 2  # the policy reaches the admission plugin
operator_run "$RK_DIR/operator.kubeconfig" "$RK_DIR/operator.log"
operator_pid=$!
for i in $(seq 1 "$n"); do
  printf 'apiVersion: trtserve.io/v1alpha1\nkind: TRTModel\nmetadata: {name: m%d}\nspec: {source: {uri: "s3://b/m"}}\n---\n' "$i"
done | kubectl apply -f - >/dev/null
writes() {  # the operator's write requests in the audit log so far
  python3 - "$RK_AUDIT" <<'PY'
import json, sys
count = 0
for line in open(sys.argv[1]):
    event = json.loads(line)
    if event.get("stage") == "ResponseComplete" and event["user"]["username"] == "trtserve-operator" \
            and event["verb"] in ("create", "update", "patch", "delete"):
        count += 1
print(count)
PY
}
sleep 20  # the first converges (and their refusals) are done
start_writes=$(writes); start=$(date +%s)
sleep "$((refused_for - 20))"
refused_writes=$(( $(writes) - start_writes )); window=$(( $(date +%s) - start ))
services=$(kubectl get svc -l app.kubernetes.io/managed-by=trtserve-operator -o name | wc -l)
rejected=$(kubectl get trtm -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].reason}{"\n"}{end}' | grep -c ChildRejected || true)
echo "refused: $n models, $services Services, $rejected Ready=False ChildRejected;" \
  "$refused_writes operator writes in ${window}s ($(python3 -c "print(round($refused_writes/$window, 2))")/s)"
kubectl delete validatingadmissionpolicybinding refuse-trtserve-services >/dev/null
lifted=$(date +%s)
while :; do
  services=$(kubectl get svc -l app.kubernetes.io/managed-by=trtserve-operator -o name | wc -l)
  [ "$services" -ge "$n" ] && break
  [ $(( $(date +%s) - lifted )) -gt 600 ] && { echo "not converged after 600 s: $services/$n"; exit 1; }
  sleep 1
done
converged=$(( $(date +%s) - lifted ))
sleep 5
rejected=$(kubectl get trtm -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].reason}{"\n"}{end}' | grep -c ChildRejected || true)
restarts=$(grep -c "Caches listed" "$RK_DIR/operator.log" || true)
echo "policy removed: all $n Services within ${converged}s, $rejected still ChildRejected," \
  "operator started $restarts time(s), no spec change"
exit 0
