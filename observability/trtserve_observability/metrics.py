"""The metric names the dashboards and alerts query, with where each comes from.

- The operator's own (``GET /metrics`` of the operator pod; docs/operator.md, "Metrics"):
  imported from the operator, so a renamed metric fails here first.
- TF Serving's, from its Prometheus endpoint ``/monitoring/prometheus/metrics`` on each
  serving pod (the chart's PodMonitor; the operator starts TF Serving with a monitoring
  config). TF Serving's metric names are its ``monitoring::`` names with ``/`` turned into
  ``:`` (tensorflow_serving/model_servers/prometheus_exporter.cc):
  ``/tensorflow/serving/request_count`` (labels ``model_name``, ``status``) and
  ``/tensorflow/serving/request_latency`` (a histogram in microseconds; ``model_name``,
  ``API``, ``entrypoint``) in servables/tensorflow/util.cc;
  ``/tensorflow/serving/batching_session/queuing_latency`` (microseconds) and
  ``/tensorflow/serving/batching_session/wrapped_run_count`` (batches run) in
  batching/batching_session.cc. The PodMonitor adds ``namespace``, ``pod`` and the
  TRTModel's name as ``trtmodel``.
- NVIDIA's DCGM exporter (optional: only where it runs): ``DCGM_FI_DEV_GPU_UTIL`` (%),
  ``DCGM_FI_DEV_FB_USED`` / ``DCGM_FI_DEV_FB_FREE`` (MiB) of its default counters, with the
  ``namespace`` and ``pod`` of the pod using the GPU (its Kubernetes mapping; scrape it with
  ``honorLabels: true`` so they are not renamed ``exported_*``).
"""

from __future__ import annotations

from trtserve_operator.services import metrics as operator_metrics
from trtserve_operator.services import model_metrics

# --- the operator ----------------------------------------------------------------------------
MODELS_BY_PHASE = operator_metrics.MODELS_BY_PHASE
MODEL_INFO = model_metrics.MODEL_INFO
READY_REPLICAS = model_metrics.READY_REPLICAS
DESIRED_REPLICAS = model_metrics.DESIRED_REPLICAS
MODEL_CONVERSION_SECONDS = model_metrics.CONVERSION_SECONDS
TRT_ENGINE_OPS = model_metrics.TRT_ENGINE_OPS
ENGINES_BUILT = model_metrics.ENGINES_BUILT
ACCURACY_MAX_ABS_ERROR = model_metrics.ACCURACY_MAX_ABS_ERROR
BENCHMARK_SPEEDUP = model_metrics.BENCHMARK_SPEEDUP
CONVERSION_FAILED = model_metrics.CONVERSION_FAILED
CONVERSION_DURATION = operator_metrics.CONVERSION_DURATION
CONVERSIONS_FAILED = "trtserve_conversions_failed_total"
CONVERGE_FAILURES = "trtserve_converge_failures_total"
RETRIES_PENDING = operator_metrics.RETRIES_PENDING
LEADER = operator_metrics.LEADER

# --- TF Serving --------------------------------------------------------------------------------
TFS_REQUEST_COUNT = ":tensorflow:serving:request_count"
TFS_REQUEST_LATENCY = ":tensorflow:serving:request_latency"
TFS_QUEUING_LATENCY = ":tensorflow:serving:batching_session:queuing_latency"
TFS_BATCHES = ":tensorflow:serving:batching_session:wrapped_run_count"

# --- NVIDIA DCGM exporter (optional) -----------------------------------------------------------
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"
DCGM_FB_FREE = "DCGM_FI_DEV_FB_FREE"
