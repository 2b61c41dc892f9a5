"""The converted-model cache as the converter initContainer sees it: flags and volumes.

The operator never reads the cache (RBAC unchanged): it only tells the converter where
the cache is, mounts its credentials (a separate read-only secret volume: the source's
credentials may already be in the environment), the signing key, and a pvc:// cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtserve_operator.services.builders.converter_args import ResolvedUri, resolve_uri
from trtserve_operator.services.builders.target import Target

CACHE_PVC_DIR = "/mnt/cache"
CACHE_SECRET_DIR = "/var/run/secrets/trtserve/cache"
CACHE_SIGNING_DIR = "/var/run/secrets/trtserve/cache-signing"
CACHE_SIGNING_FILE = "key"
CACHE_SECRET_VOLUME = "cache-credentials"
CACHE_SIGNING_VOLUME = "cache-signing"
CACHE_PVC_VOLUME = "cache-pvc"
SECRET_FILE_MODE = 0o440
"""Readable by the pod's fsGroup only."""


@dataclass(frozen=True)
class CacheDefaults:
    """The operator-wide cache (chart values cache.*)."""

    uri: str | None = None
    secret_name: str | None = None
    signing_secret_name: str | None = None
    signing_secret_key: str = "key"


@dataclass(frozen=True)
class ResolvedCache:
    """The cache one TRTModel uses: spec.cache over the operator's defaults."""

    uri: ResolvedUri
    secret_name: str | None
    signing_secret_name: str | None
    signing_secret_key: str
    read_only: bool


def resolve_cache(target: Target, defaults: CacheDefaults) -> ResolvedCache | None:
    """None when the model uses no cache (disabled, or no URI anywhere)."""
    spec = target.spec.cache
    uri = (spec.uri if spec is not None else None) or defaults.uri
    enabled = spec.enabled if spec is not None and spec.enabled is not None else True
    if not enabled or not uri:
        return None
    secret = spec.secret_ref if spec is not None else None
    return ResolvedCache(
        uri=resolve_uri(uri, CACHE_PVC_VOLUME, CACHE_PVC_DIR),
        secret_name=secret.name if secret is not None else defaults.secret_name,
        signing_secret_name=defaults.signing_secret_name,
        signing_secret_key=defaults.signing_secret_key,
        read_only=spec.read_only if spec is not None else False,
    )


def cache_args(target: Target, cache: ResolvedCache | None) -> list[str]:
    """The converter's cache flags (docs/contract.md); none without a cache."""
    if cache is None:
        return []
    args = [f"--cache-uri={cache.uri.value}", f"--cache-namespace={target.namespace}"]
    if cache.secret_name:
        args.append(f"--cache-credentials-dir={CACHE_SECRET_DIR}")
    if cache.signing_secret_name:
        args.append(f"--cache-signing-key-file={CACHE_SIGNING_DIR}/{CACHE_SIGNING_FILE}")
    if cache.read_only:
        args.append("--no-cache-publish")
    return args


def cache_volumes(
    cache: ResolvedCache | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, convert container mounts) of the cache."""
    if cache is None:
        return [], []
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if cache.secret_name:
        volumes.append(
            {
                "name": CACHE_SECRET_VOLUME,
                "secret": {"secretName": cache.secret_name, "defaultMode": SECRET_FILE_MODE},
            }
        )
        mounts.append(
            {"name": CACHE_SECRET_VOLUME, "mountPath": CACHE_SECRET_DIR, "readOnly": True}
        )
    if cache.signing_secret_name:
        volumes.append(
            {
                "name": CACHE_SIGNING_VOLUME,
                "secret": {
                    "secretName": cache.signing_secret_name,
                    "defaultMode": SECRET_FILE_MODE,
                    "items": [{"key": cache.signing_secret_key, "path": CACHE_SIGNING_FILE}],
                },
            }
        )
        mounts.append(
            {"name": CACHE_SIGNING_VOLUME, "mountPath": CACHE_SIGNING_DIR, "readOnly": True}
        )
    pvc = cache.uri.mount
    if pvc is not None:  # read-write: the converter publishes into it
        volumes.append(
            {
                "name": pvc.volume,
                "persistentVolumeClaim": {"claimName": pvc.claim, "readOnly": cache.read_only},
            }
        )
        mount: dict[str, Any] = {"name": pvc.volume, "mountPath": pvc.mount_path}
        if cache.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts
