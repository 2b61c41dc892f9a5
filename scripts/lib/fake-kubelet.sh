# Helpers of the real-control-plane demos (sourced; never in CI): a cluster with no kubelet
# and no scheduler, where these functions write the pods' statuses through the pods/status
# subresource the way a kubelet would, and read what the operator and the controllers made.
# Needs kubectl on PATH pointed at the cluster (../shared/tools/realk8s.sh's rk_start).
# shellcheck shell=bash

NOW() { date -u +%Y-%m-%dT%H:%M:%SZ; }
report() {  # report REASON EXIT MESSAGE [PRECISION] -> the converter's one-line JSON
  python3 -c 'import json,sys; r,c,m=sys.argv[1:4]; p=sys.argv[4] if len(sys.argv)>4 else None
print(json.dumps({"v":1,"result":"Succeeded" if c=="0" else "Failed","reason":r,"exitCode":int(c),"message":m,
 **({"precision":p} if p else {})}))' "$@"
}
template_hash() {
  kubectl get deploy "$1" -o jsonpath='{.spec.template.metadata.annotations.trtserve\.io/config-hash}' 2>/dev/null
}
pods_of() {  # pods_of MODEL current|old -> pod names of the current (or an older) template
  local want; want=$(template_hash "$1")
  kubectl get pods -l "app.kubernetes.io/instance=$1" -o json | python3 -c '
import json, sys
want, which = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["items"]:
    if p["metadata"].get("deletionTimestamp"):
        continue
    current = p["metadata"].get("annotations", {}).get("trtserve.io/config-hash") == want
    if current == (which == "current"):
        print(p["metadata"]["name"])' "$want" "$2"
}
wait_pods() {  # wait_pods MODEL current|old COUNT
  local i
  for i in $(seq 1 60); do [ "$(pods_of "$1" "$2" | wc -l)" -ge "$3" ] && return 0; sleep 0.5; done
  echo "no $3 $2 pod(s) of $1" >&2; return 1
}
kubelet() {  # kubelet POD STATUS_JSON: what the kubelet writes
  kubectl patch pod "$1" --subresource=status --type=merge -p "$2" >/dev/null
}
serving() {  # serving POD REPORT: converter done, TF Serving running and ready
  local now; now=$(NOW)
  kubelet "$1" "$(python3 -c 'import json,sys; now,msg=sys.argv[1:3]; print(json.dumps({"status":{
 "phase":"Running","conditions":[{"type":"PodScheduled","status":"True"},{"type":"Initialized","status":"True"},
 {"type":"ContainersReady","status":"True"},{"type":"Ready","status":"True","lastTransitionTime":now}],
 "initContainerStatuses":[{"name":"convert","ready":True,"restartCount":0,"image":"c","imageID":"",
   "state":{"terminated":{"exitCode":0,"reason":"Completed","message":msg,"startedAt":now,"finishedAt":now}}}],
 "containerStatuses":[{"name":"serving","ready":True,"restartCount":0,"image":"s","imageID":"",
   "state":{"running":{"startedAt":now}}}]}}))' "$now" "$2")"
}
converting() {
  kubelet "$1" "$(python3 -c 'import json,sys; now=sys.argv[1]; print(json.dumps({"status":{"phase":"Pending",
 "conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"False"}],
 "initContainerStatuses":[{"name":"convert","ready":False,"restartCount":0,"image":"c","imageID":"",
   "state":{"running":{"startedAt":now}}}]}}))' "$(NOW)")"
}
converter_failed() {  # converter_failed POD REPORT EXIT: the converter exited non-zero, retrying
  kubelet "$1" "$(python3 -c 'import json,sys; now,msg,code=sys.argv[1:4]; print(json.dumps({"status":{"phase":"Pending",
 "conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"False"}],
 "initContainerStatuses":[{"name":"convert","ready":False,"restartCount":2,"image":"c","imageID":"",
   "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container"}},
   "lastState":{"terminated":{"exitCode":int(code),"reason":"Error","message":msg,"startedAt":now,"finishedAt":now}}}]}}))' \
   "$(NOW)" "$2" "$3")"
}
show() {  # show TITLE MODEL...: the rows and the conditions, once the status has settled
  sleep 2
  echo; echo "## $1"; echo '```'
  kubectl get trtm "${@:2}" -o wide
  local m
  for m in "${@:2}"; do
    kubectl get trtm "$m" -o json | python3 -c '
import json, sys
o = json.load(sys.stdin)
s, meta = o.get("status", {}), o["metadata"]
served = s.get("served") or {}
print("{}: generation {}, served: generation {} {}".format(
    meta["name"], meta["generation"], served.get("generation"), served.get("precision")))
for c in s.get("conditions", []):
    print("  {:<11} {:<7} {}: {}".format(c["type"], c["status"], c["reason"], c["message"]))'
  done
  echo '```'
}
model() {  # model NAME PRECISION [REPLICAS] [EXTRA_SPEC_YAML]
  cat <<EOF | kubectl apply -f - >/dev/null
apiVersion: trtserve.io/v1alpha1
kind: TRTModel
metadata: {name: $1}
spec:
  source: {uri: "s3://models/resnet50"}
  conversion: {precision: $2}
  serving: {replicas: ${3:-1}}
${4:-}
EOF
}
