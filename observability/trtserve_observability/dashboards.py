"""The Grafana dashboards, built with Grafana's Foundation SDK (typed builders of Grafana's
own schema, here Grafana 11.6's): never hand-written JSON.

- *Fleet* (``trtserve-fleet``): the TRTModels by phase and Ready reason, conversions
  (count, duration quantiles, failures by reason), the converted-model cache (hits,
  misses, publish failures, hit ratio), benchmark speedups, the operator's leadership
  and retries.
- *Model* (``trtserve-model``, variables ``namespace`` and ``model``): TF Serving's request
  rate, error ratio and latency p50/p99, batching, replicas, the last conversion report,
  the speedup against the baseline, and the GPU from NVIDIA's DCGM exporter when present.

Every query is listed by :func:`queries`, which the tests evaluate against a real
Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

from trtserve_observability import metrics as m

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
MODEL = 'namespace="$namespace", model="$model"'
SERVING = 'namespace="$namespace", trtmodel="$model"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    title: str
    kind: str  # timeseries, stat or table
    queries: tuple[Query, ...]
    unit: str = ""
    description: str = ""
    width: int = 12
    height: int = 8


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[PanelSpec, ...]], ...]
    model_variables: bool = False


def _q(expr: str, legend: str = "", *, instant: bool = False) -> Query:
    return Query(expr, legend, instant)


FLEET = DashboardSpec(
    uid="trtserve-fleet",
    title="trtserve / Fleet",
    description="Every TRTModel the operator converges: phases, conversions, the cache, speedups.",
    rows=(
        (
            "Models",
            (
                PanelSpec(
                    "TRTModels by phase",
                    "timeseries",
                    (_q(f"sum by (phase) ({m.MODELS_BY_PHASE})", "{{phase}}"),),
                    description="status.phase of every TRTModel (the leader's view).",
                ),
                PanelSpec(
                    "TRTModels by Ready reason",
                    "table",
                    (_q(f"count by (reason) ({m.MODEL_INFO})", instant=True),),
                    description="Why models are (not) Ready: the Ready condition's reason.",
                ),
            ),
        ),
        (
            "Conversions",
            (
                PanelSpec(
                    "Conversions per hour by precision and cache",
                    "timeseries",
                    (
                        _q(
                            f"sum by (precision, cache) "
                            f"(increase({m.CONVERSION_DURATION}_count[1h]))",
                            "{{precision}} {{cache}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Conversion duration (p50, p95)",
                    "timeseries",
                    tuple(
                        _q(
                            f"histogram_quantile({q}, sum by (le, precision) "
                            f"(rate({m.CONVERSION_DURATION}_bucket[{RATE}])))",
                            f"p{int(q * 100)} {{{{precision}}}}",
                        )
                        for q in (0.5, 0.95)
                    ),
                    unit="s",
                ),
                PanelSpec(
                    "Conversion failures per hour by reason",
                    "timeseries",
                    (_q(f"sum by (reason) (increase({m.CONVERSIONS_FAILED}[1h]))", "{{reason}}"),),
                    description="The converter's reasons (docs/contract.md): AccuracyGateFailed, "
                    "Timeout, OOMKilled...",
                ),
            ),
        ),
        (
            "Converted-model cache",
            (
                PanelSpec(
                    "Cache results per hour",
                    "timeseries",
                    (
                        _q(
                            f"sum by (cache) (increase({m.CONVERSION_DURATION}_count[1h]))",
                            "{{cache}}",
                        ),
                    ),
                    description="Hit, Miss, PublishFailed, Disabled: each pod start's result.",
                ),
                PanelSpec(
                    "Cache hit ratio of the models' last conversions",
                    "stat",
                    (
                        _q(
                            f'count({m.MODEL_CONVERSION_SECONDS}{{cache="Hit"}}) / '
                            f'count({m.MODEL_CONVERSION_SECONDS}{{cache!="Disabled"}})',
                            instant=True,
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
        (
            "Speedups and the operator",
            (
                PanelSpec(
                    "A/B benchmark speedup per model",
                    "table",
                    (
                        _q(
                            f"max by (namespace, model, baseline, significant) "
                            f"({m.BENCHMARK_SPEEDUP})",
                            instant=True,
                        ),
                    ),
                    description="status.benchmark.speedup: QPS against the baseline TRTModel "
                    "at the highest concurrency measured (1 = no faster).",
                ),
                PanelSpec(
                    "Operator leader and retries",
                    "timeseries",
                    (
                        _q(f"sum({m.LEADER})", "leaders (should be 1)"),
                        _q(f"sum({m.RETRIES_PENDING})", "retries pending"),
                        _q(
                            f"sum by (reason) (increase({m.CONVERGE_FAILURES}[1h]))",
                            "converge failures/h {{reason}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

MODEL_DASHBOARD = DashboardSpec(
    uid="trtserve-model",
    title="trtserve / Model",
    description="One TRTModel: TF Serving's traffic and latency, replicas, the conversion, the "
    "speedup and the GPU.",
    model_variables=True,
    rows=(
        (
            "Traffic (TF Serving)",
            (
                PanelSpec(
                    "Requests per second by status",
                    "timeseries",
                    (
                        _q(
                            f"sum by (status) (rate({m.TFS_REQUEST_COUNT}{{{SERVING}}}[{RATE}]))",
                            "{{status}}",
                        ),
                    ),
                    unit="reqps",
                ),
                PanelSpec(
                    "Error ratio",
                    "timeseries",
                    (
                        _q(
                            f'sum(rate({m.TFS_REQUEST_COUNT}{{{SERVING}, status!="OK"}}[{RATE}])) '
                            f"/ sum(rate({m.TFS_REQUEST_COUNT}{{{SERVING}}}[{RATE}]))",
                            "errors",
                        ),
                    ),
                    unit="percentunit",
                ),
                PanelSpec(
                    "Request latency (p50, p99)",
                    "timeseries",
                    tuple(
                        _q(
                            f"histogram_quantile({q}, sum by (le) "
                            f"(rate({m.TFS_REQUEST_LATENCY}_bucket{{{SERVING}}}[{RATE}]))) / 1000",
                            f"p{int(q * 100)}",
                        )
                        for q in (0.5, 0.99)
                    ),
                    unit="ms",
                    description="TF Serving's request_latency (server side, microseconds).",
                ),
                PanelSpec(
                    "Batching: requests per batch and queuing p99",
                    "timeseries",
                    (
                        _q(
                            f"sum(rate({m.TFS_REQUEST_COUNT}{{{SERVING}}}[{RATE}])) / "
                            f"sum(rate({m.TFS_BATCHES}{{{SERVING}}}[{RATE}]))",
                            "requests per batch",
                        ),
                        _q(
                            f"histogram_quantile(0.99, sum by (le) "
                            f"(rate({m.TFS_QUEUING_LATENCY}_bucket{{{SERVING}}}[{RATE}]))) / 1000",
                            "queuing p99 (ms)",
                        ),
                    ),
                    description="Only with spec.serving.batching.enabled.",
                ),
            ),
        ),
        (
            "Replicas and conversion",
            (
                PanelSpec(
                    "Serving pods",
                    "timeseries",
                    (
                        _q(f"{m.READY_REPLICAS}{{{MODEL}}}", "ready"),
                        _q(f"{m.DESIRED_REPLICAS}{{{MODEL}}}", "desired"),
                    ),
                    width=8,
                ),
                PanelSpec(
                    "Phase, Ready reason, served precision",
                    "table",
                    (_q(f"{m.MODEL_INFO}{{{MODEL}}}", instant=True),),
                    width=16,
                ),
                PanelSpec(
                    "Last conversion (seconds)",
                    "stat",
                    (_q(f"{m.MODEL_CONVERSION_SECONDS}{{{MODEL}}}", "{{precision}} {{cache}}"),),
                    unit="s",
                    width=6,
                ),
                PanelSpec(
                    "TRTEngineOps and engines built",
                    "stat",
                    (
                        _q(f"{m.TRT_ENGINE_OPS}{{{MODEL}}}", "TRTEngineOps"),
                        _q(f"{m.ENGINES_BUILT}{{{MODEL}}}", "engines"),
                    ),
                    width=6,
                ),
                PanelSpec(
                    "Accuracy gate: largest absolute error",
                    "stat",
                    (_q(f"{m.ACCURACY_MAX_ABS_ERROR}{{{MODEL}}}"),),
                    width=6,
                ),
                PanelSpec(
                    "Speedup against the baseline",
                    "stat",
                    (_q(f"{m.BENCHMARK_SPEEDUP}{{{MODEL}}}", "x {{baseline}}"),),
                    width=6,
                ),
            ),
        ),
        (
            "GPU (NVIDIA DCGM exporter, optional)",
            (
                PanelSpec(
                    "GPU utilization per pod",
                    "timeseries",
                    (
                        _q(
                            f'avg by (pod) ({m.DCGM_GPU_UTIL}{{namespace="$namespace", '
                            f'pod=~"$model-.*"}})',
                            "{{pod}}",
                        ),
                    ),
                    unit="percent",
                    description="Needs NVIDIA's dcgm-exporter, scraped with honorLabels.",
                ),
                PanelSpec(
                    "GPU memory used per pod",
                    "timeseries",
                    (
                        _q(
                            f'sum by (pod) ({m.DCGM_FB_USED}{{namespace="$namespace", '
                            f'pod=~"$model-.*"}})',
                            "{{pod}} used",
                        ),
                        _q(
                            f'sum by (pod) ({m.DCGM_FB_FREE}{{namespace="$namespace", '
                            f'pod=~"$model-.*"}})',
                            "{{pod}} free",
                        ),
                    ),
                    unit="mbytes",
                ),
            ),
        ),
    ),
)

DASHBOARDS = (FLEET, MODEL_DASHBOARD)


def queries(spec: DashboardSpec) -> Iterator[tuple[str, Query]]:
    """(panel title, query) of every panel of ``spec``."""
    for _, panels in spec.rows:
        for panel in panels:
            for query in panel.queries:
                yield panel.title, query


def _target(query: Query) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).datasource(DATASOURCE)
    if query.legend:
        target = target.legend_format(query.legend)
    return target.instant() if query.instant else target.range()


def _panel(spec: PanelSpec) -> Any:
    kinds: dict[str, Any] = {
        "timeseries": timeseries.Panel,
        "stat": stat.Panel,
        "table": table.Panel,
    }
    builder: Any = kinds[spec.kind]()
    builder = builder.title(spec.title).datasource(DATASOURCE).span(spec.width).height(spec.height)
    if spec.description:
        builder = builder.description(spec.description)
    if spec.unit:
        builder = builder.unit(spec.unit)
    for query in spec.queries:
        builder = builder.with_target(_target(query))
    return builder


def _variables(spec: DashboardSpec) -> list[Any]:
    variables: list[Any] = [
        gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    ]
    if spec.model_variables:
        variables += [
            gd.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query(f"label_values({m.MODEL_INFO}, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED),
            gd.QueryVariable("model")
            .label("TRTModel")
            .datasource(DATASOURCE)
            .query(f'label_values({m.MODEL_INFO}{{namespace="$namespace"}}, model)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED),
        ]
    return variables


def build(spec: DashboardSpec) -> gd.Dashboard:
    board = (
        gd.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["trtserve"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .editable()
    )
    for variable in _variables(spec):
        board = board.with_variable(variable)
    for title, panels in spec.rows:
        board = board.with_row(gd.Row(title))
        for panel in panels:
            board = board.with_panel(_panel(panel))
    return board


def render(spec: DashboardSpec) -> str:
    """The dashboard's JSON model, as Grafana imports it."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build(spec).build()) + "\n"
