# Helpers of the real-control-plane demos and benchmarks (sourced; never in CI): start
# ../shared/tools/realk8s.sh's kube-apiserver + kube-controller-manager with the chart's
# RBAC and the CRD, and run operator processes against it as the users it grants.
# shellcheck shell=bash

CP_CONVERTER_IMAGE=registry.example/trtserve-converter:0.1.0
CP_LEASE_NAMESPACE=trtserve-system
# The release namespace of rk_grant_operator's chart render: the Lease's Role is there.

cp_start() {  # cp_start REALK8S_SH: the control plane, the chart's RBAC, the CRD established
  # shellcheck source=/dev/null
  . "$1"
  rk_start >/dev/null || return 1
  rk_grant_operator
  kubectl apply --server-side -f crds/trtmodels.yaml >/dev/null
  kubectl wait --for=condition=Established crd/trtmodels.trtserve.io >/dev/null
}

operator_run() {  # operator_run KUBECONFIG LOG [VAR=VALUE...]: the operator in the background ($!)
  local kubeconfig=$1 log=$2
  shift 2
  env TRTSERVE_CONVERTER_IMAGE="$CP_CONVERTER_IMAGE" \
    TRTSERVE_LEADER_ELECTION_NAMESPACE="$CP_LEASE_NAMESPACE" KUBECONFIG="$kubeconfig" "$@" \
    .venv/bin/trtserve-operator run -A >>"$log" 2>&1 &
}

start_replica() {  # start_replica a|b HEALTH_PORT: one of two replicas (users trtserve-operator[-b]); pid in $pid_a/$pid_b
  local kubeconfig=$RK_DIR/operator.kubeconfig
  [ "$1" = b ] && kubeconfig=$RK_DIR/operator-b.kubeconfig
  operator_run "$kubeconfig" "$RK_DIR/operator-$1.log" TRTSERVE_POD_NAME="op-$1" TRTSERVE_HEALTH_PORT="$2"
  eval "pid_$1=$!"
  disown  # no "Killed" notice from the shell
}

lease_holder() {  # a or b: the replica holding the leader Lease ("" when none)
  kubectl -n "$CP_LEASE_NAMESPACE" get lease trtserve-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null \
    | sed 's/_.*//; s/^op-//'
}

apply_models() {  # apply_models N: TRTModels m000... with 0 replicas in namespace default
  python3 - "$1" <<'PY' | kubectl apply -f - >/dev/null
import sys, yaml
docs = [{"apiVersion": "trtserve.io/v1alpha1", "kind": "TRTModel", "metadata": {"name": f"m{i:03d}", "namespace": "default"},
         "spec": {"source": {"uri": "s3://models/resnet50"}, "serving": {"replicas": 0}}} for i in range(int(sys.argv[1]))]
yaml.safe_dump_all(docs, sys.stdout)
PY
}
