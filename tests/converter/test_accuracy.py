"""The accuracy gate: fails on models that differ on purpose, passes on identical ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from trtserve_converter.accuracy import compare_outputs, evaluate
from trtserve_converter.inputs import build_inputs
from trtserve_converter.savedmodel import input_specs

pytestmark = pytest.mark.tf


def serving(path: Any) -> Any:
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def image_batches(function: Any, batches: int = 4) -> list[dict[str, Any]]:
    specs = input_specs(function)
    return build_inputs(specs, [{"images": (8, 8, 8, 3)}] * batches, seed=11)


def test_identical_models_pass(models: Any) -> None:
    original = serving(models.classifier)
    copy = serving(models.classifier)  # loaded separately: a different function object
    result = evaluate(
        original=original, converted=copy, batches=image_batches(original),
        rtol=0.0, atol=0.0, min_top1=1.0,
    )  # fmt: skip
    assert result.passed, result.problems
    assert result.samples == 32
    assert result.max_abs_error == 0.0
    assert result.top1_agreement == 1.0


def test_models_that_differ_fail(models: Any) -> None:
    original = serving(models.classifier)
    other = serving(models.classifier_other)  # same architecture, other weights
    result = evaluate(
        original=original, converted=other, batches=image_batches(original),
        rtol=0.01, atol=0.001, min_top1=None,
    )  # fmt: skip
    assert not result.passed
    assert result.max_abs_error > 0.01
    assert result.top1_agreement is not None
    assert result.top1_agreement < 1.0
    assert "beyond tolerance" in result.problems[0]


def test_tolerance_boundaries() -> None:
    reference = {"y": np.array([[1.0, 2.0]], np.float32)}
    within = {"y": np.array([[1.0105, 2.0]], np.float32)}  # 0.0105 <= 0.001 + 0.01 * 1
    beyond = {"y": np.array([[1.0125, 2.0]], np.float32)}
    assert compare_outputs([(reference, within)], 1, rtol=0.01, atol=0.001, min_top1=None).passed
    failed = compare_outputs([(reference, beyond)], 1, rtol=0.01, atol=0.001, min_top1=None)
    assert not failed.passed
    assert failed.max_abs_error == pytest.approx(0.0125, rel=1e-3)
    assert failed.max_rel_error == pytest.approx(0.0125, rel=1e-3)


def test_top1_gate_and_non_numeric_outputs() -> None:
    reference = {"p": np.array([[0.6, 0.4], [0.2, 0.8]]), "label": np.array([b"a", b"b"])}
    flipped = {"p": np.array([[0.6, 0.4], [0.8, 0.2]]), "label": np.array([b"a", b"b"])}
    result = compare_outputs([(reference, flipped)], 2, rtol=10, atol=10, min_top1=0.9)
    assert result.top1_agreement == 0.5
    assert result.problems == ["top-1 agreement 0.5000 below --accuracy-min-top1 0.9"]
    relabelled = {"p": reference["p"], "label": np.array([b"a", b"c"])}
    assert not compare_outputs([(reference, relabelled)], 2, 0.1, 0.1, None).passed


def test_shape_or_key_mismatch_fails() -> None:
    reference = {"y": np.zeros((2, 3))}
    assert not compare_outputs([(reference, {"y": np.zeros((2, 4))})], 2, 1, 1, None).passed
    assert not compare_outputs([(reference, {"z": np.zeros((2, 3))})], 2, 1, 1, None).passed
    nan = {"y": np.full((2, 3), np.nan)}
    assert not compare_outputs([(reference, nan)], 2, 1, 1, None).passed


def test_min_top1_replaces_tolerances_for_classifier_outputs() -> None:
    """Logits scaled by 1.03 keep every top-1 class: with minTop1Agreement set, that passes."""
    logits = np.random.default_rng(3).standard_normal((16, 10)).astype(np.float32) * 5
    reference = {"logits": logits, "embedding": np.ones((16, 1), np.float32)}
    scaled = {"logits": logits * 1.03, "embedding": np.ones((16, 1), np.float32)}
    result = compare_outputs([(reference, scaled)], 16, rtol=0.01, atol=0.001, min_top1=0.98)
    assert result.passed, result.problems
    assert result.top1_agreement == 1.0
    # Without minTop1Agreement the same logits are checked element by element.
    strict = compare_outputs([(reference, scaled)], 16, rtol=0.01, atol=0.001, min_top1=None)
    assert not strict.passed
    assert "beyond tolerance" in strict.problems[0]


def test_min_top1_leaves_other_outputs_to_the_tolerances() -> None:
    """Rank-2 outputs with one column and outputs of other ranks keep rtol/atol."""
    logits = np.array([[2.0, 1.0], [0.0, 3.0]], np.float32)
    reference = {"logits": logits, "score": np.array([[1.0], [2.0]]), "bias": np.array([1.0])}
    for name, changed in (("score", np.array([[1.5], [2.0]])), ("bias", np.array([1.5]))):
        candidate = {**reference, name: changed}
        result = compare_outputs([(reference, candidate)], 2, rtol=0.01, atol=0.001, min_top1=0.5)
        assert not result.passed
        assert f"output {name!r} beyond tolerance" in result.problems[0]


def test_min_top1_still_rejects_non_finite_classifier_outputs() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0]], np.float32)
    broken = np.array([[2.0, 1.0], [np.nan, 3.0]], np.float32)
    result = compare_outputs([({"p": logits}, {"p": broken})], 2, 0.01, 0.001, min_top1=0.5)
    assert not result.passed
    assert "non-finite" in result.problems[0]
