"""A ``coordination.k8s.io/v1`` Lease as the leader elector reads and writes it.

The fields are client-go's ``LeaderElectionRecord`` (``tools/leaderelection/resourcelock``):
holder identity, lease duration, acquire and renew times (``MicroTime``: RFC 3339 with
microseconds) and the number of leader transitions. Nothing else of the Lease is kept.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from trtserve_operator.kube.resources import ApiResource

LEASES = ApiResource("coordination.k8s.io", "v1", "Lease", "leases")
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(MICRO_TIME)


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    lease_duration_seconds: int
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LeaseRecord:
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


@dataclass(frozen=True)
class StoredLease:
    """A Lease as read: its record and the resourceVersion an update must name."""

    record: LeaseRecord
    resource_version: str


def lease_object(
    namespace: str, name: str, record: LeaseRecord, resource_version: str | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": LEASES.api_version,
        "kind": LEASES.kind,
        "metadata": metadata,
        "spec": record.spec(),
    }
