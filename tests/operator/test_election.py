"""The leader elector (kube/election.py) against a Lease store with the API server's
semantics (a resourceVersion per write, 409 on a stale one or on creating an existing
Lease) and a clock the test moves: every transition of client-go's algorithm, and the
fence that keeps a leader from starting writes once it may have lost the lease.

kmock emulates neither PUT nor resourceVersion, so the store is this test's; the real
thing is measured on a real API server (benchmarks/failover.sh, docs/operator.md).
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field

import pytest

from trtserve_operator.kube.client import Kube
from trtserve_operator.kube.election import ElectionConfig, LeaderElector
from trtserve_operator.kube.errors import ConflictError, FencedError, RejectedError, TransientError
from trtserve_operator.kube.fence import Fence
from trtserve_operator.kube.lease import LeaseRecord, StoredLease

NS, NAME = "trtserve-system", "trtserve"
T0 = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return T0 + datetime.timedelta(seconds=self.now - 1000.0)


@dataclass
class Store:
    """One Lease, stored as the API server stores it."""

    lease: StoredLease | None = None
    version: int = 0
    requests: list[str] = field(default_factory=list)
    down: bool = False

    def _check(self, what: str) -> None:
        self.requests.append(what)
        if self.down:
            raise TransientError(f"{what}: connection refused")

    def _store(self, record: LeaseRecord) -> StoredLease:
        self.version += 1
        self.lease = StoredLease(record, str(self.version))
        return self.lease

    async def get_lease(self, namespace: str, name: str) -> StoredLease | None:
        self._check("get")
        return self.lease

    async def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> StoredLease:
        self._check("create")
        if self.lease is not None:
            raise ConflictError("create: 409 AlreadyExists")
        return self._store(record)

    async def update_lease(
        self, namespace: str, name: str, record: LeaseRecord, resource_version: str
    ) -> StoredLease:
        self._check("update")
        if self.lease is None or self.lease.resource_version != resource_version:
            raise ConflictError("update: 409 Conflict: the object has been modified")
        return self._store(record)


@dataclass
class Events:
    log: list[str] = field(default_factory=list)

    def started_leading(self) -> None:
        self.log.append("started")

    def stopped_leading(self) -> None:
        self.log.append("stopped")

    def new_leader(self, identity: str, previous: str) -> None:
        self.log.append(f"holder {identity or '-'} (was {previous or '-'})")


def candidate(store: Store, clock: Clock, identity: str) -> tuple[LeaderElector, Fence, Events]:
    fence, events = Fence(clock), Events()
    config = ElectionConfig(
        NS, NAME, identity, lease_duration=15, renew_deadline=10, retry_period=2
    )
    elector = LeaderElector(store, config, fence, events, clock=clock, wall=clock.wall)
    return elector, fence, events


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    store, clock = Store(), Clock()
    a, fence, events = candidate(store, clock, "a")
    assert not fence.is_open()
    assert run(a.try_acquire_or_renew()) is True
    assert store.lease is not None
    record = store.lease.record
    assert record == LeaseRecord(
        holder="a",
        lease_duration_seconds=15,
        acquire_time="2026-12-06T12:00:00.000000Z",
        renew_time="2026-12-06T12:00:00.000000Z",
        transitions=0,
    )
    assert events.log == ["holder a (was -)", "started"]
    assert fence.is_open()
    clock.now += 9.9
    assert fence.is_open()
    clock.now += 0.1  # renew_deadline after the start of the last renewal
    assert not fence.is_open()


def test_renewing_keeps_acquire_time_and_transitions_and_skips_the_read() -> None:
    store, clock = Store(), Clock()
    a, fence, events = candidate(store, clock, "a")
    run(a.try_acquire_or_renew())
    clock.now += 2
    store.requests.clear()
    assert run(a.try_acquire_or_renew()) is True
    assert store.requests == ["update"]  # no GET while the lease is valid (client-go >= 1.27)
    assert store.lease is not None
    record = store.lease.record
    assert record.acquire_time == "2026-12-06T12:00:00.000000Z"
    assert record.renew_time == "2026-12-06T12:00:02.000000Z"
    assert record.transitions == 0
    clock.now += 9.9
    assert fence.is_open()  # extended by the renewal
    assert events.log == ["holder a (was -)", "started"]  # no transition


def test_a_follower_never_takes_a_lease_that_is_renewed() -> None:
    store, clock = Store(), Clock()
    a, _, _ = candidate(store, clock, "a")
    b, b_fence, b_events = candidate(store, clock, "b")
    run(a.try_acquire_or_renew())
    for _ in range(20):  # 40 s: far beyond one lease duration, but renewed all along
        clock.now += 2
        assert run(a.try_acquire_or_renew()) is True
        assert run(b.try_acquire_or_renew()) is False
        assert not b_fence.is_open()
    assert b_events.log == ["holder a (was -)"]
    assert b.holder == "a"


def test_the_lease_of_a_dead_holder_is_taken_a_lease_duration_after_it_was_last_seen() -> None:
    """Expiry is judged by the follower's own clock from the moment it saw the record
    change, never by comparing renewTime with its wall clock."""
    store, clock = Store(), Clock()
    a, a_fence, _ = candidate(store, clock, "a")
    b, b_fence, b_events = candidate(store, clock, "b")
    run(a.try_acquire_or_renew())
    clock.now += 1
    assert run(b.try_acquire_or_renew()) is False  # b sees the record at t=1
    # a dies: no more renewals. 14.9 s after b saw it, the lease is still valid.
    clock.now += 14.9
    assert not a_fence.is_open()  # a, if it were alive, has stopped writing at t=10
    assert run(b.try_acquire_or_renew()) is False
    clock.now += 0.1
    assert run(b.try_acquire_or_renew()) is True
    assert store.lease is not None
    record = store.lease.record
    assert record.holder == "b"
    assert record.transitions == 1
    assert record.acquire_time == record.renew_time == "2026-12-06T12:00:16.000000Z"
    assert b_fence.is_open()
    assert b_events.log == ["holder a (was -)", "holder b (was a)", "started"]


def test_of_two_candidates_taking_over_at_once_only_one_wins() -> None:
    """Both read the expired lease; b writes first; c's update names the resourceVersion
    it read, which b's write made stale: 409, and c stays a follower."""

    @dataclass
    class StaleOnce(Store):
        stale: StoredLease | None = None

        async def get_lease(self, namespace: str, name: str) -> StoredLease | None:
            if self.stale is not None:
                self.requests.append("get")
                read, self.stale = self.stale, None
                return read
            return await super().get_lease(namespace, name)

    store, clock = StaleOnce(), Clock()
    a, _, _ = candidate(store, clock, "a")
    run(a.try_acquire_or_renew())
    b, b_fence, _ = candidate(store, clock, "b")
    c, c_fence, c_events = candidate(store, clock, "c")
    run(b.try_acquire_or_renew())
    run(c.try_acquire_or_renew())
    clock.now += 15  # a is dead: its lease expired in both b's and c's view
    before = store.lease
    assert run(b.try_acquire_or_renew()) is True
    store.stale = before  # c's read happened before b's write
    store.requests.clear()
    assert run(c.try_acquire_or_renew()) is False
    assert store.requests == ["get", "update"]  # c tried, with the stale resourceVersion
    assert store.lease is not None
    assert store.lease.record.holder == "b"
    assert b_fence.is_open()
    assert not c_fence.is_open()
    assert "started" not in c_events.log


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline_then_another_takes_over() -> None:
    store, clock = Store(), Clock()
    a, a_fence, a_events = candidate(store, clock, "a")
    b, b_fence, _ = candidate(store, clock, "b")
    run(a.try_acquire_or_renew())
    run(b.try_acquire_or_renew())
    store.down = True
    clock.now += 2
    assert run(a.try_acquire_or_renew()) is False
    assert a_fence.is_open()  # still within the renew deadline
    store.down = False
    clock.now += 8  # 10 s since the last renewal started
    assert not a_fence.is_open()
    with pytest.raises(FencedError):
        a_fence.check("patch deployments ns/m")
    clock.now += 5  # 15 s after b last saw the lease change
    assert run(b.try_acquire_or_renew()) is True
    assert b_fence.is_open()
    # a's next attempt sees b's valid lease and reports that it stopped leading.
    assert run(a.try_acquire_or_renew()) is False
    assert a_events.log[-1] == "stopped"
    assert not a_fence.is_open()


def test_release_hands_over_within_one_retry_period() -> None:
    store, clock = Store(), Clock()
    a, a_fence, a_events = candidate(store, clock, "a")
    b, _, _ = candidate(store, clock, "b")
    run(a.try_acquire_or_renew())
    run(b.try_acquire_or_renew())
    clock.now += 1
    assert run(a.release()) is True
    assert not a_fence.is_open()
    assert a_events.log[-2:] == ["stopped", "holder - (was a)"]
    assert store.lease is not None
    assert store.lease.record.holder == ""
    assert store.lease.record.lease_duration_seconds == 1
    clock.now += 2  # b's next attempt: no lease duration to wait for
    assert run(b.try_acquire_or_renew()) is True
    assert store.lease.record.holder == "b"
    assert store.lease.record.transitions == 1
    assert run(a.release()) is False  # not leading: nothing to release


def test_timings_are_checked_as_client_go_checks_them() -> None:
    with pytest.raises(ValueError, match="lease duration"):
        ElectionConfig(NS, NAME, "a", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="renew deadline"):
        ElectionConfig(NS, NAME, "a", lease_duration=15, renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError, match="identity"):
        ElectionConfig(NS, NAME, "")


def test_no_write_is_sent_through_a_closed_fence() -> None:
    """The adapter checks the fence before the request: a write of a process that does
    not lead fails with FencedError, not with the connection error that sending it to
    this closed port would give."""

    async def scenario() -> None:
        kube = Kube.from_url("http://127.0.0.1:9")
        kube.fence = Fence()
        deployment = {"kind": "Deployment", "metadata": {"namespace": "ns", "name": "m"}}
        try:
            with pytest.raises(FencedError):
                await kube.create(deployment)
            with pytest.raises(FencedError):
                await kube.patch_trtmodel_status("ns", "m", {"phase": "Ready"})
            with pytest.raises(TransientError):  # a read is never fenced
                await kube.get_lease(NS, NAME)
            with pytest.raises(TransientError):  # nor are the elector's own writes
                await kube.update_lease(NS, NAME, LeaseRecord("a", 15), "1")
        finally:
            await kube.close()

    asyncio.run(scenario())


def test_the_running_elector_stops_writes_at_the_deadline_while_the_api_server_hangs() -> None:
    """The loop with real time (short durations): the leader's renewals hang; at the
    renew deadline the fence refuses writes and the work in flight is told to stop, at
    the latest when its lease could have expired in anyone else's view."""

    class Hanging(Store):
        hang = False

        async def update_lease(
            self, namespace: str, name: str, record: LeaseRecord, resource_version: str
        ) -> StoredLease:
            if self.hang:
                await asyncio.Event().wait()
            return await super().update_lease(namespace, name, record, resource_version)

    async def scenario() -> tuple[float, float, list[float]]:
        store = Hanging()
        fence, events = Fence(), Events()
        config = ElectionConfig(NS, NAME, "a", lease_duration=0.6, renew_deadline=0.4,
                                retry_period=0.1)  # fmt: skip
        elector = LeaderElector(store, config, fence, events)
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(elector.run())
        while "started" not in events.log:
            await asyncio.sleep(0.01)
        store.hang = True
        hung_at = loop.time()
        writes: list[float] = []
        while "stopped" not in events.log:
            if fence.is_open():
                writes.append(loop.time())
            await asyncio.sleep(0.005)
        stopped_at = loop.time()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return hung_at, stopped_at, writes

    hung_at, stopped_at, writes = asyncio.run(scenario())
    # The last successful renewal started before the hang: no write may start 0.4 s
    # after it, and the loop reports the loss by then too (plus scheduling slack).
    assert writes
    assert max(writes) < hung_at + 0.4
    assert stopped_at < hung_at + 0.4 + 0.2


def test_a_candidate_that_cannot_reach_the_lease_says_why_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RBAC refusing the Lease must not leave a silent follower: a warning names the
    error, repeated only when it changes or a minute later."""

    class Refusing(Store):
        async def get_lease(self, namespace: str, name: str) -> StoredLease | None:
            raise RejectedError("get leases trtserve-system/trtserve: 403 Forbidden")

    store, clock = Refusing(), Clock()
    a, fence, _ = candidate(store, clock, "a")
    with caplog.at_level("WARNING", logger="trtserve_operator.kube.election"):
        for _ in range(10):  # 20 s of attempts
            assert run(a.try_acquire_or_renew()) is False
            clock.now += 2
        assert len(caplog.records) == 1
        assert "403 Forbidden" in caplog.records[0].getMessage()
        clock.now += 60
        run(a.try_acquire_or_renew())
        assert len(caplog.records) == 2
    assert not fence.is_open()
