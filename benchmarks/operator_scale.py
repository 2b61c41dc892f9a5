#!/usr/bin/env python3
"""Operator scale benchmark: restart convergence, create latency, idle writes, memory.

Targets (issue 3):
  * after a restart, converge N existing TRTModels within 1.5x the time it takes to
    create their children directly (same API server, same client, same concurrency);
  * a new TRTModel gets its Deployment with p99 < 0.5 s;
  * zero write requests while idle;
  * operator RSS < 150 MB with N (default 500) TRTModels.

Two modes, printed in every line of the result so the numbers are never mixed up:

  --kmock       an in-process kmock KubernetesEmulator (no real API server: no
                resourceVersion, so kopf re-handles each creation; no admission, no
                etcd). A smoke number only.
  --kubeconfig  the cluster of the current kubeconfig context (the TRTModel CRD must be
                installed; the benchmark works in its own namespace, created if missing
                and deleted at the end unless --keep). Write counts come from a watch on
                the namespace (every ADDED/MODIFIED/DELETED is a write).

The operator always runs as a separate process (``python -m trtserve_operator.cli run
-n <namespace>``) so its RSS is measured alone.

Usage:
  python benchmarks/operator_scale.py --kmock [-n 500]
  python benchmarks/operator_scale.py --kubeconfig [-n 500] [--namespace trtserve-bench]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from trtserve_operator.kube.client import Kube
from trtserve_operator.kube.errors import ConflictError
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.reconciler import utc_now
from trtserve_operator.services.status import compute_status, status_to_wire
from trtserve_operator.services.targets import target_from_body
from trtserve_operator.settings import Settings

CONCURRENCY = 50
OPERATOR_LOG = Path(
    os.environ.get("BENCH_OPERATOR_LOG")
    or Path(tempfile.gettempdir()) / "trtserve-bench-operator.log"
)
LATENCY_SAMPLES = 50


def trtmodel(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "trtserve.io/v1alpha1",
        "kind": "TRTModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {"uri": f"s3://bench/{name}"}, "serving": {"replicas": 0}},
    }


async def bounded(jobs: list[Callable[[], Awaitable[Any]]]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


def emulated_cluster_class() -> Any:
    """The tests' emulator setup (tests/operator/kmock_cluster.py), imported on demand."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "operator"))
    return importlib.import_module("kmock_cluster").EmulatedCluster


class Cluster:
    """Where the benchmark runs: an emulator or a real API server."""

    mode = ""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.kubeconfig: Path | None = None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def kube(self) -> Kube:
        return Kube.from_environment()

    def write_count(self) -> int:
        raise NotImplementedError

    def deployment_names(self) -> set[str]:
        """Names of the Deployments in the namespace, with as little load as possible."""
        raise NotImplementedError

    async def delete_all(self, kube: Kube, names: list[str]) -> None:
        raise NotImplementedError


class KmockCluster(Cluster):
    mode = "kmock"

    def start(self) -> None:
        self.emulated = emulated_cluster_class()()
        self.emulated.start()
        self.kubeconfig = self.emulated.kubeconfig(
            Path(tempfile.mkdtemp(prefix="trtserve-bench-")) / "config"
        )
        os.environ["KUBECONFIG"] = str(self.kubeconfig)

    def stop(self) -> None:
        self.emulated.stop()

    def write_count(self) -> int:
        return len(self.emulated.writes())

    def deployment_names(self) -> set[str]:
        # Read the emulator's store directly: its HTTP GET costs ~40 ms and would slow
        # the operator under test.
        assert self.emulated.emulator is not None
        objects = self.emulated.emulator.objects
        return {
            name
            for (resource, namespace, name), obj in list(objects.items())
            if resource.plural == "deployments" and namespace == self.namespace and not obj.deleted
        }

    async def delete_all(self, kube: Kube, names: list[str]) -> None:
        assert self.emulated.http is not None
        for kind, path in (
            ("deployments", f"/apis/apps/v1/namespaces/{self.namespace}/deployments"),
            ("services", f"/api/v1/namespaces/{self.namespace}/services"),
            ("configmaps", f"/api/v1/namespaces/{self.namespace}/configmaps"),
        ):
            for name in names:
                suffix = "-batching" if kind == "configmaps" else ""
                self.emulated.http.delete(f"{path}/{name}{suffix}")


class RealCluster(Cluster):
    mode = "real API server"

    def start(self) -> None:
        subprocess.run(
            ["kubectl", "create", "namespace", self.namespace], check=False, capture_output=True
        )
        self._writes = 0
        self._stop = threading.Event()
        self._watchers = [
            threading.Thread(target=self._count, args=(kind,), daemon=True)
            for kind in ("trtmodels", "deployments", "services", "configmaps", "events")
        ]
        for watcher in self._watchers:
            watcher.start()
        time.sleep(2)

    def _count(self, kind: str) -> None:
        process = subprocess.Popen(
            ["kubectl", "get", kind, "-n", self.namespace, "--watch-only", "-o", "name"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        for _ in process.stdout:
            self._writes += 1
            if self._stop.is_set():
                break
        process.kill()

    def write_count(self) -> int:
        return self._writes

    def deployment_names(self) -> set[str]:
        listed = subprocess.run(
            ["kubectl", "get", "deployments", "-n", self.namespace, "-o", "name"],
            check=True,
            capture_output=True,
            text=True,
        )
        return {line.split("/", 1)[-1] for line in listed.stdout.split()}

    def stop(self) -> None:
        self._stop.set()

    async def delete_all(self, kube: Kube, names: list[str]) -> None:
        for kind in ("deployments", "services", "configmaps"):
            subprocess.run(
                ["kubectl", "delete", kind, "-n", self.namespace, "--all", "--wait=false"],
                check=False,
                capture_output=True,
            )


def resumed() -> int:
    """TRTModels the operator has resumed so far (kopf logs one line per object)."""
    with OPERATOR_LOG.open("rb") as stream:
        return sum(line.count(b"Resuming is processed") for line in stream)


def start_operator(cluster: Cluster) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["TRTSERVE_LOG_LEVEL"] = os.environ.get("BENCH_OPERATOR_LOG_LEVEL", "INFO")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        env["TRTSERVE_HEALTH_PORT"] = str(probe.getsockname()[1])
    with OPERATOR_LOG.open("wb") as log:
        operator = subprocess.Popen(
            [sys.executable, "-m", "trtserve_operator.cli", "run", "-n", cluster.namespace],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    time.sleep(2)
    if operator.poll() is not None:
        raise RuntimeError(f"the operator exited with {operator.returncode} at startup")
    return operator


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (to tell its cost from the server's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_all_deployments(cluster: Cluster, names: list[str], poll: float = 0.05) -> float:
    start = time.monotonic()
    wanted = set(names)
    while not wanted <= cluster.deployment_names():
        await asyncio.sleep(poll)
    return time.monotonic() - start


async def wait_operator_idle(
    cluster: Cluster, pid: int, window: float = 2.0, limit: float = 1800.0
) -> float:
    """Wait until the operator neither writes nor computes for two windows in a row.

    A slow API server (kmock) can delay the operator's first requests by many seconds, so
    "no write for a while" alone would end the wait before the operator even started.
    """
    start = time.monotonic()
    calm = 0
    cpu, writes = cpu_seconds(pid), cluster.write_count()
    while time.monotonic() - start < limit and calm < 2:
        await asyncio.sleep(window)
        now_cpu, now_writes = cpu_seconds(pid), cluster.write_count()
        calm = calm + 1 if now_cpu - cpu < 0.05 and now_writes == writes else 0
        cpu, writes = now_cpu, now_writes
    return time.monotonic() - start


async def benchmark(cluster: Cluster, count: int, idle_seconds: float) -> dict[str, Any]:
    kube = cluster.kube()
    settings = Settings()
    ns = cluster.namespace
    names = [f"bench-{i:04d}" for i in range(count)]
    results: dict[str, Any] = {"mode": cluster.mode, "models": count}

    # 1. Baseline: the children of every model, created directly.
    created = []
    for name in names:
        body = trtmodel(name, ns)
        created.append(await kube.create(body))
    children = [
        obj for body in created for obj in build_children(target_from_body(body), settings).all()
    ]

    async def create(obj: dict[str, Any]) -> None:
        with contextlib.suppress(ConflictError):
            await kube.create(obj)

    start = time.monotonic()
    await bounded([lambda obj=obj: create(obj) for obj in children])
    results["direct_create_children_s"] = round(time.monotonic() - start, 3)
    await cluster.delete_all(kube, names)

    # 2. Restart convergence: the operator starts and finds N TRTModels without children.
    start = time.monotonic()  # includes the operator's process start and kopf's startup
    operator = start_operator(cluster)
    try:
        converge = await wait_all_deployments(cluster, names)
        results["restart_converge_s"] = round(time.monotonic() - start, 3)
        results["operator_cpu_s_restart"] = round(cpu_seconds(operator.pid), 3)
        results["restart_converge_s_after_startup_wait"] = round(converge, 3)
        results["restart_ratio"] = round(
            results["restart_converge_s"] / max(results["direct_create_children_s"], 1e-9), 2
        )
        results["settle_s"] = round(await wait_operator_idle(cluster, operator.pid), 3)
        results["rss_mb"] = round(rss_mb(operator.pid), 1)

        # 3. Idle: no write at all.
        before = cluster.write_count()
        await asyncio.sleep(idle_seconds)
        results["idle_writes"] = cluster.write_count() - before
        results["idle_seconds"] = idle_seconds

        # 4. A new TRTModel -> its Deployment.
        cpu_before = cpu_seconds(operator.pid)
        latencies = []
        for i in range(LATENCY_SAMPLES):
            name = f"lat-{i:04d}"
            start = time.monotonic()
            await kube.create(trtmodel(name, ns))
            await wait_all_deployments(cluster, [name])
            latencies.append(time.monotonic() - start)
            if os.environ.get("BENCH_TRACE"):
                posted = time.time() - latencies[-1]
                print(f"{name} posted at {posted:.3f} seen after {latencies[-1]:.3f}")
        results["operator_cpu_s_per_new_model"] = round(
            (cpu_seconds(operator.pid) - cpu_before) / LATENCY_SAMPLES, 4
        )
        latencies.sort()
        results["create_to_deployment_p50_s"] = round(statistics.median(latencies), 3)
        results["create_to_deployment_p99_s"] = round(
            latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3
        )
        results["rss_mb_end"] = round(rss_mb(operator.pid), 1)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        await kube.close()
    return results


def converged_trtmodel(name: str, namespace: str, settings: Settings) -> dict[str, Any]:
    """A TRTModel as the operator leaves it: status written, kopf's annotations set."""
    body = trtmodel(name, namespace)
    body["metadata"]["uid"] = f"uid-{name}"
    target = target_from_body(body)
    deployment = build_children(target, settings).deployment
    status = compute_status(target, deployment=deployment, pods=[], previous=None, now=utc_now())
    essence = json.dumps({"spec": body["spec"]}, separators=(",", ":"))
    # kopf's own bookkeeping (diff-base and marker), as it writes them after a creation.
    body["metadata"]["annotations"] = {
        "trtserve.io/kopf-managed": "yes",
        "trtserve.io/last-handled-configuration": essence + "\n",
    }
    body["status"] = status_to_wire(status.status)
    return body


async def preloaded_benchmark(cluster: KmockCluster, count: int, idle: float) -> dict[str, Any]:
    """kmock only: N converged TRTModels and their children put straight into the
    emulator's store (the emulator is too slow to create them through the API in useful
    time), then the operator starts: it must write nothing, and its RSS is measured once
    it has resumed every model and gone idle."""
    settings = Settings()
    ns = cluster.namespace
    assert cluster.emulated.emulator is not None
    objects = cluster.emulated.emulator.objects
    plural = {
        "ConfigMap": "v1/configmaps",
        "Service": "v1/services",
        "Deployment": "apps/v1/deployments",
    }
    shared = build_monitoring_configmap(ns)  # the namespace's, created by its first model
    shared["metadata"]["uid"] = "uid-monitoring"
    objects[plural["ConfigMap"], ns, shared["metadata"]["name"]] = shared
    for i in range(count):
        body = converged_trtmodel(f"mem-{i:04d}", ns, settings)
        objects["trtserve.io/v1alpha1/trtmodels", ns, body["metadata"]["name"]] = body
        for child in build_children(target_from_body(body), settings).all():
            child["metadata"]["uid"] = f"uid-{i}-{child['kind']}"
            objects[plural[child["kind"]], ns, child["metadata"]["name"]] = child
    results: dict[str, Any] = {"mode": cluster.mode + " (preloaded store)", "models": count}
    before = cluster.write_count()
    operator = start_operator(cluster)
    try:
        started = time.monotonic()
        while resumed() < count and time.monotonic() - started < 1800:
            await asyncio.sleep(1.0)
        results["resumed"] = resumed()
        await wait_operator_idle(cluster, operator.pid)
        results["restart_writes"] = cluster.write_count() - before
        if os.environ.get("BENCH_TRACE") and isinstance(cluster, KmockCluster):
            for request in cluster.emulated.writes()[before:][:10]:
                print("write:", request.method, request.url, request.data)
        results["restart_idle_after_s"] = round(time.monotonic() - started, 1)
        results["restart_rss_mb"] = round(rss_mb(operator.pid), 1)
        results["restart_operator_cpu_s"] = round(cpu_seconds(operator.pid), 2)
        idle_before = cluster.write_count()
        await asyncio.sleep(idle)
        results["idle_writes"] = cluster.write_count() - idle_before
        results["idle_seconds"] = idle
        results["rss_mb_end"] = round(rss_mb(operator.pid), 1)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    return results


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    return {
        "restart <= 1.5x direct": results["restart_ratio"] <= 1.5,
        "create->Deployment p99 < 0.5 s": results["create_to_deployment_p99_s"] < 0.5,
        "zero idle writes": results["idle_writes"] == 0,
        "RSS < 150 MB": results["rss_mb_end"] < 150,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--kmock", action="store_true", help="in-process kmock emulator")
    where.add_argument("--kubeconfig", action="store_true", help="the current kube context")
    parser.add_argument("-n", "--models", type=int, default=500)
    parser.add_argument("--namespace", default="trtserve-bench")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--preload",
        action="store_true",
        help="kmock only: memory and restart writes with N converged models in the store",
    )
    args = parser.parse_args()

    cluster: Cluster = KmockCluster(args.namespace) if args.kmock else RealCluster(args.namespace)
    cluster.start()
    try:
        if args.preload and isinstance(cluster, KmockCluster):
            results = asyncio.run(preloaded_benchmark(cluster, args.models, args.idle_seconds))
            met = {
                "restart writes == 0": results["restart_writes"] == 0,
                "zero idle writes": results["idle_writes"] == 0,
                "RSS < 150 MB": results["rss_mb_end"] < 150,
            }
        else:
            results = asyncio.run(benchmark(cluster, args.models, args.idle_seconds))
            met = verdicts(results)
        print(yaml.safe_dump({"results": results, "targets_met": met}, sort_keys=False), flush=True)
    finally:
        try:
            cluster.stop()
        except TimeoutError:
            print("(the emulator did not stop within 30 s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
