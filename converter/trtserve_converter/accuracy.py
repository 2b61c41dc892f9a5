"""Step 4: the accuracy gate - original vs converted outputs on the same inputs.

An element passes when |converted - original| <= atol + rtol * |original| (numpy's
`allclose` rule). Top-1 agreement is measured on classifier outputs: rank-2 float outputs
with more than one column. When a minimum top-1 agreement is given it *replaces* rtol/atol
for those outputs (docs/api.md): an FP16/INT8 engine that keeps every predicted class but
shifts the scores by a few percent is correct. Every other output is still checked element
by element, non-finite values fail everywhere, and non-float outputs must be equal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtserve_converter.inputs import InputBatch, batch_rows, to_tensors

LOG = logging.getLogger(__name__)
REL_EPSILON = 1e-12


@dataclass
class AccuracyResult:
    passed: bool
    samples: int
    max_abs_error: float
    max_rel_error: float
    top1_agreement: float | None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        top1 = "n/a" if self.top1_agreement is None else f"{self.top1_agreement:.4f}"
        return (
            f"{self.samples} samples, max abs error {self.max_abs_error:.3g}, max rel error "
            f"{self.max_rel_error:.3g}, top-1 agreement {top1}"
        )


@dataclass
class _Tally:
    max_abs: float = 0.0
    max_rel: float = 0.0
    top1_equal: int = 0
    top1_rows: int = 0
    problems: list[str] = field(default_factory=list)


def is_classifier_output(reference: Any) -> bool:
    """Rank-2 float scores with more than one column: one row of class scores per input."""
    return bool(
        reference.ndim == 2
        and reference.shape[1] > 1
        and np.issubdtype(reference.dtype, np.floating)
    )


def _compare_one(
    *,
    name: str,
    reference: Any,
    candidate: Any,
    rtol: float,
    atol: float,
    use_top1: bool,
    tally: _Tally,
) -> None:
    reference = np.asarray(reference)
    candidate = np.asarray(candidate)
    if reference.shape != candidate.shape:
        tally.problems.append(
            f"output {name!r} shape {list(candidate.shape)} != original {list(reference.shape)}"
        )
        tally.max_abs = math.inf
        return
    if not (
        np.issubdtype(reference.dtype, np.number) and np.issubdtype(candidate.dtype, np.number)
    ):
        if not np.array_equal(reference, candidate):
            tally.problems.append(f"output {name!r} values differ")
        return
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    if not (np.all(np.isfinite(cand) == np.isfinite(ref))):
        tally.problems.append(f"output {name!r} has non-finite values where the original has not")
    diff = np.abs(np.nan_to_num(cand - ref, nan=np.inf))
    classifier = is_classifier_output(reference)
    if diff.size:
        tally.max_abs = max(tally.max_abs, float(np.max(diff)))
        tally.max_rel = max(
            tally.max_rel, float(np.max(diff / np.maximum(np.abs(ref), REL_EPSILON)))
        )
        replaced = use_top1 and classifier  # minimum top-1 agreement instead of rtol/atol
        if not replaced and np.any(diff > atol + rtol * np.abs(ref)):
            worst = int(np.argmax(diff - (atol + rtol * np.abs(ref))))
            tally.problems.append(
                f"output {name!r} beyond tolerance (atol {atol}, rtol {rtol}) at flat index "
                f"{worst}: {cand.flat[worst]:.6g} vs {ref.flat[worst]:.6g}"
            )
    if classifier:
        tally.top1_equal += int(np.sum(np.argmax(ref, axis=1) == np.argmax(cand, axis=1)))
        tally.top1_rows += ref.shape[0]


def compare_outputs(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    samples: int,
    rtol: float,
    atol: float,
    min_top1: float | None,
) -> AccuracyResult:
    """Compare (original, converted) output dicts; the gate passes when nothing differs.

    With `min_top1`, classifier outputs are judged by top-1 agreement alone (plus shape
    and finiteness); all other outputs by rtol/atol.
    """
    tally = _Tally()
    for reference, candidate in pairs:
        if set(reference) != set(candidate):
            tally.problems.append(
                f"outputs {sorted(candidate)} differ from the original's {sorted(reference)}"
            )
            continue
        for name in sorted(reference):
            _compare_one(
                name=name,
                reference=reference[name],
                candidate=candidate[name],
                rtol=rtol,
                atol=atol,
                use_top1=min_top1 is not None,
                tally=tally,
            )
    top1 = tally.top1_equal / tally.top1_rows if tally.top1_rows else None
    if min_top1 is not None and top1 is not None and top1 < min_top1:
        tally.problems.append(f"top-1 agreement {top1:.4f} below --accuracy-min-top1 {min_top1}")
    return AccuracyResult(
        passed=not tally.problems,
        samples=samples,
        max_abs_error=tally.max_abs,
        max_rel_error=tally.max_rel,
        top1_agreement=top1,
        problems=tally.problems,
    )


def _numpy_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    return {name: value.numpy() for name, value in outputs.items()}


def evaluate(
    *,
    original: Callable[..., dict[str, Any]],
    converted: Callable[..., dict[str, Any]],
    batches: Sequence[InputBatch],
    rtol: float,
    atol: float,
    min_top1: float | None,
) -> AccuracyResult:
    """Run both signature functions on every batch and compare their outputs."""
    pairs = []
    samples = 0
    for batch in batches:
        tensors = to_tensors(batch)
        pairs.append((_numpy_outputs(original(**tensors)), _numpy_outputs(converted(**tensors))))
        samples += batch_rows(batch)
    result = compare_outputs(pairs, samples, rtol, atol, min_top1)
    LOG.info("accuracy: %s -> %s", result.summary(), "passed" if result.passed else "FAILED")
    return result
