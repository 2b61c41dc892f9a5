"""Validated run configuration, built from the parsed CLI arguments."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

GIB = 1 << 30
# TF Serving rejects a warmup file with more records (WarmupConsts::kMaxNumRecords).
MAX_WARMUP_RECORDS = 1000
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
INPUT_NAME_PATTERN = re.compile(r"^[^=,;\s]+$")
# A Kubernetes namespace name (RFC 1123 label): safe as one path segment of the cache.
CACHE_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Precision(StrEnum):
    """`--precision`: the TF-TRT precision modes plus NATIVE (no TensorRT)."""

    FP32 = "FP32"
    FP16 = "FP16"
    INT8 = "INT8"
    NATIVE = "NATIVE"

    @property
    def uses_tensorrt(self) -> bool:
        return self is not Precision.NATIVE


class ProfileStrategy(StrEnum):
    """`--profile-strategy`: the values of TF-TRT's `supported_profile_strategies()`."""

    RANGE = "Range"
    OPTIMAL = "Optimal"
    RANGE_OPTIMAL = "Range+Optimal"
    IMPLICIT_BATCH_MODE_COMPATIBLE = "ImplicitBatchModeCompatible"


BuildShape = dict[str, tuple[int, ...]]


class Tolerances(NamedTuple):
    """Element tolerances of the accuracy gate: |converted - original| <= atol + rtol*|original|."""

    rtol: float
    atol: float


# Defaults of --accuracy-rtol/--accuracy-atol per precision; where the numbers come from is
# in docs/api.md ("Accuracy gate"): TF-TRT's own tests (tf_trt_integration_test_base.py,
# model_tests/run_models.py) and TensorFlow's TF32 documentation. A test holds that table
# and this one equal.
DEFAULT_TOLERANCES: dict[Precision, Tolerances] = {
    Precision.FP32: Tolerances(rtol=1e-3, atol=1e-3),
    Precision.FP16: Tolerances(rtol=0.05, atol=0.05),
    Precision.INT8: Tolerances(rtol=0.1, atol=0.5),
    Precision.NATIVE: Tolerances(rtol=1e-5, atol=1e-5),
}


class ConvertConfig(BaseModel):
    """Everything one converter run needs; field names follow the flags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    source_version: int | None = Field(default=None, ge=0)
    output_base: str = "/models"
    model_name: str = Field(pattern=MODEL_NAME_PATTERN.pattern)
    # None: the version the source gives the model (its numbered directory), else 1.
    model_version: int | None = Field(default=None, ge=0)
    signature_key: str = "serving_default"
    precision: Precision = Precision.FP16
    max_workspace_bytes: int = Field(default=GIB, gt=0)
    minimum_segment_size: int = 3
    maximum_cached_engines: int = Field(default=1, ge=1)
    dynamic_shapes: bool = True
    profile_strategy: ProfileStrategy = ProfileStrategy.RANGE
    build_shapes: tuple[BuildShape, ...] = ()
    calibration_source: str | None = None
    calibration_batches: int = Field(default=10, ge=1)
    calibration_batch_size: int = Field(default=8, ge=1)
    synthetic_calibration: bool = False
    accuracy_check: bool = True
    accuracy_samples: int = Field(default=32, ge=1)
    # Missing or None: the precision's DEFAULT_TOLERANCES (filled in before validation).
    accuracy_rtol: float = Field(ge=0)
    accuracy_atol: float = Field(ge=0)
    accuracy_min_top1: float | None = Field(default=None, ge=0, le=1)
    warmup_records: int = Field(default=1, ge=0, le=MAX_WARMUP_RECORDS)
    timeout_seconds: float = Field(default=3600, gt=0)
    max_source_bytes: int = Field(default=20 * GIB, gt=0)
    report_path: str = "-"  # the CLI passes /dev/termination-log where it exists
    log_level: str = "INFO"
    log_format: str = "text"
    seed: int = 0
    # The converted-model cache (cache.py); no cache_uri: no cache.
    cache_uri: str | None = None
    cache_credentials_dir: str | None = None
    cache_publish: bool = True
    cache_namespace: str = Field(default="default", pattern=CACHE_NAMESPACE_PATTERN.pattern)
    cache_signing_key_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_tolerances(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults = DEFAULT_TOLERANCES[Precision(data.get("precision", Precision.FP16))]
        filled = dict(data)
        for name, value in (("accuracy_rtol", defaults.rtol), ("accuracy_atol", defaults.atol)):
            if filled.get(name) is None:
                filled[name] = value
        return filled
