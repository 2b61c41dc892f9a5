"""When the operator runs the A/B benchmark Job, reads it and cleans up (no kopf, no HTTP).

The fake API keeps Jobs, pods and status patches; the view is what the watch caches show,
updated by the test as the API server, the Job controller and the kubelet would.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from bench_support import NS, SUMMARY, bench_pod, finished, model

import trtserve_operator.services.benchmark as benchmark_module
from trtserve_operator.api.v1alpha1 import TRTModelStatus
from trtserve_operator.kube.errors import ConflictError, RejectedError
from trtserve_operator.kube.resources import ApiResource
from trtserve_operator.services.benchmark import Benchmarks
from trtserve_operator.services.status import compute_status, status_merge_patch, status_to_wire
from trtserve_operator.services.targets import target_from_body
from trtserve_operator.settings import Settings


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class Cluster:
    """A fake API (KubeApi) and the cache view (BenchmarkView) over the same objects."""

    def __init__(self, *models: dict[str, Any]) -> None:
        self.models = {m["metadata"]["name"]: copy.deepcopy(m) for m in models}
        self.api_jobs: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.events: list[dict[str, Any]] = []
        self.refuse: str | None = None
        """A reason the API refuses Job creates with (a quota, an admission webhook)."""
        self.lagging = False
        """True: the Job cache has not seen creations yet."""
        self.cached_jobs: dict[str, dict[str, Any]] = {}

    # --- KubeApi ---------------------------------------------------------------------
    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", str(obj["kind"])))
        name = obj["metadata"]["name"]
        if self.refuse:
            raise RejectedError(self.refuse, code=403)
        if name in self.api_jobs:
            raise ConflictError("AlreadyExists", code=409)
        job = copy.deepcopy(dict(obj))
        job["metadata"]["uid"] = f"uid-{name}"
        self.api_jobs[name] = job
        if not self.lagging:
            self.cached_jobs[name] = job
        return copy.deepcopy(job)

    async def delete(self, resource: ApiResource, namespace: str, name: str) -> None:
        self.calls.append(("delete", resource.kind))
        self.api_jobs.pop(name, None)
        self.cached_jobs.pop(name, None)
        self.pods = [p for p in self.pods if p["metadata"]["labels"].get("job-name") != name]

    async def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        self.calls.append(("list", "Pod"))
        return copy.deepcopy(self.pods)  # like kmock: the selector is not applied

    async def patch_trtmodel_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> None:
        self.calls.append(("status", name))
        merge(self.models[name].setdefault("status", {}), status_patch)

    async def create_event(
        self, involved: Mapping[str, Any], *, event_type: str, reason: str, message: str
    ) -> None:
        self.calls.append(("event", reason))
        self.events.append({"type": event_type, "reason": reason, "message": message})

    # --- BenchmarkView ---------------------------------------------------------------
    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.models.get(name)

    def jobs_of(self, instance: str) -> list[dict[str, Any]]:
        return [
            j
            for j in self.cached_jobs.values()
            if j["metadata"]["labels"]["app.kubernetes.io/instance"] == instance
        ]

    def jobs(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return self.jobs_of(instance)

    # --- the test driving the world ----------------------------------------------------
    def only_job(self) -> dict[str, Any]:
        (job,) = self.api_jobs.values()
        return job

    def finish(self, summary: dict[str, Any] | str | None = SUMMARY, exit_code: int = 0) -> None:
        name, job = next(iter(self.api_jobs.items()))
        self.api_jobs[name] = self.cached_jobs[name] = finished(job, failed=exit_code != 0)
        self.pods.append(bench_pod(job, summary, exit_code))

    def bump(self, name: str, *, ready: bool = True) -> None:
        """A new generation of ``name``, as the reconciler reports it."""
        body = self.models[name]
        generation = body["metadata"]["generation"] + 1
        keep = body.get("status", {}).get("benchmark")
        fresh = model(
            name,
            generation=generation,
            ready=ready,
            baseline=(body["spec"].get("benchmark") or {}).get("baseline"),
            precision=body["spec"]["conversion"]["precision"],
        )
        if keep is not None:
            fresh["status"]["benchmark"] = keep
        self.models[name] = fresh

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in ("create", "delete", "status", "event")]


TARGET = "resnet50-fp16"
BASELINE = "resnet50-native"


def world(*, target_ready: bool = True, baseline_ready: bool = True) -> Cluster:
    return Cluster(
        model(TARGET, ready=target_ready, baseline=BASELINE),
        model(BASELINE, ready=baseline_ready, precision="NATIVE"),
    )


def service(cluster: Cluster) -> Benchmarks:
    return Benchmarks(cluster, Settings(converter_image="conv:1"))  # type: ignore[arg-type]


def sync(benchmarks: Benchmarks, cluster: Cluster, name: str = TARGET) -> None:
    asyncio.run(benchmarks.model_changed(NS, name, cluster))


def bench_status(cluster: Cluster, name: str = TARGET) -> dict[str, Any]:
    return dict(cluster.models[name].get("status", {}).get("benchmark") or {})


def test_nothing_happens_before_the_model_is_ready() -> None:
    cluster = world(target_ready=False)
    sync(service(cluster), cluster)
    assert cluster.calls == []


def test_a_missing_baseline_is_reported_once() -> None:
    cluster = Cluster(model(TARGET, baseline="nope"))
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    sync(benchmarks, cluster)
    assert cluster.writes() == [("status", TARGET)]
    assert bench_status(cluster)["result"] == "Pending"
    assert bench_status(cluster)["reason"] == "BaselineNotFound"
    assert not cluster.api_jobs


def test_waits_for_the_baseline_to_be_ready_then_runs() -> None:
    cluster = world(baseline_ready=False)
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    assert bench_status(cluster)["reason"] == "BaselineNotReady"
    cluster.models[BASELINE] = model(BASELINE, precision="NATIVE")  # Ready now
    sync(benchmarks, cluster, BASELINE)  # the baseline's event syncs its dependents
    job = cluster.only_job()
    assert job["metadata"]["annotations"]["trtserve.io/benchmark-key"] == (
        f"1/{BASELINE}/uid-{BASELINE}/1"
    )
    assert bench_status(cluster)["result"] == "Running"


def test_creates_the_job_reads_the_result_and_cleans_up() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    assert cluster.writes() == [("create", "Job"), ("status", TARGET)]
    job = cluster.only_job()
    running = bench_status(cluster)
    assert running["result"] == "Running"
    assert running["job"] == job["metadata"]["name"]
    assert running["target"]["generation"] == 1
    assert running["baseline"] == {
        "name": BASELINE,
        "generation": 1,
        "uid": f"uid-{BASELINE}",
        "endpoint": f"{BASELINE}.default.svc:8500",
    }
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "conv:1"

    cluster.calls.clear()
    sync(benchmarks, cluster)  # still running: nothing to do
    assert cluster.writes() == []

    cluster.finish()
    sync(benchmarks, cluster)
    done = bench_status(cluster)
    assert done["result"] == "Succeeded"
    assert done["speedup"] == 1.62
    assert done["target"]["qps"] == 812.0
    assert done["baseline"]["qps"] == 501.2
    assert done["startTime"] == running["startTime"]
    assert "completionTime" in done
    assert cluster.api_jobs == {}  # deleted once read
    assert [e["reason"] for e in cluster.events] == ["BenchmarkSucceeded"]
    assert "speedup 1.62x" in cluster.events[0]["message"]
    assert benchmarks.metrics.value("trtserve_benchmarks_total", result="Succeeded") == 1


def test_reruns_only_on_a_new_generation_of_either_model() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    first = cluster.only_job()["metadata"]["name"]
    cluster.finish()
    sync(benchmarks, cluster)
    cluster.calls.clear()
    for _ in range(3):  # status writes, restarts, the baseline's events: no new run
        sync(benchmarks, cluster)
        sync(benchmarks, cluster, BASELINE)
        sync(service(cluster), cluster)  # a restarted operator reads the stored status
    assert cluster.writes() == []

    cluster.bump(TARGET)
    sync(benchmarks, cluster)
    second = cluster.only_job()["metadata"]["name"]
    assert second != first
    assert bench_status(cluster)["target"]["generation"] == 2
    cluster.finish()
    sync(benchmarks, cluster)
    assert bench_status(cluster)["result"] == "Succeeded"

    cluster.bump(BASELINE)
    sync(benchmarks, cluster, BASELINE)
    third = cluster.only_job()["metadata"]["name"]
    assert third not in (first, second)
    assert bench_status(cluster)["baseline"]["generation"] == 2


def test_the_cache_lagging_behind_a_create_does_not_create_twice() -> None:
    cluster = world()
    cluster.lagging = True
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    sync(benchmarks, cluster)
    assert [c for c in cluster.calls if c[0] == "create"] == [("create", "Job")]
    assert bench_status(cluster)["result"] == "Running"  # not mistaken for a lost Job
    # Another process (a restart) racing the same run gets AlreadyExists, and no error.
    other = service(cluster)
    cluster.models[TARGET]["status"].pop("benchmark")
    sync(other, cluster)
    assert len(cluster.api_jobs) == 1


def test_a_job_of_an_older_generation_is_deleted_while_the_model_changes() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    cluster.bump(TARGET, ready=False)  # rolling out generation 2
    sync(benchmarks, cluster)
    assert cluster.api_jobs == {}
    assert ("delete", "Job") in cluster.calls


def test_a_run_survives_the_baseline_being_briefly_not_ready() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    cluster.models[BASELINE] = model(BASELINE, ready=False, precision="NATIVE")  # same generation
    sync(benchmarks, cluster, BASELINE)
    assert len(cluster.api_jobs) == 1
    assert bench_status(cluster)["result"] == "Running"
    cluster.finish()
    sync(benchmarks, cluster)
    assert bench_status(cluster)["result"] == "Succeeded"


def test_a_failed_job_without_a_result_is_reported() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    name = cluster.only_job()["metadata"]["name"]
    cluster.api_jobs[name] = cluster.cached_jobs[name] = finished(
        cluster.api_jobs[name], failed=True, reason="DeadlineExceeded"
    )
    sync(benchmarks, cluster)
    status = bench_status(cluster)
    assert (status["result"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert cluster.api_jobs == {}
    assert cluster.events[-1]["type"] == "Warning"


def test_trt_bench_failure_summary_is_the_status() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    failure = {
        **SUMMARY,
        "result": "Failed",
        "reason": "ModelNotAvailable",
        "exitCode": 11,
        "message": "resnet50-native: model not AVAILABLE after 120 s",
        "comparison": None,
    }
    cluster.finish(failure, exit_code=11)
    sync(benchmarks, cluster)
    status = bench_status(cluster)
    assert (status["result"], status["reason"]) == ("Failed", "ModelNotAvailable")
    assert "not AVAILABLE" in status["message"]
    # A failed run is a result too: it is not retried at the same generations.
    cluster.calls.clear()
    sync(benchmarks, cluster)
    assert cluster.writes() == []


def test_a_job_deleted_before_its_result_was_read_is_a_failure_not_a_rerun() -> None:
    cluster = world()
    sync(service(cluster), cluster)
    cluster.api_jobs.clear()
    cluster.cached_jobs.clear()
    restarted = service(cluster)
    sync(restarted, cluster)
    status = bench_status(cluster)
    assert (status["result"], status["reason"]) == ("Failed", "JobDeleted")
    assert cluster.api_jobs == {}


def test_removing_spec_benchmark_removes_its_job_and_status() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    cluster.models[TARGET]["spec"].pop("benchmark")
    sync(benchmarks, cluster)
    assert cluster.api_jobs == {}
    assert "benchmark" not in cluster.models[TARGET]["status"]


def test_the_merge_patch_replaces_the_previous_run_completely() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    cluster.finish()
    sync(benchmarks, cluster)
    cluster.bump(TARGET)
    sync(benchmarks, cluster)
    running = bench_status(cluster)
    assert running["result"] == "Running"
    assert "speedup" not in running  # the old numbers are gone
    assert "levels" not in running


def test_reconciler_status_updates_carry_status_benchmark() -> None:
    """compute_status carries status.benchmark, so the reconciler's patch never drops it."""
    stored = {**model(TARGET, baseline=BASELINE)["status"], "benchmark": {"result": "Running"}}
    result = compute_status(
        target_from_body(model(TARGET, baseline=BASELINE)),
        deployment=None,
        pods=[],
        previous=TRTModelStatus.model_validate(stored),
        now="t",
    )
    new = status_to_wire(result.status)
    assert new["benchmark"] == {"result": "Running"}
    assert "benchmark" not in status_merge_patch(stored, new)


def test_a_model_without_benchmark_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TRTModel event reaches the service: most must cost neither parsing nor I/O."""

    def no_parsing(body: Any) -> Any:
        raise AssertionError("a model without benchmark was parsed")

    monkeypatch.setattr(benchmark_module, "target_from_body", no_parsing)
    cluster = Cluster(model("plain"))
    sync(service(cluster), cluster, "plain")
    assert cluster.calls == []


def test_a_refused_job_is_a_failure_until_a_new_generation() -> None:
    cluster = world()
    cluster.refuse = "jobs.batch is forbidden: exceeded quota: compute"
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    status = bench_status(cluster)
    assert (status["result"], status["reason"]) == ("Failed", "JobRejected")
    assert "exceeded quota" in status["message"]
    cluster.refuse = None
    cluster.calls.clear()
    sync(benchmarks, cluster)
    assert cluster.writes() == []
    cluster.bump(TARGET)
    sync(benchmarks, cluster)
    assert len(cluster.api_jobs) == 1


def test_deleting_the_baseline_stops_a_running_benchmark() -> None:
    cluster = world()
    benchmarks = service(cluster)
    sync(benchmarks, cluster)
    assert len(cluster.api_jobs) == 1
    del cluster.models[BASELINE]
    benchmarks.forget(NS, BASELINE)  # what the DELETED event does before its step
    sync(benchmarks, cluster, BASELINE)
    assert cluster.api_jobs == {}
    assert bench_status(cluster)["reason"] == "BaselineNotFound"
