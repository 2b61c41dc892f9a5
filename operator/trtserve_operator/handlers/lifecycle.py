"""kopf settings of the operator (applied by the CLI's startup handler).

kopf runs the operator's process: its login, startup and cleanup handlers, the liveness
endpoint, signals and logging. It watches nothing: every kind the operator reads comes
through the adapter's informers (:mod:`trtserve_operator.kube.watch`), and the
informers' callbacks (:mod:`.changes`) converge. So kopf registers no resource handler,
and in particular none of its change-detecting ones (``on.create/update/resume/delete/
field``, which keep a diff-base and progress on the object), timers or daemons (which add
finalizers): nothing but the operator's status writes ever writes to a TRTModel. The
storages below make that explicit should a resource handler ever be added: they store
nothing.

Why that is safe across restarts: the operator never asks "what changed since last time?"
but "does what exists match what the spec renders?". After a restart the informers list
every TRTModel, child, pod and benchmark Job, each TRTModel is then converged once against
what exists (:meth:`.changes.Changes.start`), and its status is recomputed from the
Deployment and pods. A change made while the operator was down (spec edit, deleted child)
is found by that comparison, not by a stored diff; a retry that was pending when it
stopped is simply done again. Nothing is lost by not persisting anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """No diff-base: nothing stored, nothing built (saves a deep copy per watch event)."""

    def build(self, *, body: Any, extra_fields: Iterable[Any] | None = None) -> Any:
        return kopf.BodyEssence()

    def fetch(self, *, body: Any) -> None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


class NoProgressStorage(kopf.ProgressStorage):
    """No handler progress: on.event handlers have none, and nothing may be written."""

    def fetch(self, *, key: Any, body: Any) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        return None

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        return None

    def touch(self, *, body: Any, patch: Any, value: str | None) -> None:
        return None

    def clear(self, *, essence: Any) -> Any:
        return essence


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf as the operator needs it.

    - no diff-base or progress storage (see the module docstring);
    - kopf posts no Events at all: the operator posts its own, one per transition a person
      acts on (kopf would post one per handler failure);
    - no namespace/CRD scanning and no peering: kopf watches nothing;
    - kopf's per-object log lines only at DEBUG (there are none without resource
      handlers; failures, warnings and errors are logged either way).
    """
    settings.persistence.progress_storage = NoProgressStorage()
    settings.persistence.diffbase_storage = NoDiffBaseStorage()
    settings.posting.enabled = False
    settings.scanning.disabled = True
    settings.peering.standalone = True
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
