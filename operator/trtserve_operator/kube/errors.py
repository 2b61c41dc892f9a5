"""Typed errors of the Kubernetes adapter: API errors are translated once, here."""

from __future__ import annotations


class KubeError(Exception):
    """Any failed Kubernetes API request."""

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason


class NotFoundError(KubeError):
    """404: the object (or its namespace) does not exist."""


class TransientError(KubeError):
    """Worth retrying with backoff: conflicts, throttling, 5xx, timeouts, connection errors."""


class ConflictError(TransientError):
    """409: AlreadyExists on create, or a concurrent modification."""


class RejectedError(KubeError):
    """The API refused the request for good (400/403/422...): retrying the same won't help."""


class ConfigurationError(KubeError):
    """No usable Kubernetes configuration: neither in-cluster nor a kubeconfig."""


class FencedError(KubeError):
    """A write refused before it was sent: this process does not hold the leader lease
    (any more; :mod:`.fence`). Nothing retries it: the leader converges."""
