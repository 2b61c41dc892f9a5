#!/usr/bin/env bash
# What `kubectl get trtm -o wide` and the conditions say while things change, on a real
# kube-apiserver + kube-controller-manager (../shared/REAL-CONTROL-PLANE.md; never in CI).
# There is no kubelet and no scheduler: this script writes the pods' statuses through the
# pods/status subresource the way a kubelet would (the converter's termination message,
# readiness, waiting reasons, the scheduler's PodScheduled=False), and the Deployment and
# ReplicaSet controllers do the rest (surge pod, scaling the old ReplicaSet down).
#
#   scripts/status-truth-demo.sh [REALK8S_SH]     (default ../shared/tools/realk8s.sh)
#
# Prints each scenario's rows and conditions; docs/operator.md ("Status while things
# change") has the output of one run. Needs `make setup` (the operator in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/control-plane.sh
. scripts/lib/control-plane.sh
cp_start "${1:-../shared/tools/realk8s.sh}" || exit 1
trap 'kill "${operator_pid:-0}" 2>/dev/null; rk_stop' EXIT
echo "# RBAC: ${RK_RBAC}"

operator_run "$RK_DIR/operator.kubeconfig" "$RK_DIR/operator.log" TRTSERVE_STATUS_INTERVAL=0.2
operator_pid=$!

# shellcheck source=scripts/lib/fake-kubelet.sh
. scripts/lib/fake-kubelet.sh

# --- 1. a spec change before the new pod serves; 2. a failed new revision; completion -------
model demo FP16
wait_pods demo current 1
serving "$(pods_of demo current)" "$(report Succeeded 0 'converted demo to FP16' FP16)"
show "generation 1 (FP16) serves" demo
kubectl patch trtm demo --type=merge -p '{"spec":{"conversion":{"precision":"FP32"}}}' >/dev/null
wait_pods demo current 1
converting "$(pods_of demo current)"
show "spec changed to FP32: the new pod converts, the FP16 pod serves" demo
converter_failed "$(pods_of demo current)" \
  "$(report AccuracyGateFailed 40 'converted model differs from the original: max abs error 0.31 > atol 0.001: use a higher precision, better calibration data, looser --accuracy-rtol/--accuracy-atol, or --accuracy-min-top1 for a classifier')" 40
show "the new revision's converter fails (AccuracyGateFailed) while FP16 serves" demo
serving "$(pods_of demo current)" "$(report Succeeded 0 'converted demo to FP32' FP32)"
for i in $(seq 1 40); do [ -z "$(pods_of demo old)" ] && break; sleep 0.5; done  # the ReplicaSet controller scales the old one down
show "the FP32 pod serves, the Deployment controller removed the FP16 pod" demo

# --- 3. scale-out ------------------------------------------------------------------------------
kubectl scale trtm demo --replicas=2 >/dev/null
wait_pods demo current 2
show "kubectl scale --replicas=2: one pod serves, one starts" demo

# --- 4. stuck states -------------------------------------------------------------------------
model unschedulable FP16
model image-pull FP16
model missing-secret FP16
for m in unschedulable image-pull missing-secret; do wait_pods "$m" current 1; done
kubelet "$(pods_of unschedulable current)" '{"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."}]}}'
kubelet "$(pods_of image-pull current)" '{"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],"initContainerStatuses":[{"name":"convert","ready":false,"restartCount":0,"image":"c","imageID":"","state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"registry.example/trtserve-converter:0.1.0\": ErrImagePull: not found"}}}]}}'
kubelet "$(pods_of missing-secret current)" '{"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],"initContainerStatuses":[{"name":"convert","ready":false,"restartCount":0,"image":"c","imageID":"","state":{"waiting":{"reason":"CreateContainerConfigError","message":"secret \"s3-credentials\" not found"}}}]}}'
show "stuck states" unschedulable image-pull missing-secret

# --- 5. the benchmark waits for the generation it measures ----------------------------------
model bench-native NATIVE
model bench-fp16 FP16 1 '  benchmark: {baseline: bench-native, concurrency: [1], durationSeconds: 5, warmupSeconds: 1, rounds: 2}'
for m in bench-native bench-fp16; do
  wait_pods "$m" current 1
  serving "$(pods_of "$m" current)" "$(report Succeeded 0 "converted $m")"
done
jobs_for() { kubectl get jobs -l app.kubernetes.io/instance=bench-fp16 -o jsonpath='{range .items[*]}{.metadata.annotations.trtserve\.io/benchmark-key}{"\n"}{end}' 2>/dev/null; }
for i in $(seq 1 40); do [ -n "$(jobs_for)" ] && break; sleep 0.5; done
echo; echo "## benchmark Jobs of bench-fp16 at generation 1: $(jobs_for | wc -l)"
kubectl patch trtm bench-fp16 --type=merge -p '{"spec":{"conversion":{"precision":"FP32"}}}' >/dev/null
wait_pods bench-fp16 current 1
converting "$(pods_of bench-fp16 current)"
sleep 3
echo "## generation 2 converting, generation 1 serving: $(jobs_for | grep -c . || true) benchmark Job(s) (keys: $(jobs_for | tr '\n' ' '))"
serving "$(pods_of bench-fp16 current)" "$(report Succeeded 0 'converted bench-fp16 to FP32' FP32)"
for i in $(seq 1 40); do [ -z "$(pods_of bench-fp16 old)" ] && break; sleep 0.5; done
for i in $(seq 1 40); do [ -n "$(jobs_for)" ] && break; sleep 0.5; done
echo "## generation 2 serves alone: $(jobs_for | grep -c . || true) benchmark Job(s)"
kubectl get trtm bench-fp16 -o jsonpath='{.status.benchmark.target}{"\n"}'
echo; echo "# operator warnings/errors:"; grep -E "WARNING|ERROR" "$RK_DIR/operator.log" | cut -c1-200 | head -10 || true
exit 0
