"""The adapter's informer (list, then watch) against a fake API server with
resourceVersion semantics (tests/operator/watch_server.py; kmock has none): paginated
lists, watching from the list's resourceVersion, bookmarks, server-side time-outs,
dropped connections, 410 Gone and expired continue tokens (list again, changes and
deletions missed meanwhile reported), errors with backoff, the readiness barrier, and
callbacks only when a projection changed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import kopf
import pytest
from watch_server import MANAGED_LABELS, FakeWatchServer, serving, status

from trtserve_operator.cli import CRD_MISSING, build_projectors, cleanup, informers_probe, startup
from trtserve_operator.handlers.view import CacheView
from trtserve_operator.kube.cache import ObjectCache
from trtserve_operator.kube.client import CONNECTIONS, Kube
from trtserve_operator.kube.credentials import Credentials
from trtserve_operator.kube.projections import PodProjector, child_projector
from trtserve_operator.kube.resources import DEPLOYMENTS, PODS
from trtserve_operator.kube.watch import Informer

SELECTOR = "app.kubernetes.io/managed-by=trtserve-operator"
PATH = "/apis/apps/v1/namespaces/ns/deployments"

Change = tuple[str, str, Any, Any, Any]


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def __call__(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None,
    ) -> None:
        self.changes.append((namespace, name, old, new, group))

    def names(self) -> list[tuple[str, bool, bool]]:
        """(name, had an old projection, has a new one) per change."""
        return [(name, old is not None, new is not None) for _, name, old, new, _ in self.changes]


async def until(probe: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def spec(image: str = "serving:1") -> dict[str, Any]:
    return {"replicas": 1, "template": {"spec": {"containers": [{"name": "s", "image": image}]}}}


@asynccontextmanager
async def informing(
    server: FakeWatchServer, **options: Any
) -> AsyncIterator[tuple[Informer, ObjectCache, Recorder]]:
    kube = Kube.from_url(server.url)
    cache = ObjectCache("Deployment")
    recorder = Recorder()
    informer = Informer(
        kube,
        options.pop("projector", child_projector(DEPLOYMENTS)),
        options.pop("cache", cache),
        selector=SELECTOR,
        namespaces=("ns",),
        on_change=recorder,
        backoff=(0.01, 0.05),
        **options,
    )
    informer.start()
    try:
        yield informer, informer.cache, recorder
    finally:
        await informer.stop()
        await kube.close()


def run(scenario: Callable[[FakeWatchServer], Awaitable[None]], path: str = PATH) -> None:
    async def main() -> None:
        async with FakeWatchServer(path).running() as server:
            await scenario(server)

    asyncio.run(main())


def test_lists_in_pages_then_watches_from_the_lists_resource_version() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        for i in range(5):
            await server.put(f"d{i}", spec=spec(), status={"replicas": 1, "conditions": [{}]})
        listed_at = str(server.version)
        async with informing(server, page_size=2) as (informer, cache, recorder):
            await asyncio.wait_for(informer.wait_ready(), 5)
            assert cache.ready
            assert len(cache) == 5
            assert [q.get("continue", "") != "" for q in server.lists()] == [False, True, True]
            assert all(q["limit"] == "2" and q["labelSelector"] == SELECTOR for q in server.lists())
            watch = await until(server.watches, "a watch")
            assert watch[0]["resourceVersion"] == listed_at
            assert watch[0]["allowWatchBookmarks"] == "true"
            assert watch[0]["labelSelector"] == SELECTOR
            assert int(watch[0]["timeoutSeconds"]) > 0
            projected = cache.get("ns", "d3")
            assert projected is not None
            assert projected["kind"] == "Deployment"
            assert projected["apiVersion"] == "apps/v1"
            assert projected["spec"] == spec()
            assert projected["status"] == {"replicas": 1}  # replica counts only
            assert "resourceVersion" not in projected["metadata"]
            assert recorder.changes == []  # the first listing reports nothing

    run(scenario)


def test_events_update_the_cache_and_report_only_changed_projections() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        await server.put("d0", spec=spec())
        async with informing(server) as (informer, cache, recorder):
            await informer.wait_ready()
            await until(server.watches, "a watch")
            await server.put("d1", spec=spec())  # ADDED
            await server.put("d0", spec=spec("serving:2"))  # MODIFIED
            # Only managedFields and conditions: nothing the operator reads.
            await server.put(
                "d0", spec=spec("serving:2"),
                metadata={"managedFields": [{"manager": "kubectl"}]},
                status={"conditions": [{"type": "Available"}]},
            )  # fmt: skip
            await server.put("d0", spec=spec("serving:2"), status={"readyReplicas": 1})
            await server.delete("d1")  # DELETED
            await until(lambda: len(recorder.changes) == 4, "four changes")
            await asyncio.sleep(0.1)
            assert recorder.names() == [
                ("d1", False, True),
                ("d0", True, True),
                ("d0", True, True),
                ("d1", True, False),
            ]
            assert recorder.changes[2][3]["status"] == {"readyReplicas": 1}
            assert cache.get("ns", "d1") is None
            d0 = cache.get("ns", "d0")
            assert d0 is not None
            assert d0["spec"] == spec("serving:2")
            assert len(server.watches()) == 1

    run(scenario)


def test_a_server_timeout_or_dropped_connection_watches_again_from_the_last_version() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        async with informing(server) as (informer, cache, recorder):
            await informer.wait_ready()
            await until(server.watches, "a watch")
            await server.put("d0", spec=spec())
            await until(lambda: cache.get("ns", "d0"), "d0")
            seen = str(server.version)
            server.drop_after = 1  # the next watch's connection drops after one event
            await server.end_watches()  # the server's timeoutSeconds
            await until(lambda: len(server.watches()) == 2, "a second watch")
            assert server.watches()[1]["resourceVersion"] == seen
            await server.put("d1", spec=spec())
            await until(lambda: len(server.watches()) == 3, "a watch after the drop")
            assert server.watches()[2]["resourceVersion"] == str(server.version)
            await server.put("d2", spec=spec())
            await until(lambda: cache.get("ns", "d2"), "d2")
            assert len(server.lists()) == 1, "nothing listed again"
            assert [name for name, *_ in recorder.names()] == ["d0", "d1", "d2"]

    run(scenario)


def test_bookmarks_move_the_resource_version_on() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        async with informing(server) as (informer, _, recorder):
            await informer.wait_ready()
            await until(server.watches, "a watch")
            await server.bookmark()
            bookmarked = str(server.version)
            await asyncio.sleep(0.1)
            await server.end_watches()
            await until(lambda: len(server.watches()) == 2, "a second watch")
            assert server.watches()[1]["resourceVersion"] == bookmarked
            assert recorder.changes == []

    run(scenario)


@pytest.mark.parametrize("how", ["error event", "http"])
def test_gone_lists_again_and_reports_what_changed_meanwhile(how: str) -> None:
    async def scenario(server: FakeWatchServer) -> None:
        for name in ("keep", "change", "drop"):
            await server.put(name, spec=spec())
        async with informing(server) as (informer, cache, recorder):
            await informer.wait_ready()
            await until(server.watches, "a watch")
            # While the watch is away, the history it would need is compacted.
            await server.end_watches()
            if how == "http":
                server.watch_faults.append(410)
            server.put_quietly("change", spec=spec("serving:2"))
            server.delete_quietly("drop")
            server.put_quietly("new", spec=spec())
            server.compact()
            await until(lambda: len(server.lists()) == 2, "a second listing")
            await until(lambda: len(recorder.changes) == 3, "three changes")
            assert sorted(recorder.names()) == [
                ("change", True, True),
                ("drop", True, False),
                ("new", False, True),
            ]
            assert sorted(key[1] for key in cache) == ["change", "keep", "new"]
            watch = await until(
                lambda: [
                    q for q in server.watches() if int(q["resourceVersion"]) >= server.compacted
                ],
                "a watch from the new listing",
            )
            assert watch[0]["resourceVersion"] == str(server.version)

    run(scenario)


def test_an_expired_continue_token_lists_from_the_start() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        for i in range(4):
            await server.put(f"d{i}", spec=spec())
        server.expire_continues = 1
        async with informing(server, page_size=2) as (informer, cache, _):
            await asyncio.wait_for(informer.wait_ready(), 5)
            assert len(cache) == 4
            firsts = [not q.get("continue") for q in server.lists()]
            assert firsts == [True, False, True, False], firsts

    run(scenario)


def test_errors_back_off_and_the_barrier_waits_for_the_first_listing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(server: FakeWatchServer) -> None:
        await server.put("d0", spec=spec())
        server.list_faults.extend([503, 403])
        with caplog.at_level(logging.WARNING, logger="trtserve_operator.kube.watch"):
            async with informing(server) as (informer, cache, _):
                await asyncio.wait_for(informer.wait_ready(), 5)
                assert len(server.lists()) == 3
                assert cache.get("ns", "d0") is not None
                # A watch that fails keeps its resourceVersion: no listing, watch again.
                await until(server.watches, "a watch")
                server.watch_faults.append(500)
                await server.end_watches()
                await until(lambda: len(server.watches()) == 3, "a watch after the 500")
                assert len(server.lists()) == 3
        messages = [r.getMessage() for r in caplog.records]
        assert any("503" in m for m in messages)
        assert any("403" in m for m in messages)
        assert any(r.levelno == logging.ERROR and "403" in r.getMessage() for r in caplog.records)

    run(scenario)


def test_wait_ready_blocks_until_the_listing_is_in() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        server.list_faults.extend([500] * 3)
        async with informing(server) as (informer, cache, _):
            waiter = asyncio.ensure_future(informer.wait_ready())
            await until(lambda: len(server.lists()) >= 2, "two failed listings")
            assert not waiter.done()
            assert not cache.ready
            await asyncio.wait_for(waiter, 5)
            assert cache.ready

    run(scenario)


def test_an_error_event_other_than_gone_lists_again_after_a_backoff() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        async with informing(server) as (informer, cache, _):
            await informer.wait_ready()
            await until(server.watches, "a watch")
            server.error_events.append(status(500, "InternalError", "etcd is unhappy"))
            await server.end_watches()
            await until(lambda: len(server.lists()) == 2, "a second listing")
            await server.put("d0", spec=spec())
            await until(lambda: cache.get("ns", "d0"), "d0 after the error")

    run(scenario)


PODS_PATH = "/api/v1/namespaces/ns/pods"


def test_pods_are_grouped_by_instance_and_projected() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        server.kind, server.api_version = "Pod", "v1"
        labels = {**MANAGED_LABELS, "app.kubernetes.io/instance": "m"}
        pod_status = {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/3 nodes", "lastTransitionTime": "t"},
                           {"type": "Initialized", "status": "False"}],
            "initContainerStatuses": [{"name": "convert", "state": {"running": {}},
                                       "lastState": {}, "imageID": "sha"},
                                      {"name": "other", "state": {}}],
        }  # fmt: skip
        await server.put(
            "m-1",
            metadata={"labels": labels, "annotations": {"trtserve.io/config-hash": "h", "x": "y"}},
            spec={"containers": [{"name": "serving", "image": "i" * 1000}]},
            status=pod_status,
        )
        projector = PodProjector(
            PODS,
            group_label="app.kubernetes.io/instance",
            annotations=("trtserve.io/config-hash",),
            init_containers=("convert",),
        )
        cache = ObjectCache("Pod", group_label="app.kubernetes.io/instance")
        async with informing(server, projector=projector, cache=cache) as (informer, _, rec):
            await informer.wait_ready()
            assert cache.group("ns", "m") == [
                {
                    "metadata": {"name": "m-1", "annotations": {"trtserve.io/config-hash": "h"},
                                 "deletionTimestamp": None},
                    "status": {
                        "phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "False",
                                        "reason": "Unschedulable", "message": "0/3 nodes"}],
                        "initContainerStatuses": [
                            {"name": "convert", "state": {"running": {}}, "lastState": {}}
                        ],
                    },
                }
            ]  # fmt: skip
            await until(server.watches, "a watch")
            await server.put("m-2", metadata={"labels": labels}, status={"phase": "Running"})
            await server.delete("m-1")
            await until(lambda: len(rec.changes) == 2, "two pod changes")
            assert [(name, group) for _, name, _, _, group in rec.changes] == [
                ("m-2", "m"),
                ("m-1", "m"),
            ]
            assert [p["metadata"]["name"] for p in cache.group("ns", "m")] == ["m-2"]

    run(scenario, PODS_PATH)


def test_nothing_is_converged_before_every_informer_has_listed() -> None:
    """The operator waits for the first listing of every informer before it converges
    anything, so the first TRTModel converge reads complete caches, even when listing
    needs retries; its startup handler does not wait (kopf serves /healthz only after it,
    and the probe says what is still listing). TRTModels are listed without a label
    selector (users' objects carry none of ours), the operator's own kinds with one."""

    async def scenario() -> None:
        trtmodels = FakeWatchServer(
            "/apis/trtserve.io/v1alpha1/namespaces/ns/trtmodels", "TRTModel", "trtserve.io/v1alpha1"
        )
        deployments = FakeWatchServer(PATH)
        services = FakeWatchServer("/api/v1/namespaces/ns/services", "Service", "v1")
        configmaps = FakeWatchServer("/api/v1/namespaces/ns/configmaps", "ConfigMap", "v1")
        pods = FakeWatchServer(PODS_PATH, "Pod", "v1")
        jobs = FakeWatchServer("/apis/batch/v1/namespaces/ns/jobs", "Job", "batch/v1")
        budgets = FakeWatchServer(
            "/apis/policy/v1/namespaces/ns/poddisruptionbudgets", "PodDisruptionBudget", "policy/v1"
        )
        servers = (trtmodels, deployments, services, configmaps, budgets, pods, jobs)
        async with serving(*servers) as url:
            await deployments.put("d0", spec=spec())
            await services.put("d0", spec={"ports": []})
            await configmaps.put("d0-batching", data={"batching.txt": "x"})
            deployments.list_faults.extend([503] * 3)
            trtmodels.list_faults.append(503)
            memo = kopf.Memo(credentials=Credentials.from_url(url), namespaces=("ns",))
            await startup(settings=kopf.OperatorSettings(), memo=memo)
            try:
                converging = memo["converging"]
                assert not converging.done(), "the startup handler waits for no listing"
                assert (await informers_probe(memo=memo))["Deployment"] == "listing"
                await asyncio.wait_for(asyncio.shield(converging), timeout=30)
                assert (await informers_probe(memo=memo))["Deployment"] == 1
                view = memo["view"]
                assert isinstance(view, CacheView)
                assert len(deployments.lists()) == 4
                assert len(trtmodels.lists()) == 2
                assert view.child("Deployment", "ns", "d0") is not None
                assert view.child("Service", "ns", "d0") is not None
                assert view.child("ConfigMap", "ns", "d0-batching") is not None
                assert view.pods("ns", "d0") == []
                assert view.jobs("ns", "d0") == []
                assert all("labelSelector" not in q for q in trtmodels.lists())
                for server in servers[1:-1]:
                    assert all(q["labelSelector"] == SELECTOR for q in server.lists())
                assert jobs.lists()[0]["labelSelector"] == (
                    f"{SELECTOR},app.kubernetes.io/component=benchmark"
                )
            finally:
                await cleanup(memo=memo)

    asyncio.run(scenario())


def test_watch_streams_do_not_take_the_requests_connections() -> None:
    """Each watch holds a connection for minutes: more watches than the requests' pool
    (32 connections) must not make an ordinary request wait."""

    async def scenario(server: FakeWatchServer) -> None:
        await server.put("d0", spec=spec())
        kube = Kube.from_url(server.url)
        timeout = aiohttp.ClientTimeout(total=None)

        async def watches_then_a_get() -> dict[str, Any]:
            async with contextlib.AsyncExitStack() as streams:
                for _ in range(CONNECTIONS + 2):
                    await streams.enter_async_context(
                        kube.stream(f"{PATH}?watch=true&resourceVersion=0", timeout=timeout)
                    )
                return await kube.get(DEPLOYMENTS, "ns", "d0")

        try:
            got = await asyncio.wait_for(watches_then_a_get(), 10)
            assert got["metadata"]["name"] == "d0"
        finally:
            await kube.close()

    run(scenario)


def test_an_unreadable_event_lists_again() -> None:
    async def scenario(server: FakeWatchServer) -> None:
        async with informing(server) as (informer, cache, _):
            await informer.wait_ready()
            await until(server.watches, "a watch")
            # A Deployment whose generation is not a number: no projection can be made.
            await server.put("bad", spec=spec(), metadata={"generation": "x"})
            await until(lambda: len(server.lists()) == 2, "a second listing")
            assert cache.get("ns", "bad") is None

    run(scenario)


def test_the_health_probe_fails_once_an_informer_loop_has_ended() -> None:
    """kopf's /healthz includes the informers: it reports what each caches, keeps passing
    while the API server refuses (the loop retries; a restart would not help), and fails
    when a loop has ended, which would leave the operator converging nothing more."""

    async def scenario(server: FakeWatchServer) -> None:
        await server.put("d0", spec=spec())
        async with informing(server) as (informer, _, _):
            await informer.wait_ready()
            memo = kopf.Memo(informers=[informer])
            assert await informers_probe(memo=memo) == {"Deployment": 1}
            server.list_faults.extend([503] * 50)
            await server.end_watches()
            await asyncio.sleep(0.1)
            assert await informers_probe(memo=memo) == {"Deployment": 1}
            informer._tasks[0].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await informer._tasks[0]
            with pytest.raises(kopf.PermanentError, match="Deployment"):
                await informers_probe(memo=memo)

    run(scenario)


def test_a_missing_crd_is_logged_with_what_to_do_and_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the TRTModel CRD the API server answers 404 to the listing: the informer
    says how to install it at every retry, and keeps retrying (the startup waits)."""

    async def scenario() -> None:
        async with serving() as url:
            kube = Kube.from_url(url)
            informer = Informer(
                kube,
                build_projectors()["TRTModel"],
                ObjectCache("TRTModel"),
                selector="",
                namespaces=("ns",),
                missing=CRD_MISSING,
                backoff=(0.01, 0.02),
            )
            informer.start()
            try:
                await until(lambda: len(caplog.records) >= 2, "two retries")
                assert informer.running
                assert not informer.cache.ready
            finally:
                await informer.stop()
                await kube.close()

    with caplog.at_level(logging.ERROR, logger="trtserve_operator.kube.watch"):
        asyncio.run(scenario())
    message = caplog.records[0].getMessage()
    assert "trtmodels in ns" in message, message
    assert "404" in message, message
    assert "`trtserve-operator crd | kubectl apply -f -`" in message
