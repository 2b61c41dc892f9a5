#!/usr/bin/env python3
"""Operator CPU per watch event of what a real cluster adds to a converge (kmock).

The first-converge benchmark (``operator_scale.py --kmock``) has no controllers: no
Deployment status and no pods. A real API server adds, per model, the Deployment
controller's status updates and the pods' state changes, each a watch event the
operator processes (kopf: body wrapping, the index function, the event handler; the
operator: a converge that finds nothing to do, a coalesced status update). This script
converges N models at kmock, then plays that churn through the emulator's API (per model:
3 Deployment status updates, a pod created and 3 pod status updates: 7 events) and prints
the operator's CPU seconds per event and per model, and its writes (status writes
coalesce: at most one per model per second).

CPU per event times the events a real cluster produces per model is the operator CPU a
real converge adds to ``operator_scale.py``'s first-converge number (docs/operator.md,
"Which numbers transfer"). kmock's own timings mean nothing.

Usage: python benchmarks/operator_events.py [-n 100] [--profile op.speedscope.json]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import operator_scale as bench

MERGE = {"Content-Type": "application/merge-patch+json"}
DEPLOYMENT_STATUSES: tuple[dict[str, Any], ...] = (
    {"observedGeneration": 1},
    {"observedGeneration": 1, "replicas": 1, "unavailableReplicas": 1, "updatedReplicas": 1},
    {
        "observedGeneration": 1,
        "replicas": 1,
        "unavailableReplicas": 1,
        "updatedReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
        ],
    },
)
POD_STATUSES: tuple[dict[str, Any], ...] = (
    {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    {
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "convert", "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    },
    {"phase": "Pending", "initContainerStatuses": [{"name": "convert", "state": {"running": {}}}]},
)


def churn(cluster: bench.KmockCluster, names: list[str]) -> int:
    """What the Deployment controller and the kubelet would write; returns the events."""
    http = cluster.emulated.http
    assert http is not None
    ns = cluster.namespace
    deployments = f"/apis/apps/v1/namespaces/{ns}/deployments"
    pods = f"/api/v1/namespaces/{ns}/pods"
    events = 0
    for name in names:
        template = http.get(f"{deployments}/{name}").json()["spec"]["template"]
        for status in DEPLOYMENT_STATUSES:
            http.patch(f"{deployments}/{name}", json={"status": status}, headers=MERGE)
            events += 1
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-abc12",
                "namespace": ns,
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
            },
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        http.post(pods, json=pod).raise_for_status()
        events += 1
        for status in POD_STATUSES:
            http.patch(f"{pods}/{name}-abc12", json={"status": status}, headers=MERGE)
            events += 1
    return events


async def run(count: int, profile: Path | None = None) -> dict[str, Any]:
    cluster = bench.KmockCluster("trtserve-events")
    cluster.start()
    bench.SPEC.clear()
    bench.SPEC.update(bench.example_spec())
    names = [f"bench-{i:04d}" for i in range(count)]
    bench.preload(cluster, names, converged=False)
    operator = bench.start_operator(cluster, profile)
    try:
        await bench.wait_all_deployments(cluster, names)
        await bench.wait_operator_idle(cluster, operator.pid)
        cpu, writes, started = (
            bench.cpu_seconds(operator.pid),
            cluster.write_count(),
            time.monotonic(),
        )
        events = await asyncio.to_thread(churn, cluster, names)
        await bench.wait_operator_idle(cluster, operator.pid)
        used = bench.cpu_seconds(operator.pid) - cpu
        written = cluster.write_count() - writes
        return {
            "mode": "kmock (controller and kubelet churn after a first converge)",
            "models": count,
            "events": events,
            "events_per_model": events / count,
            "churn_s (emulator: meaningless)": round(time.monotonic() - started, 1),
            "operator_cpu_s": round(used, 3),
            "operator_cpu_ms_per_event": round(1000 * used / events, 3),
            "operator_cpu_ms_per_model": round(1000 * used / count, 2),
            "writes_per_model": round(written / count, 2),
            "rss_mb": round(bench.rss_mb(operator.pid), 1),
        }
    finally:
        operator.stop()
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--models", type=int, default=100)
    parser.add_argument(
        "--profile", type=Path, help="run the operator under py-spy; speedscope JSON here"
    )
    args = parser.parse_args()
    results = asyncio.run(run(args.models, args.profile))
    print(yaml.safe_dump({"results": results}, sort_keys=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
