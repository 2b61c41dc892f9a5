"""TF Serving's Prometheus endpoint: ``MonitoringConfig`` text format and its shared ConfigMap.

As for batching (see :mod:`.batching`), the message types are built from a descriptor with
the package, names and field numbers of TF Serving's
``tensorflow_serving/config/monitoring_config.proto`` and printed by
``google.protobuf.text_format``; the operator image has no TensorFlow Serving.

The file is the same for every model, so it lives in **one ConfigMap per namespace**
(``trtserve-monitoring``), not one per model: a new model costs no extra write, and the
namespace's first model pays one create. It has no ownerReference (no single TRTModel owns
it), so it outlives the models of its namespace; it is a few bytes and is put back by the
operator whenever a model in the namespace needs it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message, text_format
from google.protobuf.message_factory import GetMessages

from trtserve_operator.services.builders.names import (
    APP_NAME,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    MONITORING_CONFIGMAP,
    MONITORING_FILE,
    PROMETHEUS_PATH,
)

PROTO_FILE = "tensorflow_serving/config/monitoring_config.proto"
PACKAGE = "tensorflow.serving"
MESSAGE = "MonitoringConfig"
MONITORING_COMPONENT = "monitoring-config"

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """``PrometheusConfig {bool enable = 1; string path = 2}`` and
    ``MonitoringConfig {PrometheusConfig prometheus_config = 1}``, as in TF Serving."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=PROTO_FILE, package=PACKAGE, syntax="proto3"
    )
    prometheus = file_proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING)
    monitoring = file_proto.message_type.add(name=MESSAGE)
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        label=_F.LABEL_OPTIONAL,
        type=_F.TYPE_MESSAGE,
        type_name=f".{PACKAGE}.PrometheusConfig",
    )
    return file_proto


@cache
def monitoring_config_class() -> type[message.Message]:
    """The ``tensorflow.serving.MonitoringConfig`` message class (own descriptor pool; as
    in :func:`.batching.batching_parameters_class`)."""
    classes = GetMessages([_file_descriptor()], pool=descriptor_pool.DescriptorPool())
    return classes[f"{PACKAGE}.{MESSAGE}"]


def render_monitoring_config(path: str = PROMETHEUS_PATH) -> str:
    """Text-format ``MonitoringConfig``, the file ``--monitoring_config_file`` reads."""
    config = json_format.ParseDict(
        {"prometheus_config": {"enable": True, "path": path}}, monitoring_config_class()()
    )
    return text_format.MessageToString(config)


def monitoring_labels() -> dict[str, str]:
    """Labels of the shared ConfigMap: managed by the operator, owned by no one model."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_COMPONENT: MONITORING_COMPONENT,
        LABEL_PART_OF: APP_NAME,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def build_monitoring_configmap(namespace: str) -> dict[str, Any]:
    """ConfigMap ``trtserve-monitoring`` of ``namespace``, mounted by every serving pod."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": MONITORING_CONFIGMAP,
            "namespace": namespace,
            "labels": monitoring_labels(),
        },
        "data": {MONITORING_FILE: render_monitoring_config()},
    }
