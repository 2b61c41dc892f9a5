"""TF Serving's Prometheus endpoint: ``MonitoringConfig`` text format, the namespace-wide
ConfigMap holding it, and how every serving pod uses it.

TF Serving's ``monitoring_config_pb2`` is not on PyPI (tensorflow-serving-api ships
``apis`` and only part of ``config``), so the descriptor is checked field by field against
``tensorflow_serving/config/monitoring_config.proto`` and against the example in TF
Serving's configuration guide, which must parse into it (text format rejects unknown
field names).
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from builder_inputs import SETTINGS
from google.protobuf import descriptor, text_format

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.monitoring import (
    build_monitoring_configmap,
    monitoring_config_class,
    render_monitoring_config,
)
from trtserve_operator.services.builders.target import Target

# docs/serving_config.md of TF Serving, "Monitoring Configuration".
TF_SERVING_GUIDE_EXAMPLE = """
prometheus_config {
  enable: true,
  path: "/monitoring/prometheus/metrics"
}
"""
KUBERNETES_VERSION = "1.30.0"


def parse(text: str) -> object:
    message = monitoring_config_class()()
    text_format.Parse(text, message)
    return message


def target(**spec: object) -> Target:
    return Target(
        "m", "ns", TRTModelSpec.model_validate({"source": {"uri": "s3://b/m"}, **spec}), uid="u"
    )


def test_descriptor_is_tf_serving_monitoring_config() -> None:
    monitoring = monitoring_config_class().DESCRIPTOR
    assert monitoring.full_name == "tensorflow.serving.MonitoringConfig"
    assert monitoring.file.name == "tensorflow_serving/config/monitoring_config.proto"
    (field,) = monitoring.fields
    assert (field.name, field.number) == ("prometheus_config", 1)
    prometheus = field.message_type
    assert prometheus.full_name == "tensorflow.serving.PrometheusConfig"
    fields = {f.name: (f.number, f.type) for f in prometheus.fields}
    assert fields == {
        "enable": (1, descriptor.FieldDescriptor.TYPE_BOOL),
        "path": (2, descriptor.FieldDescriptor.TYPE_STRING),
    }


def test_tf_serving_guide_example_parses_into_the_descriptor() -> None:
    message = parse(TF_SERVING_GUIDE_EXAMPLE)
    assert message.prometheus_config.enable is True  # type: ignore[attr-defined]
    assert message.prometheus_config.path == "/monitoring/prometheus/metrics"  # type: ignore[attr-defined]


def test_unknown_fields_are_rejected_so_the_parse_above_means_something() -> None:
    with pytest.raises(text_format.ParseError):
        parse("prometheus_config { enabled: true }")


def test_rendered_text_is_the_guide_example() -> None:
    text = render_monitoring_config()
    assert parse(text) == parse(TF_SERVING_GUIDE_EXAMPLE)
    assert (
        text == 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'
    )


def test_shared_configmap_is_valid_and_owned_by_no_model() -> None:
    configmap = build_monitoring_configmap("team-a")
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)
    metadata = configmap["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("trtserve-monitoring", "team-a")
    assert "ownerReferences" not in metadata
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "trtserve-operator"
    # No instance label: it belongs to no single TRTModel (and no model's watch acts on it).
    assert "app.kubernetes.io/instance" not in metadata["labels"]
    assert configmap["data"] == {"monitoring.config": render_monitoring_config()}


@pytest.mark.parametrize("batching", [False, True])
def test_every_serving_pod_reads_the_shared_file_and_is_scrapeable(batching: bool) -> None:
    deployment = build_children(
        target(serving={"batching": {"enabled": batching}}), SETTINGS
    ).deployment
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (serving,) = pod["containers"]
    assert "--monitoring_config_file=/etc/trtserve/monitoring/monitoring.config" in serving["args"]
    assert {
        "name": "monitoring-config",
        "mountPath": "/etc/trtserve/monitoring",
        "readOnly": True,
    } in serving["volumeMounts"]
    assert {"name": "monitoring-config", "configMap": {"name": "trtserve-monitoring"}} in pod[
        "volumes"
    ]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8501"
    assert annotations["prometheus.io/path"] == "/monitoring/prometheus/metrics"
    # The REST port is the one that serves the path.
    assert "--rest_api_port=8501" in serving["args"]
    assert not any("monitoring" in m["name"] for m in pod["initContainers"][0]["volumeMounts"])


def test_extra_args_may_not_set_the_monitoring_file() -> None:
    with pytest.raises(ValueError, match="--monitoring_config_file"):
        target(serving={"extraArgs": ["--monitoring_config_file=/x"]})
