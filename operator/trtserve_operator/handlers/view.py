"""The services' :class:`ClusterView` over the operator's read caches.

TRTModels are a kopf index (kopf watches them and runs their handlers); the children and
pods are the adapter's own caches (:class:`trtserve_operator.kube.cache.ObjectCache`,
kept by its informers: the kinds a real cluster changes most, see docs/operator.md, "How
reads work"). One view
is built at startup and shared by every handler (kopf's index objects are live).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from trtserve_operator.kube.cache import ObjectCache


def _one(index: kopf.Index[Any, Any], key: tuple[str, str]) -> Mapping[str, Any] | None:
    store = index.get(key)
    if not store:
        return None
    *_, last = iter(store)
    return last  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Caches:
    """The adapter's caches, one per kind it watches itself."""

    deployments: ObjectCache
    services: ObjectCache
    configmaps: ObjectCache
    pods: ObjectCache


@dataclass(frozen=True)
class IndexView:
    trtmodels: kopf.Index[Any, Any]
    caches: Caches

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], caches: Caches) -> IndexView:
        """The view over kopf's indexes (a handler's or the startup handler's kwargs)."""
        return cls(trtmodels=kwargs["trtmodel_index"], caches=caches)

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        if kind == "Deployment":
            return self.caches.deployments.get(namespace, name)
        if kind == "Service":
            return self.caches.services.get(namespace, name)
        if kind == "ConfigMap":
            return self.caches.configmaps.get(namespace, name)
        raise KeyError(kind)

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return self.caches.pods.group(namespace, instance)

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return _one(self.trtmodels, (namespace, name))

    def has_models(self, namespace: str) -> bool:
        """Whether any TRTModel of ``namespace`` is cached (a scan: for rare events only)."""
        return any(key[0] == namespace for key in self.trtmodels)


def view_of(memo: kopf.Memo) -> IndexView:
    """The operator's one view (built by the startup handler)."""
    view = memo["view"]
    assert isinstance(view, IndexView)
    return view
