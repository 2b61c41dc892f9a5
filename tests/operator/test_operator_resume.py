"""Restart and idle behaviour: an operator that finds everything converged writes nothing.

Also the RBAC check: every request the operator made in this module (startup, create,
status, events, child recreation, resume) is covered by ``REQUIRED_PERMISSIONS``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kmock_cluster import (
    DEPLOYMENTS,
    MODELS,
    EmulatedCluster,
    operator_metrics,
    operator_running,
    permission_of,
    report_serving,
    settle,
    trtmodel,
    wait_for,
)

from trtserve_operator.kube.permissions import REQUIRED_PERMISSIONS, Permission

NS = "resume"
NAMES = ("r1", "r2", "r3")

pytestmark = pytest.mark.timeout(120)


def describe(requests: list[Any]) -> list[str]:
    return [f"{r.method} {r.url}" for r in requests]


@pytest.fixture(scope="module")
def converged(cluster: EmulatedCluster) -> EmulatedCluster:
    """Three TRTModels converged by a first operator run, which is then stopped."""
    with operator_running() as runner:
        for name in NAMES:
            cluster.post(MODELS.format(ns=NS), trtmodel(name, NS, serving={"replicas": 2}))
        for name in NAMES:
            wait_for(lambda n=name: cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/{n}"))
        report_serving(cluster, NS, "r1", replicas=2)
        wait_for(
            lambda: (
                (cluster.get(f"{MODELS.format(ns=NS)}/r1") or {}).get("status", {}).get("phase")
                == "Ready"
            )
        )
        settle(cluster)
        mark = len(cluster.requests())
        time.sleep(2.0)
        idle_writes = cluster.writes(since=mark)
    assert runner.exception is None
    assert idle_writes == [], f"writes while idle: {describe(idle_writes)}"
    return cluster


def test_resume_without_changes_makes_no_write_request(converged: EmulatedCluster) -> None:
    # r3 carries the annotations kopf wrote for operator versions before issue 10: they are
    # ignored, and not cleaned up (that would be a write per model).
    converged.patch(
        f"{MODELS.format(ns=NS)}/r3",
        {"metadata": {"annotations": {
            "trtserve.io/kopf-managed": "yes",
            "trtserve.io/last-handled-configuration": '{"spec":{"serving":{"replicas":1}}}\n',
        }}},
    )  # fmt: skip
    mark = len(converged.requests())
    with operator_running() as runner:
        looked_at = wait_for(
            lambda: (
                operator_metrics().get(
                    'trtserve_child_actions_total{action="noop",kind="Deployment"}', 0
                )
                >= len(NAMES)
            ),
            what="the second operator to look at every model",
        )
        settle(converged, quiet=1.5)
    assert looked_at
    assert runner.exception is None
    writes = converged.writes(since=mark)
    assert writes == [], f"writes after a restart with nothing changed: {describe(writes)}"


def test_resume_converges_what_changed_while_down(converged: EmulatedCluster) -> None:
    converged.delete(f"{DEPLOYMENTS.format(ns=NS)}/r2")
    with operator_running():
        again = wait_for(lambda: converged.get(f"{DEPLOYMENTS.format(ns=NS)}/r2"))
        settle(converged, quiet=0.5)
    assert again["spec"]["replicas"] == 2


def test_every_request_is_covered_by_required_permissions(converged: EmulatedCluster) -> None:
    needed = {permission_of(r) for r in converged.operator_requests()} - {None}
    assert needed, "the operator made no resource request at all"
    missing = {Permission(*p) for p in needed if p is not None} - REQUIRED_PERMISSIONS
    assert missing == set()
    # The adapter writes status only through the subresource, and never PUTs.
    assert Permission("trtserve.io", "trtmodels/status", "patch") in {
        Permission(*p) for p in needed if p is not None
    }
    assert all(p[2] != "update" for p in needed if p is not None), "the operator never PUTs"


def test_child_and_pod_watches_carry_the_label_selector(converged: EmulatedCluster) -> None:
    """The operator lists and watches only its own children, pods and benchmark Jobs (the
    emulator ignores selectors; a real API server filters by them), and every TRTModel."""
    managed = "app.kubernetes.io/managed-by=trtserve-operator"
    seen: dict[str, int] = {}
    for request in converged.operator_requests():
        resource = request.resource
        action = str(request.action).split(".")[-1].upper()
        if resource is None or action not in ("LIST", "WATCH"):
            continue
        selector = dict(request.params).get("labelSelector") if request.params else None
        if resource.plural in (
            "deployments",
            "services",
            "configmaps",
            "poddisruptionbudgets",
            "pods",
        ):
            assert selector == managed, request.url
        elif resource.plural == "jobs":
            assert selector == f"{managed},app.kubernetes.io/component=benchmark", request.url
        else:
            assert selector is None, request.url
        seen[resource.plural] = seen.get(resource.plural, 0) + 1
    assert set(seen) >= {
        "trtmodels",
        "deployments",
        "services",
        "configmaps",
        "poddisruptionbudgets",
        "pods",
        "jobs",
    }
