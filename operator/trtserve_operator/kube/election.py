"""Leader election on a ``coordination.k8s.io/v1`` Lease, after client-go's
``tools/leaderelection``.

Every replica runs a :class:`LeaderElector`; at most one holds the Lease at a time and
only its :class:`.fence.Fence` is open. The algorithm is client-go's ``tryAcquireOrRenew``:

- read the Lease (the leader skips the read and updates with the resourceVersion of its
  last write, as client-go does since 1.27); create it if it does not exist;
- a Lease held by another identity is **valid** while ``observed_time + leaseDuration``
  has not passed, where ``observed_time`` is *this* process's monotonic clock when it last
  saw the record change: nobody compares clocks across machines;
- otherwise write the record with this identity: ``acquireTime`` kept and
  ``leaseTransitions`` unchanged when renewing, ``acquireTime`` = now and transitions + 1
  when taking over; the update names the resourceVersion read, so of two candidates only
  one can win (the other gets a 409 and stays a follower).

A follower retries every ``retry_period`` (plus up to ``jitter`` of it); the leader renews
every ``retry_period`` and stops leading when it has not renewed within ``renew_deadline``
of the start of its last successful renewal: the fence closes at that instant, and the
callback cancels the work in flight. ``release`` (on SIGTERM, client-go's
``ReleaseOnCancel``) closes the fence, stops the work, then writes an empty holder with a
1-second duration, so the follower takes over at its next retry instead of after a whole
lease duration.

No well-kept asyncio implementation fits the adapter: kubernetes_asyncio's
``leaderelection`` (a port of the official client's threaded one) needs that library's own
client and has no fencing; kopf's peering is not leader election (docs/operator.md).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from trtserve_operator.kube.errors import ConflictError, KubeError
from trtserve_operator.kube.fence import Fence
from trtserve_operator.kube.lease import LeaseRecord, StoredLease, micro_time

logger = logging.getLogger(__name__)

ERROR_LOG_INTERVAL = 60.0
"""Seconds between two warnings of the same Lease error."""


class LeaseStore(Protocol):
    """The Lease requests of the adapter (:class:`trtserve_operator.kube.client.Kube`)."""

    async def get_lease(self, namespace: str, name: str) -> StoredLease | None: ...

    async def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> StoredLease: ...

    async def update_lease(
        self, namespace: str, name: str, record: LeaseRecord, resource_version: str
    ) -> StoredLease: ...


class Callbacks(Protocol):
    """client-go's ``LeaderCallbacks``; called on the event loop, must not block."""

    def started_leading(self) -> None: ...

    def stopped_leading(self) -> None: ...

    def new_leader(self, identity: str, previous: str) -> None: ...


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    jitter: float = 0.2
    """A follower waits ``retry_period * (1 + jitter * random())`` between attempts.
    client-go's factor is 1.2 (for many candidates); two replicas need far less, and a
    smaller one shortens the takeover after a crash."""

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline > self.retry_period * (1 + self.jitter):
            raise ValueError(
                "the renew deadline must be longer than the retry period (with its jitter)"
            )
        if not self.identity:
            raise ValueError("the identity must not be empty")


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class LeaderElector:
    """One candidate for the Lease ``config.namespace/config.name``."""

    def __init__(
        self,
        store: LeaseStore,
        config: ElectionConfig,
        fence: Fence,
        callbacks: Callbacks,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self.config = config
        self._fence = fence
        self._callbacks = callbacks
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self._observed: StoredLease | None = None
        self._observed_time = float("-inf")
        self._leading = False
        self._renewed_at = float("-inf")
        self.holder = ""
        """The identity this process last saw holding the Lease ("" when none)."""
        self._last_error = ""
        self._last_warned = float("-inf")

    @property
    def leading(self) -> bool:
        return self._leading and self._fence.is_open()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign, lead until the lease is lost, campaign again; forever (until cancelled)."""
        while True:
            await self._acquire()
            await self._renew()

    async def _acquire(self) -> None:
        while not await self.try_acquire_or_renew():
            period = self.config.retry_period
            await asyncio.sleep(period * (1 + self.config.jitter * self._rng.random()))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.config.retry_period)
            while True:
                remaining = self._renewed_at + self.config.renew_deadline - self._clock()
                if remaining <= 0:
                    self._stop_leading("not renewed within the renew deadline")
                    return
                try:
                    renewed = await asyncio.wait_for(self.try_acquire_or_renew(), remaining)
                except TimeoutError:
                    renewed = False
                if renewed:
                    break
                if not self._leading:  # another holder took over (seen when reading)
                    return
                await asyncio.sleep(min(self.config.retry_period, max(remaining, 0.0)))

    # --- one attempt ------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """client-go's ``tryAcquireOrRenew``: True when this process holds the lease now."""
        config = self.config
        started = self._clock()
        now = micro_time(self._wall())
        try:
            if self._leading and self._observed is not None and self._fence.is_open():
                # The fast path: no read while this process holds a valid lease.
                current = self._observed
            else:
                read = await self._store.get_lease(config.namespace, config.name)
                if read is None:
                    stored = await self._store.create_lease(
                        config.namespace, config.name, self._record(None, now)
                    )
                    self._succeeded(stored, started)
                    return True
                self._observe(read)
                current = read
                old = current.record
                if old.holder and old.holder != config.identity and self._valid(old):
                    if self._leading:
                        self._stop_leading(f"the lease is held by {old.holder}")
                    return False
            stored = await self._store.update_lease(
                config.namespace,
                config.name,
                self._record(current.record, now),
                current.resource_version,
            )
        except KubeError as error:
            # A conflict (another candidate wrote first) or the API server unreachable:
            # not leading by this attempt; the next one reads the lease again.
            self._failed(error)
            self._observed = None if self._leading else self._observed
            return False
        self._succeeded(stored, started)
        return True

    def _record(self, old: LeaseRecord | None, now: str) -> LeaseRecord:
        """This process's record, written at ``now`` over ``old``: renewing keeps the
        acquire time and the transitions; creating or taking over (a released lease too)
        starts them anew (a takeover counts one more transition)."""
        if old is not None and old.holder == self.config.identity:
            acquired, transitions = old.acquire_time, old.transitions
        else:
            acquired, transitions = now, (old.transitions + 1 if old is not None else 0)
        return LeaseRecord(
            self.config.identity, round(self.config.lease_duration), acquired, now, transitions
        )

    def _failed(self, error: KubeError) -> None:
        """A conflict is the algorithm at work (debug); anything else (RBAC refusing the
        Lease, an unreachable API server) is logged as a warning when it is new or a
        minute old, so a process that can never lead says why without flooding the log."""
        if isinstance(error, ConflictError):
            logger.debug("Lease %s/%s: %s", *self._lease_name(), error)
            return
        text, now = str(error), self._clock()
        if text != self._last_error or now - self._last_warned >= ERROR_LOG_INTERVAL:
            logger.warning(
                "Lease %s/%s: %s (retrying every %.0fs)",
                *self._lease_name(),
                error,
                self.config.retry_period,
            )
            self._last_error, self._last_warned = text, now

    def _valid(self, record: LeaseRecord) -> bool:
        return self._observed_time + record.lease_duration_seconds > self._clock()

    def _observe(self, stored: StoredLease) -> None:
        """Remember the record and, when it changed, the local time it was seen to."""
        if self._observed is None or stored.record != self._observed.record:
            self._observed_time = self._clock()
            previous, self.holder = self.holder, stored.record.holder
            if self.holder != previous:
                self._callbacks.new_leader(self.holder, previous)
        self._observed = stored

    def _succeeded(self, stored: StoredLease, started: float) -> None:
        """This process holds the lease: writes may start until ``started`` +
        ``renew_deadline`` (started: before the request, so the fence never outlives what
        any other candidate can have observed)."""
        self._observe(stored)
        self._renewed_at = started
        self._fence.open_until(started + self.config.renew_deadline)
        if not self._leading:
            self._leading = True
            logger.info(
                "Leading as %s (lease %s/%s, transitions %d)",
                self.config.identity,
                self.config.namespace,
                self.config.name,
                stored.record.transitions,
            )
            self._callbacks.started_leading()

    def _stop_leading(self, why: str) -> None:
        self._fence.close()
        if self._leading:
            self._leading = False
            logger.warning("Stopped leading as %s: %s", self.config.identity, why)
            self._callbacks.stopped_leading()

    # --- hand-over ---------------------------------------------------------------------------

    async def release(self) -> bool:
        """Stop writing, then hand the lease over (client-go's ``release``): an empty
        holder and a 1-second duration. True when the lease was released."""
        if not self._leading or self._observed is None:
            self._fence.close()
            return False
        observed = self._observed
        self._stop_leading("releasing the lease (shutting down)")
        now = micro_time(self._wall())
        record = LeaseRecord("", 1, now, now, observed.record.transitions)
        try:
            stored = await self._store.update_lease(
                self.config.namespace, self.config.name, record, observed.resource_version
            )
        except KubeError as error:
            logger.warning("Lease %s/%s not released: %s", *self._lease_name(), error)
            return False
        self._observe(stored)
        logger.info("Released the lease %s/%s", *self._lease_name())
        return True

    def _lease_name(self) -> tuple[str, str]:
        return self.config.namespace, self.config.name
