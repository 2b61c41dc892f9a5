#!/usr/bin/env bash
# Two operator replicas on a real kube-apiserver + kube-controller-manager
# (../shared/REAL-CONTROL-PLANE.md; never in CI), each with the chart's RBAC as its own
# user (trtserve-operator, trtserve-operator-b: told apart in the audit log), electing a
# leader on the Lease trtserve-system/trtserve-operator:
#
#   1. kill -9 the leader, then change one TRTModel: seconds until the follower has
#      converged it (target: lease duration + 5 s);
#   2. SIGTERM the leader, then change one: seconds until converged (target: 5 s);
#   3. FAILOVERS forced failovers (kill -9 and SIGTERM in turn, the stopped one started
#      again as a follower) while CHANGES specs change: every change converged; from the
#      audit log: no write of a replica more than the renew deadline after the start of
#      its last successful lease renewal, and no write of one replica between two of the
#      other's (the writers never interleave);
#   4. writes of each takeover to children and statuses of models that did not change.
#
#   benchmarks/failover.sh [MODELS] [FAILOVERS] [CHANGES] [REALK8S_SH]   (default 200 10 50)
set -euo pipefail
cd "$(dirname "$0")/.."
models=${1:-200}; failovers=${2:-10}; changes=${3:-50}
# shellcheck source=scripts/lib/control-plane.sh
. scripts/lib/control-plane.sh
cp_start "${4:-../shared/tools/realk8s.sh}" || exit 1
trap 'kill -9 ${pid_a:-} ${pid_b:-} 2>/dev/null; rk_stop' EXIT
echo "# RBAC: ${RK_RBAC}; $models TRTModels; lease 15 s, renew deadline 10 s, retry 2 s"

port_of() { [ "$1" = a ] && echo 19101 || echo 19102; }
gone() {  # gone PID: until the process has exited
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}
wait_holder() {  # wait_holder [NOT]: until some replica (other than NOT) holds the lease
  local h
  for _ in $(seq 1 300); do h=$(lease_holder); [ -n "$h" ] && [ "$h" != "${1:-}" ] && { echo "$h"; return; }; sleep 0.1; done
  echo "no leader" >&2; return 1
}
now() { date +%s.%N; }
grace() {  # grace MODEL: terminationGracePeriodSeconds of its Deployment
  kubectl get deploy "$1" -o jsonpath='{.spec.template.spec.terminationGracePeriodSeconds}' 2>/dev/null
}
change() {  # change MODEL DRAIN: drainSeconds -> the Deployment's grace period is DRAIN+30
  kubectl patch trtm "$1" --type=merge -p "{\"spec\":{\"serving\":{\"drainSeconds\":$2}}}" >/dev/null
}
wait_converged() {  # wait_converged MODEL DRAIN [TIMEOUT]
  for _ in $(seq 1 "${3:-600}"); do [ "$(grace "$1")" = "$(($2 + 30))" ] && return 0; sleep 0.1; done
  echo "$1 not converged to drainSeconds $2" >&2; return 1
}

apply_models "$models"
start_replica a 19101
sleep 1
start_replica b 19102
leader=$(wait_holder)
for _ in $(seq 1 600); do
  [ "$(kubectl get deploy --no-headers 2>/dev/null | wc -l)" -ge "$models" ] && break; sleep 0.5
done
sleep 5
echo "leader: op-$leader; $(kubectl get deploy --no-headers | wc -l) Deployments"
drain=10

takeover() {  # takeover KILL_SIGNAL: stop the leader, change m000, time the follower's converge
  local signal=$1 old new t0 t1 mark
  old=$(lease_holder); drain=$((drain + 1))
  mark=$(wc -l <"$RK_AUDIT")
  t0=$(now)
  eval "kill -$signal \$pid_$old"
  change m000 "$drain"
  wait_converged m000 "$drain"
  t1=$(now)
  new=$(lease_holder)
  echo "$mark $old $new" >>"$RK_DIR/takeovers"
  printf '%-7s leader op-%s -> op-%s: change converged %.1f s after the %s\n' "$signal" "$old" "$new" "$(echo "$t1 - $t0" | bc)" "$signal"
  eval "gone \$pid_$old"
  start_replica "$old" "$(port_of "$old")"
}

echo; echo "## 1-2. takeover after kill -9 and after SIGTERM (3 each)"
for signal in KILL TERM KILL TERM KILL TERM; do takeover "$signal"; sleep 3; done

echo; echo "## 3. $failovers forced failovers while $changes specs change"
expected=()
per=$(( (changes + failovers - 1) / failovers ))
n=0
for f in $(seq 1 "$failovers"); do
  for _ in $(seq 1 "$per"); do
    [ "$n" -ge "$changes" ] && break
    m=$(printf 'm%03d' $((n + 1))); change "$m" 20; expected+=("$m"); n=$((n + 1))
  done
  old=$(lease_holder)
  signal=KILL; [ $((f % 2)) -eq 0 ] && signal=TERM
  echo "$(wc -l <"$RK_AUDIT") $old x" >>"$RK_DIR/takeovers"
  eval "kill -$signal \$pid_$old"
  new=$(wait_holder "$old")
  eval "gone \$pid_$old"
  start_replica "$old" "$(port_of "$old")"
  echo "failover $f ($signal): op-$old -> op-$new"
  sleep 1
done
t0=$(now)
missing=0
for m in "${expected[@]}"; do wait_converged "$m" 20 600 || missing=$((missing + 1)); done
printf 'all %d changes converged (%d missing), the last %.1f s after the last failover\n' "${#expected[@]}" "$missing" "$(echo "$(now) - $t0" | bc)"
sleep 3

echo; echo "## audit log"
python3 - "$RK_AUDIT" "$RK_DIR/takeovers" "$models" <<'PY'
import datetime, json, sys
users = {"trtserve-operator": "a", "trtserve-operator-b": "b"}
def ts(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
lines = open(sys.argv[1]).read().splitlines()
renewals, writes = {"a": [], "b": []}, []
for number, line in enumerate(lines):
    e = json.loads(line)
    who = users.get(e.get("user", {}).get("username"))
    if who is None or e.get("stage") != "ResponseComplete":
        continue
    ref, verb, code = e.get("objectRef") or {}, e.get("verb"), e.get("responseStatus", {}).get("code")
    if ref.get("resource") == "leases":
        if verb in ("create", "update") and code in (200, 201):
            renewals[who].append(ts(e["requestReceivedTimestamp"]))
        continue
    if verb in ("create", "update", "patch", "delete"):
        writes.append((ts(e["requestReceivedTimestamp"]), who, number, ref.get("resource"), ref.get("subresource"), ref.get("name")))
writes.sort()
late = []
for t, who, *_ in writes:
    before = [r for r in renewals[who] if r <= t]
    late.append(t - before[-1] if before else float("inf"))
print(f"operator writes: {len(writes)} ({sum(1 for w in writes if w[1] == 'a')} by op-a, {sum(1 for w in writes if w[1] == 'b')} by op-b)")
print(f"longest time from a replica's last successful renewal request to one of its writes: {max(late):.2f} s (renew deadline 10 s, lease 15 s)")
runs, interleaved, gaps = [], 0, []
for t, who, *_ in writes:
    if runs and runs[-1][0] == who:
        runs[-1][2] = t
    else:
        runs.append([who, t, t])
seen = {}
for index, (who, first, last) in enumerate(runs):
    if who in seen and any(r[0] != who for r in runs[seen[who] + 1:index]):
        pass
    seen[who] = index
for previous, current in zip(runs, runs[1:]):
    gaps.append(current[1] - previous[2])
takeovers = sum(1 for _ in open(sys.argv[2]))
print(f"writer changes in the log: {len(runs) - 1}, for {takeovers} leader changes "
      f"({'writers never interleave' if len(runs) - 1 <= takeovers else 'INTERLEAVED'})")
print(f"gap from the last write of one writer to the first of the next: {min(gaps):.2f} s shortest, "
      f"{max(gaps):.2f} s longest")
quick = [g for g in gaps if g < 2.0]
print(f"hand-overs with under one retry period (2 s) between the writers: {len(quick)} "
      f"({', '.join(f'{g:.2f}' for g in quick) or '-'}; each after a release: the old writer had stopped and said so)")
# 4. takeovers: writes by the new leader, in its first 60 s, other than for m000..m050
changed = {f"m{i:03d}" for i in range(0, 51)}
for mark, old, new in (line.split() for line in open(sys.argv[2])):
    mark = int(mark)
    after = [w for w in writes if w[2] >= mark and w[1] != old]
    if not after:
        continue
    start = after[0][0]
    window = [w for w in after if w[0] < start + 60 and w[5] not in changed and w[5] != "trtserve-monitoring"]
    print(f"takeover from op-{old}: writes to unchanged models in the new leader's first 60 s: {len(window)}" + (f" {window[:3]}" if window else ""))
PY
echo; echo "# operator warnings/errors:"; grep -hE "WARNING|ERROR" "$RK_DIR"/operator-*.log | grep -v "Stopped leading" | cut -c1-200 | sort | uniq -c | sort -rn | head -10 || true
