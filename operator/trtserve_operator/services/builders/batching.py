"""TF Serving ``BatchingParameters`` in protobuf text format, without TensorFlow Serving.

The operator image carries no TensorFlow, so the message type is built here from a
descriptor with the same package, message name, field names, numbers and wrapper types as
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``; the text is then
produced by ``google.protobuf.text_format`` (never a string template). Only the fields the
TRTModel API exposes are declared; TF Serving ignores nothing it reads from this text, and
a text written by TF Serving's own tools with these fields parses back (see the tests).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message,
    text_format,
    wrappers_pb2,
)
from google.protobuf.message_factory import GetMessages

from trtserve_operator.api.v1alpha1 import Batching

PROTO_FILE = "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"
PACKAGE = "tensorflow.serving"
MESSAGE = "BatchingParameters"

_F = descriptor_pb2.FieldDescriptorProto
# (name, number, label, type, type_name) exactly as in session_bundle_config.proto.
_FIELDS: tuple[tuple[str, int, int, int, str], ...] = (
    ("max_batch_size", 1, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _F.LABEL_REPEATED, _F.TYPE_INT64, ""),
    ("pad_variable_length_inputs", 7, _F.LABEL_OPTIONAL, _F.TYPE_BOOL, ""),
)


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=PROTO_FILE,
        package=PACKAGE,
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    message_proto = file_proto.message_type.add(name=MESSAGE)
    for name, number, label, field_type, type_name in _FIELDS:
        field = message_proto.field.add(name=name, number=number, label=label, type=field_type)
        if type_name:
            field.type_name = type_name
    return file_proto


@cache
def batching_parameters_class() -> type[message.Message]:
    """The ``tensorflow.serving.BatchingParameters`` message class (own descriptor pool).

    ``GetMessages`` is protobuf's typed entry point for classes built from descriptors: it
    adds the files to the pool in dependency order and returns the classes by full name.
    """
    wrappers = descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb)
    classes = GetMessages([wrappers, _file_descriptor()], pool=descriptor_pool.DescriptorPool())
    return classes[f"{PACKAGE}.{MESSAGE}"]


def batching_parameters(batching: Batching) -> message.Message:
    """The ``BatchingParameters`` message for the spec's batching settings.

    A class built at run time declares its fields only in its descriptor, so it is filled
    through ``json_format.ParseDict`` (checked against that descriptor, typed for any
    message) rather than keyword arguments no type checker can know. In the JSON mapping a
    wrapper such as ``Int64Value`` is its bare value.
    """
    fields: dict[str, Any] = {
        "max_batch_size": batching.max_batch_size,
        "batch_timeout_micros": batching.batch_timeout_micros,
        "max_enqueued_batches": batching.max_enqueued_batches,
        "num_batch_threads": batching.num_batch_threads,
        "pad_variable_length_inputs": batching.pad_variable_length_inputs,
    }
    if batching.allowed_batch_sizes:
        fields["allowed_batch_sizes"] = list(batching.allowed_batch_sizes)
    return json_format.ParseDict(fields, batching_parameters_class()())


def render_batching_parameters(batching: Batching) -> str:
    """Text-format ``BatchingParameters``, the file ``--batching_parameters_file`` reads."""
    return text_format.MessageToString(batching_parameters(batching))
