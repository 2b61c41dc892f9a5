"""Pure builders: TRTModel -> the exact manifests the operator applies (no I/O, no client)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trtserve_operator.services.builders.benchmark_job import BenchmarkRun, build_benchmark_job
from trtserve_operator.services.builders.cache import CacheDefaults, resolve_cache
from trtserve_operator.services.builders.configmap import build_batching_configmap
from trtserve_operator.services.builders.deployment import (
    build_deployment,
    converter_image,
    serving_image,
)
from trtserve_operator.services.builders.disruption_budget import build_disruption_budget
from trtserve_operator.services.builders.service import build_service
from trtserve_operator.services.builders.target import Target
from trtserve_operator.settings import Settings

__all__ = [
    "Children",
    "Target",
    "build_batching_configmap",
    "build_benchmark_jobs",
    "build_children",
    "build_deployment",
    "build_disruption_budget",
    "build_service",
]


@dataclass(frozen=True)
class Children:
    """Every object the operator keeps for one TRTModel, in apply order.

    The batching ConfigMap exists only while batching is enabled: nothing else reads it.
    There is no Deployment without a converter image (the model is refused, see
    ``targets.blocker_for``). The PodDisruptionBudget exists unless
    ``spec.serving.disruptionBudget.enabled`` is false (then an existing one is deleted:
    left behind, it would still limit evictions).
    """

    configmap: dict[str, Any] | None
    service: dict[str, Any]
    deployment: dict[str, Any] | None
    disruption_budget: dict[str, Any] | None = None

    def all(self) -> list[dict[str, Any]]:
        return self.wanted(deployment=True)

    def of_kind(self, kind: str) -> dict[str, Any] | None:
        """The child of ``kind`` (None: no such child, or a ConfigMap while batching is off)."""
        return {
            "ConfigMap": self.configmap,
            "Service": self.service,
            "Deployment": self.deployment,
            "PodDisruptionBudget": self.disruption_budget,
        }.get(kind)

    def wanted(self, *, deployment: bool, service: bool = True) -> list[dict[str, Any]]:
        """The children to apply, in order (the ConfigMap before the Deployment that mounts
        it); without the Deployment when its rollout is refused, and without the Service
        and the PodDisruptionBudget too when nothing would be behind them."""
        children = [self.configmap] if self.configmap is not None else []
        if service:
            children.append(self.service)
            if self.disruption_budget is not None:
                children.append(self.disruption_budget)
        if deployment and self.deployment is not None:
            children.append(self.deployment)
        return children

    def unwanted(self) -> list[str]:
        """The kinds of child to delete where one exists: a PodDisruptionBudget turned off.
        (Only kinds whose leftover would still act: a batching ConfigMap left behind is
        inert, and old pods may still mount it.)"""
        return ["PodDisruptionBudget"] if self.disruption_budget is None else []


def build_children(target: Target, settings: Settings) -> Children:
    """All children of ``target`` rendered with the operator's settings."""
    return Children(
        configmap=(
            build_batching_configmap(target) if target.spec.serving.batching.enabled else None
        ),
        service=build_service(target),
        disruption_budget=build_disruption_budget(target),
        deployment=(
            build_deployment(
                target,
                converter_image=converter_image(target, settings.converter_image),
                serving_image=serving_image(target, settings.serving_image),
                log_format=settings.log_format,
                cache=resolve_cache(target, cache_defaults(settings)),
            )
            if target.spec.converter_image or settings.converter_image
            else None
        ),
    )


def build_benchmark_jobs(targets: Sequence[Target], settings: Settings) -> list[dict[str, Any]]:
    """The benchmark Job of every target whose baseline is among ``targets``, as the
    operator creates it once both are Ready at their current generations (``render``)."""
    by_name = {(t.namespace, t.name): t for t in targets}
    jobs = []
    for target in targets:
        benchmark = target.spec.benchmark
        baseline = by_name.get((target.namespace, benchmark.baseline)) if benchmark else None
        if baseline is not None and baseline is not target:
            jobs.append(
                build_benchmark_job(
                    BenchmarkRun(target, baseline),
                    image=converter_image(target, settings.converter_image),
                    log_format=settings.log_format,
                )
            )
    return jobs


def cache_defaults(settings: Settings) -> CacheDefaults:
    """The operator-wide converted-model cache (chart values cache.*)."""
    return CacheDefaults(
        uri=settings.cache_uri,
        secret_name=settings.cache_secret_name,
        signing_secret_name=settings.cache_signing_secret_name,
        signing_secret_key=settings.cache_signing_secret_key,
    )
