"""The interface of the Kubernetes adapter, as the services see it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from trtserve_operator.kube.resources import ApiResource


class KubeApi(Protocol):
    """Reads and writes the operator needs; implemented by :class:`.client.Kube`."""

    async def get(self, resource: ApiResource, namespace: str, name: str) -> dict[str, Any]: ...

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def merge_patch(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]: ...

    async def delete(self, resource: ApiResource, namespace: str, name: str) -> None: ...

    async def list_pods(
        self, namespace: str, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]: ...

    async def patch_trtmodel_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> None: ...

    async def create_event(
        self,
        involved: Mapping[str, Any],
        *,
        event_type: str,
        reason: str,
        message: str,
    ) -> None: ...

    async def close(self) -> None: ...
