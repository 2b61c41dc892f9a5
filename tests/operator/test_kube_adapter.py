"""The Kubernetes adapter against a scripted HTTP server: paths, verbs, typed errors,
authentication (tokens, token files, exec plugins, basic auth), renewal on 401, time-outs
and connection reuse."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from aiohttp import web

from trtserve_operator.cli import login
from trtserve_operator.kube.client import Kube, check_reachable
from trtserve_operator.kube.credentials import Credentials, CredentialsError
from trtserve_operator.kube.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    RejectedError,
    TransientError,
)
from trtserve_operator.kube.resources import DEPLOYMENTS, SERVICES, TRTMODELS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An HTTP server on a free port that records requests and answers from a script."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.peers: set[Any] = set()
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": json.loads(body) if body else None,
            }
        )
        transport = request.transport
        self.peers.add(transport.get_extra_info("peername") if transport else None)
        return await self.handler(request)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Server]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip


def answer(code: int, body: Any = None) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.json_response(body if body is not None else {}, status=code)

    return handler


def kubeconfig(path: Path, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "dev",
            }
        )
    )
    return path


def credentials_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str, user: dict[str, Any]
) -> Credentials:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", server, user)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return Credentials.from_environment()


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "m", "namespace": "ns"},
    "spec": {"replicas": 1},
}


def test_requests_use_the_api_paths_verbs_and_content_types() -> None:
    async def scenario() -> None:
        server = Server(answer(200, {"kind": "Deployment", "metadata": {"name": "m"}}))
        async with server.running():
            kube = Kube.from_url(server.url)
            try:
                created = await kube.create(DEPLOYMENT)
                await kube.get(SERVICES, "ns", "m")
                await kube.merge_patch(DEPLOYMENTS, "ns", "m", {"spec": {"replicas": 2}})
                await kube.patch_trtmodel_status("ns", "m", {"phase": "Ready"})
            finally:
                await kube.close()
        assert created == {"kind": "Deployment", "metadata": {"name": "m"}}
        post, get, patch, status = server.requests
        assert (post["method"], post["path"]) == ("POST", "/apis/apps/v1/namespaces/ns/deployments")
        assert post["query"] == {"fieldManager": "trtserve-operator"}
        assert post["headers"]["Content-Type"] == "application/json"
        assert post["body"] == DEPLOYMENT
        assert (get["method"], get["path"]) == ("GET", "/api/v1/namespaces/ns/services/m")
        assert (patch["method"], patch["path"]) == (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/m",
        )
        assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
        assert patch["body"] == {"spec": {"replicas": 2}}
        assert status["path"] == (
            f"/apis/{TRTMODELS.group}/{TRTMODELS.version}/namespaces/ns/trtmodels/m/status"
        )
        assert status["body"] == {"status": {"phase": "Ready"}}
        assert "Authorization" not in post["headers"]
        assert post["headers"]["User-Agent"].startswith("trtserve-operator/")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (404, "NotFound", NotFoundError),
        (409, "AlreadyExists", ConflictError),
        (422, "Invalid", RejectedError),
        (403, "Forbidden", RejectedError),
        (400, "BadRequest", RejectedError),
        (401, "Unauthorized", RejectedError),
        (410, "Expired", TransientError),
        (429, "TooManyRequests", TransientError),
        (500, "InternalError", TransientError),
        (503, "ServiceUnavailable", TransientError),
        (504, "Timeout", TransientError),
    ],
)
def test_api_errors_become_typed_errors_with_the_servers_message(
    code: int, reason: str, error: type[Exception]
) -> None:
    async def scenario() -> Exception:
        body = status_body(code, reason, f'Deployment.apps "m" is {reason.lower()}')
        server = Server(answer(code, body))
        async with server.running():
            kube = Kube.from_url(server.url)
            try:
                with pytest.raises(error) as raised:
                    await kube.create(DEPLOYMENT)
            finally:
                await kube.close()
        return raised.value

    raised = asyncio.run(scenario())
    assert type(raised) is error
    assert getattr(raised, "code", None) == code
    assert getattr(raised, "reason", None) == reason
    assert str(raised) == (
        f'create deployments ns/m: {code} {reason}: Deployment.apps "m" is {reason.lower()}'
    )


def test_an_error_without_a_status_body_is_classified_by_its_code() -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="<html>bad gateway</html>")

    async def scenario() -> TransientError:
        server = Server(handler)
        async with server.running():
            kube = Kube.from_url(server.url)
            try:
                with pytest.raises(TransientError) as raised:
                    await kube.get(DEPLOYMENTS, "ns", "m")
            finally:
                await kube.close()
        return raised.value

    raised = asyncio.run(scenario())
    assert raised.code == 502
    assert "<html>bad gateway</html>" in str(raised)


def test_a_closed_port_and_a_silent_server_are_transient() -> None:
    async def silent(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response({})

    async def scenario() -> None:
        server = Server(silent)
        async with server.running():
            url = server.url
            kube = Kube.from_url(url)
            kube._timeout = type(kube._timeout)(total=0.3)
            try:
                with pytest.raises(TransientError, match="get deployments ns/m: TimeoutError"):
                    await kube.get(DEPLOYMENTS, "ns", "m")
            finally:
                await kube.close()
        closed = Kube.from_url(url)  # the server is gone: its port is closed
        try:
            with pytest.raises(TransientError, match="create deployments ns/m: Client"):
                await closed.create(DEPLOYMENT)
        finally:
            await closed.close()

    asyncio.run(scenario())


def test_connections_are_reused() -> None:
    async def scenario() -> Server:
        server = Server(answer(200, {}))
        async with server.running():
            kube = Kube.from_url(server.url)
            try:
                for _ in range(5):
                    await kube.get(DEPLOYMENTS, "ns", "m")
            finally:
                await kube.close()
        return server

    server = asyncio.run(scenario())
    assert len(server.requests) == 5
    assert len(server.peers) == 1


@pytest.mark.parametrize(("server", "contexts"), [("https://api.example:6443", 1), ("http://x", 0)])
def test_one_tls_context_serves_requests_and_streams(
    server: str, contexts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the CA bundle into a TLS context costs about 50 ms of CPU and 1.4 MB: the
    requests' and the streams' sessions share one, and a plain-HTTP server gets none."""
    built: list[Any] = []
    original = kopf.ConnectionInfo.as_ssl_context

    def counting(info: kopf.ConnectionInfo) -> Any:
        built.append(original(info))
        return built[-1]

    monkeypatch.setattr(kopf.ConnectionInfo, "as_ssl_context", counting)

    async def scenario() -> None:
        kube = Kube.from_url(server)
        info = await kube.credentials.connection_info()
        requests = kube._session_for(info)
        streams = kube._session_for(info, streams=True)
        assert requests is not streams
        assert len(built) == contexts
        if contexts:
            assert requests.connector._ssl is streams.connector._ssl is built[0]  # type: ignore[union-attr]
        await kube.close()

    asyncio.run(scenario())


def test_delete_propagates_in_the_background_and_a_missing_object_is_no_error() -> None:
    async def scenario() -> Server:
        server = Server(answer(404, status_body(404, "NotFound", "gone")))
        async with server.running():
            kube = Kube.from_url(server.url)
            try:
                await kube.delete(DEPLOYMENTS, "ns", "m")
            finally:
                await kube.close()
        return server

    (request,) = asyncio.run(scenario()).requests
    assert (request["method"], request["path"]) == (
        "DELETE",
        "/apis/apps/v1/namespaces/ns/deployments/m",
    )
    assert request["query"] == {"propagationPolicy": "Background"}


def test_list_pods_follows_continue_tokens() -> None:
    async def pages(request: web.Request) -> web.StreamResponse:
        if request.query.get("continue") == "next":
            return web.json_response({"metadata": {}, "items": [{"metadata": {"name": "b"}}]})
        return web.json_response(
            {"metadata": {"continue": "next"}, "items": [{"metadata": {"name": "a"}}]}
        )

    async def scenario() -> tuple[Server, list[dict[str, Any]]]:
        server = Server(pages)
        async with server.running():
            kube = Kube.from_url(server.url)
            try:
                pods = await kube.list_pods("ns", {"app": "m", "tier": "x"})
            finally:
                await kube.close()
        return server, pods

    server, pods = asyncio.run(scenario())
    assert [pod["metadata"]["name"] for pod in pods] == ["a", "b"]
    assert all(pod["kind"] == "Pod" and pod["apiVersion"] == "v1" for pod in pods)
    first, second = server.requests
    assert first["path"] == "/api/v1/namespaces/ns/pods"
    assert first["query"]["labelSelector"] == "app=m,tier=x"
    assert second["query"]["continue"] == "next"


def authorized(token: str) -> Handler:
    """200 for ``Bearer <token>``, else 401 (as an API server answers a stale token)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") == f"Bearer {token}":
            return web.json_response({"kind": "Service"})
        return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)

    return handler


def test_a_rotated_token_file_is_read_again_on_401(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old\n")

    async def scenario() -> Server:
        server = Server(authorized("new"))
        async with server.running():
            creds = credentials_for(tmp_path, monkeypatch, server.url, {"tokenFile": "token"})
            kube = Kube(creds)
            try:
                info = await creds.connection_info()
                assert info.token == "old"  # relative to the kubeconfig's directory
                token_file.write_text("new\n")  # the kubelet rotated it
                await kube.get(SERVICES, "ns", "m")
                await kube.get(SERVICES, "ns", "m")
            finally:
                await kube.close()
        return server

    server = asyncio.run(scenario())
    sent = [request["headers"].get("Authorization") for request in server.requests]
    assert sent == ["Bearer old", "Bearer new", "Bearer new"]


def test_credentials_refused_after_renewal_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> Server:
        server = Server(authorized("other"))
        async with server.running():
            kube = Kube(credentials_for(tmp_path, monkeypatch, server.url, {"token": "mine"}))
            try:
                with pytest.raises(RejectedError, match="401 Unauthorized"):
                    await kube.get(SERVICES, "ns", "m")
            finally:
                await kube.close()
        return server

    assert len(asyncio.run(scenario()).requests) == 2  # tried once more, then refused


def exec_plugin(tmp_path: Path, token: str, *, fail: bool = False) -> Path:
    expires = (datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": expires},
    }
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, os, sys\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['kind'] == 'ExecCredential' and os.environ['PLUGIN_ENV'] == 'set'\n"
        + ("sys.stderr.write('no cloud login\\n'); sys.exit(3)\n" if fail else "")
        + f"print(json.dumps({credential!r}))\n"
    )
    wrapper = tmp_path / "plugin"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def exec_user(plugin: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "env": [{"name": "PLUGIN_ENV", "value": "set"}],
            "installHint": "install the cloud CLI",
        }
    }


def test_an_exec_plugin_token_is_used_by_kopf_and_the_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        server = Server(authorized("from-plugin"))
        async with server.running():
            user = exec_user(exec_plugin(tmp_path, "from-plugin"))
            creds = credentials_for(tmp_path, monkeypatch, server.url, user)
            memo: dict[str, Any] = {"credentials": creds}
            info = await login(memo=memo)  # type: ignore[arg-type]
            assert info.token == "from-plugin"
            assert info.expiration is not None
            assert info.expiration > datetime.datetime.now(tz=datetime.UTC)
            assert info.as_http_headers() == {"Authorization": "Bearer from-plugin"}
            kube = Kube(creds)
            try:
                assert await kube.get(SERVICES, "ns", "m") == {"kind": "Service"}
            finally:
                await kube.close()

    asyncio.run(scenario())


def test_a_failing_exec_plugin_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = exec_plugin(tmp_path, "x", fail=True)
    creds = credentials_for(tmp_path, monkeypatch, "http://127.0.0.1:1", exec_user(plugin))
    with pytest.raises(CredentialsError) as raised:
        asyncio.run(creds.connection_info())
    assert str(raised.value) == (
        f"the exec credential plugin {plugin} of context dev of {tmp_path / 'config'} "
        "exited with 3: no cloud login"
    )
    with pytest.raises(ConfigurationError, match="cannot reach the Kubernetes API server"):
        check_reachable(creds)


def test_basic_auth_certificates_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = {"username": "admin", "password": "secret", "client-certificate": "certs/me.crt",
            "client-key": "certs/me.key"}  # fmt: skip
    creds = credentials_for(tmp_path, monkeypatch, "https://api.example:6443", user)
    info = asyncio.run(creds.connection_info())
    assert info.server == "https://api.example:6443"
    assert info.certificate_path == str(tmp_path / "certs" / "me.crt")
    assert info.private_key_path == str(tmp_path / "certs" / "me.key")
    assert info.token is None
    expected = base64.b64encode(b"admin:secret").decode()
    assert info.as_http_headers() == {"Authorization": f"Basic {expected}"}


def test_auth_provider_users_are_refused_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="auth-provider, which is not supported"):
        credentials_for(tmp_path, monkeypatch, "https://x", {"auth-provider": {"name": "gcp"}})


def test_the_in_cluster_service_account_is_the_first_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("sa-token\n")
    (account / "namespace").write_text("trtserve-system")
    (account / "ca.crt").write_text("not read here")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", "http://x", {})))
    creds = Credentials.from_environment(service_account=str(account))
    info = asyncio.run(creds.connection_info())
    assert info.server == "https://10.0.0.1:443"
    assert info.token == "sa-token"
    assert info.ca_path == str(account / "ca.crt")
    assert info.default_namespace == "trtserve-system"
    assert creds.where == "the in-cluster service account"


def test_the_kubeconfigs_proxy_url_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf's own login read ``proxy-url``; both connections keep honouring it."""

    async def scenario() -> Server:
        proxy = Server(answer(200, {"kind": "Service"}))
        async with proxy.running():
            path = kubeconfig(tmp_path / "config", "http://api.invalid:6443", {}, **{
                "proxy-url": proxy.url})  # fmt: skip
            monkeypatch.setenv("KUBECONFIG", str(path))
            monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
            creds = Credentials.from_environment()
            assert (await creds.connection_info()).proxy_url == proxy.url
            kube = Kube(creds)
            try:
                assert await kube.get(SERVICES, "ns", "m") == {"kind": "Service"}
            finally:
                await kube.close()
        return proxy

    (request,) = asyncio.run(scenario()).requests
    assert request["path"] == "/api/v1/namespaces/ns/services/m"
    assert request["headers"]["Host"] == "api.invalid:6443"
