"""A small fake of the API server's list and watch, with resourceVersion semantics.

kmock has no resourceVersion, so the informer's list-then-watch protocol is tested
against this instead: one collection of one namespace, a global resourceVersion counter
(every write bumps it, as etcd's revision), an event history that can be *compacted*
(older resourceVersions are then ``410 Gone``), paginated lists (``limit``/``continue``,
tokens that can expire), watches from a resourceVersion with bookmarks and the
server-side ``timeoutSeconds``, and scripted faults (an HTTP error for the next lists or
watches, a connection dropped after some events, an ERROR event). Every request is
recorded with its query.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

MANAGED_LABELS = {"app.kubernetes.io/managed-by": "trtserve-operator"}


class FakeWatchServer:
    """The collection at ``path`` (e.g. ``/apis/apps/v1/namespaces/ns/deployments``)."""

    def __init__(self, path: str, kind: str = "Deployment", api_version: str = "apps/v1") -> None:
        self.path = path
        self.kind = kind
        self.api_version = api_version
        self.version = 100
        self.objects: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.compacted = 0
        """Watches from a resourceVersion below this are 410 Gone."""
        self.requests: list[dict[str, str]] = []
        self.list_faults: list[int] = []
        """HTTP codes to answer the next list requests with (410 on a ``continue`` page is an
        expired token)."""
        self.watch_faults: list[int] = []
        """HTTP codes to answer the next watch requests with."""
        self.error_events: list[dict[str, Any]] = []
        """``Status`` objects to send as ERROR events on the next watches, one per watch."""
        self.drop_after: int | None = None
        """Drop the next watch's connection after this many events."""
        self.expire_continues = 0
        """Answer the next this many ``continue`` pages with 410 (an expired token)."""
        self._changed = asyncio.Condition()
        self._ended = 0
        self.url = ""

    # --- the test's writes --------------------------------------------------------------

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    async def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.history.append((self.version, kind, copy.deepcopy(obj)))
        async with self._changed:
            self._changed.notify_all()

    async def put(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create or replace object ``name`` (managed labels unless given)."""
        kind = "MODIFIED" if name in self.objects else "ADDED"
        metadata = {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": dict(MANAGED_LABELS),
            **fields.pop("metadata", {}),
        }
        metadata["resourceVersion"] = self._bump()
        obj = {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata, **fields}
        self.objects[name] = obj
        await self._record(kind, obj)
        return obj

    async def delete(self, name: str) -> None:
        obj = self.objects.pop(name)
        obj["metadata"]["resourceVersion"] = self._bump()
        await self._record("DELETED", obj)

    def put_quietly(self, name: str, **fields: Any) -> None:
        """Change an object while no watch will see it (the history is compacted past it):
        only a new listing finds it."""
        metadata = {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                    "labels": dict(MANAGED_LABELS), **fields.pop("metadata", {})}  # fmt: skip
        metadata["resourceVersion"] = self._bump()
        self.objects[name] = {
            "apiVersion": self.api_version, "kind": self.kind, "metadata": metadata, **fields
        }  # fmt: skip

    def delete_quietly(self, name: str) -> None:
        self.objects.pop(name)
        self._bump()

    def compact(self) -> None:
        """Forget the history: a watch from any resourceVersion seen so far is Gone."""
        self.compacted = self.version
        self.history.clear()

    async def end_watches(self) -> None:
        """End every open watch as its ``timeoutSeconds`` would."""
        self._ended += 1
        async with self._changed:
            self._changed.notify_all()
        await asyncio.sleep(0)

    async def bookmark(self) -> None:
        """Advance the resourceVersion with a BOOKMARK (no object changed)."""
        self._bump()
        self.history.append((self.version, "BOOKMARK", {}))
        async with self._changed:
            self._changed.notify_all()

    # --- the server ---------------------------------------------------------------------

    def watches(self) -> list[dict[str, str]]:
        return [query for query in self.requests if query.get("watch") == "true"]

    def lists(self) -> list[dict[str, str]]:
        return [query for query in self.requests if query.get("watch") != "true"]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        if request.path != self.path:
            return web.json_response(status(404, "NotFound", "no such collection"), status=404)
        if query.get("watch") == "true":
            return await self._watch(request, query)
        return self._list(query)

    def _list(self, query: dict[str, str]) -> web.Response:
        if self.list_faults:
            code = self.list_faults.pop(0)
            return web.json_response(status(code, "Fault", "scripted"), status=code)
        if query.get("continue") and self.expire_continues:
            self.expire_continues -= 1
            return web.json_response(status(410, "Expired", "continue token expired"), status=410)
        limit = int(query.get("limit") or 0) or len(self.objects) or 1
        names = sorted(self.objects)
        start, version = 0, str(self.version)
        if query.get("continue"):
            token = json.loads(query["continue"])
            start, version = token["start"], token["version"]
        page = names[start : start + limit]
        metadata: dict[str, Any] = {"resourceVersion": version}
        if start + limit < len(names):
            metadata["continue"] = json.dumps({"start": start + limit, "version": version})
        items = [{k: v for k, v in self.objects[n].items() if k not in ("apiVersion", "kind")}
                 for n in page]  # fmt: skip
        return web.json_response({"kind": f"{self.kind}List", "metadata": metadata, "items": items})

    async def _watch(self, request: web.Request, query: dict[str, str]) -> web.StreamResponse:
        if self.watch_faults:
            code = self.watch_faults.pop(0)
            return web.json_response(status(code, "Fault", "scripted"), status=code)
        since = int(query.get("resourceVersion") or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if since < self.compacted:
            await _send(response, {"type": "ERROR", "object": status(410, "Expired", "too old")})
            return response
        if self.error_events:
            await _send(response, {"type": "ERROR", "object": self.error_events.pop(0)})
            return response
        generation = self._ended
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(query.get("timeoutSeconds") or 3600)
        drop_after, self.drop_after = self.drop_after, None
        sent = 0
        bookmarks = query.get("allowWatchBookmarks") == "true"
        while True:
            pending = [entry for entry in self.history if entry[0] > since]
            for version, kind, changed in pending:
                since = version
                obj = changed
                if kind == "BOOKMARK":
                    if not bookmarks:
                        continue
                    obj = {"kind": self.kind, "apiVersion": self.api_version,
                           "metadata": {"resourceVersion": str(version)}}  # fmt: skip
                await _send(response, {"type": kind, "object": obj})
                sent += 1
                if drop_after is not None and sent >= drop_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection drops mid-stream
                    return response
            if self._ended != generation or loop.time() >= deadline:
                return response  # the server-side time-out
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
                except TimeoutError:
                    return response

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeWatchServer]:
        async with serving(self):
            yield self


@asynccontextmanager
async def serving(*collections: FakeWatchServer) -> AsyncIterator[str]:
    """One HTTP server on a free port for ``collections`` (by path); its URL."""
    by_path = {collection.path: collection for collection in collections}

    async def handle(request: web.Request) -> web.StreamResponse:
        collection = by_path.get(request.path)
        if collection is not None:
            return await collection._handle(request)
        parent, _, name = request.path.rpartition("/")
        obj = by_path[parent].objects.get(name) if parent in by_path else None
        if obj is None:
            return web.json_response(status(404, "NotFound", request.path), status=404)
        return web.json_response(obj)  # a GET of one object

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    for collection in collections:
        collection.url = url
    try:
        yield url
    finally:
        for collection in collections:
            await collection.end_watches()
        await runner.cleanup()


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(json.dumps(event).encode() + b"\n")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip
