"""The A/B benchmark (``spec.benchmark``): follow TRTModels and their benchmark Jobs.

Every TRTModel event (spec or status) and every event of a benchmark Job lets the
benchmark service take its next step (:mod:`trtserve_operator.services.benchmark`); the
Jobs are cached in an index of projections (name, uid, run key, conditions), like the
other indexes (:mod:`.indexes`). Level-triggered like the reconciler's handlers: kopf
stores nothing on the objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from trtserve_operator.handlers.indexes import MANAGED
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.handlers.view import _one
from trtserve_operator.kube.errors import KubeError, TransientError
from trtserve_operator.services.benchmark import Benchmarks
from trtserve_operator.services.builders.benchmark_job import BENCH_COMPONENT, KEY_ANNOTATION
from trtserve_operator.services.builders.names import LABEL_COMPONENT, LABEL_INSTANCE

logger = logging.getLogger(__name__)

BENCHMARK_JOBS = {**MANAGED, LABEL_COMPONENT: BENCH_COMPONENT}


def job_projection(body: Mapping[str, Any]) -> dict[str, Any]:
    """Only what the benchmark service reads: identity, the run key annotation (the
    Job's only annotation the operator sets) and the conditions."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    annotations = metadata.get("annotations") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
            "annotations": {k: annotations[k] for k in (KEY_ANNOTATION,) if k in annotations},
            "deletionTimestamp": metadata.get("deletionTimestamp"),
        },
        "status": {
            "conditions": [
                {key: c.get(key) for key in ("type", "status", "reason", "message")}
                for c in status.get("conditions") or []
            ],
        },
    }


@kopf.index("batch", "v1", "jobs", labels=BENCHMARK_JOBS)
async def benchmark_job_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """Keyed by (namespace, TRTModel). ``async``: see :mod:`.indexes`."""
    return {(namespace or "", labels.get(LABEL_INSTANCE, "")): job_projection(body)}


@dataclass(frozen=True)
class BenchmarkIndexView:
    """The service's :class:`BenchmarkView` over kopf's indexes."""

    trtmodels: kopf.Index[Any, Any]
    job_store: kopf.Index[Any, Any]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> BenchmarkIndexView:
        return cls(trtmodels=kwargs["trtmodel_index"], job_store=kwargs["benchmark_job_index"])

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return _one(self.trtmodels, (namespace, name))

    def jobs(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return list(self.job_store.get((namespace, instance), []))


async def _step(memo: kopf.Memo, namespace: str, name: str, view: BenchmarkIndexView) -> None:
    """One step. kopf does not retry event handlers: a transient API error is retried with
    backoff (at most one pending retry per model); others wait for the next event."""
    benchmarks = memo.get("benchmarks")
    if not isinstance(benchmarks, Benchmarks):
        return
    try:
        await benchmarks.model_changed(namespace, name, view)
    except TransientError as error:
        logger.warning("Benchmark of %s/%s failed, retrying later: %s", namespace, name, error)
        retries = memo.setdefault("retries", Retries())
        assert isinstance(retries, Retries)
        retries.schedule(
            ("benchmark", namespace, name),
            lambda: benchmarks.model_changed(namespace, name, view),
        )
    except KubeError as error:
        logger.warning("Benchmark of %s/%s: %s", namespace, name, error)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def benchmark_trtmodel_event(
    type: str, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A TRTModel changed: its benchmark, and the benchmarks it is the baseline of."""
    benchmarks = memo.get("benchmarks")
    if type == "DELETED" and isinstance(benchmarks, Benchmarks):
        # Its own Jobs go with it (ownerReferences); those measuring it as a baseline are
        # stopped by the step below.
        benchmarks.forget(namespace or "", name)
    await _step(memo, namespace or "", name, BenchmarkIndexView.from_kwargs(kwargs))


@kopf.on.event("batch", "v1", "jobs", labels=BENCHMARK_JOBS)
async def benchmark_job_event(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A benchmark Job changed (started, finished, deleted): its TRTModel's next step."""
    instance = labels.get(LABEL_INSTANCE)
    if instance:
        await _step(memo, namespace or "", instance, BenchmarkIndexView.from_kwargs(kwargs))
