"""kopf settings of the operator (applied by the CLI's startup handler)."""

from __future__ import annotations

import logging

import kopf

ANNOTATION_PREFIX = "trtserve.io"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf as the operator needs it.

    - progress and diff-base in annotations: the CRD's status schema is structural (no
      preserve-unknown-fields), so kopf must not write its bookkeeping into status;
    - only warnings are posted as Events (kopf would otherwise post an Event per handler
      run, i.e. write on every resume);
    - no namespace/CRD scanning: the watched namespaces are given explicitly;
    - short-lived per-object workers (memory after a restart with many objects).
    """
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.scanning.disabled = True
    settings.peering.standalone = True
    # Per-object workers (and the last event body each holds) go away after 1 s without
    # events instead of 5 s: after a restart with hundreds of objects this bounds memory.
    settings.queueing.idle_timeout = 1.0
    # List big collections in pages: the initial listing is the memory peak of a restart.
    settings.watching.chunk_size = 200
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
