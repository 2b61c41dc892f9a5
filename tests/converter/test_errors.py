"""Error messages: one line, the cause without TensorFlow's stack dump."""

from __future__ import annotations

import pytest
import tensorflow as tf

from trtserve_converter.errors import summarize

pytestmark = pytest.mark.tf


def test_summarize_keeps_the_cause_of_a_tf_op_error() -> None:
    @tf.function  # type: ignore[untyped-decorator]
    def parse(serialized: tf.Tensor) -> tf.Tensor:
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})

    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        parse(tf.constant([b""]))
    assert "most recent call last" in str(caught.value)  # TF's noise is there...
    text = summarize(caught.value)
    assert "most recent call last" not in text  # ...and gone here
    assert "File " not in text
    assert text.startswith("InvalidArgumentError: ")
    assert "x" in text
    assert "required" in text
    assert "\n" not in text


def test_summarize_limits_length() -> None:
    text = summarize(ValueError("y" * 1000), limit=50)
    assert text == "ValueError: " + "y" * 49 + "…"
