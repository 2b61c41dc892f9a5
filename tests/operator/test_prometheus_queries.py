"""Every query of every dashboard panel and alert against a real Prometheus (Debian's
``prometheus`` package, on 127.0.0.1): it scrapes a running operator's /metrics (models
converged against the kmock emulator, with conversion reports, a cache hit, a publish
failure, an accuracy gate failure, a benchmark and a refused child) and a fixture of TF
Serving's and NVIDIA's DCGM exporter's exposition formats. Each query must parse and
return series: no panel queries a metric name that nothing exports.

The fixture is made from the documented metric names (observability/.../metrics.py names
the sources): TF Serving's ``:tensorflow:serving:*`` with their labels, and
dcgm-exporter's default ``DCGM_FI_DEV_*`` counters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from bench_support import SUMMARY, bench_pod, finished
from conftest import free_port
from kmock_cluster import (
    DEPLOYMENTS,
    JOBS,
    MODELS,
    PODS,
    EmulatedCluster,
    operator_running,
    template_pod,
    trtmodel,
    wait_for,
)
from trtserve_observability import alerts, dashboards

NS = "default"
SERVED = "served"
pytestmark = pytest.mark.timeout(180)


def tf_serving_text(tick: int) -> str:
    """TF Serving's /monitoring/prometheus/metrics of a model with batching, growing."""
    lines = []
    for status, count in (("OK", 100 * tick), ("INVALID_ARGUMENT", tick)):
        lines.append(
            f':tensorflow:serving:request_count{{model_name="{SERVED}",status="{status}"}} {count}'
        )
    total = 0
    for bound in (1000, 5000, 20000, "+Inf"):
        total += 30 * tick
        lines.append(
            ":tensorflow:serving:request_latency_bucket"
            f'{{API="predict",entrypoint="GRPC",model_name="{SERVED}",le="{bound}"}} {total}'
        )
    lines += [
        f':tensorflow:serving:request_latency_sum{{API="predict",entrypoint="GRPC",'
        f'model_name="{SERVED}"}} {4000 * total}',
        f':tensorflow:serving:request_latency_count{{API="predict",entrypoint="GRPC",'
        f'model_name="{SERVED}"}} {total}',
    ]
    for bound, count in ((100, 10), (1000, 20), ("+Inf", 25)):
        lines.append(
            ":tensorflow:serving:batching_session:queuing_latency_bucket"
            f'{{thread_pool_name="model",le="{bound}"}} {count * tick}'
        )
    lines += [
        f':tensorflow:serving:batching_session:queuing_latency_sum{{thread_pool_name="model"}} '
        f"{500 * tick}",
        f':tensorflow:serving:batching_session:queuing_latency_count{{thread_pool_name="model"}} '
        f"{25 * tick}",
        f":tensorflow:serving:batching_session:wrapped_run_count {12 * tick}",
    ]
    return "\n".join(lines) + "\n"


def dcgm_text() -> str:
    """dcgm-exporter with its Kubernetes mapping: the pod that uses the GPU."""
    labels = f'gpu="0",UUID="GPU-1",modelName="NVIDIA A100",namespace="{NS}",pod="{SERVED}-abc"'
    return (
        "\n".join(
            [
                f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} 87",
                f"DCGM_FI_DEV_FB_USED{{{labels}}} 30000",
                f"DCGM_FI_DEV_FB_FREE{{{labels}}} 10000",
            ]
        )
        + "\n"
    )


@pytest.fixture(scope="module")
def exporters() -> Iterator[int]:
    """/tfserving and /dcgm on a local port."""
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            tick = int(time.monotonic() - started) + 1
            text = tf_serving_text(tick) if self.path == "/tfserving" else dcgm_text()
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def report(**fields: Any) -> str:
    return json.dumps({"v": 1, "exitCode": 0, "result": "Succeeded", "reason": "Succeeded",
                       "message": "converted", **fields})  # fmt: skip


def serve(cluster: EmulatedCluster, name: str, message: str, *, exit_code: int = 0) -> None:
    """The pod of ``name`` as the kubelet reports it: the converter's report, ready or not."""
    deployment = wait_for(lambda: cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/{name}"), what=name)
    ready = exit_code == 0
    status = {
        "phase": "Running" if ready else "Pending",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "initContainerStatuses": [
            {
                "name": "convert",
                "state": {"terminated": {"exitCode": exit_code, "message": message}},
            }
        ],
    }
    cluster.post(PODS.format(ns=NS), template_pod(deployment, f"{name}-pod", NS, status))
    if ready:
        counts = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}
        cluster.patch(f"{DEPLOYMENTS.format(ns=NS)}/{name}", {"status": counts})


@pytest.fixture(scope="module")
def prometheus_url(
    cluster: EmulatedCluster, exporters: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed: apt-get install prometheus (Debian's package)")
    metrics_port = int(os.environ["TRTSERVE_METRICS_PORT"])
    with operator_running():
        # An A/B benchmark against a NATIVE baseline (its result: trtserve_benchmark_speedup).
        benchmark = {"baseline": "baseline", "concurrency": [1, 16], "durationSeconds": 5}
        cluster.post(MODELS.format(ns=NS), trtmodel(SERVED, NS, benchmark=benchmark))
        cluster.post(
            MODELS.format(ns=NS), trtmodel("baseline", NS, conversion={"precision": "NATIVE"})
        )
        serve(cluster, "baseline", report(precision="NATIVE", durations={"total": 20.0}))
        serve(cluster, SERVED, report(precision="FP16", durations={"total": 300.0}, trtEngineOps=4,
                                      enginesBuilt=2, cache={"result": "Hit"},
                                      accuracy={"passed": True, "samples": 32,
                                                "maxAbsError": 0.002}))  # fmt: skip
        (job,) = wait_for(lambda: jobs(cluster), what="the benchmark Job")
        cluster.post(PODS.format(ns=NS), bench_pod(job, SUMMARY))
        cluster.patch(
            f"{JOBS.format(ns=NS)}/{job['metadata']['name']}", {"status": finished(job)["status"]}
        )
        cluster.post(MODELS.format(ns=NS), trtmodel("unpublished", NS))
        serve(cluster, "unpublished", report(precision="FP16", durations={"total": 200.0},
                                             cache={"result": "PublishFailed"}))  # fmt: skip
        cluster.post(MODELS.format(ns=NS), trtmodel("inaccurate", NS))
        failed = report(result="Failed", reason="AccuracyGateFailed", exitCode=40,
                        message="max abs error 0.3 > atol 0.001")  # fmt: skip
        serve(cluster, "inaccurate", failed, exit_code=40)
        cluster.emulator.refuse("services", "refused", {"code": 403, "reason": "Forbidden",
                                                        "message": "denied by policy"})  # fmt: skip
        cluster.post(MODELS.format(ns=NS), trtmodel("refused", NS))
        port = free_port()
        directory = tmp_path_factory.mktemp("prometheus")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "trtserve-operator",
                 "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                {"job_name": "tf-serving", "metrics_path": "/tfserving",
                 "static_configs": [{"targets": [f"127.0.0.1:{exporters}"],
                                     "labels": {"namespace": NS, "trtmodel": SERVED,
                                                "pod": f"{SERVED}-abc"}}]},
                {"job_name": "dcgm", "metrics_path": "/dcgm", "honor_labels": True,
                 "static_configs": [{"targets": [f"127.0.0.1:{exporters}"]}]},
            ],
        }  # fmt: skip
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        process = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _up(url) == 3, what="Prometheus scraping 3 targets", timeout=60)
            try:
                wait_for(lambda: not missing(url), what="the operator's metrics", timeout=90)
            except AssertionError as error:
                raise AssertionError(f"{error}; no series of {missing(url)}") from None
            time.sleep(6)  # a few more scrapes: rates over the window have two samples
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def jobs(cluster: EmulatedCluster) -> list[dict[str, Any]]:
    return list((cluster.get(JOBS.format(ns=NS)) or {}).get("items") or [])


def _query(url: str, expr: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as answer:
            result: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as error:  # 400: the expression does not parse
        result = json.load(error)
    except OSError:
        return {"status": "unreachable", "data": {"result": []}}
    return result


def _series(url: str, expr: str) -> list[Any]:
    answer = _query(url, expr)
    return list(answer.get("data", {}).get("result", [])) if answer["status"] == "success" else []


EXPECTED = (
    "trtserve_benchmark_speedup",
    'trtserve_model_conversion_seconds{cache="PublishFailed"}',
    'trtserve_conversions_failed_total{reason="AccuracyGateFailed"}',
    'trtserve_model_conversion_failed{reason="AccuracyGateFailed"}',
    "trtserve_converge_failures_total",
)
"""What the scenario must have made the operator export before the queries are tried."""


def missing(url: str) -> list[str]:
    return [expr for expr in EXPECTED if not _series(url, expr)]


def _up(url: str) -> int:
    return sum(1 for sample in _series(url, "up == 1"))


def concrete(expr: str) -> str:
    """A panel's query with the dashboard's variables as Grafana would fill them in."""
    return (
        expr.replace("$__rate_interval", "30s").replace("$namespace", NS).replace("$model", SERVED)
    )


PANEL_QUERIES = [
    (spec.uid, title, query.expr)
    for spec in dashboards.DASHBOARDS
    for title, query in dashboards.queries(spec)
]


@pytest.mark.parametrize(("dashboard", "panel", "expr"), PANEL_QUERIES)
def test_every_panel_query_parses_and_returns_series(
    prometheus_url: str, dashboard: str, panel: str, expr: str
) -> None:
    answer = _query(prometheus_url, concrete(expr))
    assert answer["status"] == "success", (panel, answer.get("error"))
    assert answer["data"]["result"], f"{dashboard} / {panel}: no series for {concrete(expr)}"


@pytest.mark.parametrize("alert", alerts.ALERTS, ids=lambda alert: alert.name)
def test_every_alert_parses_and_its_signal_returns_series(
    prometheus_url: str, alert: alerts.Alert
) -> None:
    assert _query(prometheus_url, alert.expr)["status"] == "success", alert.expr
    assert _series(prometheus_url, alert.signal), f"{alert.name}: nothing exports {alert.signal}"


def test_a_query_of_a_metric_nothing_exports_is_caught(prometheus_url: str) -> None:
    """The check can fail: a misspelt name returns no series; a broken query does not parse."""
    assert not _series(prometheus_url, concrete('trtserve_model_infos{namespace="$namespace"}'))
    assert _query(prometheus_url, "sum by (x (trtserve_model_info)")["status"] == "error"


def test_the_firing_alerts_of_this_cluster_are_the_ones_it_deserves(prometheus_url: str) -> None:
    """The accuracy gate failure and the publish failure are there to be seen."""
    by_name = {alert.name: alert for alert in alerts.ALERTS}
    assert _series(prometheus_url, by_name["TRTModelAccuracyGateFailed"].expr)
    assert not _series(prometheus_url, by_name["TRTServeNoLeader"].expr)  # one replica leads
