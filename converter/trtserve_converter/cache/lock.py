"""One conversion per key at a time: the key's lock objects ``lock.<n>`` in the store.

A converter creates ``lock.<n>`` exclusively and rewrites it every ``HEARTBEAT_SECONDS``
(:class:`HeldLock`); a waiter takes a lock unchanged for ``STALE_SECONDS`` on its own
clock over by creating ``lock.<n+1>``, and the old holder stops when it sees its
successor. A failed conversion marks its lock released; a published one removes them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trtserve_converter.cache.store import CacheStore, CacheStoreError

LOG = logging.getLogger(__name__)

LOCK_PREFIX = "lock."
MAX_LOCKS = 100
HEARTBEAT_SECONDS = 10.0
"""How often the converter holding a key's lock rewrites it."""
STALE_SECONDS = 60.0
"""A lock unchanged for this long (on the waiter's own clock) is taken over."""
POLL_SECONDS = 2.0


@dataclass
class HeldLock:
    """A key's lock held by this converter, rewritten by a heartbeat thread."""

    store: CacheStore
    rel: str
    owner: str
    index: int
    beats: int = 0
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def body(self, state: str = "held") -> bytes:
        return lock_body(self.owner, self.beats, state)

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(
            target=self._beat, args=(interval,), name="cache-lock-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.lost:
                return
            try:
                successor = f"{self.rel.rsplit('.', 1)[0]}.{self.index + 1}"
                if self.store.read(successor) is not None:
                    LOG.warning("cache: lock %s was taken over by another converter", self.rel)
                    self.lost = True
                    return
                self.beats += 1
                self.store.write(self.rel, self.body())
            except Exception as error:  # a missed beat is not fatal
                LOG.warning("cache: lock heartbeat failed: %s", error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def lock_body(owner: str, beats: int, state: str) -> bytes:
    return json.dumps(
        {
            "owner": owner,
            "host": socket.gethostname(),
            "beat": beats,
            "state": state,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    ).encode()


def lock_owner(raw: bytes | None) -> tuple[str | None, str | None]:
    """(owner, state) of a lock's bytes; (None, None) while unreadable (being written)."""
    try:
        data = json.loads((raw or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    return data.get("owner"), data.get("state")


class KeyLocks:
    """The lock objects of one key: read the newest, claim the next, release ours."""

    def __init__(
        self,
        store: CacheStore,
        rel: Callable[[str], str],
        owner: str,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.store = store
        self._rel = rel
        self.owner = owner
        self.heartbeat_seconds = heartbeat_seconds

    def current(self) -> tuple[int, bytes] | None:
        """(index, bytes) of the newest lock object, None when the key has none."""
        current = None
        for index in range(MAX_LOCKS):
            raw = self.store.read(self._rel(f"{LOCK_PREFIX}{index}"))
            if raw is None:
                break
            current = (index, raw)
        return current

    def claim(self, index: int) -> HeldLock | None:
        """Create ``lock.<index>`` exclusively and start its heartbeat; None when another
        converter was faster."""
        rel = self._rel(f"{LOCK_PREFIX}{index}")
        if not self.store.create(rel, lock_body(self.owner, 0, "held")):
            return None
        # A store that ignores If-None-Match lets a second PUT overwrite the first.
        owner, _ = lock_owner(self.store.read(rel))
        if owner != self.owner:
            return None
        lock = HeldLock(self.store, rel, self.owner, index)
        lock.start(self.heartbeat_seconds)
        LOG.info("cache: holding %s while converting", rel)
        return lock

    def release(self, lock: HeldLock, *, published: bool) -> None:
        """Stop the heartbeat; remove the locks once published, else mark ours released."""
        lock.stop()
        try:
            if lock.lost:
                return
            if published:
                self.store.remove([self._rel(f"{LOCK_PREFIX}{i}") for i in range(lock.index + 1)])
            else:
                self.store.write(lock.rel, lock.body("released"))
        except CacheStoreError as error:
            LOG.warning("cache: could not release %s: %s", lock.rel, error)
