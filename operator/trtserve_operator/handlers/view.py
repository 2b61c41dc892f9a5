"""The services' :class:`ClusterView` over kopf's indexes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf


def _one(index: kopf.Index[Any, Any], key: tuple[str, str]) -> Mapping[str, Any] | None:
    store = index.get(key)
    if not store:
        return None
    *_, last = iter(store)
    return last  # type: ignore[no-any-return]


@dataclass(frozen=True)
class IndexView:
    trtmodels: kopf.Index[Any, Any]
    deployments: kopf.Index[Any, Any]
    services: kopf.Index[Any, Any]
    configmaps: kopf.Index[Any, Any]
    pod_store: kopf.Index[Any, Any]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> IndexView:
        return cls(
            trtmodels=kwargs["trtmodel_index"],
            deployments=kwargs["deployment_index"],
            services=kwargs["service_index"],
            configmaps=kwargs["configmap_index"],
            pod_store=kwargs["pod_index"],
        )

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        index = {
            "Deployment": self.deployments,
            "Service": self.services,
            "ConfigMap": self.configmaps,
        }[kind]
        return _one(index, (namespace, name))

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return list(self.pod_store.get((namespace, instance), []))

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return _one(self.trtmodels, (namespace, name))

    def has_models(self, namespace: str) -> bool:
        """Whether any TRTModel of ``namespace`` is cached (a scan: for rare events only)."""
        return any(key[0] == namespace for key in self.trtmodels)
