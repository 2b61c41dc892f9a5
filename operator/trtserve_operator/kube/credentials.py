"""Where the API server is and how to authenticate: one source for kopf and the adapter.

The configuration is loaded once with lightkube's ``KubeConfig`` (the in-cluster service
account, else ``$KUBECONFIG``/``~/.kube/config``). lightkube is kept for this because it
reads what kopf's own minimal login functions skip: ``tokenFile``, ``exec`` credential
plugins (EKS, GKE, OIDC helpers), and paths relative to the kubeconfig file; and the
in-cluster address comes from ``KUBERNETES_SERVICE_HOST``/``PORT`` as client-go takes it.

:meth:`Credentials.connection_info` turns it into one :class:`kopf.ConnectionInfo`
(server, CA, client certificate, token or basic auth, expiry). kopf's ``on.login``
handler returns it for kopf's watches, and :class:`.client.Kube` builds its TLS context
and ``Authorization`` header from the same object, so both connections always use the
same credentials. A rotated token is picked up the way client-go does it: a token file
is read again and an exec plugin run again when the server answers 401 (kopf re-logins
on its own 401s, the adapter on its), and an exec credential's ``expirationTimestamp``
is passed on as the expiry, so it is renewed before it runs out.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from pathlib import Path
from typing import Any

import kopf
import yaml
from lightkube import KubeConfig
from lightkube.config.kubeconfig import SERVICE_ACCOUNT, SingleConfig
from lightkube.config.models import UserExec
from lightkube.core.exceptions import ConfigError

from trtserve_operator.kube.errors import ConfigurationError

EXEC_API_VERSIONS = frozenset(
    {
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
        "client.authentication.k8s.io/v1alpha1",
    }
)
EXEC_TIMEOUT = 60.0
"""Seconds an exec credential plugin may take (a cloud CLI fetching a token)."""
EXPIRY_MARGIN = datetime.timedelta(seconds=30)
"""An expiring credential is renewed this long before it expires."""


class CredentialsError(ConfigurationError):
    """A credential could not be obtained (token file unreadable, exec plugin failed)."""


def load_config(service_account: str = SERVICE_ACCOUNT) -> KubeConfig:
    """In-cluster service account, else ``$KUBECONFIG``/``~/.kube/config``."""
    try:
        return KubeConfig.from_env(service_account=service_account)
    except ConfigError as error:
        raise ConfigurationError(
            f"no Kubernetes configuration ({error}): set KUBECONFIG to a kubeconfig "
            "file or run the operator in a pod with a service account"
        ) from error


def _current(config: KubeConfig) -> SingleConfig:
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
    return single


def _parse_time(value: Any) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _proxy_url(source: Path | None, config: SingleConfig) -> str | None:
    """The current cluster's ``proxy-url`` (lightkube does not read it; kopf's own login
    did, so it stays supported for both connections)."""
    if source is None:
        return None
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        context = next(c for c in raw.get("contexts") or [] if c.get("name") == config.context_name)
        name = (context.get("context") or {}).get("cluster")
        cluster = next(c for c in raw.get("clusters") or [] if c.get("name") == name)
    except (OSError, yaml.YAMLError, StopIteration, AttributeError, TypeError):
        return None
    url = (cluster.get("cluster") or {}).get("proxy-url")
    return str(url) if url else None


class Credentials:
    """The current context's server and credentials, resolved on demand."""

    def __init__(
        self, config: SingleConfig, *, source: Path | None = None, proxy_url: str | None = None
    ) -> None:
        self._config = config
        self._source = source
        self._proxy_url = proxy_url
        self._info: kopf.ConnectionInfo | None = None
        self._lock = asyncio.Lock()
        user = config.user
        if user is not None and user.auth_provider and not (user.token or user.token_file):
            raise ConfigurationError(
                f"the user of {self.where} uses an auth-provider, which is not supported "
                "(kubectl dropped it in 1.26): use an exec credential plugin instead"
            )

    @classmethod
    def from_environment(cls, service_account: str = SERVICE_ACCOUNT) -> Credentials:
        """The in-cluster service account, else the kubeconfig's current context."""
        config = load_config(service_account)
        single = _current(config)
        source = Path(config.fname) if config.fname else None
        return cls(single, source=source, proxy_url=_proxy_url(source, single))

    @classmethod
    def from_url(cls, url: str) -> Credentials:
        """An unauthenticated API server at ``url`` (tests, kmock)."""
        return cls(_current(KubeConfig.from_server(url)))

    @property
    def server(self) -> str:
        return str(self._config.cluster.server).rstrip("/")

    @property
    def where(self) -> str:
        """``context NAME of FILE`` (or the in-cluster service account) for messages."""
        if self._source is None:
            return "the in-cluster service account"
        return f"context {self._config.context_name or '?'} of {self._source}"

    def _path(self, value: str | None) -> str | None:
        return str(self._config.abs_file(value)) if value else None

    def _expired(self, info: kopf.ConnectionInfo) -> bool:
        if info.expiration is None:
            return False
        expiration = info.expiration
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.UTC)
        return datetime.datetime.now(tz=datetime.UTC) + EXPIRY_MARGIN >= expiration

    async def connection_info(
        self, *, stale: kopf.ConnectionInfo | None = None, refresh: bool = False
    ) -> kopf.ConnectionInfo:
        """The credentials to use now.

        Cached; resolved again (token file read, exec plugin run) when ``refresh`` is
        true, when ``stale`` (credentials the server just refused with 401) is still the
        cached one, or when the cached credential is about to expire. Concurrent callers
        share one resolution. Raises :class:`CredentialsError`.
        """
        info = self._info
        if info is not None and not refresh and stale is not info and not self._expired(info):
            return info
        async with self._lock:
            current = self._info
            if (
                not refresh
                and current is not None
                and current is not info
                and not self._expired(current)
            ):
                return current  # another caller resolved it while this one waited
            self._info = await self._resolve()
            return self._info

    async def _resolve(self) -> kopf.ConnectionInfo:
        config = self._config
        cluster, user = config.cluster, config.user
        token: str | None = None
        expiration: datetime.datetime | None = None
        cert_data = user.client_cert_data if user else None
        key_data = user.client_key_data if user else None
        if user is not None:
            if user.token_file:
                token = self._read_token(user.token_file)
            elif user.token:
                token = user.token.strip()
            elif user.exec:
                status = await self._run_exec(user.exec)
                token = status.get("token") or None
                expiration = _parse_time(status.get("expirationTimestamp"))
                if status.get("clientCertificateData") and status.get("clientKeyData"):
                    cert_data = status["clientCertificateData"]
                    key_data = status["clientKeyData"]
        basic = bool(user is not None and not token and user.username and user.password)
        return kopf.ConnectionInfo(
            server=self.server,
            ca_path=self._path(cluster.certificate_auth),
            ca_data=cluster.certificate_auth_data or None,
            insecure=bool(cluster.insecure) or None,
            certificate_path=None if cert_data or user is None else self._path(user.client_cert),
            certificate_data=cert_data or None,
            private_key_path=None if key_data or user is None else self._path(user.client_key),
            private_key_data=key_data or None,
            username=user.username if basic and user is not None else None,
            password=user.password if basic and user is not None else None,
            token=token,
            default_namespace=config.namespace,
            expiration=expiration,
            proxy_url=self._proxy_url,
        )

    def _read_token(self, token_file: str) -> str:
        path = self._path(token_file) or token_file
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise CredentialsError(
                f"cannot read the token file {path} of {self.where}: {error.strerror}"
            ) from error

    async def _run_exec(self, spec: UserExec) -> dict[str, Any]:
        """Run an exec credential plugin; its ``ExecCredential.status``."""
        if spec.apiVersion not in EXEC_API_VERSIONS:
            raise CredentialsError(
                f"the exec credential plugin of {self.where} wants {spec.apiVersion}, which "
                f"is not supported (use one of {', '.join(sorted(EXEC_API_VERSIONS))})"
            )
        command = spec.command
        if os.sep in command and not os.path.isabs(command):
            command = str(self._config.abs_file(command))  # as client-go resolves it
        env = dict(os.environ)
        env.update((var.name, var.value) for var in spec.env or [])
        info = {"apiVersion": spec.apiVersion, "kind": "ExecCredential"}
        env["KUBERNETES_EXEC_INFO"] = json.dumps({**info, "spec": {"interactive": False}})
        try:
            process = await asyncio.create_subprocess_exec(
                command,
                *(spec.args or []),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
        except (OSError, TimeoutError) as error:
            hint = f" ({spec.installHint.strip()})" if spec.installHint else ""
            raise CredentialsError(
                f"the exec credential plugin {spec.command} of {self.where} failed: "
                f"{type(error).__name__}: {error}{hint}"
            ) from error
        if process.returncode != 0:
            last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
            raise CredentialsError(
                f"the exec credential plugin {spec.command} of {self.where} exited with "
                f"{process.returncode}: {last}"
            )
        try:
            status = json.loads(out)["status"]
            if not isinstance(status, dict):
                raise TypeError("status is not an object")
        except (ValueError, KeyError, TypeError) as error:
            raise CredentialsError(
                f"the exec credential plugin {spec.command} of {self.where} printed no "
                f"ExecCredential status: {error}"
            ) from error
        return status
