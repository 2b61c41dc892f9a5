"""The services' read view (:class:`ClusterView`, :class:`BenchmarkView`) over the
adapter's caches.

Every kind the operator reads is cached by the adapter's own informers
(:class:`trtserve_operator.kube.cache.ObjectCache`, kept by
:class:`trtserve_operator.kube.watch.Informer`; docs/operator.md, "How reads work"), in
projections: reading costs no request. One view is built at startup and shared by every
callback (the caches are live).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trtserve_operator.kube.cache import ObjectCache


@dataclass(frozen=True)
class Caches:
    """The adapter's caches, one per kind it watches."""

    trtmodels: ObjectCache
    deployments: ObjectCache
    services: ObjectCache
    configmaps: ObjectCache
    disruption_budgets: ObjectCache
    pods: ObjectCache
    jobs: ObjectCache
    """Benchmark Jobs, grouped by their TRTModel."""

    def all(self) -> tuple[ObjectCache, ...]:
        return (
            self.trtmodels,
            self.deployments,
            self.services,
            self.configmaps,
            self.disruption_budgets,
            self.pods,
            self.jobs,
        )


@dataclass(frozen=True)
class CacheView:
    """The reconciler's and the benchmark's view of the cluster."""

    caches: Caches

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        if kind == "Deployment":
            return self.caches.deployments.get(namespace, name)
        if kind == "Service":
            return self.caches.services.get(namespace, name)
        if kind == "ConfigMap":
            return self.caches.configmaps.get(namespace, name)
        if kind == "PodDisruptionBudget":
            return self.caches.disruption_budgets.get(namespace, name)
        raise KeyError(kind)

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return self.caches.pods.group(namespace, instance)

    def jobs(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return self.caches.jobs.group(namespace, instance)

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.caches.trtmodels.get(namespace, name)

    def has_models(self, namespace: str) -> bool:
        """Whether any TRTModel of ``namespace`` is cached (a scan: for rare events only)."""
        return any(key[0] == namespace for key in self.caches.trtmodels)
