"""The serving Deployment: converter initContainer + TF Serving container on one GPU pod."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from trtserve_operator.api.rules import GPU_PRODUCT_LABEL
from trtserve_operator.services.builders.batching import render_batching_parameters
from trtserve_operator.services.builders.cache import ResolvedCache, cache_args, cache_volumes
from trtserve_operator.services.builders.converter_args import (
    ResolvedUri,
    build_converter_args,
    resolved_calibration,
    resolved_source,
)
from trtserve_operator.services.builders.names import (
    BATCHING_DIR,
    BATCHING_FILE,
    CONVERT_CONTAINER,
    GRPC_PORT,
    HASH_ANNOTATION,
    MODEL_BASE,
    MONITORING_CONFIGMAP,
    MONITORING_DIR,
    MONITORING_FILE,
    PROMETHEUS_PATH,
    REST_PORT,
    SERVING_CONTAINER,
    SOURCE_SECRET_DIR,
    batching_configmap_name,
    child_metadata,
    labels,
    selector_labels,
)
from trtserve_operator.services.builders.security import (
    container_security_context,
    pod_security_context,
)
from trtserve_operator.services.builders.target import Target

GPU_RESOURCE = "nvidia.com/gpu"
STARTUP_PERIOD_SECONDS = 10
STARTUP_BUDGET_SECONDS = 3600
"""How long TF Serving may take to load and warm up the model before liveness applies."""
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(REST_PORT),
    "prometheus.io/path": PROMETHEUS_PATH,
}
"""The conventional annotations Prometheus' kubernetes_sd pod relabelling reads."""


def serving_image(target: Target, default: str) -> str:
    return target.spec.serving.image or default


def converter_image(target: Target, default: str | None) -> str:
    """The TRTModel's converter image, else the operator's. Callers check that one exists
    first (``targets.blocker_for``): a model without one is never rendered."""
    image = target.spec.converter_image or default
    if image is None:
        raise ValueError("no converter image (spec.converterImage, TRTSERVE_CONVERTER_IMAGE)")
    return image


def _resources(target: Target) -> dict[str, Any]:
    serving = target.spec.serving
    requests = dict((serving.resources.requests if serving.resources else None) or {})
    limits = dict((serving.resources.limits if serving.resources else None) or {})
    if serving.gpus:
        limits[GPU_RESOURCE] = str(serving.gpus)
        requests.pop(GPU_RESOURCE, None)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _uri_volume(resolved: ResolvedUri | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) for a pvc:// URI, mounted read-only."""
    if resolved is None or resolved.mount is None:
        return [], []
    mount = resolved.mount
    volume = {
        "name": mount.volume,
        "persistentVolumeClaim": {"claimName": mount.claim, "readOnly": True},
    }
    return [volume], [{"name": mount.volume, "mountPath": mount.mount_path, "readOnly": True}]


def build_convert_container(
    target: Target, image: str, log_format: str, cache: ResolvedCache | None = None
) -> dict[str, Any]:
    """The ``convert`` initContainer: writes the TF-TRT model into the shared emptyDir."""
    mounts: list[dict[str, Any]] = [
        {"name": "model-repo", "mountPath": MODEL_BASE},
        {"name": "convert-tmp", "mountPath": "/tmp"},
    ]
    for resolved in (resolved_source(target), resolved_calibration(target)):
        mounts += _uri_volume(resolved)[1]
    container: dict[str, Any] = {
        "name": CONVERT_CONTAINER,
        "image": image,
        "args": build_converter_args(target, log_format) + cache_args(target, cache),
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": _resources(target),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    secret_ref = target.spec.source.secret_ref
    if secret_ref is not None:
        container["envFrom"] = [{"secretRef": {"name": secret_ref.name}}]
        mounts.append(
            {"name": "source-credentials", "mountPath": SOURCE_SECRET_DIR, "readOnly": True}
        )
    mounts += cache_volumes(cache)[1]
    return container


def serving_args(target: Target) -> list[str]:
    """``tensorflow_model_server`` flags."""
    serving = target.spec.serving
    args = [
        f"--port={GRPC_PORT}",
        f"--rest_api_port={REST_PORT}",
        f"--model_name={target.model_name}",
        f"--model_base_path={MODEL_BASE}/{target.model_name}",
        "--enable_model_warmup=true",
        f"--monitoring_config_file={MONITORING_DIR}/{MONITORING_FILE}",
    ]
    if serving.gpus:
        args.append(f"--per_process_gpu_memory_fraction={serving.gpu_memory_fraction!r}")
    if serving.batching.enabled:
        args += [
            "--enable_batching=true",
            f"--batching_parameters_file={BATCHING_DIR}/{BATCHING_FILE}",
        ]
    return args + list(serving.extra_args or [])


def build_serving_container(target: Target, image: str) -> dict[str, Any]:
    """The ``serving`` container: TF Serving on gRPC 8500 and REST 8501."""
    serving = target.spec.serving
    model_path = f"/v1/models/{target.model_name}"
    mounts: list[dict[str, Any]] = [
        {"name": "model-repo", "mountPath": MODEL_BASE, "readOnly": True},
        {"name": "serving-tmp", "mountPath": "/tmp"},
        {"name": "monitoring-config", "mountPath": MONITORING_DIR, "readOnly": True},
    ]
    if serving.batching.enabled:
        mounts.append({"name": "batching-config", "mountPath": BATCHING_DIR, "readOnly": True})
    return {
        "name": SERVING_CONTAINER,
        "image": image,
        "command": ["tensorflow_model_server"],
        "args": serving_args(target),
        "env": [{"name": "HOME", "value": "/tmp"}, *(serving.env or [])],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": REST_PORT, "protocol": "TCP"},
        ],
        "resources": _resources(target),
        "volumeMounts": mounts,
        # Ready only once the model answers; the startup probe gives loading and warmup a full
        # budget, and liveness only checks that the server listens, so a pod whose model is
        # still loading is never killed.
        "startupProbe": {
            "httpGet": {"path": model_path, "port": "http"},
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "failureThreshold": STARTUP_BUDGET_SECONDS // STARTUP_PERIOD_SECONDS,
        },
        "readinessProbe": {
            "httpGet": {"path": model_path, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "grpc"},
            "periodSeconds": 20,
            "failureThreshold": 6,
        },
        "securityContext": container_security_context(),
        **_drain(target),
    }


def _drain(target: Target) -> dict[str, Any]:
    """A preStop pause of ``drainSeconds``: the pod stays an endpoint-in-removal and keeps
    serving while the endpoint removal reaches every client. TF Serving ignores SIGTERM
    (tensorflow/serving#1853), so after the pause it serves its in-flight requests until
    the kubelet's SIGKILL at the end of terminationGracePeriodSeconds. ``exec sleep``,
    not the native ``sleep`` action: it works on every supported Kubernetes (the action is
    beta only from 1.30) and every TF Serving GPU image has ``sleep`` (Ubuntu base)."""
    seconds = target.spec.serving.drain_seconds
    if seconds == 0:
        return {}
    return {"lifecycle": {"preStop": {"exec": {"command": ["sleep", str(seconds)]}}}}


def default_topology_spread(target: Target) -> list[dict[str, Any]]:
    """Replicas across nodes and zones, best effort, per revision (``pod-template-hash``:
    a rollout's new pods are spread among themselves, not counted against the old)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(target)},
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def _volumes(target: Target, cache: ResolvedCache | None) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "model-repo", "emptyDir": {}},
        {"name": "convert-tmp", "emptyDir": {}},
        {"name": "serving-tmp", "emptyDir": {}},
        {"name": "monitoring-config", "configMap": {"name": MONITORING_CONFIGMAP}},
    ]
    if target.spec.serving.batching.enabled:
        volumes.append(
            {"name": "batching-config", "configMap": {"name": batching_configmap_name(target)}}
        )
    secret_ref = target.spec.source.secret_ref
    if secret_ref is not None:
        # Optional as a volume, required through the converter's envFrom: a missing Secret
        # then lets the pod start and the kubelet says `CreateContainerConfigError: secret
        # "x" not found` in the pod's status (the model's Ready reason), where a required
        # volume would leave every container PodInitializing with the cause in an Event
        # only. The operator needs no right to read Secrets to tell it (issue 19, item 4).
        volumes.append(
            {
                "name": "source-credentials",
                "secret": {"secretName": secret_ref.name, "optional": True},
            }
        )
    for resolved in (resolved_source(target), resolved_calibration(target)):
        volumes += _uri_volume(resolved)[0]
    return volumes + cache_volumes(cache)[0]


def build_pod_spec(
    target: Target,
    *,
    converter_image: str,
    serving_image: str,
    log_format: str,
    cache: ResolvedCache | None = None,
) -> dict[str, Any]:
    serving = target.spec.serving
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(owns_volumes=True),
        "initContainers": [build_convert_container(target, converter_image, log_format, cache)],
        "containers": [build_serving_container(target, serving_image)],
        "volumes": _volumes(target, cache),
    }
    node_selector = dict(serving.node_selector or {})
    if serving.gpu_product:  # one GPU type per model: one cache entry for all replicas
        node_selector[GPU_PRODUCT_LABEL] = serving.gpu_product
    if node_selector:
        pod["nodeSelector"] = node_selector
    if serving.tolerations:
        pod["tolerations"] = list(serving.tolerations)
    if serving.affinity:
        pod["affinity"] = dict(serving.affinity)
    spread = serving.topology_spread_constraints
    spread = default_topology_spread(target) if spread is None else list(spread)
    if spread:
        pod["topologySpreadConstraints"] = spread
    # The preStop pause counts towards the grace period: drain, then the longest request.
    pod["terminationGracePeriodSeconds"] = serving.drain_seconds + serving.request_timeout_seconds
    return pod


def config_hash(*parts: Any) -> str:
    """Stable hash of rendered objects (canonical JSON): changes exactly when they change."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def build_deployment(
    target: Target,
    *,
    converter_image: str,
    serving_image: str,
    log_format: str = "text",
    cache: ResolvedCache | None = None,
) -> dict[str, Any]:
    """Deployment ``<name>`` owned by the TRTModel.

    The pod template carries a hash of the pod spec and the batching file, so any change
    of what is rendered (including the ConfigMap) rolls the pods.
    """
    pod_spec = build_pod_spec(
        target,
        converter_image=converter_image,
        serving_image=serving_image,
        log_format=log_format,
        cache=cache,
    )
    batching = (
        render_batching_parameters(target.spec.serving.batching)
        if target.spec.serving.batching.enabled
        else ""
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(target, target.name),
        "spec": {
            "replicas": target.spec.serving.replicas,
            "selector": {"matchLabels": selector_labels(target)},
            "revisionHistoryLimit": 3,
            # Conversion runs inside the rollout: give it its timeout plus loading time.
            "progressDeadlineSeconds": target.spec.conversion.timeout_seconds
            + STARTUP_BUDGET_SECONDS,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(target),
                    "annotations": {
                        HASH_ANNOTATION: config_hash(pod_spec, batching),
                        **SCRAPE_ANNOTATIONS,
                    },
                },
                "spec": pod_spec,
            },
        },
    }
