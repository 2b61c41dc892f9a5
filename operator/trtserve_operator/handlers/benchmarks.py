"""The A/B benchmark (``spec.benchmark``): a step after each change of a TRTModel or of
one of its benchmark Jobs.

Every change of a TRTModel's projection (spec or status) and of a benchmark Job lets the
benchmark service take its next step (:mod:`trtserve_operator.services.benchmark`);
:mod:`.changes` calls this, one step per model at a time. Level-triggered like the
converges: nothing is stored on the objects.
"""

from __future__ import annotations

import logging

from trtserve_operator.handlers.retries import Retries
from trtserve_operator.kube.errors import KubeError, TransientError
from trtserve_operator.services.benchmark import Benchmarks, BenchmarkView

logger = logging.getLogger(__name__)


async def benchmark_step(
    benchmarks: Benchmarks, retries: Retries, namespace: str, name: str, view: BenchmarkView
) -> None:
    """One step of ``name``'s benchmark and of those it is the baseline of. A transient
    API error is retried with backoff (at most one pending retry per model); others wait
    for the next change."""
    try:
        await benchmarks.model_changed(namespace, name, view)
    except TransientError as error:
        logger.warning("Benchmark of %s/%s failed, retrying later: %s", namespace, name, error)
        retries.schedule(
            ("benchmark", namespace, name),
            lambda: benchmarks.model_changed(namespace, name, view),
        )
    except KubeError as error:
        logger.warning("Benchmark of %s/%s: %s", namespace, name, error)
