"""Decode watch events and list pages straight into projections (msgspec).

A projection keeps only what the operator reads of an object:

- TRTModel: identity (name, namespace, uid, generation, deletionTimestamp), ``spec``
  whole (rendered) and ``status`` whole (the previous status after a restart, and the
  benchmark's record of its run).
- Deployment, Service, ConfigMap, PodDisruptionBudget: ``apiVersion``, ``kind``,
  identity, labels and ownerReferences, ``spec``/``data`` whole (converging compares
  every rendered field with them); of a Deployment's ``status`` only the replica counts
  and a ``ProgressDeadlineExceeded`` condition.
- Pod: its name, the annotations asked for (the template hash), deletion, phase, the
  ``PodScheduled=False`` condition and the state of the init containers asked for (the
  converter's report).
- benchmark Job: its name, uid, the annotations asked for (the run key), deletion and
  its conditions.

msgspec decodes into typed structs and *skips* everything else without building it: a
pod's spec, managedFields, other controllers' annotations (kubectl's
last-applied-configuration) and status conditions never become Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from trtserve_operator.kube.resources import ApiResource

T = TypeVar("T")

CONDITION_KEYS = ("type", "status", "reason", "message")
INIT_STATUS_KEYS = ("name", "state", "lastState")
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
"""The reason of a Deployment's ``Progressing=False`` condition (the deployment controller)."""


class ListMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""
    continue_: str = msgspec.field(default="", name="continue")


class ObjectList(msgspec.Struct, Generic[T]):
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[T] = msgspec.field(default_factory=list)


class RawEvent(msgspec.Struct):
    """A watch event whose object is decoded later, by its type (a Status for ERROR)."""

    type: str
    object: msgspec.Raw = msgspec.Raw(b"{}")


class Status(msgspec.Struct):
    """The ``Status`` object of a watch ERROR event."""

    code: int = 0
    reason: str = ""
    message: str = ""


class ObjectMeta(msgspec.Struct, rename="camel"):
    """A TRTModel's identity (the base of a child's metadata)."""

    name: str = ""
    namespace: str = ""
    uid: str | None = None
    generation: int | None = None
    deletion_timestamp: str | None = None
    resource_version: str = ""

    def _picked(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "generation": self.generation,
            "deletionTimestamp": self.deletion_timestamp,
        }

    def identity(self) -> dict[str, Any]:
        """The metadata the projection keeps (as the API names it; unset ones left out)."""
        picked: dict[str, Any] = {"name": self.name}
        if self.namespace:
            picked["namespace"] = self.namespace
        picked.update((key, value) for key, value in self._picked().items() if value is not None)
        return picked


class ChildMeta(ObjectMeta):
    """A child's identity, labels and ownerReferences (what converging compares)."""

    labels: dict[str, str] | None = None
    owner_references: list[dict[str, Any]] | None = None

    def _picked(self) -> dict[str, Any]:
        return {
            **super()._picked(),
            "labels": self.labels,
            "ownerReferences": self.owner_references,
        }


class DeploymentStatus(msgspec.Struct, rename="camel"):
    replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    updated_replicas: int | None = None
    conditions: list[dict[str, Any]] | None = None

    def picked(self) -> dict[str, Any]:
        """The replica counts, and the ``Progressing`` condition only once the rollout has
        passed its progress deadline (``ProgressDeadlineExceeded``): while it progresses
        that condition's message and times change with every pod, and nothing reads them."""
        picked: dict[str, Any] = {
            key: value
            for key, value in (
                ("replicas", self.replicas),
                ("readyReplicas", self.ready_replicas),
                ("availableReplicas", self.available_replicas),
                ("updatedReplicas", self.updated_replicas),
            )
            if value is not None
        }
        stalled = [
            {k: c[k] for k in CONDITION_KEYS if k in c}
            for c in self.conditions or []
            if c.get("type") == "Progressing" and c.get("reason") == PROGRESS_DEADLINE_EXCEEDED
        ]
        if stalled:
            picked["conditions"] = stalled
        return picked


class DeploymentWire(msgspec.Struct):
    metadata: ChildMeta = msgspec.field(default_factory=ChildMeta)
    spec: dict[str, Any] | None = None
    status: DeploymentStatus | None = None


class ServiceWire(msgspec.Struct):
    metadata: ChildMeta = msgspec.field(default_factory=ChildMeta)
    spec: dict[str, Any] | None = None


class DisruptionBudgetWire(msgspec.Struct):
    metadata: ChildMeta = msgspec.field(default_factory=ChildMeta)
    spec: dict[str, Any] | None = None


class ConfigMapWire(msgspec.Struct):
    metadata: ChildMeta = msgspec.field(default_factory=ChildMeta)
    data: dict[str, Any] | None = None


class MemberMeta(msgspec.Struct, rename="camel"):
    """The metadata of a pod or a benchmark Job: cached in its TRTModel's group."""

    name: str = ""
    namespace: str = ""
    uid: str | None = None
    resource_version: str = ""
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodStatus(msgspec.Struct, rename="camel"):
    phase: str | None = None
    conditions: list[dict[str, Any]] | None = None
    init_container_statuses: list[dict[str, Any]] | None = None
    container_statuses: list[dict[str, Any]] | None = None


class PodWire(msgspec.Struct):
    metadata: MemberMeta = msgspec.field(default_factory=MemberMeta)
    status: PodStatus | None = None


class TRTModelWire(msgspec.Struct):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


class JobStatus(msgspec.Struct):
    conditions: list[dict[str, Any]] | None = None


class JobWire(msgspec.Struct):
    metadata: MemberMeta = msgspec.field(default_factory=MemberMeta)
    status: JobStatus | None = None


@dataclass(frozen=True)
class Projected:
    """One decoded object: where it goes in the cache and what is kept of it."""

    namespace: str
    name: str
    resource_version: str
    projection: dict[str, Any]
    group: str | None = None


class Projector(Generic[T]):
    """Decodes one kind's list pages and watch objects into :class:`Projected`."""

    def __init__(self, resource: ApiResource, wire: type[T]) -> None:
        self.resource = resource
        self._object = msgspec.json.Decoder(wire)
        self._list = msgspec.json.Decoder(ObjectList[wire])  # type: ignore[valid-type]

    def decode_object(self, raw: bytes | msgspec.Raw) -> Projected:
        return self.project(self._object.decode(raw))

    def decode_list(self, raw: bytes) -> tuple[list[Projected], str, str]:
        """(objects, the list's resourceVersion, its ``continue`` token)."""
        page = self._list.decode(raw)
        return (
            [self.project(item) for item in page.items],
            page.metadata.resource_version,
            page.metadata.continue_,
        )

    def project(self, item: T) -> Projected:
        raise NotImplementedError


class ChildProjector(Projector[Any]):
    """Deployments, Services, ConfigMaps, PodDisruptionBudgets: what converging compares
    (and a Deployment's replica counts)."""

    def project(self, item: Any) -> Projected:
        meta: ChildMeta = item.metadata
        projection: dict[str, Any] = {
            "apiVersion": self.resource.api_version,
            "kind": self.resource.kind,
        }
        for key in ("spec", "data"):
            value = getattr(item, key, None)
            if value is not None:
                projection[key] = value
        projection["metadata"] = meta.identity()
        if isinstance(item, DeploymentWire):
            projection["status"] = {} if item.status is None else item.status.picked()
        return Projected(meta.namespace, meta.name, meta.resource_version, projection)


class GroupedProjector(Projector[T]):
    """Objects cached in their TRTModel's group (``group_label``'s value): pods and
    benchmark Jobs. Of the metadata only the name, the ``annotations`` asked for and the
    deletion are kept."""

    def __init__(
        self, resource: ApiResource, wire: type[T], *, group_label: str, annotations: Sequence[str]
    ) -> None:
        super().__init__(resource, wire)
        self.group_label = group_label
        self._annotations = tuple(annotations)

    def _metadata(self, meta: MemberMeta) -> dict[str, Any]:
        annotations = meta.annotations or {}
        return {
            "name": meta.name,
            "annotations": {k: annotations[k] for k in self._annotations if k in annotations},
            "deletionTimestamp": meta.deletion_timestamp,
        }

    def _projected(self, meta: MemberMeta, projection: dict[str, Any]) -> Projected:
        group = (meta.labels or {}).get(self.group_label)
        return Projected(meta.namespace, meta.name, meta.resource_version, projection, group)


class PodProjector(GroupedProjector[PodWire]):
    """Pods, grouped by their TRTModel: whether they are ready and scheduled, and the state
    of the init containers and containers asked for (for the status's stuck reasons)."""

    def __init__(
        self,
        resource: ApiResource,
        *,
        group_label: str,
        annotations: Sequence[str],
        init_containers: Sequence[str],
        containers: Sequence[str] = (),
    ) -> None:
        super().__init__(resource, PodWire, group_label=group_label, annotations=annotations)
        self._init_containers = frozenset(init_containers)
        self._containers = frozenset(containers)

    def project(self, item: PodWire) -> Projected:
        status = item.status or PodStatus()
        projection = {
            "metadata": self._metadata(item.metadata),
            "status": {
                "phase": status.phase,
                "conditions": [
                    {k: c[k] for k in CONDITION_KEYS if k in c}
                    for c in status.conditions or []
                    if c.get("type") == "PodScheduled" and c.get("status") == "False"
                ]
                + [
                    {"type": "Ready", "status": c.get("status")}
                    for c in status.conditions or []
                    if c.get("type") == "Ready"
                ],
                "initContainerStatuses": [
                    {k: s[k] for k in INIT_STATUS_KEYS if k in s}
                    for s in status.init_container_statuses or []
                    if s.get("name") in self._init_containers
                ],
            },
        }
        if self._containers:
            projection["status"]["containerStatuses"] = [
                {k: s[k] for k in INIT_STATUS_KEYS if k in s}
                for s in status.container_statuses or []
                if s.get("name") in self._containers
            ]
        return self._projected(item.metadata, projection)


def child_projector(resource: ApiResource) -> ChildProjector:
    wire = {
        "Deployment": DeploymentWire,
        "Service": ServiceWire,
        "ConfigMap": ConfigMapWire,
        "PodDisruptionBudget": DisruptionBudgetWire,
    }
    return ChildProjector(resource, wire[resource.kind])


class TRTModelProjector(Projector[TRTModelWire]):
    """TRTModels: identity, ``spec`` and ``status`` (everything the reconciler and the
    benchmark read; no labels, annotations or managedFields)."""

    def __init__(self, resource: ApiResource) -> None:
        super().__init__(resource, TRTModelWire)

    def project(self, item: TRTModelWire) -> Projected:
        meta = item.metadata
        projection: dict[str, Any] = {"metadata": meta.identity(), "spec": item.spec or {}}
        if item.status:
            projection["status"] = item.status
        return Projected(meta.namespace, meta.name, meta.resource_version, projection)


class JobProjector(GroupedProjector[JobWire]):
    """Benchmark Jobs, grouped by their TRTModel: also the uid and the conditions."""

    def __init__(
        self, resource: ApiResource, *, group_label: str, annotations: Sequence[str]
    ) -> None:
        super().__init__(resource, JobWire, group_label=group_label, annotations=annotations)

    def project(self, item: JobWire) -> Projected:
        status = item.status or JobStatus()
        projection = {
            "metadata": {**self._metadata(item.metadata), "uid": item.metadata.uid},
            "status": {
                "conditions": [
                    {key: c.get(key) for key in CONDITION_KEYS} for c in status.conditions or []
                ],
            },
        }
        return self._projected(item.metadata, projection)
