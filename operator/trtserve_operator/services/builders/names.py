"""Names, labels and well-known ports shared by the children and the status."""

from __future__ import annotations

from collections.abc import Mapping

from trtserve_operator.services.builders.target import Target

MANAGED_BY = "trtserve-operator"
APP_NAME = "trtserve"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
HASH_ANNOTATION = "trtserve.io/config-hash"
MANAGED_LABELS = {LABEL_MANAGED_BY: MANAGED_BY}
"""On every object the operator creates: its informers watch only objects with them."""

GRPC_PORT = 8500
REST_PORT = 8501
MODEL_BASE = "/models"
CONVERT_CONTAINER = "convert"
SERVING_CONTAINER = "serving"
BATCHING_FILE = "batching.config"
BATCHING_DIR = "/etc/trtserve/batching"
MONITORING_CONFIGMAP = "trtserve-monitoring"
"""One per namespace, shared by every serving pod of the namespace (see builders/monitoring.py)."""
MONITORING_FILE = "monitoring.config"
MONITORING_DIR = "/etc/trtserve/monitoring"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
"""TF Serving's Prometheus endpoint, on the REST port."""
SOURCE_SECRET_DIR = "/var/run/secrets/trtserve/source"
SOURCE_PVC_DIR = "/mnt/source"
CALIBRATION_PVC_DIR = "/mnt/calibration"


def selector_labels(target: Target) -> dict[str, str]:
    """Labels of the serving pods the Deployment and Service select (immutable)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: target.name}


def labels(target: Target, component: str = "serving") -> dict[str, str]:
    """Recommended ``app.kubernetes.io/*`` labels of every child."""
    return {
        **selector_labels(target),
        LABEL_COMPONENT: component,
        LABEL_PART_OF: APP_NAME,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def child_metadata(target: Target, name: str, component: str = "serving") -> dict[str, object]:
    """``metadata`` of a child: namespace, labels and the controller ownerReference."""
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": labels(target, component),
        "ownerReferences": [target.owner_reference()],
    }


def selector_string(target: Target) -> str:
    """``status.selector`` for the scale subresource (label-selector string form)."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(target).items()))


def batching_configmap_name(target: Target) -> str:
    return f"{target.name}-batching"


def grpc_endpoint(target: Target) -> str:
    return f"{target.name}.{target.namespace}.svc:{GRPC_PORT}"


def rest_endpoint(target: Target) -> str:
    return f"http://{target.name}.{target.namespace}.svc:{REST_PORT}/v1/models/{target.model_name}"


def label_selector(labels: Mapping[str, str]) -> str:
    """``labels`` as an equality-based label selector (``key=value,...``)."""
    return ",".join(f"{key}={value}" for key, value in labels.items())
