"""The one gate every write of the operator passes: only a leader whose lease is fresh
in its own view may start one.

:class:`Fence` is opened by the leader elector (:mod:`.election`) each time it renews its
Lease and closes by itself ``renew_deadline`` seconds after the start of the last
successful renewal (a monotonic clock). Since another candidate may only take the lease
over ``lease_duration`` seconds after *it* last saw the lease change (which is after that
start), and ``lease_duration > renew_deadline``, a write started through an open fence is
started before anyone else can lead. The elector also cancels the work in flight when the
fence closes (its ``on_stopped_leading``), so nothing started earlier keeps writing.

The adapter (:class:`trtserve_operator.kube.client.Kube`) checks the fence before every
request that is not a GET, except the elector's own Lease requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from trtserve_operator.kube.errors import FencedError

__all__ = ["AlwaysOpen", "Fence", "FencedError"]


class Fence:
    """Open until a monotonic deadline; closed at first (a process leads only once it has
    acquired the lease)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = float("-inf")

    def open_until(self, deadline: float) -> None:
        """Writes may start until ``deadline`` (on the fence's clock)."""
        self._until = deadline

    def close(self) -> None:
        self._until = float("-inf")

    def is_open(self) -> bool:
        return self._clock() < self._until

    def check(self, what: str) -> None:
        """Raise :class:`FencedError` unless a write may start now."""
        if not self.is_open():
            raise FencedError(f"{what}: not sent, this operator does not hold the leader lease")


class AlwaysOpen(Fence):
    """No leader election (``TRTSERVE_LEADER_ELECTION=false``, one process by contract)."""

    def is_open(self) -> bool:
        return True
