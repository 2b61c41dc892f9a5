"""gs:// for fetch.py: gcsfs with our retry loop as the only one, credentials checked first.

Left alone, gcsfs (i) falls back to anonymous access when no credentials are found, so a
missing key shows up minutes later as a network or permission error on the first object;
(ii) retries every request 6 times with backoff up to 32 s, inside fetch.py's own loop;
(iii) since 2026.10 defaults to its experimental ExtendedGcsFileSystem (hierarchical and
zonal buckets), which adds Storage Control API calls with their own retry policy.

So here credentials are resolved and refreshed once, through google-auth with every
request's timeout capped, before the first storage request: none found or refused is
SourceAuthFailed in seconds. Storage requests go through gcsfs's *core* filesystem, one
attempt each (its `_request` without the retry decorator); fetch.with_retries retries.
Never anonymous: a public object can be fetched by its https://storage.googleapis.com URL.
"""

# The environment default and the warning filter below must precede gcsfs's import.
# ruff: noqa: E402

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

# Before gcsfs is first imported: keep its experimental filesystem (and the gRPC Storage
# Control clients it imports) out unless the user asked for it explicitly.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
# google-api-core warns at import that it will drop Python 3.11 in 2027: not actionable
# in a converter run, and it would be the first two lines of every gs:// log.
warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)

import aiohttp
import gcsfs.core
import google.auth
import google.auth.transport.requests
import google.oauth2.credentials
from gcsfs.retry import HttpError
from google.auth.credentials import Credentials
from google.oauth2 import service_account

from trtserve_converter.errors import SourceAuthFailed

READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
# The converted-model cache writes (entries, manifests, locks): cache/store.py.
READ_WRITE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
SOURCE_SECRET = "spec.source.secretRef"
# Cap of every google-auth request (token refresh, metadata server); its default is 120 s.
AUTH_REQUEST_TIMEOUT_SECONDS = 10.0
AUTH_STATUSES = frozenset({401, 403})


class BoundedRequest(google.auth.transport.requests.Request):
    """google-auth's requests transport with each request's timeout capped."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        limit = (
            AUTH_REQUEST_TIMEOUT_SECONDS
            if timeout is None
            else min(timeout, AUTH_REQUEST_TIMEOUT_SECONDS)
        )
        return super().__call__(  # type: ignore[no-untyped-call]
            url, method=method, body=body, headers=headers, timeout=limit, **kwargs
        )


def _credentials_from_key(key: dict[str, Any], scopes: list[str]) -> Credentials:
    """Credentials of a JSON key whose type credentials.py already checked."""
    credentials: Credentials
    if key.get("type") == "service_account":
        info = service_account.Credentials.from_service_account_info
        credentials = info(key, scopes=scopes)  # type: ignore[no-untyped-call]
    elif key.get("type") == "authorized_user":
        user = google.oauth2.credentials.Credentials.from_authorized_user_info
        credentials = user(key, scopes=scopes)  # type: ignore[no-untyped-call]
    else:
        # external_account / impersonated_service_account: google-auth's generic loader
        # warns that it trusts the configuration; it comes from the namespace's own
        # Secret, whose owner controls the pod anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            load = google.auth.load_credentials_from_dict
            credentials, _ = load(key, scopes=scopes)  # type: ignore[no-untyped-call]
    return credentials


def resolve_credentials(
    token: str | dict[str, Any] | None,
    scope: str = READ_ONLY_SCOPE,
    secret: str = SOURCE_SECRET,
) -> Credentials:
    """Credentials for `token` (a key file, a parsed key, or None for Google's defaults),
    refreshed once so that a refused key fails here, before any storage request.
    `secret` names where the key comes from in the messages.

    Raises SourceAuthFailed when none are found or they are refused; network errors
    (google.auth TransportError) propagate for fetch.with_retries to retry.
    """
    request = BoundedRequest()
    scopes = [scope]
    try:
        if token is None:
            credentials, _ = google.auth.default(scopes=scopes, request=request)
        elif isinstance(token, dict):
            credentials = _credentials_from_key(token, scopes)
        else:
            key = json.loads(Path(token).read_text(encoding="utf-8"))
            credentials = _credentials_from_key(key, scopes)
    except google.auth.exceptions.DefaultCredentialsError as error:
        raise SourceAuthFailed(
            "no Google credentials found (no GOOGLE_APPLICATION_CREDENTIALS, no key in the "
            f"secret, no workload identity on this node): give a key in {secret} "
            "(GOOGLE_APPLICATION_CREDENTIALS) or bind a Google service account to the pod"
            + (
                "; a public object can be fetched by its https://storage.googleapis.com/... URL"
                if secret == SOURCE_SECRET
                else ""
            )
        ) from error
    except (ValueError, KeyError, OSError) as error:
        raise SourceAuthFailed(
            f"the Google key in {secret} is not usable ({type(error).__name__}: "
            f"{error}): give a complete service account key (GOOGLE_APPLICATION_CREDENTIALS)"
        ) from error
    try:
        credentials.refresh(request)  # type: ignore[no-untyped-call]
    except google.auth.exceptions.RefreshError as error:
        raise SourceAuthFailed(
            f"Google refused the credentials ({error}): check the key in {secret} "
            "(GOOGLE_APPLICATION_CREDENTIALS) or the workload identity binding"
        ) from error
    return credentials


_REQUEST_ONCE = gcsfs.core.GCSFileSystem._request.__wrapped__  # without @retry_request


class SingleAttemptGCSFileSystem(gcsfs.core.GCSFileSystem):  # type: ignore[misc]
    """gcsfs's core filesystem, one attempt per request, permission errors as such."""

    async def _request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await _REQUEST_ONCE(self, *args, **kwargs)
        except HttpError as error:
            if error.code in AUTH_STATUSES:
                raise PermissionError(f"HTTP {error.code}: {error.message}") from error
            raise
        except OSError as error:
            # gcsfs raises a plain OSError("Forbidden: <path>\n<message>") for HTTP 403.
            if str(error).startswith("Forbidden"):
                raise PermissionError(" ".join(str(error).split())) from error
            raise


def gcs_filesystem(
    token: str | dict[str, Any] | None,
    connect_seconds: float = 10.0,
    read_seconds: float = 60.0,
    *,
    writable: bool = False,
    secret: str = SOURCE_SECRET,
) -> SingleAttemptGCSFileSystem:
    """A filesystem for gs:// with resolved credentials and bounded request timeouts;
    read-only unless `writable` (the cache's store)."""
    scope = READ_WRITE_SCOPE if writable else READ_ONLY_SCOPE
    return SingleAttemptGCSFileSystem(
        token=resolve_credentials(token, scope, secret),
        access="read_write" if writable else "read_only",
        requests_timeout=aiohttp.ClientTimeout(
            total=None, connect=connect_seconds, sock_read=read_seconds
        ),
        skip_instance_cache=True,
    )
