"""A kmock KubernetesEmulator in a background thread, and the operator run against it.

kopf's ``KopfRunner`` runs the operator in its own thread and event loop, so the emulator
gets one too; the test talks to it over HTTP like any client. The emulator stores objects
and streams watch events; it does not emulate resourceVersion, garbage collection, the
status split, label selectors, schema validation or PUT, so the tests never rely on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp.web
import httpx2
import kmock
import yaml
from kopf.testing import KopfRunner

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
TEST_CLIENT_AGENT = "trtserve-tests"
VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create", "DELETE": "delete"}
MODELS = "/apis/trtserve.io/v1alpha1/namespaces/{ns}/trtmodels"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
SERVICES = "/api/v1/namespaces/{ns}/services"
CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
PODS = "/api/v1/namespaces/{ns}/pods"
EVENTS = "/api/v1/namespaces/{ns}/events"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PDBS = "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"


class UidAssigningEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """The emulator plus the API server's ``metadata.uid`` on create, and a request log
    that does not slow it down.

    kopf keys its indexes by (namespace, name, uid); without uids a Service and a
    Deployment of the same name would evict each other from the indexes.

    kmock matches every new request against its whole request history (each reaction's
    filter is a view over all requests), so a request costs time proportional to the
    requests before it: after ~10,000 requests the emulator needs seconds per request and
    the operator's requests time out. The log is therefore kept here (:attr:`recorded`,
    every request in arrival order) and each request leaves kmock's own history once it
    is answered; the reactions used here (the emulator's fallbacks) only look at the
    request itself, so nothing else changes.
    """

    recorded: list[Any]
    refusals: dict[tuple[str, str], dict[str, Any]]

    def refuse(self, plural: str, name: str, status: dict[str, Any]) -> None:
        """Answer creates and patches of ``plural``/``name`` with ``status`` (a
        ``kind: Status`` body, e.g. the API server's 422 Invalid), as a real API server
        does when its validation rejects an object; the emulator validates nothing."""
        if not hasattr(self, "refusals"):
            self.refusals = {}
        self.refusals[(plural, name)] = status

    def _refusal(self, request: Any) -> dict[str, Any] | None:
        refusals = getattr(self, "refusals", {})
        action = str(request.action).split(".")[-1].upper()
        if not refusals or request.resource is None or action not in ("CREATE", "UPDATE"):
            return None
        data = request.data if isinstance(request.data, dict) else {}
        name = request.name or data.get("metadata", {}).get("name")
        return refusals.get((request.resource.plural, name))

    async def _handle(self, request: Any) -> Any:
        if not hasattr(self, "recorded"):
            self.recorded = []
        self.recorded.append(request)
        refusal = self._refusal(request)
        if refusal is not None:
            self._requests.remove(request)
            return aiohttp.web.json_response(refusal, status=int(refusal["code"]))
        if str(request.action).endswith("CREATE") and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
        try:
            return await super()._handle(request)
        finally:
            history = self._requests
            for index in range(len(history) - 1, -1, -1):
                if history[index] is request:
                    del history[index]
                    break


class EmulatedCluster:
    """The emulator, its URL, and a plain HTTP client for the test's own requests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack: Any = None
        self.emulator: kmock.KubernetesEmulator | None = None
        self.url = ""
        self.http: httpx2.Client | None = None

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        emulator = UidAssigningEmulator()
        server = kmock.Server(emulator)
        await emulator.__aenter__()
        await server.__aenter__()
        info = kmock.ResourceInfo
        verbs = {"get", "list", "watch", "create", "patch", "delete"}
        emulator.resources["trtserve.io/v1alpha1/trtmodels"] = info(
            kind="TRTModel",
            singular="trtmodel",
            namespaced=True,
            verbs=verbs,
            subresources={"status"},
        )
        emulator.resources["apps/v1/deployments"] = info(
            kind="Deployment", namespaced=True, verbs=verbs, subresources={"status", "scale"}
        )
        emulator.resources["batch/v1/jobs"] = info(
            kind="Job", namespaced=True, verbs=verbs, subresources={"status"}
        )
        emulator.resources["policy/v1/poddisruptionbudgets"] = info(
            kind="PodDisruptionBudget", namespaced=True, verbs=verbs, subresources={"status"}
        )
        # kopf's backbone waits for these two in discovery (never listed: scanning is off).
        emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
            kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch"}
        )
        emulator.resources["v1/namespaces"] = info(
            kind="Namespace", namespaced=False, verbs={"list", "watch"}
        )
        for plural, kind in (
            ("services", "Service"),
            ("configmaps", "ConfigMap"),
            ("pods", "Pod"),
            ("events", "Event"),
        ):
            emulator.resources[f"v1/{plural}"] = info(kind=kind, namespaced=True, verbs=verbs)
        self.emulator = emulator
        self._stack = (server, emulator)
        self.url = str(server.url).rstrip("/")

    async def _stop(self) -> None:
        server, emulator = self._stack
        await server.__aexit__(None, None, None)
        await emulator.__aexit__(None, None, None)

    def start(self) -> None:
        self._thread.start()
        self._run(self._start())
        self.http = httpx2.Client(
            base_url=self.url, timeout=10, headers={"User-Agent": TEST_CLIENT_AGENT}
        )

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # --- requests as the emulator recorded them -----------------------------------------

    def requests(self) -> list[Any]:
        """Every request the emulator received, in order."""
        assert self.emulator is not None
        return list(getattr(self.emulator, "recorded", []))

    def operator_requests(self, since: int = 0) -> list[Any]:
        """Requests made by the operator (kopf and the adapter), not by the test itself."""
        return [
            r for r in self.requests()[since:] if r.headers.get("User-Agent") != TEST_CLIENT_AGENT
        ]

    def writes(self, since: int = 0) -> list[Any]:
        """The operator's write requests."""
        return [r for r in self.operator_requests(since) if method_of(r) in WRITE_METHODS]

    # --- the test's own client -----------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """One request of the test's own; when the emulator does not answer in time, every
        thread's stack goes to stderr (shown with the failure) before the error."""
        assert self.http is not None
        try:
            return self.http.request(method, path, **kwargs)
        except httpx2.TimeoutException:
            dump_threads(f"the emulator did not answer {method} {path}")
            raise

    def get(self, path: str) -> dict[str, Any] | None:
        response = self._send("GET", path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send("POST", path, json=body)
        response.raise_for_status()
        return dict(response.json())

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )
        response.raise_for_status()
        return dict(response.json())

    def delete(self, path: str) -> None:
        self._send("DELETE", path).raise_for_status()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "kmock", "user": {"token": "kmock"}}],
                    "contexts": [
                        {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}
                    ],
                    "current-context": "kmock",
                }
            )
        )
        return path


def invalid_status(kind: str, name: str, field: str, detail: str) -> dict[str, Any]:
    """The ``Status`` body a real API server answers an invalid object with (422)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{kind} "{name}" is invalid: {field}: {detail}',
        "reason": "Invalid",
        "details": {"name": name, "kind": kind.split(".", maxsplit=1)[0].lower() + "s"},
        "code": 422,
    }


def writes_about(cluster: EmulatedCluster, name: str, since: int = 0) -> list[str]:
    """``METHOD resource[/subresource]`` of every operator write about TRTModel ``name``:
    its status, metadata, children (named ``name`` or ``name-...``) and Events."""
    found = []
    for request in cluster.writes(since):
        data = request.data if isinstance(request.data, dict) else {}
        target = request.name or data.get("metadata", {}).get("name") or ""
        involved = data.get("involvedObject", {}).get("name")
        if target == name or target.startswith(f"{name}-") or involved == name:
            resource = request.resource.plural if request.resource is not None else "?"
            if request.subresource:
                resource += f"/{request.subresource}"
            found.append(f"{method_of(request)} {resource}")
    return found


def operator_metrics() -> dict[str, int]:
    """The running operator's /metrics samples (``TRTSERVE_METRICS_PORT``); empty while
    it is not serving yet."""
    port = os.environ["TRTSERVE_METRICS_PORT"]
    try:
        text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx2.TransportError:
        return {}
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] not in ("#", ""))
    return {sample: int(float(value)) for sample, value in samples}


def method_of(request: Any) -> str:
    return str(request.method).split(".")[-1].upper()


def permission_of(request: Any) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) a request needs; ``None`` for discovery."""
    resource = request.resource
    if resource is None or not resource.plural or request.action is None:
        return None
    action = str(request.action).split(".")[-1].upper()
    if action == "UPDATE":
        verb = "patch" if method_of(request) == "PATCH" else "update"
    else:
        verb = VERBS[action]
    plural = f"{resource.plural}/{request.subresource}" if request.subresource else resource.plural
    return (resource.group or "", plural, verb)


def wait_for(
    probe: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or probe}: last={last!r}")


def settle(cluster: EmulatedCluster, *, quiet: float = 1.0, timeout: float = 15.0) -> None:
    """Wait until no request reached the emulator for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    count = len(cluster.requests())
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = len(cluster.requests())
        if now != count:
            count, calm_since = now, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
    raise AssertionError("the operator never went quiet")


def dump_threads(why: str) -> None:
    """Every thread's Python stack on stderr: what the operator's and the emulator's threads
    were doing when something did not answer or did not stop."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = [f"--- {why}: the stacks of all {len(names)} threads ---"]
    for ident, frame in sys._current_frames().items():
        lines.append(f"thread {names.get(ident, '?')} ({ident}):")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame))
    lines.append("held logging handler locks (a thread waiting in Handler.acquire waits on one):")
    lines.extend(held_handler_locks())
    # sys.__stderr__: KopfRunner's click runner replaces sys.stderr while the operator runs
    print("\n".join(lines), file=sys.__stderr__, flush=True)


def held_handler_locks() -> list[str]:
    """Every logging handler whose lock is held, with the lock (its owner thread's id)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            lock = handler.lock
            if lock is not None and repr(lock).startswith("<locked"):
                found.append(f"  {getattr(logger, 'name', '?')}: {handler!r} {lock!r}")
    return found


@contextmanager
def operator_running(*extra: str, timeout: float = 30) -> Iterator[KopfRunner]:
    """The operator as ``trtserve-operator run`` starts it (kopf, standalone, all namespaces).

    KopfRunner's thread is made a daemon before it starts: an operator that does not stop
    fails its test (KopfRunner raises after ``timeout``) but cannot keep the test process
    alive after the session, where it would hang CI until its time limit."""
    args = ["run", "--standalone", "--all-namespaces", "-m", "trtserve_operator.cli", *extra]
    runner = KopfRunner(args, timeout=timeout)
    runner._thread.daemon = True  # not started yet (private: kopf offers no option)
    try:
        with runner:
            yield runner
    except Exception as error:
        if runner._thread.is_alive():
            dump_threads(f"the operator did not stop ({error})")
        raise


def trtmodel(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "trtserve.io/v1alpha1",
        "kind": "TRTModel",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
        },
        "spec": {"source": {"uri": "s3://models/resnet50"}, **spec},
    }
    return body


def template_pod(
    deployment: dict[str, Any], name: str, namespace: str, status: dict[str, Any]
) -> dict[str, Any]:
    """A Pod of ``deployment``'s template with ``status``, as the ReplicaSet controller
    creates it and a kubelet reports it (the emulator runs neither)."""
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": template["spec"],
        "status": status,
    }


def report_serving(cluster: EmulatedCluster, namespace: str, name: str, replicas: int = 1) -> None:
    """What the kubelet and the Deployment controller report once the serving pods of
    ``name`` are up: ``replicas`` pods of the Deployment's template with ``Ready=True``
    and the converter's exit 0, then the Deployment's counts. The emulator runs no
    controller, so the test writes both."""
    deployment = cluster.get(f"{DEPLOYMENTS.format(ns=namespace)}/{name}")
    assert deployment is not None, f"no Deployment {namespace}/{name}"
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "initContainerStatuses": [
            {"name": "convert", "state": {"terminated": {"exitCode": 0, "message": ""}}}
        ],
    }
    for index in range(replicas):
        pod = template_pod(deployment, f"{name}-serving-{index}", namespace, status)
        cluster.post(PODS.format(ns=namespace), pod)
    counts = {key: replicas for key in ("replicas", "readyReplicas", "availableReplicas")}
    cluster.patch(
        f"{DEPLOYMENTS.format(ns=namespace)}/{name}",
        {"status": {**counts, "updatedReplicas": replicas}},
    )
