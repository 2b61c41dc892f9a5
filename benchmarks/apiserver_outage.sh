#!/usr/bin/env bash
# The API server stopped for OUTAGE seconds under two operator replicas, on a real
# kube-apiserver + kube-controller-manager (../shared/REAL-CONTROL-PLANE.md; never in CI):
# the replicas keep retrying (informers, the elector, the converges) and are not
# restarted; once the API server is back, N spec changes and N deleted Services are
# made at once, and the script times until every one has converged (the retry cap is
# 5 minutes; a leader must be elected again first). It prints the leader before and
# after, each replica's restarts (none) and the operator's writes.
#
#   benchmarks/apiserver_outage.sh [MODELS] [OUTAGE_SECONDS] [N] [REALK8S_SH]   (default 100 600 20)
set -euo pipefail
cd "$(dirname "$0")/.."
models=${1:-100}; outage=${2:-600}; n=${3:-20}
# shellcheck source=scripts/lib/control-plane.sh
. scripts/lib/control-plane.sh
cp_start "${4:-../shared/tools/realk8s.sh}" || exit 1
trap 'kill -9 ${pid_a:-} ${pid_b:-} 2>/dev/null; rk_stop' EXIT
now() { date +%s.%N; }
apply_models "$models"
start_replica a 19111; sleep 1; start_replica b 19112
until [ "$(kubectl get svc --no-headers 2>/dev/null | grep -c '^m')" -ge "$models" ]; do sleep 0.5; done
sleep 5
echo "# $models TRTModels converged; leader op-$(lease_holder); operator pids a=$pid_a b=$pid_b"
apiserver_cmd=$(tr '\0' ' ' <"/proc/$(cat "$RK_DIR/apiserver.pid")/cmdline")
kill "$(cat "$RK_DIR/apiserver.pid")"
echo "API server stopped at $(date -u +%T) for $outage s"
sleep "$outage"
# shellcheck disable=SC2086
$apiserver_cmd >>"$RK_DIR/apiserver.log" 2>&1 &
echo $! >"$RK_DIR/apiserver.pid"
disown
until kubectl get ns default >/dev/null 2>&1; do sleep 0.2; done
t0=$(now)
echo "API server back at $(date -u +%T)"
mark=$(wc -l <"$RK_AUDIT")
for i in $(seq 0 $((n - 1))); do
  kubectl patch trtm "$(printf m%03d "$i")" --type=merge -p '{"spec":{"serving":{"drainSeconds":20}}}' >/dev/null
  kubectl delete svc "$(printf m%03d $((models - 1 - i)))" --wait=false >/dev/null
done
echo "$n spec changes and $n Service deletions made $(printf '%.1f' "$(echo "$(now) - $t0" | bc)") s after"
converged() {
  local ok=0 i
  for i in $(seq 0 $((n - 1))); do
    [ "$(kubectl get deploy "$(printf m%03d "$i")" -o jsonpath='{.spec.template.spec.terminationGracePeriodSeconds}')" = 50 ] && ok=$((ok + 1))
  done
  local services; services=$(kubectl get svc --no-headers 2>/dev/null | grep -c '^m')
  echo "$ok $services"
}
for _ in $(seq 1 600); do
  read -r ok services <<<"$(converged)"
  [ "$ok" -ge "$n" ] && [ "$services" -ge "$models" ] && break
  sleep 0.5
done
printf 'converged: %d/%d spec changes, %d/%d Services, %.1f s after the API server came back\n' \
  "$ok" "$n" "$services" "$models" "$(echo "$(now) - $t0" | bc)"
echo "leader op-$(lease_holder); operator pids a=$pid_a b=$pid_b (alive: $(kill -0 "$pid_a" 2>/dev/null && echo a) $(kill -0 "$pid_b" 2>/dev/null && echo b))"
sleep 5
python3 - "$RK_AUDIT" "$mark" <<'PY'
import collections, json, sys
counts = collections.Counter()
for number, line in enumerate(open(sys.argv[1])):
    if number < int(sys.argv[2]):
        continue
    e = json.loads(line)
    user = e.get("user", {}).get("username", "")
    if user.startswith("trtserve-operator") and e.get("stage") == "ResponseComplete" \
            and e.get("verb") in ("create", "update", "patch", "delete"):
        ref = e.get("objectRef") or {}
        counts[(user, e["verb"], ref.get("resource") + ("/" + ref["subresource"] if ref.get("subresource") else ""))] += 1
print("operator writes after the API server came back:")
for (user, verb, resource), count in sorted(counts.items()):
    print(f"  {user:20} {verb:7} {resource:22} {count}")
PY
echo; echo "# operator log lines during the outage (per replica, kinds):"
for r in a b; do
  echo "op-$r: $(grep -c 'WARNING' "$RK_DIR/operator-$r.log") warnings, $(grep -c 'ERROR' "$RK_DIR/operator-$r.log") errors; $(grep -E 'Leading as|Stopped leading' "$RK_DIR/operator-$r.log" | cut -c1-160 | tail -3 | tr '\n' '|')"
done
