"""The A/B benchmark in the operator process (kopf via KopfRunner) against kmock.

The emulator has no Job controller, kubelet or garbage collector: the test plays them,
setting the Job's terminal condition and creating its pod with trt-bench's summary as the
termination message, as they would. Its lack of label selectors is why the operator
filters the pods it lists itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from bench_support import SUMMARY, bench_pod, finished
from kmock_cluster import (
    DEPLOYMENTS,
    EVENTS,
    JOBS,
    MODELS,
    PODS,
    EmulatedCluster,
    method_of,
    operator_running,
    permission_of,
    report_serving,
    settle,
    trtmodel,
    wait_for,
)

from trtserve_operator.kube.permissions import REQUIRED_PERMISSIONS, Permission

NS = "default"
TARGET = "bench-fp16"
BASELINE = "bench-native"

pytestmark = pytest.mark.timeout(120)


@contextmanager
def operator() -> Iterator[None]:
    with operator_running() as runner:
        yield
    assert runner.exception is None
    assert runner.exit_code == 0


def model_path(name: str) -> str:
    return f"{MODELS.format(ns=NS)}/{name}"


def benchmark_of(cluster: EmulatedCluster) -> dict[str, Any]:
    body = cluster.get(model_path(TARGET)) or {}
    return dict((body.get("status") or {}).get("benchmark") or {})


def jobs(cluster: EmulatedCluster) -> list[dict[str, Any]]:
    return list((cluster.get(JOBS.format(ns=NS)) or {}).get("items") or [])


def make_ready(cluster: EmulatedCluster, name: str) -> None:
    """The kubelet and the Deployment controller report the serving pod ready."""
    report_serving(cluster, NS, name)


def ready_at(cluster: EmulatedCluster, name: str, generation: int) -> bool:
    status = (cluster.get(model_path(name)) or {}).get("status") or {}
    return status.get("observedGeneration") == generation and status.get("phase") == "Ready"


def job_creates(cluster: EmulatedCluster) -> list[Any]:
    return [r for r in cluster.writes() if method_of(r) == "POST" and "/jobs" in str(r.url)]


def finish_job(cluster: EmulatedCluster, job: dict[str, Any]) -> None:
    """What the Job controller and the kubelet do when trt-bench exits 0."""
    cluster.post(PODS.format(ns=NS), bench_pod(job, SUMMARY))
    done = finished(job)
    cluster.patch(f"{JOBS.format(ns=NS)}/{job['metadata']['name']}", {"status": done["status"]})


def test_job_runs_is_read_cleaned_up_and_reruns_only_on_a_new_generation(
    cluster: EmulatedCluster,
) -> None:
    with operator():
        first = run_and_read(cluster)
    with operator():  # a restarted operator: the stored result is the state
        rerun_only_on_a_new_generation(cluster, first)


def run_and_read(cluster: EmulatedCluster) -> str:
    baseline = trtmodel(BASELINE, NS, conversion={"precision": "NATIVE"})
    target = trtmodel(
        TARGET,
        NS,
        benchmark={"baseline": BASELINE, "concurrency": [1, 16], "durationSeconds": 5},
    )
    cluster.post(MODELS.format(ns=NS), baseline)
    cluster.post(MODELS.format(ns=NS), target)
    for name in (BASELINE, TARGET):
        path = f"{DEPLOYMENTS.format(ns=NS)}/{name}"
        wait_for(lambda path=path: cluster.get(path), what=path)
    make_ready(cluster, TARGET)
    wait_for(lambda: ready_at(cluster, TARGET, 1), what="target Ready")
    # Only this model is Ready: it waits for its baseline, and says so.
    wait_for(lambda: benchmark_of(cluster).get("reason") == "BaselineNotReady", what="pending")
    assert jobs(cluster) == []

    make_ready(cluster, BASELINE)  # the baseline's event starts its dependent's benchmark
    (job,) = wait_for(lambda: jobs(cluster), what="benchmark Job")
    metadata = job["metadata"]
    assert metadata["ownerReferences"][0]["name"] == TARGET
    assert metadata["annotations"]["trtserve.io/benchmark-key"].startswith("1/bench-native/")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.com/trtserve/converter:test"
    assert f"--endpoint={TARGET}.{NS}.svc:8500" in container["args"]
    assert f"--baseline={BASELINE}.{NS}.svc:8500" in container["args"]
    assert "--concurrency=1,16" in container["args"]
    running = wait_for(lambda: (b := benchmark_of(cluster)).get("result") == "Running" and b)
    assert running["job"] == metadata["name"]

    finish_job(cluster, job)
    done = wait_for(lambda: (b := benchmark_of(cluster)).get("result") == "Succeeded" and b)
    assert done["speedup"] == 1.62
    assert (done["target"]["qps"], done["target"]["p50Ms"], done["target"]["p99Ms"]) == (
        812.0, 19.6, 25.0,
    )  # fmt: skip
    assert (done["baseline"]["qps"], done["baseline"]["p99Ms"]) == (501.2, 41.8)
    assert (done["target"]["generation"], done["baseline"]["generation"]) == (1, 1)
    assert done["startTime"] <= done["completionTime"]
    wait_for(lambda: jobs(cluster) == [], what="the finished Job deleted")
    wait_for(
        lambda: any(
            e["reason"] == "BenchmarkSucceeded" and e["involvedObject"]["name"] == TARGET
            for e in (cluster.get(EVENTS.format(ns=NS)) or {}).get("items", [])
        ),
        what="a BenchmarkSucceeded event",
    )

    return str(metadata["name"])


def rerun_only_on_a_new_generation(cluster: EmulatedCluster, first: str) -> None:
    # The restart and events of both models without a new generation: no second run.
    settle(cluster, quiet=1.0)
    assert len(job_creates(cluster)) == 1
    cluster.patch(model_path(TARGET), {"metadata": {"labels": {"team": "a"}}})
    cluster.patch(model_path(BASELINE), {"metadata": {"labels": {"team": "a"}}})
    settle(cluster, quiet=1.0)
    assert len(job_creates(cluster)) == 1
    assert jobs(cluster) == []
    assert benchmark_of(cluster)["result"] == "Succeeded"

    # A new generation of the model (here: other benchmark settings) runs it again.
    cluster.patch(
        model_path(TARGET),
        {"metadata": {"generation": 2}, "spec": {"benchmark": {"durationSeconds": 6}}},
    )
    (second,) = wait_for(lambda: jobs(cluster), what="the second benchmark Job")
    assert second["metadata"]["name"] != first
    assert second["metadata"]["annotations"]["trtserve.io/benchmark-key"].startswith("2/")
    assert "--duration-seconds=6" in second["spec"]["template"]["spec"]["containers"][0]["args"]
    wait_for(lambda: benchmark_of(cluster).get("target", {}).get("generation") == 2)
    assert "speedup" not in benchmark_of(cluster)  # the numbers of generation 1 are gone
    finish_job(cluster, second)
    wait_for(lambda: benchmark_of(cluster).get("result") == "Succeeded", what="second result")
    wait_for(lambda: jobs(cluster) == [], what="the second Job deleted")
    assert len(job_creates(cluster)) == 2


def test_every_request_is_covered_by_the_permissions(cluster: EmulatedCluster) -> None:
    needed = {permission_of(r) for r in cluster.operator_requests()} - {None}
    assert ("batch", "jobs", "create") in needed
    assert ("batch", "jobs", "delete") in needed
    assert ("", "pods", "list") in needed
    missing = {Permission(*p) for p in needed if p is not None} - REQUIRED_PERMISSIONS
    assert missing == set()
