"""Warmup records: `assets.extra/tf_serving_warmup_requests` as real PredictionLogs.

TF Serving replays these PredictRequests when it loads the model, so the first client
request does not pay for lazy initialization.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trtserve_converter.inputs import InputBatch

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def prediction_logs(
    model_name: str, signature_key: str, batches: Sequence[InputBatch]
) -> list[bytes]:
    """Serialized PredictionLog records, one PredictRequest per input batch."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    records = []
    for batch in batches:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_key)
        )
        for name, value in batch.items():
            array = np.asarray(value)
            dtype = tf.string if array.dtype == object else None
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        )
        records.append(log.SerializeToString())
    return records


def write_warmup(version_dir: Path, records: Sequence[bytes]) -> Path:
    """Write the records as a TFRecord file where TF Serving looks for them."""
    import tensorflow as tf

    path = version_dir / WARMUP_DIR / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path
