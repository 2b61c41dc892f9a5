"""kopf settings of the operator (applied by the CLI's startup handler).

The operator registers only level-triggered handlers (``@kopf.on.event`` and indexes),
never kopf's change-detecting ones (``on.create/update/resume/delete/field``, which keep
a diff-base and progress on the object), timers or daemons (which add finalizers). kopf
keeps no state on the objects for ``on.event`` handlers and indexes. The storages below
make that explicit and cheap: they store nothing and never deep-copy an object to
compute an "essence" that no handler would use.

Why that is safe across restarts: the operator never asks "what changed since last time?"
but "does what exists match what the spec renders?". After a restart kopf lists every
TRTModel and child (indexes are filled before any handler runs), each TRTModel is
converged once against what exists, and its status is recomputed from the Deployment and
pods. A change made while the operator was down (spec edit, deleted child) is found by
that comparison, not by a stored diff; a retry that was pending when it stopped is simply
done again. Nothing is lost by not persisting anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from trtserve_operator.handlers.indexes import MANAGED

WATCHED_CHILDREN = (("batch", "v1", "jobs"),)
"""The operator's objects kopf watches (only those with its ``managed-by`` label: the
benchmark Jobs; the other children and pods are the adapter's informers', which select
the same way); tests/operator/test_handler_shape.py checks that the resource of every kopf
handler filtering on that label is here."""


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

    - no diff-base or progress storage (see the module docstring): kopf never writes to a
      TRTModel; the operator writes only its status subresource;
    - kopf posts no Events at all: the operator posts its own, one per transition a person
      acts on (kopf would post one per handler failure);
    - no namespace/CRD scanning: the watched namespaces are given explicitly;
    - short-lived per-object workers (memory after a restart with many objects);
    - the watch of benchmark Jobs asks the API server for the operator's own objects only
      (a label selector): the handlers' ``labels=`` filters are client-side, so without it
      kopf would stream and process every Job of the watched namespaces (of the whole
      cluster with ``-A``). Deployments, Services, ConfigMaps and Pods are not watched by
      kopf at all but by the adapter's informers (with the same selector);
    - kopf's per-object log lines ("Handler 'child_changed' succeeded.", one per handler
      per watch event) only at DEBUG: thousands of lines after a restart, and a visible
      part of the operator's CPU. Failures (warnings, errors) are still logged.
    """
    settings.persistence.progress_storage = NoProgressStorage()
    settings.persistence.diffbase_storage = NoDiffBaseStorage()
    settings.posting.enabled = False
    settings.scanning.disabled = True
    settings.peering.standalone = True
    # Per-object workers (and the last event body each holds) go away after 1 s without
    # events instead of 5 s: after a restart with hundreds of objects this bounds memory.
    settings.queueing.idle_timeout = 1.0
    # List big collections in pages: the initial listing is the memory peak of a restart.
    settings.watching.chunk_size = 200
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    selector = ",".join(f"{key}={value}" for key, value in MANAGED.items())
    for resource in WATCHED_CHILDREN:
        settings.watching.label_selectors[resource] = selector
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
