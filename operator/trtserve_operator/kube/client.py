"""The Kubernetes adapter: the only code that sends requests to the API server.

One :class:`Kube` (one lightkube ``AsyncClient``, one connection pool) is created at
startup and shared. Writes are ``POST`` (create) and JSON merge patches (``PATCH``); the
operator never ``PUT``s, so it never overwrites fields that other controllers (HPA, the
API server's defaults) own. Every lightkube/httpx error is translated here, once, into
:mod:`trtserve_operator.kube.errors`.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config import client_adapter
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from trtserve_operator.kube.errors import (
    ConfigurationError,
    ConflictError,
    KubeError,
    NotFoundError,
    RejectedError,
    TransientError,
)
from trtserve_operator.kube.resources import BY_KIND, EVENTS, TRTMODELS, ApiResource

FIELD_MANAGER = "trtserve-operator"
REPORTING_COMPONENT = "trtserve-operator"
_TRANSIENT_CODES = frozenset({408, 409, 410, 425, 429, 500, 502, 503, 504})


def _status_of(error: httpx2.HTTPStatusError) -> tuple[int, str, str]:
    """(code, reason, message) of an HTTP error, from its ``Status`` body when there is one.

    lightkube only parses the body when the content type is exactly ``application/json``;
    the error is classified by the HTTP code either way.
    """
    if isinstance(error, ApiError) and error.status is not None:
        status = error.status
        return (
            int(status.code or error.response.status_code),
            status.reason or "",
            status.message or "",
        )
    code = error.response.status_code
    try:
        body = error.response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return (
        code,
        str(body.get("reason") or ""),
        str(body.get("message") or error.response.text[:200]),
    )


def _translate(error: Exception, what: str) -> KubeError:
    if isinstance(error, httpx2.HTTPStatusError):
        code, reason, detail = _status_of(error)
        message = f"{what}: {code} {reason}: {detail}"
        if code == 404:
            return NotFoundError(message, code=code, reason=reason)
        if code == 409:
            return ConflictError(message, code=code, reason=reason)
        if code in _TRANSIENT_CODES:
            return TransientError(message, code=code, reason=reason)
        return RejectedError(message, code=code, reason=reason)
    return TransientError(f"{what}: {type(error).__name__}: {error}")


@asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (ApiError, httpx2.HTTPError, OSError) as error:
        raise _translate(error, what) from error


@cache
def generic_class(resource: ApiResource) -> Any:
    """lightkube's generic (dict-based) class for ``resource``, created once.

    Generic classes are used even for built-in kinds: the manifests are plain dicts from
    the pure builders and go to the API server unchanged, without a round trip through
    typed models, and lightkube's large model modules are never imported.
    """
    return create_namespaced_resource(
        resource.group, resource.version, resource.kind, resource.plural
    )


REACHABLE_TIMEOUT = 5.0
"""Seconds :func:`check_reachable` waits to connect and for the answer: one attempt, no
retry, so a closed port or a stopped cluster is reported at once."""


def _where(config: KubeConfig, context: str | None) -> str:
    """``context NAME of FILE`` (or the in-cluster service account) for messages."""
    if config.fname is None:
        return "the in-cluster service account"
    return f"context {context or '?'} of {config.fname}"


def check_reachable(config: KubeConfig, timeout: float = REACHABLE_TIMEOUT) -> str:
    """``GET /version`` once with ``config``'s current context and credentials.

    Returns ``Kubernetes vX.Y.Z at URL (context NAME of FILE)``; raises a one-line
    :class:`ConfigurationError` naming the server, the context and the kubeconfig, and
    what to do, when the server cannot be reached or refuses the credentials. The operator
    runs it before kopf starts (kopf would retry for about a minute, then print a
    traceback) and ``make run`` before ``kubectl apply`` (which would print kubectl's
    "failed to download openapi" advice).
    """
    try:
        single = config.get()
        if single is None:  # only with a default, which is not given: for the type checker
            raise ConfigError("no current context")
    except ConfigError as error:
        where = f"the kubeconfig {config.fname}" if config.fname else "the configuration"
        raise ConfigurationError(
            f"no usable Kubernetes context in {where} ({error}): choose one with "
            "`kubectl config use-context NAME`"
        ) from error
    server = single.cluster.server
    where = _where(config, single.context_name)
    params = client_adapter.ConnectionParams(timeout=httpx2.Timeout(timeout))
    try:
        with client_adapter.Client(single, params) as http:
            response = http.get("/version")
    except (httpx2.HTTPError, OSError, ValueError) as error:
        detail = str(error) or type(error).__name__
        raise ConfigurationError(
            f"cannot reach the Kubernetes API server {server} ({where}): {detail}; start the "
            "cluster, or point at a running one with `kubectl config use-context NAME` or "
            "KUBECONFIG=FILE"
        ) from error
    if response.status_code == 401:
        raise ConfigurationError(
            f"the Kubernetes API server {server} refused the credentials of {where} "
            "(401 Unauthorized): log in again or refresh the kubeconfig's user"
        )
    try:
        version = str(response.json().get("gitVersion") or "")
    except ValueError:
        version = ""
    if not version:
        # e.g. 403 on /version: the server still answered, with these credentials.
        version = f"(version not readable: HTTP {response.status_code})"
    return f"Kubernetes {version} at {server} ({where})"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    """Typed, minimal view of the Kubernetes API used by the operator."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account, else ``$KUBECONFIG``/``~/.kube/config``."""
        return cls(AsyncClient(config=cls.load_config(), field_manager=FIELD_MANAGER))

    @staticmethod
    def load_config() -> KubeConfig:
        """The configuration :meth:`from_environment` uses; raises ConfigurationError."""
        try:
            return KubeConfig.from_env()
        except ConfigError as error:
            raise ConfigurationError(
                f"no Kubernetes configuration ({error}): set KUBECONFIG to a kubeconfig "
                "file or run the operator in a pod with a service account"
            ) from error

    @classmethod
    def from_url(cls, url: str) -> Kube:
        """An unauthenticated API server at ``url`` (tests, kmock)."""
        config = KubeConfig.from_dict(
            {
                "clusters": [{"name": "test", "cluster": {"server": url}}],
                "users": [{"name": "anonymous", "user": {}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "anonymous"}}],
                "current-context": "test",
            }
        )
        return cls(AsyncClient(config=config, field_manager=FIELD_MANAGER))

    async def close(self) -> None:
        await self._client.close()

    @staticmethod
    def _resource(obj: Mapping[str, Any]) -> ApiResource:
        return BY_KIND[str(obj["kind"])]

    async def get(self, resource: ApiResource, namespace: str, name: str) -> dict[str, Any]:
        async with _translated(f"get {resource.plural} {namespace}/{name}"):
            obj = await self._client.get(generic_class(resource), name, namespace=namespace)
        return dict(obj)

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST a full manifest (``kind`` picks the resource)."""
        resource = self._resource(obj)
        namespace = obj["metadata"]["namespace"]
        name = obj["metadata"].get("name", "")
        async with _translated(f"create {resource.plural} {namespace}/{name}"):
            created = await self._client.create(generic_class(resource)(obj))
        return dict(created)

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
        res = generic_class(resource)
        if subresource == "status":
            res = res.Status
        what = (
            f"patch {resource.plural}{'/' + subresource if subresource else ''} {namespace}/{name}"
        )
        async with _translated(what):
            patched = await self._client.patch(
                res, name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
            )
        return dict(patched)

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
        async with _translated(f"create events {namespace}"):
            await self._client.create(generic_class(EVENTS)(event))
