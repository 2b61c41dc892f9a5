"""When to run the A/B benchmark of a TRTModel (``spec.benchmark``), and what it found.

Level-triggered, from the cache: every event of a TRTModel, of its baseline or of its
benchmark Job calls :meth:`Benchmarks.sync`, which compares what exists with what should:

- the model and its baseline both ``Ready`` at their current generation, and no result
  yet for that pair of generations (the *run key*: both generations and the baseline's
  uid): create the Job (``<name>-bench-<hash of the key>``; a second create of the same
  run is an ``AlreadyExists``) and write ``status.benchmark`` ``Running``;
- the Job of the current run finished: read trt-bench's JSON summary from its pod's
  termination message, write ``status.benchmark`` (``Succeeded`` or ``Failed``, QPS and
  latencies of both models, the speedup), post one Event, then delete the Job;
- a Job of another run (either model changed meanwhile): delete it, its numbers would mix
  two generations;
- the result for the current run already in the status: nothing, so a benchmark re-runs
  only on a new generation of either model (or a re-created baseline).

``status.benchmark`` is the only state; it is written with a merge patch of that key
alone, and the reconciler's status updates carry it unchanged. The last value written per
model is remembered, so events racing ahead of the watch do not write or create twice.
Writes share the reconciler's :class:`.limits.WriteLimiter` (the Job as a child write,
status and Events after the children of every model).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import (
    BenchmarkModelResult,
    BenchmarkResult,
    BenchmarkStatus,
)
from trtserve_operator.kube.errors import ConflictError, RejectedError
from trtserve_operator.kube.port import KubeApi
from trtserve_operator.kube.resources import JOBS
from trtserve_operator.services.bench_report import BenchSummary, parse_summary, summary_to_status
from trtserve_operator.services.builders.benchmark_job import (
    BENCH_CONTAINER,
    JOB_NAME_LABEL,
    KEY_ANNOTATION,
    BenchmarkRun,
    benchmark_job_name,
    build_benchmark_job,
    endpoint,
)
from trtserve_operator.services.builders.deployment import converter_image
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.limits import Priority, WriteLimiter
from trtserve_operator.services.metrics import Metrics
from trtserve_operator.services.status import NEW_REVISION_AVAILABLE, status_merge_patch
from trtserve_operator.services.targets import object_reference, target_from_body
from trtserve_operator.settings import Settings

logger = logging.getLogger(__name__)

ModelKey = tuple[str, str]
DONE = (BenchmarkResult.SUCCEEDED, BenchmarkResult.FAILED)


class BenchmarkView(Protocol):
    """Cached reads: TRTModels, and the benchmark Jobs of a TRTModel."""

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def jobs(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]: ...


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_at_generation(body: Mapping[str, Any]) -> bool:
    """The object's current ``metadata.generation`` serves, alone: ``Ready=True``,
    ``status.served.generation`` is it and ``Progressing`` says its rollout is complete.
    ``Ready`` alone is not enough: during a rollout it is True while the previous
    generation's pods serve, and a benchmark then would measure the old engines and file
    the result under the new generation (issue 19)."""
    generation = int(body.get("metadata", {}).get("generation") or 0)
    status = body.get("status") or {}
    if status.get("observedGeneration") != generation:
        return False
    if (status.get("served") or {}).get("generation") != generation:
        return False
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    progressing = conditions.get("Progressing") or {}
    return bool(
        ready.get("status") == "True"
        and ready.get("observedGeneration", generation) == generation
        and progressing.get("reason") == NEW_REVISION_AVAILABLE
        and progressing.get("observedGeneration", generation) == generation
    )


def job_finished(job: Mapping[str, Any]) -> bool:
    """The Job controller set its terminal condition (``Complete`` or ``Failed``)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


def _job_failure(job: Mapping[str, Any]) -> tuple[str, str] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return (
                str(condition.get("reason") or "JobFailed"),
                str(condition.get("message") or "the benchmark Job failed"),
            )
    return None


def _job_key(job: Mapping[str, Any]) -> str | None:
    annotations = job.get("metadata", {}).get("annotations") or {}
    key = annotations.get(KEY_ANNOTATION)
    return str(key) if key is not None else None


def job_pod_summary(
    pods: Sequence[Mapping[str, Any]], job: Mapping[str, Any]
) -> BenchSummary | None:
    """trt-bench's summary from the Job's pod (selected again here: the label selector of
    the list request is not trusted to have been applied)."""
    metadata = job.get("metadata", {})
    name, uid = metadata.get("name"), metadata.get("uid")
    for pod in reversed(pods):
        pod_meta = pod.get("metadata", {})
        owners = {ref.get("uid") for ref in pod_meta.get("ownerReferences") or []}
        labels = pod_meta.get("labels") or {}
        if labels.get(JOB_NAME_LABEL) != name and not (uid and uid in owners):
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") == BENCH_CONTAINER and terminated:
                exit_code = int(terminated.get("exitCode", 0))
                return parse_summary(terminated.get("message"), exit_code)
    return None


def _wire(status: BenchmarkStatus | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def _matches(recorded: Mapping[str, Any] | None, run: BenchmarkRun) -> bool:
    """Whether ``status.benchmark`` is about this run (both generations, the baseline)."""
    if not recorded:
        return False
    target = recorded.get("target") or {}
    baseline = recorded.get("baseline") or {}
    return (
        target.get("generation") == run.target.generation
        and baseline.get("name") == run.baseline.name
        and baseline.get("generation") == run.baseline.generation
        and (baseline.get("uid") or "") == run.baseline.uid
    )


def _done_at(recorded: Mapping[str, Any] | None, target: Target) -> bool:
    """A finished result for the model's current generation is in the status."""
    return (
        recorded is not None
        and recorded.get("result") in DONE
        and (recorded.get("target") or {}).get("generation") == target.generation
    )


class Benchmarks:
    """Runs and reads the benchmark Jobs; one instance per operator process."""

    def __init__(
        self,
        kube: KubeApi,
        settings: Settings,
        metrics: Metrics | None = None,
        writes: WriteLimiter | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.writes = writes or WriteLimiter(settings.max_concurrent_writes)
        self._written: dict[ModelKey, dict[str, Any] | None] = {}
        self._created: dict[ModelKey, str] = {}
        self._locks: dict[ModelKey, asyncio.Lock] = {}
        self._baseline_of: dict[ModelKey, str] = {}

    def reset(self) -> None:
        """Forget every run (this process stopped leading): the next step of each model
        reads its status and Jobs from the caches again."""
        self._written.clear()
        self._created.clear()
        self._locks.clear()
        self._baseline_of.clear()

    def forget(self, namespace: str, name: str) -> None:
        """A deleted TRTModel: its Jobs are garbage-collected with it."""
        key = (namespace, name)
        self._written.pop(key, None)
        self._created.pop(key, None)
        self._locks.pop(key, None)
        self._baseline_of.pop(key, None)

    def dependents(self, namespace: str, name: str) -> list[str]:
        """TRTModels of ``namespace`` whose benchmark baseline is ``name``."""
        return sorted(
            model
            for (ns, model), baseline in self._baseline_of.items()
            if ns == namespace and baseline == name
        )

    async def model_changed(self, namespace: str, name: str, view: BenchmarkView) -> None:
        """A TRTModel changed (spec or status): its own benchmark and those it is the
        baseline of."""
        await self.sync(namespace, name, view)
        for dependent in self.dependents(namespace, name):
            await self.sync(namespace, dependent, view)

    async def sync(self, namespace: str, name: str, view: BenchmarkView) -> None:
        """Bring the benchmark of one TRTModel one step closer to done (see module doc)."""
        key = (namespace, name)
        async with self._locks.setdefault(key, asyncio.Lock()):
            await self._sync(key, view)

    def _recorded(self, key: ModelKey, body: Mapping[str, Any]) -> dict[str, Any] | None:
        if key in self._written:
            return self._written[key]
        stored = (body.get("status") or {}).get("benchmark")
        return dict(stored) if isinstance(stored, Mapping) else None

    async def _write(
        self, key: ModelKey, recorded: Mapping[str, Any] | None, new: BenchmarkStatus | None
    ) -> bool:
        """Merge-patch ``status.benchmark`` from ``recorded`` to ``new``; False if equal."""
        self.metrics.set_benchmark(key, new)
        wire = _wire(new)
        if wire == (dict(recorded) if recorded else None):
            return False
        if wire is None or not recorded:
            patch: Any = wire
        else:
            patch = status_merge_patch(recorded, wire)
        async with self.writes.slot(Priority.STATUS):
            await self.kube.patch_trtmodel_status(key[0], key[1], {"benchmark": patch})
        self.metrics.inc("trtserve_status_writes_total")
        self._written[key] = wire
        return True

    async def _delete_jobs(self, namespace: str, jobs: Sequence[Mapping[str, Any]]) -> None:
        for job in jobs:
            name = str(job.get("metadata", {}).get("name"))
            logger.info("Deleting benchmark Job %s/%s", namespace, name)
            async with self.writes.slot(Priority.CHILD):
                await self.kube.delete(JOBS, namespace, name)

    async def _sync(self, key: ModelKey, view: BenchmarkView) -> None:
        namespace, name = key
        body = view.trtmodel(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return
        if not self._concerned(key, body, view):
            return  # most models: no benchmark, nothing left of one (no parsing, no request)
        try:
            target = target_from_body(body)
        except ValidationError:
            return  # the reconciler reports the invalid spec
        jobs = [
            job
            for job in view.jobs(namespace, name)
            if not job.get("metadata", {}).get("deletionTimestamp")
        ]
        recorded = self._recorded(key, body)
        settings = target.spec.benchmark
        if settings is None:
            self._baseline_of.pop(key, None)
            await self._delete_jobs(namespace, jobs)
            await self._write(key, recorded, None)
            return
        self._baseline_of[key] = settings.baseline
        baseline = self._baseline(namespace, settings.baseline, target, view)
        # A Job of another generation of either model measures something that is going
        # away (or is gone): delete it. One of the current generations runs to its end,
        # even if a model is briefly not Ready meanwhile.
        current = BenchmarkRun(target, baseline) if isinstance(baseline, Target) else None
        live = [j for j in jobs if current is not None and _job_key(j) == current.key]
        await self._delete_jobs(namespace, [j for j in jobs if j not in live])
        if current is not None and live:
            await self._follow(key, recorded, current, live[0])
            return
        if not ready_at_generation(body):
            return
        if not isinstance(baseline, Target):
            if not _done_at(recorded, target):  # keep the finished result of this generation
                await self._write(key, recorded, baseline)
            return
        assert current is not None
        if not ready_at_generation(view.trtmodel(namespace, baseline.name) or {}):
            if not _done_at(recorded, target):
                await self._write(key, recorded, self._not_ready(current))
            return
        if _matches(recorded, current) and recorded and recorded.get("result") in DONE:
            return
        if self._created.get(key) == current.key:
            return  # created by this process; the watch has not shown it yet
        job_name = benchmark_job_name(current)
        if _matches(recorded, current) and recorded and recorded.get("result") == "Running":
            await self._finish(key, recorded, current, job_name, self._lost(recorded))
            return
        await self._start(key, recorded, current, job_name)

    def _concerned(self, key: ModelKey, body: Mapping[str, Any], view: BenchmarkView) -> bool:
        """Whether the model has a benchmark, or something of one to clean up."""
        return bool(
            (body.get("spec") or {}).get("benchmark")
            or key in self._baseline_of
            or self._recorded(key, body)
            or view.jobs(*key)
        )

    async def _follow(
        self,
        key: ModelKey,
        recorded: Mapping[str, Any] | None,
        run: BenchmarkRun,
        job: Mapping[str, Any],
    ) -> None:
        """The Job of the current run exists: say it runs, or read its result and delete it."""
        job_name = str(job.get("metadata", {}).get("name"))
        if not job_finished(job):
            if not _matches(recorded, run):  # e.g. a lost status: say what is going on
                await self._write(key, recorded, self._running(run, job_name, _now()))
            return
        if _matches(recorded, run) and recorded and recorded.get("result") in DONE:
            await self._delete_jobs(key[0], [job])  # read, but the delete failed last time
            return
        pods = await self.kube.list_pods(key[0], {JOB_NAME_LABEL: job_name})
        summary = job_pod_summary(pods, job)
        if summary is None:
            reason, message = _job_failure(job) or ("ResultMissing", "")
            summary = BenchSummary(
                v=1,
                result="Failed",
                reason=reason,
                exit_code=-1,
                message=message
                or "the benchmark pod left no result (deleted, evicted or never started)",
            )
        start = recorded.get("startTime") if recorded and _matches(recorded, run) else None
        status = summary_to_status(summary, run, job=job_name, start_time=start, now=_now())
        await self._finish(key, recorded, run, job_name, status)
        await self._delete_jobs(key[0], [job])

    @staticmethod
    def _not_ready(run: BenchmarkRun) -> BenchmarkStatus:
        return BenchmarkStatus(
            result=BenchmarkResult.PENDING,
            reason="BaselineNotReady",
            message=(
                f"waiting for TRTModel {run.baseline.name!r} to be Ready at generation "
                f"{run.baseline.generation}"
            ),
            target=BenchmarkModelResult(name=run.target.name, generation=run.target.generation),
            baseline=BenchmarkModelResult(
                name=run.baseline.name,
                generation=run.baseline.generation,
                uid=run.baseline.uid or None,
            ),
        )

    def _baseline(
        self, namespace: str, name: str, target: Target, view: BenchmarkView
    ) -> Target | BenchmarkStatus:
        """The baseline, or the Pending status saying why there is none to measure."""

        def pending(reason: str, message: str) -> BenchmarkStatus:
            return BenchmarkStatus(
                result=BenchmarkResult.PENDING,
                reason=reason,
                message=message,
                target=BenchmarkModelResult(name=target.name, generation=target.generation),
                baseline=BenchmarkModelResult(name=name),
            )

        if name == target.name:
            return pending(
                "InvalidBaseline",
                "spec.benchmark.baseline names this TRTModel: name another one",
            )
        body = view.trtmodel(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return pending(
                "BaselineNotFound",
                f"TRTModel {name!r} does not exist in namespace {namespace!r}: create it "
                "(e.g. the same model with precision NATIVE) or fix spec.benchmark.baseline",
            )
        try:
            return target_from_body(body)
        except ValidationError:
            return pending("BaselineInvalid", f"TRTModel {name!r} has an invalid spec: fix it")

    def _running(self, run: BenchmarkRun, job_name: str, start: str) -> BenchmarkStatus:
        protocol = run.settings.protocol
        return BenchmarkStatus(
            result=BenchmarkResult.RUNNING,
            reason="JobRunning",
            message=(
                f"trt-bench is measuring {run.target.name} against {run.baseline.name} at "
                f"concurrency {','.join(str(c) for c in run.settings.concurrency)}"
            ),
            job=job_name,
            start_time=start,
            target=BenchmarkModelResult(
                name=run.target.name,
                generation=run.target.generation,
                uid=run.target.uid or None,
                endpoint=endpoint(run.target, protocol),
            ),
            baseline=BenchmarkModelResult(
                name=run.baseline.name,
                generation=run.baseline.generation,
                uid=run.baseline.uid or None,
                endpoint=endpoint(run.baseline, protocol),
            ),
        )

    @staticmethod
    def _lost(recorded: Mapping[str, Any]) -> BenchmarkStatus:
        status = BenchmarkStatus.model_validate(recorded)
        return status.model_copy(
            update={
                "result": BenchmarkResult.FAILED,
                "reason": "JobDeleted",
                "message": (
                    "the benchmark Job was deleted before its result was read; it runs again "
                    "at the next generation of either model"
                ),
                "completion_time": _now(),
            }
        )

    async def _start(
        self, key: ModelKey, recorded: Mapping[str, Any] | None, run: BenchmarkRun, job_name: str
    ) -> None:
        job = build_benchmark_job(
            run,
            image=converter_image(run.target, self.settings.converter_image),
            log_format=self.settings.log_format,
        )
        logger.info("Creating benchmark Job %s/%s", key[0], job_name)
        try:
            async with self.writes.slot(Priority.CHILD):
                await self.kube.create(job)
        except ConflictError:
            logger.info("Benchmark Job %s/%s exists already", key[0], job_name)
        except RejectedError as error:
            # Refused for good (admission, quota, RBAC): say so; retried at a new generation.
            refused = self._running(run, job_name, _now()).model_copy(
                update={
                    "result": BenchmarkResult.FAILED,
                    "reason": "JobRejected",
                    "message": f"the benchmark Job was refused: {error}"[:1024],
                    "completion_time": _now(),
                }
            )
            await self._finish(key, recorded, run, job_name, refused)
            return
        self._created[key] = run.key
        await self._write(key, recorded, self._running(run, job_name, _now()))

    async def _finish(
        self,
        key: ModelKey,
        recorded: Mapping[str, Any] | None,
        run: BenchmarkRun,
        job_name: str,
        status: BenchmarkStatus,
    ) -> None:
        if not await self._write(key, recorded, status):
            return
        succeeded = status.result is BenchmarkResult.SUCCEEDED
        self.metrics.inc("trtserve_benchmarks_total", result=str(status.result))
        speedup = f"speedup {status.speedup:.2f}x: " if status.speedup is not None else ""
        async with self.writes.slot(Priority.STATUS):
            await self.kube.create_event(
                object_reference(run.target),
                event_type="Normal" if succeeded else "Warning",
                reason="BenchmarkSucceeded" if succeeded else "BenchmarkFailed",
                message=f"{speedup}{status.message or ''} (Job {job_name})",
            )
        self.metrics.inc("trtserve_events_total", type="Normal" if succeeded else "Warning")
