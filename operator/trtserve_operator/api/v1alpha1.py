"""Typed models of the TRTModel custom resource, trtserve.io/v1alpha1.

These models are the single source of truth for the resource's schema: the CRD in
``crds/trtmodels.yaml`` is generated from them (see ``trtserve_operator.api.crd``) and a
test fails when the committed CRD differs from the generated one.

Python attribute names are snake_case; the wire names are camelCase (aliases). Every model
forbids unknown fields, like a structural CRD schema without
``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "trtserve.io"
VERSION = "v1alpha1"
KIND = "TRTModel"
PLURAL = "trtmodels"
SINGULAR = "trtmodel"
SHORT_NAMES = ("trtm",)
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_SERVING_IMAGE = "tensorflow/serving:2.17.1-gpu"


class ApiModel(BaseModel):
    """Base of every API model: camelCase wire names, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


class Precision(StrEnum):
    """Precision of the TensorRT engines; NATIVE serves the SavedModel without TensorRT."""

    FP32 = "FP32"
    FP16 = "FP16"
    INT8 = "INT8"
    NATIVE = "NATIVE"


class ProfileStrategy(StrEnum):
    """TF-TRT dynamic shape profile strategy (``dynamic_shape_profile_strategy``)."""

    RANGE = "Range"
    OPTIMAL = "Optimal"
    RANGE_OPTIMAL = "Range+Optimal"
    IMPLICIT_BATCH_MODE_COMPATIBLE = "ImplicitBatchModeCompatible"


class LocalObjectReference(ApiModel):
    """Reference to an object in the TRTModel's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, description="Name of the object.")]


class Source(ApiModel):
    """Where the SavedModel comes from."""

    uri: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2048,
            description=(
                "URI of the SavedModel directory or archive (.tar.gz, .tgz, .zip). Schemes: "
                "s3://bucket/path, gs://bucket/path, http(s)://host/path, "
                "pvc://<claim-name>/<path-in-volume>."
            ),
        ),
    ]
    secret_ref: Annotated[
        LocalObjectReference | None,
        Field(
            description=(
                "Secret with credentials for the source, exposed to the converter as environment "
                "variables (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) and "
                "mounted read-only at /var/run/secrets/trtserve/source."
            ),
        ),
    ] = None
    version: Annotated[
        int | None,
        Field(
            ge=1,
            description=(
                "Model version to take when the source holds numbered version directories; "
                "default: the highest. It is also the version served."
            ),
        ),
    ] = None
    signature_key: Annotated[
        str,
        Field(min_length=1, description="SavedModel signature to convert and serve."),
    ] = "serving_default"


class InputSpec(ApiModel):
    """A declared model input, used to check build shapes before anything runs."""

    name: Annotated[str, Field(min_length=1, description="Input name in the signature.")]
    shape: Annotated[
        list[Annotated[int, Field(ge=-1)]],
        Field(
            min_length=0,
            max_length=16,
            description="Input shape; -1 marks a dimension of unknown size.",
        ),
    ]


Shape = Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=16)]


class Calibration(ApiModel):
    """INT8 calibration data."""

    uri: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=2048,
            description=(
                "URI of calibration inputs (.npz/.npy, or a TFRecord of serialized tensors); same "
                "schemes and credentials as the source."
            ),
        ),
    ] = None
    batches: Annotated[
        int, Field(ge=1, le=10000, description="Number of calibration batches to run.")
    ] = 10
    batch_size: Annotated[
        int, Field(ge=1, le=4096, description="Inputs per calibration batch.")
    ] = 8
    synthetic: Annotated[
        bool,
        Field(
            description=(
                "Calibrate on random inputs of the signature's shapes when no data is given. "
                "INT8 accuracy will be poor: for tests and smoke runs only."
            ),
        ),
    ] = False


class Accuracy(ApiModel):
    """Accuracy gate: the converted model is compared with the original before it is served."""

    enabled: Annotated[
        bool | None,
        Field(description="Run the accuracy gate; default: on for FP16 and INT8, off otherwise."),
    ] = None
    samples: Annotated[int, Field(ge=1, le=100000, description="Inputs to compare.")] = 32
    rtol: Annotated[float, Field(ge=0, description="Relative tolerance per output value.")] = 0.01
    atol: Annotated[float, Field(ge=0, description="Absolute tolerance per output value.")] = 0.001
    min_top1_agreement: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description=(
                "For classifier outputs: minimum fraction of inputs whose top-1 class agrees; "
                "when set, replaces rtol/atol for outputs of rank 2."
            ),
        ),
    ] = None


class Conversion(ApiModel):
    """How the SavedModel is converted with TF-TRT."""

    precision: Annotated[
        Precision,
        Field(description="Engine precision: FP32, FP16, INT8, or NATIVE (no TensorRT)."),
    ] = Precision.FP16
    max_workspace_bytes: Annotated[
        int,
        Field(ge=1 << 20, le=1 << 40, description="TensorRT builder workspace size in bytes."),
    ] = 1 << 30
    minimum_segment_size: Annotated[
        int, Field(ge=1, le=1000, description="Minimum number of ops in a TensorRT segment.")
    ] = 3
    maximum_cached_engines: Annotated[
        int, Field(ge=1, le=1000, description="Maximum number of engines cached per TRTEngineOp.")
    ] = 1
    dynamic_shapes: Annotated[
        bool, Field(description="Build engines with dynamic shapes (explicit batch).")
    ] = True
    profile_strategy: Annotated[
        ProfileStrategy,
        Field(description="Optimization profile strategy for dynamic shapes."),
    ] = ProfileStrategy.RANGE
    inputs: Annotated[
        list[InputSpec] | None,
        Field(
            max_length=64,
            description=(
                "Declared signature inputs; when given, build shapes are checked against them "
                "at admission. The converter always checks against the real signature."
            ),
        ),
    ] = None
    build_shapes: Annotated[
        list[dict[str, Shape]] | None,
        Field(
            max_length=64,
            description=(
                "Input shapes to pre-build engines for, one map of input name to shape per "
                "engine, e.g. [{input_1: [8, 224, 224, 3]}]. Default: one engine for the "
                "signature's shapes with unknown dimensions set to 1."
            ),
        ),
    ] = None
    calibration: Annotated[
        Calibration | None, Field(description="INT8 calibration data; required for INT8.")
    ] = None
    accuracy: Annotated[
        Accuracy, Field(description="Accuracy gate between the original and converted model.")
    ] = Accuracy()
    warmup_records: Annotated[
        int,
        Field(
            ge=0,
            le=1000,
            description=(
                "Number of warmup requests written to assets.extra/tf_serving_warmup_requests "
                "(0: none)."
            ),
        ),
    ] = 1
    timeout_seconds: Annotated[
        int,
        Field(ge=60, le=86400, description="Time limit for the whole conversion."),
    ] = 3600


class ResourceRequirements(ApiModel):
    """Compute resources of the serving container (GPUs are set by ``gpus``)."""

    requests: Annotated[
        dict[str, str] | None,
        Field(description="Resource requests, e.g. {cpu: '4', memory: 16Gi}."),
    ] = None
    limits: Annotated[
        dict[str, str] | None,
        Field(description="Resource limits, e.g. {memory: 16Gi}."),
    ] = None


class Batching(ApiModel):
    """TF Serving server-side batching (``BatchingParameters``)."""

    enabled: Annotated[bool, Field(description="Enable server-side batching.")] = False
    max_batch_size: Annotated[
        int, Field(ge=1, le=65536, description="Largest batch TF Serving forms.")
    ] = 32
    batch_timeout_micros: Annotated[
        int,
        Field(ge=0, le=10_000_000, description="How long to wait to fill a batch, microseconds."),
    ] = 1000
    max_enqueued_batches: Annotated[
        int, Field(ge=1, le=10_000_000, description="Queue length in batches.")
    ] = 100
    num_batch_threads: Annotated[
        int, Field(ge=1, le=1024, description="Threads processing batches.")
    ] = 4
    allowed_batch_sizes: Annotated[
        list[Annotated[int, Field(ge=1)]] | None,
        Field(
            max_length=64,
            description=(
                "Batch sizes batches are padded to (increasing; the last must equal "
                "maxBatchSize); match them to the build shapes so no engine is built at runtime."
            ),
        ),
    ] = None
    pad_variable_length_inputs: Annotated[
        bool, Field(description="Pad inputs of variable length to the batch's longest.")
    ] = False


class Serving(ApiModel):
    """How the converted model is served by TensorFlow Serving."""

    image: Annotated[
        str | None,
        Field(
            min_length=1,
            description=(
                "TF Serving image; default from the operator settings "
                f"({DEFAULT_SERVING_IMAGE}). Tags 2.18 and newer cannot load TensorRT ops."
            ),
        ),
    ] = None
    replicas: Annotated[
        int,
        Field(
            ge=0,
            le=1000,
            description="Serving pods; the scale subresource's field (kubectl scale, HPA).",
        ),
    ] = 1
    gpus: Annotated[
        int,
        Field(ge=0, le=16, description="GPUs per pod (nvidia.com/gpu); 0 only with allowCpu."),
    ] = 1
    allow_cpu: Annotated[
        bool,
        Field(description="Allow gpus: 0; only with precision NATIVE (TensorRT needs a GPU)."),
    ] = False
    gpu_memory_fraction: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            description=(
                "--per_process_gpu_memory_fraction for TF Serving; the rest of the GPU memory is "
                "left to TensorRT."
            ),
        ),
    ] = 0.5
    resources: Annotated[
        ResourceRequirements | None, Field(description="CPU and memory of the serving container.")
    ] = None
    node_selector: Annotated[
        dict[str, str] | None, Field(description="Node selector of the serving pods.")
    ] = None
    tolerations: Annotated[
        list[dict[str, Any]] | None,
        Field(description="Tolerations of the serving pods (core/v1 Toleration)."),
    ] = None
    affinity: Annotated[
        dict[str, Any] | None,
        Field(description="Affinity of the serving pods (core/v1 Affinity)."),
    ] = None
    batching: Annotated[
        Batching, Field(description="Server-side batching.")
    ] = Batching()
    extra_args: Annotated[
        list[str] | None,
        Field(max_length=64, description="Extra tensorflow_model_server arguments."),
    ] = None
    env: Annotated[
        list[dict[str, Any]] | None,
        Field(max_length=64, description="Extra environment of the serving container (EnvVar)."),
    ] = None


class TRTModelSpec(ApiModel):
    """Desired state of a TRTModel."""

    source: Annotated[Source, Field(description="Where the SavedModel comes from.")]
    model_name: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=63,
            pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$",
            description="Name the model is served under; default: metadata.name.",
        ),
    ] = None
    conversion: Annotated[
        Conversion, Field(description="TF-TRT conversion settings.")
    ] = Conversion()
    serving: Annotated[Serving, Field(description="TF Serving settings.")] = Serving()
    converter_image: Annotated[
        str | None,
        Field(min_length=1, description="Converter image; default from the operator settings."),
    ] = None


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A metav1.Condition."""

    type: Annotated[str, Field(min_length=1, max_length=316, description="Condition type.")]
    status: Annotated[ConditionStatus, Field(description="True, False or Unknown.")]
    observed_generation: Annotated[
        int | None, Field(ge=0, description="metadata.generation the condition was set for.")
    ] = None
    last_transition_time: Annotated[
        str, Field(description="When the status last changed (RFC 3339).")
    ]
    reason: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            description="CamelCase reason of the last transition.",
        ),
    ]
    message: Annotated[
        str, Field(max_length=32768, description="Human-readable details.")
    ] = ""


class Phase(StrEnum):
    PENDING = "Pending"
    CONVERTING = "Converting"
    STARTING = "Starting"
    READY = "Ready"
    FAILED = "Failed"


class Endpoint(ApiModel):
    """Where clients reach the model inside the cluster."""

    grpc: Annotated[str | None, Field(description="gRPC address, host:port.")] = None
    rest: Annotated[str | None, Field(description="REST URL of the model.")] = None


class AccuracyResult(ApiModel):
    """Result of the accuracy gate."""

    passed: Annotated[bool | None, Field(description="Whether the gate passed.")] = None
    samples: Annotated[int | None, Field(ge=0, description="Inputs compared.")] = None
    max_abs_error: Annotated[float | None, Field(description="Largest absolute error.")] = None
    max_rel_error: Annotated[float | None, Field(description="Largest relative error.")] = None
    top1_agreement: Annotated[
        float | None, Field(description="Fraction of inputs whose top-1 class agrees.")
    ] = None


class ConversionStatus(ApiModel):
    """The converter's report of the last conversion."""

    result: Annotated[str | None, Field(description="Succeeded or Failed.")] = None
    reason: Annotated[str | None, Field(description="Converter reason, e.g. AccuracyGateFailed.")] = None
    message: Annotated[str | None, Field(description="One-line summary or error.")] = None
    exit_code: Annotated[int | None, Field(description="Converter exit code.")] = None
    precision: Annotated[str | None, Field(description="Precision converted to.")] = None
    duration_seconds: Annotated[float | None, Field(description="Total conversion time.")] = None
    trt_engine_ops: Annotated[
        int | None, Field(ge=0, description="TRTEngineOp nodes in the converted graph.")
    ] = None
    native_ops: Annotated[
        int | None, Field(ge=0, description="Ops left to TensorFlow outside TensorRT.")
    ] = None
    engines_built: Annotated[int | None, Field(ge=0, description="Engines pre-built.")] = None
    accuracy: Annotated[AccuracyResult | None, Field(description="Accuracy gate result.")] = None
    tensorflow_version: Annotated[str | None, Field(description="TensorFlow version.")] = None
    tensorrt_version: Annotated[
        str | None, Field(description="TensorRT version loaded by the converter.")
    ] = None
    gpu: Annotated[str | None, Field(description="GPU product the engines were built on.")] = None


class TRTModelStatus(ApiModel):
    """Observed state of a TRTModel, written only by the operator."""

    phase: Annotated[Phase | None, Field(description="Summary of the lifecycle.")] = None
    observed_generation: Annotated[
        int | None, Field(ge=0, description="metadata.generation last acted on.")
    ] = None
    conditions: Annotated[
        list[Condition] | None,
        Field(description="Converted, Available and Ready conditions."),
    ] = None
    replicas: Annotated[int | None, Field(ge=0, description="Serving pods that exist.")] = None
    ready_replicas: Annotated[int | None, Field(ge=0, description="Serving pods ready.")] = None
    selector: Annotated[
        str | None, Field(description="Label selector of the serving pods (scale subresource).")
    ] = None
    endpoint: Annotated[Endpoint | None, Field(description="In-cluster endpoints.")] = None
    conversion: Annotated[
        ConversionStatus | None, Field(description="Report of the last conversion.")
    ] = None
