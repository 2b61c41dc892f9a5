"""The Kubernetes adapter: the only code that sends requests to the API server.

One :class:`Kube` (one aiohttp session, one connection pool with keep-alive) is created
at startup and shared. Writes are ``POST`` (create) and JSON merge patches (``PATCH``);
the operator never ``PUT``s an object it manages, so it never overwrites fields that other
controllers (HPA, the API server's defaults) own; only the leader Lease is replaced
(``PUT`` with its resourceVersion: optimistic concurrency, as client-go's elector does).
Every write but the Lease's passes the fence first (:mod:`.fence`: only the leader
writes). Every HTTP error is translated here, once, into
:mod:`trtserve_operator.kube.errors`.

Why aiohttp and plain JSON instead of a Kubernetes client library: it is the HTTP client
kopf already uses for its watches, and the operator's requests are few and simple (get,
create, merge patch, delete, list) on plain dicts from the pure builders. Profiled at 500
models, lightkube over httpx2/httpcore2 cost about 4 ms of the operator's CPU per request
and this adapter about 1 ms (see docs/operator.md, "Benchmark"). Credentials come from
:mod:`.credentials`, the same object kopf's login returns.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf
import msgspec

from trtserve_operator import __version__
from trtserve_operator.kube.credentials import Credentials, CredentialsError
from trtserve_operator.kube.errors import (
    ConfigurationError,
    ConflictError,
    KubeError,
    NotFoundError,
    RejectedError,
    TransientError,
)
from trtserve_operator.kube.fence import AlwaysOpen, Fence
from trtserve_operator.kube.lease import LEASES, LeaseRecord, StoredLease, lease_object
from trtserve_operator.kube.resources import BY_KIND, EVENTS, PODS, TRTMODELS, ApiResource

FIELD_MANAGER = "trtserve-operator"
REPORTING_COMPONENT = "trtserve-operator"
USER_AGENT = f"trtserve-operator/{__version__}"
_TRANSIENT_CODES = frozenset({408, 409, 410, 425, 429, 500, 502, 503, 504})
MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE = 500

TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_connect=10, sock_read=10)
"""Bounded time-outs of every request: 10 s to get a connection (from the pool or a new
one), 10 s without a byte of the answer, 60 s in all. A time-out is a TransientError."""
CONNECTIONS = 32
"""Connections kept to the API server at most (writes are bounded lower, see
``TRTSERVE_MAX_CONCURRENT_WRITES``); idle ones are kept alive and reused."""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
"""JSON of request and answer bodies: msgspec is about ten times faster than the standard
library at encoding a Deployment and twice at decoding one (a few percent of the
operator's CPU per model at 500 models); it is a dependency of lightkube already."""


def _status_detail(code: int, body: bytes) -> tuple[int, str, str]:
    """(code, reason, message) of an error answer, from its ``Status`` body when there is
    one; the error is classified by the HTTP code either way."""
    try:
        status = _decode(body)
    except ValueError:  # msgspec.DecodeError is a ValueError
        status = None
    if not isinstance(status, dict):
        return code, "", body.decode(errors="replace")[:200]
    return (
        int(status.get("code") or code),
        str(status.get("reason") or ""),
        str(status.get("message") or body.decode(errors="replace")[:200]),
    )


def translate(code: int, body: bytes, what: str) -> KubeError:
    """The typed error of an HTTP error answer to the request described by ``what``."""
    code, reason, detail = _status_detail(code, body)
    message = f"{what}: {code} {reason}: {detail}"
    if code == 404:
        return NotFoundError(message, code=code, reason=reason)
    if code == 409:
        return ConflictError(message, code=code, reason=reason)
    if code in _TRANSIENT_CODES:
        return TransientError(message, code=code, reason=reason)
    return RejectedError(message, code=code, reason=reason)


def collection_path(resource: ApiResource, namespace: str) -> str:
    prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{resource.plural}"


def object_path(
    resource: ApiResource, namespace: str, name: str, subresource: str | None = None
) -> str:
    path = f"{collection_path(resource, namespace)}/{quote(name, safe='')}"
    return f"{path}/{subresource}" if subresource else path


REACHABLE_TIMEOUT = 5.0
"""Seconds :func:`check_reachable` waits to connect and for the answer: one attempt, no
retry, so a closed port or a stopped cluster is reported at once."""


def check_reachable(credentials: Credentials, timeout: float = REACHABLE_TIMEOUT) -> str:
    """``GET /version`` once with the credentials (blocking; outside an event loop).

    Returns ``Kubernetes vX.Y.Z at URL (context NAME of FILE)``; raises a one-line
    :class:`ConfigurationError` naming the server, the context and the kubeconfig, and
    what to do, when the server cannot be reached or refuses the credentials. The operator
    runs it before kopf starts (kopf would retry for about a minute, then print a
    traceback) and ``make run`` before ``kubectl apply`` (which would print kubectl's
    "failed to download openapi" advice).
    """
    return asyncio.run(_check_reachable(credentials, timeout))


async def _check_reachable(credentials: Credentials, timeout: float) -> str:
    server, where = credentials.server, credentials.where
    kube = Kube(credentials, timeout=aiohttp.ClientTimeout(total=timeout))
    try:
        status, body = await kube.raw("GET", "/version", retry_unauthorized=False)
    except (aiohttp.ClientError, OSError, ValueError, CredentialsError) as error:
        detail = str(error) or type(error).__name__
        raise ConfigurationError(
            f"cannot reach the Kubernetes API server {server} ({where}): {detail}; start the "
            "cluster, or point at a running one with `kubectl config use-context NAME` or "
            "KUBECONFIG=FILE"
        ) from error
    finally:
        await kube.close()
    if status == 401:
        raise ConfigurationError(
            f"the Kubernetes API server {server} refused the credentials of {where} "
            "(401 Unauthorized): log in again or refresh the kubeconfig's user"
        )
    try:
        answer = _decode(body)
        version = str(answer.get("gitVersion") or "") if isinstance(answer, dict) else ""
    except ValueError:
        version = ""
    if not version:
        # e.g. 403 on /version: the server still answered, with these credentials.
        version = f"(version not readable: HTTP {status})"
    return f"Kubernetes {version} at {server} ({where})"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    """Typed, minimal view of the Kubernetes API used by the operator."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: aiohttp.ClientTimeout = TIMEOUT,
        fence: Fence | None = None,
    ):
        self.credentials = credentials
        self.fence = fence or AlwaysOpen()
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tls: tuple[Any, ...] | None = None
        self._stream_session: aiohttp.ClientSession | None = None
        self._stream_tls: tuple[Any, ...] | None = None
        self._ssl: tuple[tuple[Any, ...], ssl.SSLContext | bool] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account, else ``$KUBECONFIG``/``~/.kube/config``."""
        return cls(Credentials.from_environment())

    @classmethod
    def from_url(cls, url: str) -> Kube:
        """An unauthenticated API server at ``url`` (tests, kmock)."""
        return cls(Credentials.from_url(url))

    async def close(self) -> None:
        for session in (self._session, self._stream_session):
            if session is not None:
                await session.close()
        self._session = self._stream_session = None

    def _session_for(
        self, info: kopf.ConnectionInfo, *, streams: bool = False
    ) -> aiohttp.ClientSession:
        """The session (TLS context, connection pool) for ``info``; a new one only when
        the TLS side changed (an exec plugin's new client certificate), not per token.

        Watch streams (``streams``) have a pool of their own without a limit: each holds
        its connection for minutes (one per watched kind and namespace), and would
        otherwise take the requests' connections (at most :data:`CONNECTIONS`)."""
        tls = (
            info.proxy_url,
            info.ca_path,
            info.ca_data,
            info.insecure,
            info.certificate_path,
            info.certificate_data,
            info.private_key_path,
            info.private_key_data,
        )
        session, known = (
            (self._stream_session, self._stream_tls) if streams else (self._session, self._tls)
        )
        if session is None or session.closed or tls != known:
            old = session
            connector = aiohttp.TCPConnector(
                limit=0 if streams else CONNECTIONS, ssl=self._ssl_for(info, tls)
            )
            session = aiohttp.ClientSession(
                connector=connector,
                proxy=info.proxy_url,  # the kubeconfig's proxy-url (HTTP(S)_PROXY: not used)
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                skip_auto_headers=("Content-Type",),
            )
            if streams:
                self._stream_session, self._stream_tls = session, tls
            else:
                self._session, self._tls = session, tls
            if old is not None and not old.closed:  # its requests in flight finish first
                task = asyncio.get_running_loop().create_task(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        return session

    def _ssl_for(self, info: kopf.ConnectionInfo, tls: tuple[Any, ...]) -> ssl.SSLContext | bool:
        """One TLS context for both sessions (loading the CA bundle costs about 50 ms of CPU
        and 1.4 MB per context), none for a plain-HTTP server (aiohttp's default then, which
        no request uses)."""
        if self._ssl is None or self._ssl[0] != tls:
            secure = self.credentials.server.startswith("https:")
            self._ssl = (tls, info.as_ssl_context() if secure else True)
        return self._ssl[1]

    async def raw(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        retry_unauthorized: bool = True,
    ) -> tuple[int, bytes]:
        """One request: ``(status, body)``. A 401 is retried once with renewed
        credentials (a rotated token file, an exec plugin run again). Raises aiohttp's
        and the OS's connection errors and :class:`CredentialsError` unchanged."""
        info = await self.credentials.connection_info()
        while True:
            session = self._session_for(info)
            headers = info.as_http_headers()
            if body is not None:
                headers["Content-Type"] = content_type
            async with session.request(
                method, self.credentials.server + path, data=body, headers=headers
            ) as response:
                status = response.status
                payload = await response.read()
            if status != 401 or not retry_unauthorized:
                return status, payload
            retry_unauthorized = False
            info = await self.credentials.connection_info(stale=info)

    @asynccontextmanager
    async def stream(
        self, path: str, *, timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A ``GET`` whose answer is read by the caller (a watch stream, a big list page),
        with its own time-outs. A 401 is retried once with renewed credentials, like
        :meth:`raw`. Raises aiohttp's and the OS's errors and :class:`CredentialsError`
        unchanged (the informer translates them)."""
        info = await self.credentials.connection_info()
        retry_unauthorized = True
        while True:
            session = self._session_for(info, streams=True)
            async with session.get(
                self.credentials.server + path, headers=info.as_http_headers(), timeout=timeout
            ) as response:
                if response.status != 401 or not retry_unauthorized:
                    yield response
                    return
            retry_unauthorized = False
            info = await self.credentials.connection_info(stale=info)

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        obj: Any = None,
        content_type: str = "application/json",
        fenced: bool = True,
    ) -> dict[str, Any]:
        """A request whose answer is a JSON object; errors translated. A write (any method
        but GET) is only sent through an open fence, unless ``fenced`` is False (the Lease
        requests of the elector): :class:`FencedError` otherwise."""
        if method != "GET" and fenced:
            self.fence.check(what)
        try:
            status, payload = await self.raw(
                method,
                path,
                body=None if obj is None else _encode(obj),
                content_type=content_type,
            )
        except CredentialsError as error:
            raise TransientError(f"{what}: {error}") from error
        except (aiohttp.ClientError, OSError) as error:  # TimeoutError is an OSError
            raise TransientError(f"{what}: {type(error).__name__}: {error}") from error
        if status >= 400:
            raise translate(status, payload, what)
        try:
            answer = _decode(payload) if payload else {}
        except ValueError as error:
            raise TransientError(f"{what}: the API server answered no JSON: {error}") from error
        return answer if isinstance(answer, dict) else {}

    @staticmethod
    def _resource(obj: Mapping[str, Any]) -> ApiResource:
        return BY_KIND[str(obj["kind"])]

    async def get(self, resource: ApiResource, namespace: str, name: str) -> dict[str, Any]:
        return await self._call(
            "GET",
            object_path(resource, namespace, name),
            f"get {resource.plural} {namespace}/{name}",
        )

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST a full manifest (``kind`` picks the resource)."""
        resource = self._resource(obj)
        namespace = obj["metadata"]["namespace"]
        name = obj["metadata"].get("name", "")
        return await self._call(
            "POST",
            f"{collection_path(resource, namespace)}?fieldManager={FIELD_MANAGER}",
            f"create {resource.plural} {namespace}/{name}",
            obj=obj,
        )

    async def merge_patch(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): maps merge, lists are replaced, ``None`` deletes."""
        what = (
            f"patch {resource.plural}{'/' + subresource if subresource else ''} {namespace}/{name}"
        )
        return await self._call(
            "PATCH",
            f"{object_path(resource, namespace, name, subresource)}?fieldManager={FIELD_MANAGER}",
            what,
            obj=patch,
            content_type=MERGE_PATCH,
        )

    async def delete(self, resource: ApiResource, namespace: str, name: str) -> None:
        """DELETE with background propagation: the garbage collector removes what the
        object owns (a Job's pods). An object that is already gone is no error."""
        try:
            await self._call(
                "DELETE",
                f"{object_path(resource, namespace, name)}?propagationPolicy=Background",
                f"delete {resource.plural} {namespace}/{name}",
            )
        except NotFoundError:
            return

    async def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods of ``namespace`` with ``labels`` (a label selector of equalities)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = {"labelSelector": selector, "limit": str(LIST_PAGE)}
            if token:
                query["continue"] = token
            page = await self._call(
                "GET",
                f"{collection_path(PODS, namespace)}?{urlencode(query)}",
                f"list pods {namespace} -l {selector}",
            )
            items += [
                {"apiVersion": "v1", "kind": "Pod", **item} for item in page.get("items") or []
            ]
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    async def patch_trtmodel_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> None:
        await self.merge_patch(
            TRTMODELS, namespace, name, {"status": dict(status_patch)}, subresource="status"
        )

    async def create_event(
        self,
        involved: Mapping[str, Any],
        *,
        event_type: str,
        reason: str,
        message: str,
    ) -> None:
        """A core/v1 Event about ``involved`` (an object reference: apiVersion, kind, ...)."""
        namespace = str(involved["namespace"])
        now = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": dict(involved),
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": REPORTING_COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call(
            "POST", collection_path(EVENTS, namespace), f"create events {namespace}", obj=event
        )

    # --- the leader Lease (kube/election.py) -------------------------------------------------

    @staticmethod
    def _stored_lease(obj: Mapping[str, Any]) -> StoredLease:
        return StoredLease(
            LeaseRecord.from_spec(dict(obj.get("spec") or {})),
            str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        )

    async def get_lease(self, namespace: str, name: str) -> StoredLease | None:
        try:
            obj = await self._call(
                "GET", object_path(LEASES, namespace, name), f"get leases {namespace}/{name}"
            )
        except NotFoundError:
            return None
        return self._stored_lease(obj)

    async def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> StoredLease:
        obj = await self._call(
            "POST",
            f"{collection_path(LEASES, namespace)}?fieldManager={FIELD_MANAGER}",
            f"create leases {namespace}/{name}",
            obj=lease_object(namespace, name, record),
            fenced=False,
        )
        return self._stored_lease(obj)

    async def update_lease(
        self, namespace: str, name: str, record: LeaseRecord, resource_version: str
    ) -> StoredLease:
        """PUT naming ``resource_version``: a 409 (ConflictError) when anyone wrote since."""
        obj = await self._call(
            "PUT",
            f"{object_path(LEASES, namespace, name)}?fieldManager={FIELD_MANAGER}",
            f"update leases {namespace}/{name}",
            obj=lease_object(namespace, name, record, resource_version),
            fenced=False,
        )
        return self._stored_lease(obj)
