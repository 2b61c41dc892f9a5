"""The batching ConfigMap holds real TF Serving ``BatchingParameters`` text format.

TF Serving's own ``session_bundle_config_pb2`` is not installable from PyPI
(tensorflow-serving-api ships only ``apis`` and ``config``), so compatibility is shown
with TF Serving's own test data: its ``batching_config.txt`` parses into the operator's
descriptor (text format rejects any unknown field name), and the operator's output
parses back with the same values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format, wrappers_pb2

from trtserve_operator.api.v1alpha1 import Batching
from trtserve_operator.services.builders.batching import (
    batching_parameters_class,
    render_batching_parameters,
)

TESTDATA = Path(__file__).resolve().parents[3] / "shared/fixtures/tensorflow-serving-testdata"
TF_SERVING_BATCHING = TESTDATA / "batching_config.txt"


def parse(text: str) -> object:
    message = batching_parameters_class()()
    text_format.Parse(text, message)
    return message


def test_descriptor_is_tf_serving_batching_parameters() -> None:
    descriptor = batching_parameters_class().DESCRIPTOR
    assert descriptor.full_name == "tensorflow.serving.BatchingParameters"
    assert (
        descriptor.file.name
        == "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"
    )
    int64 = wrappers_pb2.Int64Value.DESCRIPTOR.full_name
    fields = {f.name: f for f in descriptor.fields}
    for name, number in (
        ("max_batch_size", 1),
        ("batch_timeout_micros", 2),
        ("max_enqueued_batches", 3),
        ("num_batch_threads", 4),
    ):
        assert fields[name].number == number
        assert fields[name].message_type.full_name == int64


@pytest.mark.skipif(not TF_SERVING_BATCHING.exists(), reason="shared TF Serving testdata absent")
def test_tf_serving_testdata_parses_into_the_descriptor() -> None:
    message = parse(TF_SERVING_BATCHING.read_text())
    assert message.max_batch_size.value == 128  # type: ignore[attr-defined]
    assert message.batch_timeout_micros.value == 0  # type: ignore[attr-defined]
    assert message.HasField("batch_timeout_micros")  # type: ignore[attr-defined]
    assert message.max_enqueued_batches.value == 1000000  # type: ignore[attr-defined]
    assert message.num_batch_threads.value == 8  # type: ignore[attr-defined]


def test_unknown_fields_are_rejected_so_the_parse_above_means_something() -> None:
    with pytest.raises(text_format.ParseError):
        parse("max_batch_size { value: 1 }\nmax_batch_sizes { value: 2 }")


def test_rendered_text_round_trips() -> None:
    spec = Batching(
        enabled=True,
        max_batch_size=64,
        batch_timeout_micros=0,
        max_enqueued_batches=500,
        num_batch_threads=2,
        allowed_batch_sizes=[8, 16, 64],
        pad_variable_length_inputs=True,
    )
    text = render_batching_parameters(spec)
    message = parse(text)
    assert message.max_batch_size.value == 64  # type: ignore[attr-defined]
    # A zero timeout is written explicitly: an absent wrapper would mean TF Serving's default.
    assert message.HasField("batch_timeout_micros")  # type: ignore[attr-defined]
    assert message.batch_timeout_micros.value == 0  # type: ignore[attr-defined]
    assert message.max_enqueued_batches.value == 500  # type: ignore[attr-defined]
    assert message.num_batch_threads.value == 2  # type: ignore[attr-defined]
    assert list(message.allowed_batch_sizes) == [8, 16, 64]  # type: ignore[attr-defined]
    assert message.pad_variable_length_inputs is True  # type: ignore[attr-defined]
    assert "max_batch_size {\n  value: 64\n}" in text


def test_rendering_is_deterministic() -> None:
    spec = Batching(enabled=True, allowed_batch_sizes=[4, 32])
    assert render_batching_parameters(spec) == render_batching_parameters(spec)
