"""List, then watch, one kind of the operator's objects into an :class:`ObjectCache`.

The adapter's own informer for every kind the operator watches (TRTModels, their
children, pods and benchmark Jobs): every Deployment status update and pod state change of
a real cluster is a watch event, and so is the echo of every status write to a TRTModel;
kopf's fixed per-event path (queueing, a worker per object, body wrapping, handler kwargs,
an index function and an event handler) cost about 1.5-2 ms of CPU each; here an event
costs a msgspec decode into the projection and one comparison (see docs/operator.md, "How
reads work").

The protocol is a client-go reflector's:

1. **List** with the label selector (if any) in pages (``limit``/``continue``); the list's
   ``resourceVersion`` is where the watch starts. The cache is replaced by the listing:
   objects that are gone are reported deleted, changed ones changed.
2. **Watch** from that resourceVersion (``allowWatchBookmarks``, a server-side
   ``timeoutSeconds``); every event moves the resourceVersion on, BOOKMARKs too. When the
   server ends the stream (its time-out) or the connection drops, watch again from the
   last resourceVersion: nothing is missed and nothing is listed again.
3. ``410 Gone`` (as the HTTP answer or an ERROR event: the resourceVersion is older than
   the server keeps) or a continue token that expired: **list again**.

Connection errors and other refusals back off (0.5 s doubling to 30 s, with jitter) and
are logged once per failure; API errors are translated by :func:`.client.translate`. The
first listing sets :attr:`ObjectCache.ready`; :meth:`Informer.wait_ready` is the barrier
the operator waits on before kopf starts any handler (as kopf does for its indexes).

Changes are reported to ``on_change(namespace, name, old, new, group)`` (projections,
``None`` for absent), only when the projection changed: an event that changes nothing the
operator reads (a resourceVersion bump, a field outside the projection) costs no
callback. The first listing reports nothing: nothing has been handled yet, and the
operator converges every TRTModel of the full caches once they are all listed
(:meth:`trtserve_operator.handlers.changes.Changes.start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import msgspec

from trtserve_operator.kube.cache import ObjectCache
from trtserve_operator.kube.client import Kube, translate
from trtserve_operator.kube.credentials import CredentialsError
from trtserve_operator.kube.errors import KubeError, TransientError
from trtserve_operator.kube.projections import Projected, Projector, RawEvent, Status

logger = logging.getLogger(__name__)

ChangeCallback = Callable[
    [str, str, Mapping[str, Any] | None, Mapping[str, Any] | None, str | None], None
]
"""``on_change(namespace, name, old, new, group)``: a cached projection changed (``None``:
absent); ``group`` is the value of the cache's group label (a pod's TRTModel), if any."""

LIST_PAGE = 500
SERVER_TIMEOUT = 300
"""``timeoutSeconds`` of a watch request: the server ends the stream after about that long
(client-go picks 5-10 min); the watch then continues from its resourceVersion."""
READ_MARGIN = 60.0
"""Seconds of silence beyond the server's time-out before the connection counts as dead."""
QUICK_END = 1.0
"""A watch that ends within this many seconds without an event backs off before the next."""
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0


class GoneError(Exception):
    """410: the resourceVersion (or a list's continue token) is too old: list again."""


class ErrorEventError(TransientError):
    """An ERROR event other than 410, or an unreadable event, in a watch stream: back off,
    then list again."""


class Informer:
    """Keeps ``cache`` equal to the objects of ``projector.resource`` that match
    ``selector`` (every object when empty) in ``namespaces`` (all namespaces when
    empty)."""

    def __init__(
        self,
        kube: Kube,
        projector: Projector[Any],
        cache: ObjectCache,
        *,
        selector: str,
        namespaces: Sequence[str] = (),
        on_change: ChangeCallback | None = None,
        missing: str = "",
        server_timeout: int = SERVER_TIMEOUT,
        page_size: int = LIST_PAGE,
        backoff: tuple[float, float] = (BACKOFF_INITIAL, BACKOFF_MAX),
    ) -> None:
        self.kube = kube
        self.projector = projector
        self.cache = cache
        self.selector = selector
        self.namespaces = tuple(namespaces) or ("",)
        self.on_change = on_change
        self.missing = missing
        """What to do when the API server does not know the resource (a 404 listing: a
        CRD not installed), added to the error logged at every retry."""
        self.server_timeout = server_timeout
        self.page_size = page_size
        self.backoff = backoff
        self._ready = asyncio.Event()
        self._listed: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def kind(self) -> str:
        return self.projector.resource.kind

    def start(self) -> None:
        """One list-then-watch loop per namespace (one for all namespaces)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(namespace), name=f"watch {self.kind} {namespace}")
                for namespace in self.namespaces
            ]

    @property
    def running(self) -> bool:
        """Whether every loop started by :meth:`start` is still running (a loop ends only
        when stopped: it retries every error; one that ended otherwise is a defect)."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def wait_ready(self) -> None:
        """Until every namespace's first listing is in the cache."""
        await self._ready.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # --- the loop ----------------------------------------------------------------------

    def _path(self, namespace: str, query: Mapping[str, str]) -> str:
        resource = self.projector.resource
        prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
        scope = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
        return f"{prefix}{scope}/{resource.plural}?{urlencode(query)}"

    def _where(self, namespace: str) -> str:
        scope = f"in {namespace}" if namespace else "in all namespaces"
        selected = f" -l {self.selector}" if self.selector else ""
        return f"{self.projector.resource.plural} {scope}{selected}"

    def _selecting(self, query: dict[str, str]) -> dict[str, str]:
        if self.selector:
            query["labelSelector"] = self.selector
        return query

    async def _run(self, namespace: str) -> None:
        version: str | None = None
        streak = 0  # failures since an event last arrived: the backoff's exponent
        while True:
            try:
                if version is None:
                    version = await self._list(namespace)
                started = asyncio.get_running_loop().time()
                version, progressed = await self._watch(namespace, version)
                if progressed:
                    streak = 0
                    continue
                if asyncio.get_running_loop().time() - started >= QUICK_END:
                    continue  # an idle watch the server ended (its time-out)
                # Ended at once with nothing: a server or proxy closing streams; back off.
                logger.debug("%s: the watch ended at once", self._where(namespace))
            except GoneError:
                logger.debug("Listing %s again: 410 Gone", self._where(namespace))
                version = None
                if streak == 0:  # list again at once; a listing that is Gone again waits
                    streak = 1
                    continue
            except asyncio.CancelledError:
                raise
            except ErrorEventError as error:
                logger.warning("Watching %s: %s", self._where(namespace), error)
                version = None  # the stream's state is unknown: start from a listing
            except KubeError as error:
                log = logger.error if error.code in (401, 403, 404) else logger.warning
                hint = f"; {self.missing}" if error.code == 404 and self.missing else ""
                log("Watching %s: %s%s", self._where(namespace), error, hint)
            except Exception:
                logger.exception("Watching %s failed", self._where(namespace))
                version = None  # whatever happened, start again from a listing
            initial, most = self.backoff
            delay = min(most, initial * 2 ** min(streak, 16))
            streak += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _request(self, path: str, what: str, timeout: aiohttp.ClientTimeout) -> bytes:
        try:
            async with self.kube.stream(path, timeout=timeout) as response:
                if response.status >= 400:
                    body = await response.read()
                    if response.status == 410:
                        raise GoneError(what)
                    raise translate(response.status, body, what)
                return await response.read()
        except CredentialsError as error:
            raise TransientError(f"{what}: {error}") from error
        except (aiohttp.ClientError, OSError) as error:
            raise TransientError(f"{what}: {type(error).__name__}: {error}") from error

    async def _list(self, namespace: str) -> str:
        """List every page, replace the namespace's part of the cache; the list's
        resourceVersion."""
        objects: list[Projected] = []
        token = ""
        version = ""
        what = f"list {self._where(namespace)}"
        while True:
            query = self._selecting({"limit": str(self.page_size)})
            if token:
                query["continue"] = token
            payload = await self._request(self._path(namespace, query), what, LIST_TIMEOUT)
            try:
                page, page_version, token = self.projector.decode_list(payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                raise TransientError(f"{what}: unreadable answer: {error}") from error
            objects += page
            version = page_version or version
            if not token:
                break
        self._replace(namespace, objects)
        return version

    def _replace(self, namespace: str, objects: list[Projected]) -> None:
        first = namespace not in self._listed
        seen: set[tuple[str, str]] = set()
        for obj in objects:
            seen.add((obj.namespace, obj.name))
            self._store(obj, report=not first)
        for key in self.cache:
            if key not in seen and (not namespace or key[0] == namespace):
                self._remove(*key, report=not first)
        self._listed.add(namespace)
        if len(self._listed) == len(self.namespaces):
            self.cache.ready = True
            self._ready.set()

    def _store(self, obj: Projected, *, report: bool = True) -> None:
        previous = self.cache.group_key(obj.namespace, obj.name)
        old = self.cache.put(obj.namespace, obj.name, obj.projection, obj.group)
        if not report or old == obj.projection:
            return
        if previous is not None and previous[1] != obj.group:  # moved to another group
            self._report(obj.namespace, obj.name, old, None, previous[1])
            old = None
        self._report(obj.namespace, obj.name, old, obj.projection, obj.group)

    def _remove(self, namespace: str, name: str, *, report: bool = True) -> None:
        previous = self.cache.group_key(namespace, name)
        old = self.cache.remove(namespace, name)
        if report and old is not None:
            self._report(namespace, name, old, None, previous[1] if previous else None)

    def _report(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None,
    ) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(namespace, name, old, new, group)
        except Exception:
            logger.exception("Handling a change of %s %s/%s failed", self.kind, namespace, name)

    async def _watch(self, namespace: str, version: str) -> tuple[str, bool]:
        """Stream events from ``version`` until the server ends the stream; the last
        resourceVersion seen, and whether any event arrived."""
        query = self._selecting(
            {
                "watch": "true",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.server_timeout),
            }
        )
        if version:
            query["resourceVersion"] = version
        what = f"watch {self._where(namespace)}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=self.server_timeout + READ_MARGIN
        )
        progressed = False
        try:
            async with self.kube.stream(self._path(namespace, query), timeout=timeout) as response:
                if response.status == 410:
                    raise GoneError(what)
                if response.status >= 400:
                    raise translate(response.status, await response.read(), what)
                parts: list[bytes] = []  # of an event that spans chunks
                async for chunk in response.content.iter_any():
                    parts.append(chunk)
                    if b"\n" not in chunk:
                        continue
                    *lines, rest = b"".join(parts).split(b"\n")
                    parts = [rest] if rest else []
                    for line in lines:
                        if line.strip():
                            version = self._event(line, version, what)
                            progressed = True
        except CredentialsError as error:
            raise TransientError(f"{what}: {error}") from error
        except (aiohttp.ClientError, OSError) as error:
            if progressed:  # a dropped stream: watch again from where it was
                logger.debug("%s: %s: watching again", what, type(error).__name__)
                return version, progressed
            raise TransientError(f"{what}: {type(error).__name__}: {error}") from error
        return version, progressed

    def _event(self, line: bytes, version: str, what: str) -> str:
        try:
            event = _decode_event(line)
            if event.type == "ERROR":
                status = _decode_status(event.object)
                if status.code == 410:
                    raise GoneError(what)
                error = translate(status.code or 500, bytes(event.object), what)
                raise ErrorEventError(str(error), code=error.code, reason=error.reason)
            obj = self.projector.decode_object(event.object)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            # Where the stream stands is unknown: back off, then list again.
            raise ErrorEventError(f"{what}: unreadable event: {error}") from error
        if event.type in ("ADDED", "MODIFIED"):
            self._store(obj)
        elif event.type == "DELETED":
            self._remove(obj.namespace, obj.name)
        return obj.resource_version or version


LIST_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10, sock_read=60)
"""A list page: 60 s without a byte (a big page of a busy server), 2 min in all."""

_decode_event = msgspec.json.Decoder(RawEvent).decode
_decode_status = msgspec.json.Decoder(Status).decode
