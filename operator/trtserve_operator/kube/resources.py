"""The API resources the operator reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from trtserve_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


TRTMODELS = ApiResource(GROUP, VERSION, KIND, PLURAL)
DEPLOYMENTS = ApiResource("apps", "v1", "Deployment", "deployments")
SERVICES = ApiResource("", "v1", "Service", "services")
CONFIGMAPS = ApiResource("", "v1", "ConfigMap", "configmaps")
PODS = ApiResource("", "v1", "Pod", "pods")
EVENTS = ApiResource("", "v1", "Event", "events")
JOBS = ApiResource("batch", "v1", "Job", "jobs")
DISRUPTION_BUDGETS = ApiResource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets")

BY_KIND = {
    res.kind: res
    for res in (
        TRTMODELS,
        DEPLOYMENTS,
        SERVICES,
        CONFIGMAPS,
        DISRUPTION_BUDGETS,
        PODS,
        EVENTS,
        JOBS,
    )
}
