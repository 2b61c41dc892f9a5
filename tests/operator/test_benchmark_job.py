"""The benchmark Job builder and trt-bench's summary as status.benchmark."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from bench_support import SUMMARY, model, run_of

from trtserve_operator.api.v1alpha1 import BenchmarkResult, TRTModelStatus
from trtserve_operator.services.bench_report import parse_summary, summary_to_status
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.benchmark_job import (
    BenchmarkRun,
    active_deadline_seconds,
    benchmark_job_name,
    build_bench_args,
    build_benchmark_job,
)
from trtserve_operator.services.targets import target_from_body
from trtserve_operator.settings import Settings

KUBERNETES_VERSION = "1.30.0"
TARGET = model("resnet50-fp16", generation=3, baseline="resnet50-native")
BASELINE = model("resnet50-native", generation=2, precision="NATIVE")


def job(run: BenchmarkRun | None = None) -> dict[str, object]:
    return build_benchmark_job(run or run_of(TARGET, BASELINE), image="trtserve/converter:0.1.0")


def test_job_is_valid_kubernetes_and_owned_by_the_benchmarked_model() -> None:
    manifest = job()
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    metadata = manifest["metadata"]
    assert isinstance(metadata, dict)
    (owner,) = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "TRTModel", "resnet50-fp16", "uid-resnet50-fp16",
    )  # fmt: skip
    assert metadata["labels"]["app.kubernetes.io/component"] == "benchmark"
    assert (
        metadata["annotations"]["trtserve.io/benchmark-key"]
        == "3/resnet50-native/uid-resnet50-native/2"
    )


def test_job_pod_is_restricted_without_gpu_and_cleans_up() -> None:
    spec = job()["spec"]
    assert isinstance(spec, dict)
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["command"] == ["trt-bench"]
    assert container["image"] == "trtserve/converter:0.1.0"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    resources = json.dumps(container["resources"])
    assert "nvidia.com/gpu" not in resources
    assert "cpu" not in container["resources"]["limits"]  # no throttling of the client
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert "--report-path=/dev/termination-log" in container["args"]


def test_pod_is_selected_by_neither_model_service_nor_the_serving_watch() -> None:
    labels = job()["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    for body in (TARGET, BASELINE):
        selector = build_children(target_from_body(body), Settings()).service["spec"]["selector"]
        assert not all(labels.get(k) == v for k, v in selector.items())
    assert "app.kubernetes.io/managed-by" not in labels
    assert labels["app.kubernetes.io/instance"] == "resnet50-fp16"


def test_args_name_both_services_and_the_spec() -> None:
    body = model(
        "resnet50-fp16",
        baseline="resnet50-native",
        benchmark={"concurrency": [1, 4, 32], "durationSeconds": 30, "warmupSeconds": 5,
                   "rounds": 4, "batchSize": 8, "maxErrorRate": 0.05},
    )  # fmt: skip
    body["spec"]["modelName"] = "resnet"
    args = build_bench_args(run_of(body, BASELINE), log_format="json")
    assert args[:6] == [
        "--endpoint=resnet50-fp16.default.svc:8500",
        "--model-name=resnet",
        "--baseline=resnet50-native.default.svc:8500",
        "--baseline-model-name=resnet50-native",
        "--protocol=grpc",
        "--signature-key=serving_default",
    ]
    for expected in ("--unknown-dim=8", "--concurrency=1,4,32", "--duration-seconds=30",
                     "--rounds=4", "--warmup-seconds=5", "--max-error-rate=0.05", "--json",
                     "--log-format=json"):  # fmt: skip
        assert expected in args
    rest = model("m", baseline="resnet50-native", benchmark={"protocol": "rest"})
    assert "--endpoint=m.default.svc:8501" in build_bench_args(run_of(rest, BASELINE))


def test_deadline_covers_every_level_on_both_models() -> None:
    settings = target_from_body(TARGET).spec.benchmark
    assert settings is not None
    measured = 2 * len(settings.concurrency) * settings.duration_seconds
    assert active_deadline_seconds(settings) > measured + 2 * settings.warmup_seconds


def test_job_name_is_a_label_value_and_changes_with_either_generation() -> None:
    long_name = model("m" * 63, baseline="b")
    name = benchmark_job_name(run_of(long_name, BASELINE))
    assert len(name) <= 63
    first = benchmark_job_name(run_of(TARGET, BASELINE))
    assert first == benchmark_job_name(run_of(TARGET, BASELINE))
    assert first != benchmark_job_name(
        run_of(model("resnet50-fp16", generation=4, baseline="resnet50-native"), BASELINE)
    )
    assert first != benchmark_job_name(run_of(TARGET, model("resnet50-native", generation=3)))


def test_resources_can_be_given() -> None:
    body = model(
        "m",
        baseline="b",
        benchmark={"resources": {"requests": {"cpu": 4}, "limits": {"memory": "2Gi"}}},
    )
    container = job(run_of(body, BASELINE))["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["resources"] == {"requests": {"cpu": "4"}, "limits": {"memory": "2Gi"}}


def test_summary_becomes_status_at_the_highest_level() -> None:
    run = run_of(TARGET, BASELINE)
    summary = parse_summary(json.dumps(SUMMARY), 0)
    status = summary_to_status(summary, run, job="j", start_time="t0", now="t1")
    assert status.result is BenchmarkResult.SUCCEEDED
    assert status.speedup == 1.62
    assert status.concurrency == 16
    assert status.significant is True
    assert status.target is not None
    assert status.baseline is not None
    assert (status.target.name, status.target.generation) == ("resnet50-fp16", 3)
    assert (status.baseline.name, status.baseline.generation) == ("resnet50-native", 2)
    assert (status.target.qps, status.target.p50_ms, status.target.p99_ms) == (812.0, 19.6, 25.0)
    assert (status.baseline.qps, status.baseline.p99_ms, status.baseline.errors) == (501.2, 41.8, 2)
    assert [level.concurrency for level in status.levels or []] == [1, 16]
    assert (status.levels or [])[0].baseline_qps == 155.2
    assert (status.start_time, status.completion_time, status.job) == ("t0", "t1", "j")
    # It is a valid status (the CRD is generated from this model).
    TRTModelStatus.model_validate({"benchmark": status.model_dump(by_alias=True)})


def test_a_failed_run_keeps_the_levels_it_measured() -> None:
    failed = {
        **SUMMARY,
        "result": "Failed",
        "reason": "ErrorRateExceeded",
        "exitCode": 40,
        "message": "12 % of requests failed at concurrency 16",
        "comparison": None,
    }
    status = summary_to_status(parse_summary(json.dumps(failed), 40), run_of(TARGET, BASELINE),
                               job="j", start_time=None, now="t")  # fmt: skip
    assert status.result is BenchmarkResult.FAILED
    assert status.reason == "ErrorRateExceeded"
    assert status.speedup is None
    assert status.target is not None
    assert status.target.qps == 812.0


@pytest.mark.parametrize(
    ("message", "exit_code", "reason", "text"),
    [
        (None, 137, "OOMKilledOrKilled", "trt-bench exited with code 137 and no summary"),
        ("Traceback...\nRuntimeError: boom\n", 70, "InternalError", "RuntimeError: boom"),
        ('{"v":1,"result":', 10, "EndpointUnavailable", '{"v":1,"result":'),
    ],
)
def test_no_summary_falls_back_to_exit_code_and_log_tail(
    message: str | None, exit_code: int, reason: str, text: str
) -> None:
    summary = parse_summary(message, exit_code)
    assert (summary.result, summary.reason, summary.message) == ("Failed", reason, text)


def test_truncated_summary_still_reads() -> None:
    """trt-bench drops middle levels (and optional keys) to stay under 4096 bytes."""
    truncated = json.loads(json.dumps(SUMMARY))
    truncated["truncated"] = True
    for part in (truncated["target"], truncated["baseline"], truncated["comparison"]):
        part["levels"] = part["levels"][-1:]
    status = summary_to_status(parse_summary(json.dumps(truncated), 0), run_of(TARGET, BASELINE),
                               job="j", start_time=None, now="t")  # fmt: skip
    assert status.concurrency == 16
    assert status.speedup == 1.62
