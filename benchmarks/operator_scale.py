#!/usr/bin/env python3
"""Operator scale benchmark: restart convergence, create latency, idle writes, memory.

Targets (issues 3 and 10):
  * after a restart, converge N existing TRTModels within 1.5x the time it takes to
    create their children directly (same API server, same client, same concurrency);
  * at most 4 writes per model on that first converge (Deployment, Service,
    PodDisruptionBudget, one status),
    plus one per namespace (its shared ``trtserve-monitoring`` ConfigMap);
  * a new TRTModel gets its Deployment with p99 < 0.5 s;
  * zero write requests while idle;
  * operator RSS < 150 MB with N (default 500) TRTModels;
  * operator CPU seconds per model as low as possible (the number that transfers from
    the emulator to a real API server: profile with --profile).

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

With ``--profile FILE`` the operator runs under ``py-spy record`` (not a runtime
dependency: ``.tools/uv/bin/uv pip install --python .venv py-spy``), non-blocking, and the
speedscope profile is written to FILE when the operator stops.

Usage:
  python benchmarks/operator_scale.py --kmock [-n 500] [--profile op.speedscope.json]
  python benchmarks/operator_scale.py --kubeconfig [-n 500] [--namespace trtserve-bench]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
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

CONCURRENCY = 8
"""Concurrent requests of the direct creation (the floor): issue 10 measured its floor with
8 concurrent clients."""
OPERATOR_LOG = Path(
    os.environ.get("BENCH_OPERATOR_LOG")
    or Path(tempfile.gettempdir()) / "trtserve-bench-operator.log"
)
LATENCY_SAMPLES = 50
WRITES_PER_NAMESPACE = 1
"""The namespace's ``trtserve-monitoring`` ConfigMap, created by its first model's converge
(every benchmark mode uses one namespace)."""
WRITE_METRICS = (
    "trtserve_child_actions_total",
    "trtserve_status_writes_total",
    "trtserve_events_total",
)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "resnet50-fp16-s3.yaml"


def example_spec() -> dict[str, Any]:
    """The spec of examples/resnet50-fp16-s3.yaml (the model issue 10 measured with)."""
    with EXAMPLE.open(encoding="utf-8") as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc]
    (model,) = [doc for doc in documents if doc.get("kind") == "TRTModel"]
    spec: dict[str, Any] = model["spec"]
    return spec


SPEC: dict[str, Any] = {"source": {"uri": "s3://bench/model"}, "serving": {"replicas": 0}}


def trtmodel(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "trtserve.io/v1alpha1",
        "kind": "TRTModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": json.loads(json.dumps(SPEC)),
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

    def write_mark(self) -> Any:
        """A point in the write history, for :meth:`writes_by_kind`."""
        raise NotImplementedError

    def writes_by_kind(self, mark: Any) -> dict[str, int]:
        """Writes since ``mark`` by what was written (e.g. ``POST deployments``)."""
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

    def write_mark(self) -> int:
        return len(self.emulated.requests())

    def writes_by_kind(self, mark: int) -> dict[str, int]:
        """The operator's write requests as the emulator received them (kopf's included)."""
        counts: dict[str, int] = {}
        for request in self.emulated.writes(since=mark):
            resource = request.resource
            plural = resource.plural if resource is not None else "?"
            if request.subresource:
                plural += f"/{request.subresource}"
            key = f"{str(request.method).split('.')[-1].upper()} {plural}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def deployment_names(self) -> set[str]:
        # Read the emulator's store directly: its HTTP GET costs ~40 ms and would slow
        # the operator under test.
        assert self.emulated.emulator is not None
        objects = self.emulated.emulator.objects
        while True:
            try:
                items = list(objects.items())
            except RuntimeError:  # the emulator's thread added an object meanwhile
                continue
            return {
                name
                for (resource, namespace, name), obj in items
                if resource.plural == "deployments"
                and namespace == self.namespace
                and not obj.deleted
            }

    async def delete_all(self, kube: Kube, names: list[str]) -> None:
        assert self.emulated.http is not None
        for kind, path in (
            ("deployments", f"/apis/apps/v1/namespaces/{self.namespace}/deployments"),
            ("services", f"/api/v1/namespaces/{self.namespace}/services"),
            ("configmaps", f"/api/v1/namespaces/{self.namespace}/configmaps"),
            (
                "poddisruptionbudgets",
                f"/apis/policy/v1/namespaces/{self.namespace}/poddisruptionbudgets",
            ),
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
        self._by_kind: dict[str, int] = {}
        self._stop = threading.Event()
        self._watchers = [
            threading.Thread(target=self._count, args=(kind,), daemon=True)
            for kind in (
                "trtmodels",
                "deployments",
                "services",
                "configmaps",
                "poddisruptionbudgets",
                "events",
            )
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
            self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
            if self._stop.is_set():
                break
        process.kill()

    def write_count(self) -> int:
        return self._writes

    def write_mark(self) -> dict[str, int]:
        return dict(self._by_kind)

    def writes_by_kind(self, mark: dict[str, int]) -> dict[str, int]:
        """Watch events per kind in the namespace: every write by anyone (the Deployment
        controller's status updates included; the operator's own count is in
        ``operator_writes``)."""
        return {
            kind: count - mark.get(kind, 0)
            for kind, count in sorted(self._by_kind.items())
            if count - mark.get(kind, 0)
        }

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
        for kind in ("deployments", "services", "configmaps", "poddisruptionbudgets"):
            subprocess.run(
                ["kubectl", "delete", kind, "-n", self.namespace, "--all", "--wait=false"],
                check=False,
                capture_output=True,
            )


class Operator:
    """``trtserve-operator run -n <namespace>`` as a child process, optionally profiled."""

    def __init__(self, namespace: str, profile: Path | None = None, *, election: bool) -> None:
        env = dict(os.environ)
        env["TRTSERVE_LOG_LEVEL"] = os.environ.get("BENCH_OPERATOR_LOG_LEVEL", "INFO")
        # A real API server holds the leader Lease in the benchmark's namespace; kmock has
        # no PUT or resourceVersion, so there the operator runs as the only replica.
        env["TRTSERVE_LEADER_ELECTION"] = "true" if election else "false"
        env["TRTSERVE_LEADER_ELECTION_NAMESPACE"] = namespace
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            env["TRTSERVE_HEALTH_PORT"] = str(probe.getsockname()[1])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.metrics_port = probe.getsockname()[1]
            env["TRTSERVE_METRICS_PORT"] = str(self.metrics_port)
        command = [sys.executable, "-m", "trtserve_operator.cli", "run", "-n", namespace]
        if profile is not None:
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            rate = os.environ.get("BENCH_PYSPY_RATE", "100")
            command = [
                spy, "record", "--nonblocking", "--rate", rate, "--format", "speedscope",
                "-o", str(profile), "--", *command,
            ]  # fmt: skip
        with OPERATOR_LOG.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        if profile is not None:
            self.pid = self._child_pid()
        time.sleep(2)
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.process.returncode} at startup")

    def _child_pid(self) -> int:
        """The Python process py-spy started (its only child)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = children.read_text().split() if children.exists() else []
            if found:
                return int(found[0])
            time.sleep(0.05)
        raise RuntimeError("py-spy did not start the operator")

    def metrics(self) -> dict[str, int]:
        """The samples of the operator's /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples = (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] not in "#")
        return {sample: int(float(value)) for sample, value in samples}

    def writes(self) -> dict[str, int]:
        """The operator's own count of its writes (its /metrics): creates and patches of
        children, status patches, events. Works against any API server."""
        return {
            sample: value
            for sample, value in self.metrics().items()
            if sample.startswith(WRITE_METRICS) and 'action="noop"' not in sample
        }

    def stop(self) -> None:
        """SIGTERM to the operator (kopf exits cleanly; py-spy then writes its profile)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        self.process.wait(timeout=60)


def start_operator(cluster: Cluster, profile: Path | None = None) -> Operator:
    return Operator(cluster.namespace, profile, election=isinstance(cluster, RealCluster))


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


async def startup_cpu(cluster: Cluster) -> float:
    """CPU seconds of an operator that starts with nothing to do, until it is idle: the
    fixed cost (imports, kopf's startup) to subtract from a converge's CPU."""
    empty = Cluster(f"{cluster.namespace}-empty")
    operator = Operator(empty.namespace, election=isinstance(cluster, RealCluster))
    try:
        await wait_operator_idle(cluster, operator.pid)
        return cpu_seconds(operator.pid)
    finally:
        operator.stop()


async def direct_floor(cluster: Cluster, kube: Kube, names: list[str]) -> dict[str, Any]:
    """The floor: every model's children created directly (then deleted again)."""
    settings = Settings()
    created = [await kube.create(trtmodel(name, cluster.namespace)) for name in names]
    children = [
        obj for body in created for obj in build_children(target_from_body(body), settings).all()
    ]

    async def create(obj: dict[str, Any]) -> None:
        with contextlib.suppress(ConflictError):
            await kube.create(obj)

    start = time.monotonic()
    await bounded([functools.partial(create, obj) for obj in children])
    elapsed = time.monotonic() - start
    await cluster.delete_all(kube, names)
    return {
        "direct_create_children_s": round(elapsed, 3),
        "direct_children_per_model": len(children) / len(names),
    }


async def restart(
    cluster: Cluster, operator: Operator, names: list[str], started: float, mark: Any
) -> dict[str, Any]:
    """The operator (started at ``started``) converges N TRTModels that have no children."""
    results: dict[str, Any] = {}
    count = len(names)
    converge = await wait_all_deployments(cluster, names)
    results["restart_converge_s"] = round(time.monotonic() - started, 3)
    results["operator_cpu_s_restart"] = round(cpu_seconds(operator.pid), 3)
    results["restart_converge_s_after_startup_wait"] = round(converge, 3)
    results["settle_s"] = round(await wait_operator_idle(cluster, operator.pid), 3)
    settled_cpu = cpu_seconds(operator.pid)
    results["operator_cpu_s_settled"] = round(settled_cpu, 3)
    by_kind = cluster.writes_by_kind(mark)
    results["restart_writes"] = by_kind
    results["restart_writes_per_model"] = round(sum(by_kind.values()) / count, 2)
    own = operator.writes()
    results["operator_writes"] = own
    results["operator_writes_per_model"] = round(sum(own.values()) / count, 2)
    results["rss_mb"] = round(rss_mb(operator.pid), 1)
    return results


async def create_latency(cluster: Cluster, kube: Kube, operator: Operator) -> dict[str, Any]:
    """A new TRTModel -> its Deployment, one at a time."""
    cpu_before = cpu_seconds(operator.pid)
    latencies = []
    for i in range(LATENCY_SAMPLES):
        name = f"lat-{i:04d}"
        start = time.monotonic()
        await kube.create(trtmodel(name, cluster.namespace))
        await wait_all_deployments(cluster, [name])
        latencies.append(time.monotonic() - start)
        if os.environ.get("BENCH_TRACE"):
            posted = time.time() - latencies[-1]
            print(f"{name} posted at {posted:.3f} seen after {latencies[-1]:.3f}")
    latencies.sort()
    return {
        "operator_cpu_s_per_new_model": round(
            (cpu_seconds(operator.pid) - cpu_before) / LATENCY_SAMPLES, 4
        ),
        "create_to_deployment_p50_s": round(statistics.median(latencies), 3),
        "create_to_deployment_p99_s": round(
            latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3
        ),
    }


async def benchmark(
    cluster: Cluster, count: int, idle_seconds: float, profile: Path | None = None
) -> dict[str, Any]:
    kube = cluster.kube()
    names = [f"bench-{i:04d}" for i in range(count)]
    results: dict[str, Any] = {"mode": cluster.mode, "models": count}
    results.update(await direct_floor(cluster, kube, names))
    results["operator_cpu_s_startup_empty"] = round(await startup_cpu(cluster), 3)

    mark = cluster.write_mark()
    started = time.monotonic()  # includes the operator's process start and kopf's startup
    operator = start_operator(cluster, profile)
    try:
        results.update(await restart(cluster, operator, names, started, mark))
        results["restart_ratio"] = round(
            results["restart_converge_s"] / max(results["direct_create_children_s"], 1e-9), 2
        )
        results["operator_cpu_ms_per_model"] = round(
            1000
            * (results["operator_cpu_s_settled"] - results["operator_cpu_s_startup_empty"])
            / count,
            2,
        )
        before = cluster.write_count()
        await asyncio.sleep(idle_seconds)
        results["idle_writes"] = cluster.write_count() - before
        results["idle_seconds"] = idle_seconds
        results.update(await create_latency(cluster, kube, operator))
        results["rss_mb_end"] = round(rss_mb(operator.pid), 1)
    finally:
        operator.stop()
        await kube.close()
    return results


def converged_trtmodel(name: str, namespace: str, settings: Settings) -> dict[str, Any]:
    """A TRTModel as the operator leaves it: status written. The kopf annotations that
    operator versions before issue 10 wrote are there too: they must be ignored (and not
    cleaned up, which would cost a write per model)."""
    body = trtmodel(name, namespace)
    body["metadata"]["uid"] = f"uid-{name}"
    target = target_from_body(body)
    deployment = build_children(target, settings).deployment
    status = compute_status(target, deployment=deployment, pods=[], previous=None, now=utc_now())
    essence = json.dumps({"spec": body["spec"]}, separators=(",", ":"))
    body["metadata"]["annotations"] = {
        "trtserve.io/kopf-managed": "yes",
        "trtserve.io/last-handled-configuration": essence + "\n",
    }
    body["status"] = status_to_wire(status.status)
    return body


def preload(cluster: KmockCluster, names: list[str], *, converged: bool) -> None:
    """Put N TRTModels (converged: with status and children) straight into the
    emulator's store: creating them through its API takes minutes at N=500."""
    settings = Settings()
    ns = cluster.namespace
    assert cluster.emulated.emulator is not None
    objects = cluster.emulated.emulator.objects
    plural = {
        "ConfigMap": "v1/configmaps",
        "Service": "v1/services",
        "Deployment": "apps/v1/deployments",
    }
    if converged:  # the namespace's shared ConfigMap, created by its first model
        shared = build_monitoring_configmap(ns)
        shared["metadata"]["uid"] = "uid-monitoring"
        objects[plural["ConfigMap"], ns, shared["metadata"]["name"]] = shared
    for i, name in enumerate(names):
        if converged:
            body = converged_trtmodel(name, ns, settings)
        else:
            body = trtmodel(name, ns)
            body["metadata"].update(uid=f"uid-{name}", generation=1)
        objects["trtserve.io/v1alpha1/trtmodels", ns, name] = body
        if not converged:
            continue
        for child in build_children(target_from_body(body), settings).all():
            child["metadata"]["uid"] = f"uid-{i}-{child['kind']}"
            objects[plural[child["kind"]], ns, child["metadata"]["name"]] = child


def deployment_checks(operator: Operator) -> int:
    """How often the operator has created or compared a Deployment (at least once per
    model once it has looked at every model)."""
    counts = operator.metrics()
    return sum(
        value
        for sample, value in counts.items()
        if sample.startswith("trtserve_child_actions_total") and 'kind="Deployment"' in sample
    )


async def kmock_first_converge(
    cluster: KmockCluster, count: int, idle: float, profile: Path | None = None
) -> dict[str, Any]:
    """kmock: N TRTModels without children exist when the operator starts (the issue's
    scenario); it creates the children and writes the status. The emulator is far slower
    than a real API server, so the time says little; writes, CPU and RSS transfer."""
    names = [f"bench-{i:04d}" for i in range(count)]
    results: dict[str, Any] = {"mode": cluster.mode + " (first converge)", "models": count}
    results["operator_cpu_s_startup_empty"] = round(await startup_cpu(cluster), 3)
    preload(cluster, names, converged=False)
    mark = cluster.write_mark()
    started = time.monotonic()
    operator = start_operator(cluster, profile)
    kube = cluster.kube()
    try:
        results.update(await restart(cluster, operator, names, started, mark))
        results["operator_cpu_ms_per_model"] = round(
            1000
            * (results["operator_cpu_s_settled"] - results["operator_cpu_s_startup_empty"])
            / count,
            2,
        )
        before = cluster.write_count()
        await asyncio.sleep(idle)
        results["idle_writes"] = cluster.write_count() - before
        results["idle_seconds"] = idle
        results.update(await create_latency(cluster, kube, operator))
        results["rss_mb_end"] = round(rss_mb(operator.pid), 1)
    finally:
        operator.stop()
        await kube.close()
    return results


async def preloaded_benchmark(
    cluster: KmockCluster, count: int, idle: float, profile: Path | None = None
) -> dict[str, Any]:
    """kmock only: N converged TRTModels and their children in the emulator's store, then
    the operator starts: it must write nothing, and its RSS is measured once it has
    looked at every model and gone idle."""
    names = [f"mem-{i:04d}" for i in range(count)]
    preload(cluster, names, converged=True)
    results: dict[str, Any] = {"mode": cluster.mode + " (preloaded store)", "models": count}
    before = cluster.write_count()
    operator = start_operator(cluster, profile)
    try:
        started = time.monotonic()
        while deployment_checks(operator) < count and time.monotonic() - started < 1800:
            await asyncio.sleep(1.0)
        results["deployment_checks"] = deployment_checks(operator)
        await wait_operator_idle(cluster, operator.pid)
        results["restart_writes"] = cluster.write_count() - before
        if os.environ.get("BENCH_TRACE"):
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
        operator.stop()
    return results


WRITES_PER_MODEL = 4
"""A first converge's writes per model: its Deployment, Service, PodDisruptionBudget and
one status (a 0-replica model without batching has no batching ConfigMap)."""


def at_most_4_writes_per_model(results: dict[str, Any], key: str) -> bool:
    """``results[key]`` (writes by kind) is at most 4 per model plus the namespace's one."""
    return sum(results[key].values()) <= WRITES_PER_MODEL * results["models"] + WRITES_PER_NAMESPACE


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    return {
        "restart <= 1.5x direct": results["restart_ratio"] <= 1.5,
        "<= 4 writes per model (+1 per namespace)": at_most_4_writes_per_model(
            results, "operator_writes"
        )
        and at_most_4_writes_per_model(results, "restart_writes"),
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
    parser.add_argument(
        "--profile", type=Path, help="run the operator under py-spy; speedscope JSON here"
    )
    parser.add_argument(
        "--example",
        action="store_true",
        help="TRTModels with the spec of examples/resnet50-fp16-s3.yaml (1 GPU replica) "
        "instead of a 0-replica model",
    )
    args = parser.parse_args()
    if args.example:
        SPEC.clear()
        SPEC.update(example_spec())

    cluster: Cluster = KmockCluster(args.namespace) if args.kmock else RealCluster(args.namespace)
    cluster.start()
    try:
        if isinstance(cluster, KmockCluster) and not args.preload:
            results = asyncio.run(
                kmock_first_converge(cluster, args.models, args.idle_seconds, args.profile)
            )
            met = {
                "<= 4 writes per model (+1 per namespace)": at_most_4_writes_per_model(
                    results, "restart_writes"
                ),
                "create->Deployment p99 < 0.5 s (emulator: smoke only)": results[
                    "create_to_deployment_p99_s"
                ]
                < 0.5,
                "zero idle writes": results["idle_writes"] == 0,
                "RSS < 150 MB": results["rss_mb_end"] < 150,
            }
        elif args.preload and isinstance(cluster, KmockCluster):
            results = asyncio.run(
                preloaded_benchmark(cluster, args.models, args.idle_seconds, args.profile)
            )
            met = {
                "restart writes == 0": results["restart_writes"] == 0,
                "zero idle writes": results["idle_writes"] == 0,
                "RSS < 150 MB": results["rss_mb_end"] < 150,
            }
        else:
            results = asyncio.run(benchmark(cluster, args.models, args.idle_seconds, args.profile))
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
