"""What leading means for the operator: the leader elector's callbacks.

Every replica lists and watches (warm caches); only the leader converges. Converging
starts once both are true, this process leads and every informer has its first listing
(:meth:`Changes.start`, which converges every cached TRTModel: a takeover needs no
listing, and writes only where the cluster differs from the rendering). When the lease is
lost or released, the work in flight is cancelled and the services forget what they
remembered (:meth:`Changes.stop`); the fence (:mod:`trtserve_operator.kube.fence`) has
already refused every new write by then.
"""

from __future__ import annotations

import logging

from trtserve_operator.handlers.changes import Changes
from trtserve_operator.services.metrics import Metrics

logger = logging.getLogger(__name__)


class Leadership:
    """The elector's callbacks (:class:`trtserve_operator.kube.election.Callbacks`)."""

    def __init__(self, changes: Changes, metrics: Metrics) -> None:
        self._changes = changes
        self._metrics = metrics
        self._listed = False
        self.leading = False
        self.holder = ""
        metrics.set_leader(False, transition=False)  # a follower until elected

    def listed(self) -> int | None:
        """Every informer has its first listing; the TRTModels converged, if leading."""
        self._listed = True
        return self._start()

    def started_leading(self) -> None:
        self.leading = True
        self._metrics.set_leader(True)
        self._start()

    def stopped_leading(self) -> None:
        self.leading = False
        self._metrics.set_leader(False)
        self._changes.stop()

    def new_leader(self, identity: str, previous: str) -> None:
        self.holder = identity
        logger.info(
            "Leader lease holder: %s (previous holder: %s)", identity or "none", previous or "none"
        )

    def _start(self) -> int | None:
        if not (self._listed and self.leading) or self._changes.started:
            return None
        count = self._changes.start()
        logger.info("Leading: converging %d TRTModels from the caches", count)
        return count

    def role(self) -> str:
        return "leader" if self.leading else "follower"
