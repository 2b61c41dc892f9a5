"""The Prometheus alerts of trtserve, as data: the chart's PrometheusRule
(``prometheusRule.enabled``) and a plain rule file for ``promtool`` come from
:func:`rule_groups`. Each alert has a ``signal``: the series its condition is computed
from, which the tests require a real Prometheus to return (a condition that is false
returns nothing, by design). Runbooks: docs/admin.md, "Alerts"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtserve_observability import metrics as m

RUNBOOK = "docs/admin.md#alert-{anchor}"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    signal: str
    for_: str
    severity: str
    summary: str
    description: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook": RUNBOOK.format(anchor=self.name.lower()),
            },
        }


ALERTS = (
    Alert(
        name="TRTModelNotReady",
        expr=(
            f'max by (namespace, model, phase, reason) ({m.MODEL_INFO}{{phase!="Ready", '
            f'reason!="ScaledToZero"}}) == 1'
        ),
        signal=m.MODEL_INFO,
        for_="15m",
        severity="warning",
        summary="TRTModel {{ $labels.namespace }}/{{ $labels.model }} is not Ready",
        description=(
            "{{ $labels.namespace }}/{{ $labels.model }} has not served for 15 minutes: "
            "phase {{ $labels.phase }}, reason {{ $labels.reason }}. Look at "
            "`kubectl get trtm -n {{ $labels.namespace }} {{ $labels.model }} -o wide` and "
            "its Ready condition's message."
        ),
    ),
    Alert(
        name="TRTModelConversionFailing",
        expr=f"max by (namespace, model, reason) ({m.CONVERSION_FAILED}) == 1",
        signal=m.CONVERSION_FAILED,
        for_="30m",
        severity="warning",
        summary="{{ $labels.namespace }}/{{ $labels.model }} keeps failing to convert",
        description=(
            "The conversion of {{ $labels.namespace }}/{{ $labels.model }} has failed with "
            "{{ $labels.reason }} for 30 minutes (its converter retries in CrashLoopBackOff "
            "meanwhile). status.conversion.message names the cause and the spec field to change."
        ),
    ),
    Alert(
        name="TRTModelAccuracyGateFailed",
        expr=(
            f'max by (namespace, model) ({m.CONVERSION_FAILED}{{reason="AccuracyGateFailed"}}) == 1'
        ),
        signal=m.CONVERSION_FAILED,
        for_="0m",
        severity="warning",
        summary="{{ $labels.namespace }}/{{ $labels.model }} failed its accuracy gate",
        description=(
            "The converted model's outputs differ from the original beyond the tolerance: the "
            "new revision is not served (an older one keeps serving, Progressing=False "
            "RolloutStalled). Use a higher precision, better calibration data or a looser "
            "spec.conversion.accuracy."
        ),
    ),
    Alert(
        name="TRTModelCachePublishFailed",
        expr=(
            f"count by (namespace, model) "
            f'({m.MODEL_CONVERSION_SECONDS}{{cache="PublishFailed"}}) > 0'
        ),
        signal=m.MODEL_CONVERSION_SECONDS,
        for_="10m",
        severity="info",
        summary="{{ $labels.namespace }}/{{ $labels.model }} could not publish to the cache",
        description=(
            "The model serves, but its conversion was not stored in the converted-model cache, "
            "so every new replica converts again. status.conversion.cache.warning names the "
            "cause (credentials, bucket policy, a full volume)."
        ),
    ),
    Alert(
        name="TRTServeNoLeader",
        expr=f"sum({m.LEADER}) < 1",
        signal=m.LEADER,
        for_="5m",
        severity="critical",
        summary="No trtserve operator replica leads",
        description=(
            "The operator replicas run but none holds the leader Lease: nothing converges "
            "TRTModels. Look at `kubectl -n <release namespace> get lease` and the replicas' "
            "logs (Lease requests refused? API server unreachable?)."
        ),
    ),
    Alert(
        name="TRTServeOperatorDown",
        expr=f"absent({m.LEADER})",
        signal=m.LEADER,
        for_="5m",
        severity="critical",
        summary="The trtserve operator is not scraped",
        description=(
            "No operator replica exports metrics: the operator is down or not scraped. "
            "TRTModels keep serving, but none is converged. Check the operator pods "
            "(`kubectl -n <release namespace> get pods`) and metrics.enabled."
        ),
    ),
    Alert(
        name="TRTModelSlowerThanBaseline",
        expr=(
            f'max by (namespace, model, baseline) ({m.BENCHMARK_SPEEDUP}{{significant="true"}}) < 1'
        ),
        signal=m.BENCHMARK_SPEEDUP,
        for_="0m",
        severity="warning",
        summary="{{ $labels.namespace }}/{{ $labels.model }} is slower than {{ $labels.baseline }}",
        description=(
            'The last A/B benchmark measured {{ printf "%.2f" $value }}x the QPS of the '
            "baseline, beyond the run-to-run noise: the TensorRT model does not pay off. See "
            "status.benchmark and docs/bench.md."
        ),
    ),
)


def rule_groups() -> dict[str, Any]:
    """The Prometheus rule file (``groups``), also the PrometheusRule's ``spec``."""
    return {"groups": [{"name": "trtserve", "rules": [alert.rule() for alert in ALERTS]}]}
