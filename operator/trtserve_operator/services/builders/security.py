"""The restricted Pod Security Standard for every pod the operator creates (serving pods
and benchmark Jobs): non-root with a fixed user, no privilege escalation, no
capabilities, a read-only root filesystem and the runtime's seccomp profile."""

from __future__ import annotations

from typing import Any

RUN_AS_USER = 1000
"""The user (and group) the converter, TF Serving and trt-bench run as."""


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security_context(*, owns_volumes: bool) -> dict[str, Any]:
    """``owns_volumes``: the pod writes to volumes it mounts (the model's emptyDir, a cache
    claim), so they are made group-owned by :data:`RUN_AS_USER` (``fsGroup``)."""
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
    }
    if owns_volumes:
        context["fsGroup"] = RUN_AS_USER
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context
