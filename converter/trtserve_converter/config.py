"""Validated run configuration, built from the parsed CLI arguments."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

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


class ConvertConfig(BaseModel):
    """Everything one converter run needs; field names follow the flags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    source_version: int | None = Field(default=None, ge=0)
    output_base: str = "/models"
    model_name: str = Field(pattern=MODEL_NAME_PATTERN.pattern)
    model_version: int = Field(default=1, ge=0)
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
    accuracy_rtol: float = Field(default=0.01, ge=0)
    accuracy_atol: float = Field(default=0.001, ge=0)
    accuracy_min_top1: float | None = Field(default=None, ge=0, le=1)
    warmup_records: int = Field(default=1, ge=0, le=MAX_WARMUP_RECORDS)
    timeout_seconds: float = Field(default=3600, gt=0)
    max_source_bytes: int = Field(default=20 * GIB, gt=0)
    report_path: str = "/dev/termination-log"
    log_level: str = "INFO"
    log_format: str = "text"
    seed: int = 0
    # The converted-model cache (cache.py); no cache_uri: no cache.
    cache_uri: str | None = None
    cache_credentials_dir: str | None = None
    cache_publish: bool = True
    cache_namespace: str = Field(default="default", pattern=CACHE_NAMESPACE_PATTERN.pattern)
    cache_signing_key_file: str | None = None
