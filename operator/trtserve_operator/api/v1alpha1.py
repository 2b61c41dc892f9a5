"""Typed models of the TRTModel custom resource, trtserve.io/v1alpha1.

These models are the single source of truth for the resource's schema: the CRD in
``crds/trtmodels.yaml`` is generated from them (see ``trtserve_operator.api.crd``) and a
test fails when the committed CRD differs from the generated one.

Python attribute names are snake_case; the wire names are camelCase (aliases). Every model
forbids unknown fields, like a structural CRD schema without
``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from trtserve_operator.api import rules
from trtserve_operator.api.corev1 import QUANTITY_PATTERN, CoreType
from trtserve_operator.api.validation import rule_error

GROUP = "trtserve.io"
VERSION = "v1alpha1"
KIND = "TRTModel"
PLURAL = "trtmodels"
SINGULAR = "trtmodel"
SHORT_NAMES = ("trtm",)
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_SERVING_IMAGE = "tensorflow/serving:2.17.1-gpu"

CEL = "x-kubernetes-validations"
"""Schema key of CEL rules; models and fields carry them in ``json_schema_extra``."""


def _cel(*checks: rules.Rule) -> dict[str, Any]:
    """``json_schema_extra`` attaching CEL rules to a model or a field."""
    return {CEL: [check.to_schema() for check in checks]}


def _check_uri(uri: str) -> str:
    """The URI rules of :mod:`rules`, in Python (same order and messages as the CEL)."""
    if not re.search(rules.URI_SCHEME_PATTERN, uri):
        raise rule_error("", rules.URI_SCHEME.message)
    if not re.search(rules.URI_AUTHORITY_PATTERN, uri):
        raise rule_error("", rules.URI_AUTHORITY.message)
    if uri.startswith("pvc://") and not re.search(rules.PVC_URI_PATTERN, uri):
        raise rule_error("", rules.PVC_CLAIM.message)
    return uri


def _check_cache_uri(uri: str | None) -> str | None:
    """rules.CACHE_URI_RULES in Python (same order and messages as the CEL)."""
    if uri is None:
        return None
    if not re.search(rules.CACHE_URI_SCHEME_PATTERN, uri):
        raise rule_error("", rules.CACHE_URI_SCHEME.message)
    return _check_uri(uri)


def _quantity_to_str(value: Any) -> Any:
    """Accept ``cpu: 4`` as the CRD's int-or-string does, and keep quantities as str.

    Fractions must be strings (``"0.5"``, ``500m``): int-or-string rejects ``0.5``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    Field(
        pattern=QUANTITY_PATTERN,
        max_length=64,
        description="A quantity, e.g. 4, 500m or 16Gi.",
        # pydantic leaves the pattern out of the schema once a BeforeValidator is attached.
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN},
    ),
]
"""A resource.Quantity (``4``, ``500m``, ``16Gi``)."""

ImageReference = Annotated[str, Field(min_length=1, max_length=1024)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase wire names, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        """Treat ``field: null`` as absent, as the API server does for non-nullable fields.

        The API server prunes such nulls before defaulting, so ``conversion: null`` means
        the default conversion and ``secretRef: null`` means no secret.
        """
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


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
            json_schema_extra=_cel(*rules.URI_RULES),
        ),
        AfterValidator(_check_uri),
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
                "default: the highest. The version served keeps this number (a source "
                "without numbered directories is served as version 1)."
            ),
        ),
    ] = None
    signature_key: Annotated[
        str,
        Field(
            min_length=1, max_length=256, description="SavedModel signature to convert and serve."
        ),
    ] = "serving_default"


class InputSpec(ApiModel):
    """A declared model input, used to check build shapes before anything runs."""

    name: Annotated[
        str, Field(min_length=1, max_length=256, description="Input name in the signature.")
    ]
    shape: Annotated[
        list[
            Annotated[int, Field(ge=-1, le=1 << 31, description="Dimension size, -1 if unknown.")]
        ],
        Field(
            min_length=0,
            max_length=rules.MAX_RANK,
            description="Input shape; -1 marks a dimension of unknown size.",
        ),
    ]


Shape = Annotated[
    list[Annotated[int, Field(ge=1, le=1 << 31, description="Dimension size.")]],
    Field(max_length=rules.MAX_RANK, description="Shape of the input for this engine."),
]


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
            json_schema_extra=_cel(*rules.URI_RULES),
        ),
        AfterValidator(lambda uri: None if uri is None else _check_uri(uri)),
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
    rtol: Annotated[
        float | None,
        Field(
            ge=0,
            description=(
                "Relative tolerance per output value; default per precision: FP32 0.001, "
                "FP16 0.05, INT8 0.1, NATIVE 1e-05."
            ),
        ),
    ] = None
    atol: Annotated[
        float | None,
        Field(
            ge=0,
            description=(
                "Absolute tolerance per output value; default per precision: FP32 0.001, "
                "FP16 0.05, INT8 0.5, NATIVE 1e-05."
            ),
        ),
    ] = None
    min_top1_agreement: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description=(
                "For classifier outputs (rank 2, more than one column): minimum fraction of "
                "inputs whose top-1 class agrees; when set, replaces rtol/atol for them."
            ),
        ),
    ] = None


class Conversion(ApiModel):
    """How the SavedModel is converted with TF-TRT."""

    model_config = ConfigDict(json_schema_extra=_cel(*rules.CONVERSION_RULES))

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
            max_length=32,
            description=(
                "Declared signature inputs; when given, build shapes are checked against them "
                "at admission. The converter always checks against the real signature."
            ),
            json_schema_extra=_cel(rules.INPUT_NAMES_UNIQUE),
        ),
    ] = None
    build_shapes: Annotated[
        list[
            Annotated[
                dict[str, Shape],
                Field(
                    min_length=1,
                    max_length=16,
                    description="The input shapes of one engine: input name to shape.",
                ),
            ]
        ]
        | None,
        Field(
            max_length=32,
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

    @field_validator("inputs")
    @classmethod
    def _input_names_unique(cls, inputs: list[InputSpec] | None) -> list[InputSpec] | None:
        names = [spec.name for spec in inputs or []]
        if len(names) != len(set(names)):
            raise rule_error("", rules.INPUT_NAMES_UNIQUE.message)
        return inputs

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        """INT8 calibration and build shapes against declared inputs (rules.CONVERSION_RULES)."""
        calibration = self.calibration
        if self.precision is Precision.INT8 and (
            calibration is None or (calibration.uri is None and not calibration.synthetic)
        ):
            raise rule_error(
                rules.INT8_CALIBRATION.field_path or "", rules.INT8_CALIBRATION.message
            )
        if self.inputs is None or self.build_shapes is None:
            return self
        declared = {spec.name: spec.shape for spec in self.inputs}
        for check in (rules.BUILD_SHAPE_INPUTS, rules.BUILD_SHAPE_RANK, rules.BUILD_SHAPE_DIMS):
            if not all(_build_shape_ok(check, declared, shapes) for shapes in self.build_shapes):
                raise rule_error(check.field_path or "", check.message)
        return self


def _build_shape_ok(
    check: rules.Rule, declared: dict[str, list[int]], shapes: dict[str, list[int]]
) -> bool:
    """Whether one buildShapes entry satisfies one of the build shape rules."""
    if check is rules.BUILD_SHAPE_INPUTS:
        return all(name in declared for name in shapes)
    given = [(declared[name], shape) for name, shape in shapes.items() if name in declared]
    if check is rules.BUILD_SHAPE_RANK:
        return all(len(shape) == len(want) for want, shape in given)
    return all(
        all(w in (-1, d) for w, d in zip(want, shape, strict=True))
        for want, shape in given
        if len(want) == len(shape)
    )


class ResourceRequirements(ApiModel):
    """Compute resources of the serving container (GPUs are set by ``gpus``)."""

    requests: Annotated[
        dict[str, Quantity] | None,
        Field(max_length=32, description="Resource requests, e.g. {cpu: 4, memory: 16Gi}."),
    ] = None
    limits: Annotated[
        dict[str, Quantity] | None,
        Field(max_length=32, description="Resource limits, e.g. {memory: 16Gi}."),
    ] = None


class Batching(ApiModel):
    """TF Serving server-side batching (``BatchingParameters``)."""

    model_config = ConfigDict(json_schema_extra=_cel(rules.BATCH_SIZES_LAST))

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
        list[Annotated[int, Field(ge=1, le=65536, description="A batch size.")]] | None,
        Field(
            min_length=1,
            max_length=rules.MAX_ALLOWED_BATCH_SIZES,
            description=(
                "Batch sizes batches are padded to (increasing; the last must equal "
                "maxBatchSize); match them to the build shapes so no engine is built at runtime."
            ),
            json_schema_extra=_cel(rules.BATCH_SIZES_INCREASING),
        ),
    ] = None
    pad_variable_length_inputs: Annotated[
        bool, Field(description="Pad inputs of variable length to the batch's longest.")
    ] = False

    @field_validator("allowed_batch_sizes")
    @classmethod
    def _increasing(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes and any(a >= b for a, b in itertools.pairwise(sizes)):
            raise rule_error("", rules.BATCH_SIZES_INCREASING.message)
        return sizes

    @model_validator(mode="after")
    def _last_is_max(self) -> Self:
        sizes = self.allowed_batch_sizes
        if sizes and sizes[-1] != self.max_batch_size:
            raise rule_error(
                rules.BATCH_SIZES_LAST.field_path or "", rules.BATCH_SIZES_LAST.message
            )
        return self


def _check_max_unavailable(value: int | str) -> int | str:
    """rules.MAX_UNAVAILABLE in Python (an int-or-string, as PodDisruptionBudget's)."""
    if isinstance(value, int):
        ok = 1 <= value <= rules.MAX_UNAVAILABLE_LIMIT
    else:
        ok = re.search(rules.PERCENT_PATTERN, value) is not None
    if not ok:
        raise rule_error("", rules.MAX_UNAVAILABLE.message)
    return value


MaxUnavailable = Annotated[
    # Strict: true is not 1 (the CRD's int-or-string rejects a boolean).
    Annotated[int, Strict()] | Annotated[str, Strict()],
    AfterValidator(_check_max_unavailable),
    # One int-or-string node (a union is not structural): the CEL rule tells the two apart.
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "description": (
                "Serving pods an eviction (kubectl drain, a cluster autoscaler) may take "
                "down at once: a number (1 to 1000) or a percentage of spec.serving.replicas "
                "rounded up (1% to 100%), so a single replica always stays evictable."
            ),
            CEL: [rules.MAX_UNAVAILABLE.to_schema()],
        }
    ),
]


class DisruptionBudget(ApiModel):
    """The serving pods' PodDisruptionBudget (policy/v1), owned by the TRTModel."""

    enabled: Annotated[
        bool,
        Field(
            description=(
                "Keep a PodDisruptionBudget for the serving pods, so that a drain of the GPU "
                "nodes evicts them a few at a time; false removes it."
            )
        ),
    ] = True
    max_unavailable: MaxUnavailable = 1


class Serving(ApiModel):
    """How the converted model is served by TensorFlow Serving."""

    model_config = ConfigDict(json_schema_extra=_cel(rules.GPU_PRODUCT_SELECTOR))

    image: Annotated[
        ImageReference | None,
        Field(
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
        dict[str, Annotated[str, Field(max_length=63, description="Label value.")]] | None,
        Field(max_length=64, description="Node selector of the serving pods."),
    ] = None
    gpu_product: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=63,
            pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
            description=(
                "GPU product of the serving nodes, e.g. NVIDIA-A100-SXM4-80GB: adds the "
                f"nodeSelector {rules.GPU_PRODUCT_LABEL} (NVIDIA GPU Feature Discovery's "
                "label), so every replica runs on one GPU type and shares one converted-model "
                "cache entry. Without it each GPU product gets its own entry."
            ),
        ),
    ] = None
    tolerations: Annotated[
        list[Annotated[dict[str, Any], CoreType("Toleration")]] | None,
        Field(
            max_length=64,
            description="Tolerations of the serving pods (core/v1 Toleration).",
            # PodSpec.tolerations' own list type.
            json_schema_extra={"x-kubernetes-list-type": "atomic"},
        ),
    ] = None
    affinity: Annotated[
        Annotated[dict[str, Any], CoreType("Affinity")] | None,
        Field(description="Affinity of the serving pods (core/v1 Affinity)."),
    ] = None
    topology_spread_constraints: Annotated[
        list[Annotated[dict[str, Any], CoreType("TopologySpreadConstraint")]] | None,
        Field(
            max_length=8,
            description=(
                "Topology spread of the serving pods (core/v1 TopologySpreadConstraint). "
                "Unset: across nodes (kubernetes.io/hostname) and zones "
                "(topology.kubernetes.io/zone), maxSkew 1, ScheduleAnyway, counting the pods "
                "of one revision only; [] for none."
            ),
            json_schema_extra={"x-kubernetes-list-type": "atomic"},
        ),
    ] = None
    drain_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=300,
            description=(
                "Seconds a stopping serving pod keeps serving before it is told to stop "
                "(a preStop pause), so that Services, kube-proxy, ingresses and meshes stop "
                "sending it requests first; 0: none."
            ),
        ),
    ] = 10
    request_timeout_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=3600,
            description=(
                "The longest request deadline of the model's clients: a stopping pod gets "
                "drainSeconds + this before it is killed (terminationGracePeriodSeconds)."
            ),
        ),
    ] = 30
    disruption_budget: Annotated[
        DisruptionBudget,
        Field(
            description=(
                "The PodDisruptionBudget of the serving pods: maxUnavailable 1 by default; "
                "pods that are not ready (converting, crash-looping) are always evictable "
                "(unhealthyPodEvictionPolicy: AlwaysAllow), so a stuck rollout never blocks "
                "a drain."
            )
        ),
    ] = DisruptionBudget()
    batching: Annotated[Batching, Field(description="Server-side batching.")] = Batching()
    extra_args: Annotated[
        list[
            Annotated[
                str, Field(min_length=1, max_length=1024, description="One argument, --flag=value.")
            ]
        ]
        | None,
        Field(
            max_length=64,
            description=(
                "Extra tensorflow_model_server arguments, e.g. "
                "--tensorflow_intra_op_parallelism=4; not the flags the operator sets (ports, "
                "model, warmup, batching, GPU memory fraction)."
            ),
            json_schema_extra=_cel(rules.MANAGED_FLAGS),
        ),
    ] = None
    env: Annotated[
        list[Annotated[dict[str, Any], CoreType("EnvVar")]] | None,
        Field(
            max_length=64,
            description="Extra environment of the serving container (core/v1 EnvVar).",
            # Container.env's own list type: names are unique.
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
        ),
    ] = None

    @field_validator("extra_args")
    @classmethod
    def _not_managed(cls, args: list[str] | None) -> list[str] | None:
        if any(re.search(rules.MANAGED_FLAG_PATTERN, arg) for arg in args or []):
            raise rule_error("", rules.MANAGED_FLAGS.message)
        return args

    @model_validator(mode="after")
    def _gpu_product_selector(self) -> Self:
        selected = (self.node_selector or {}).get(rules.GPU_PRODUCT_LABEL)
        if self.gpu_product is not None and selected is not None and selected != self.gpu_product:
            raise rule_error(
                rules.GPU_PRODUCT_SELECTOR.field_path or "", rules.GPU_PRODUCT_SELECTOR.message
            )
        return self

    @field_validator("env")
    @classmethod
    def _env_names_unique(cls, env: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """Container.env is a list map keyed by name: the CRD rejects a repeated name too."""
        names = [item["name"] for item in env or []]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise rule_error("", f"duplicate env name(s) {', '.join(duplicates)}")
        return env


class BenchmarkTrigger(StrEnum):
    """When the operator runs the benchmark."""

    ON_READY = "OnReady"
    """Once each time this model and its baseline are both Ready at a new generation."""


class BenchmarkProtocol(StrEnum):
    GRPC = "grpc"
    REST = "rest"


class Benchmark(ApiModel):
    """A/B benchmark of this model against another TRTModel (the baseline), run by the
    operator as a Job of ``trt-bench`` against both Services; the result is in
    ``status.benchmark``."""

    baseline: Annotated[
        str,
        Field(
            min_length=1,
            max_length=rules.METADATA_NAME_MAX,
            pattern=rules.METADATA_NAME_PATTERN,
            description=(
                "Name of the TRTModel in this namespace to compare with, typically the same "
                "model with precision NATIVE. Both must serve source.signatureKey."
            ),
        ),
    ]
    trigger: Annotated[
        BenchmarkTrigger,
        Field(
            description=(
                "OnReady: run once each time both models are Ready at a new generation "
                "(a changed spec of either model, this benchmark's settings included)."
            )
        ),
    ] = BenchmarkTrigger.ON_READY
    concurrency: Annotated[
        list[Annotated[int, Field(ge=1, le=4096, description="Requests in flight.")]],
        Field(
            min_length=1,
            max_length=rules.MAX_BENCHMARK_LEVELS,
            description=(
                "Concurrency levels (closed loop: requests in flight), strictly increasing; "
                "speedup is measured at the last."
            ),
            json_schema_extra=_cel(rules.BENCHMARK_LEVELS_INCREASING),
        ),
    ] = [1, 4, 16]
    duration_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=3600,
            description="Measured time per level and per model (trt-bench --duration-seconds).",
        ),
    ] = 20
    warmup_seconds: Annotated[
        int,
        Field(ge=0, le=600, description="Discarded load before measuring, per model."),
    ] = 10
    rounds: Annotated[
        int,
        Field(
            ge=2,
            le=20,
            description=(
                "Rounds per level; the models alternate each round and the spread between "
                "rounds is the noise a difference is compared with."
            ),
        ),
    ] = 3
    batch_size: Annotated[
        int,
        Field(
            ge=1,
            le=65536,
            description=(
                "Size of every unknown (-1) dimension of the generated inputs: the batch size "
                "for the usual [-1, ...] inputs (trt-bench --unknown-dim)."
            ),
        ),
    ] = 1
    protocol: Annotated[
        BenchmarkProtocol,
        Field(description="grpc (PredictionService, port 8500) or rest (port 8501)."),
    ] = BenchmarkProtocol.GRPC
    max_error_rate: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="Fail the benchmark when more than this fraction of a level's "
            "requests fail.",
        ),
    ] = 0.01
    resources: Annotated[
        ResourceRequirements | None,
        Field(
            description=(
                "CPU and memory of the benchmark pod; default: requests cpu 1, memory 512Mi, "
                "limit memory 1Gi. The load generator uses one core: give it a whole one."
            )
        ),
    ] = None

    @field_validator("concurrency")
    @classmethod
    def _levels_increasing(cls, levels: list[int]) -> list[int]:
        if any(a >= b for a, b in itertools.pairwise(levels)):
            raise rule_error("", rules.BENCHMARK_LEVELS_INCREASING.message)
        return levels


class Cache(ApiModel):
    """The converted-model cache: the first pod converts and publishes, later pods with the
    same key (source content, settings, TensorFlow/TensorRT versions, GPU) download it."""

    enabled: Annotated[
        bool | None,
        Field(description="Use the cache; default: on when a cache URI is configured."),
    ] = None
    uri: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=2048,
            description=(
                "Cache location, overriding the operator's cache.uri: s3://bucket/prefix, "
                "gs://bucket/prefix or pvc://<claim-name>/<path> (a ReadWriteMany claim in the "
                "model's namespace). Entries are kept under <uri>/<namespace>/<key>/."
            ),
            json_schema_extra=_cel(*rules.CACHE_URI_RULES),
        ),
        AfterValidator(_check_cache_uri),
    ] = None
    secret_ref: Annotated[
        LocalObjectReference | None,
        Field(
            description=(
                "Secret with the cache's credentials (same keys as spec.source.secretRef), "
                "mounted read-only at /var/run/secrets/trtserve/cache; overrides the operator's "
                "cache.secretName."
            ),
        ),
    ] = None
    read_only: Annotated[
        bool,
        Field(description="Only use entries, never publish one (--no-cache-publish)."),
    ] = False


class TRTModelSpec(ApiModel):
    """Desired state of a TRTModel."""

    model_config = ConfigDict(json_schema_extra=_cel(rules.GPUS_REQUIRED))

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
    conversion: Annotated[Conversion, Field(description="TF-TRT conversion settings.")] = (
        Conversion()
    )
    serving: Annotated[Serving, Field(description="TF Serving settings.")] = Serving()
    cache: Annotated[
        Cache | None,
        Field(description="Converted-model cache; default: the operator's cache settings."),
    ] = None
    converter_image: Annotated[
        ImageReference | None,
        Field(description="Converter image; default from the operator settings."),
    ] = None
    benchmark: Annotated[
        Benchmark | None,
        Field(description="A/B benchmark against another TRTModel; none when unset."),
    ] = None

    @model_validator(mode="after")
    def _gpus_required(self) -> Self:
        cpu_ok = self.conversion.precision is Precision.NATIVE and self.serving.allow_cpu
        if self.serving.gpus < 1 and not cpu_ok:
            raise rule_error(rules.GPUS_REQUIRED.field_path or "", rules.GPUS_REQUIRED.message)
        return self


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
        str,
        Field(
            description="When the status last changed (RFC 3339).",
            json_schema_extra={"format": "date-time"},
        ),
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
    message: Annotated[str, Field(max_length=32768, description="Human-readable details.")] = ""


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


class CacheStatus(ApiModel):
    """What the converted-model cache did in the last conversion."""

    result: Annotated[str | None, Field(description="Hit, Miss, Disabled or PublishFailed.")] = None
    key: Annotated[str | None, Field(description="The cache key (sha256).")] = None
    seconds: Annotated[
        float | None,
        Field(description="Seconds spent on the cache (lookup, wait, download, verify, publish)."),
    ] = None
    warning: Annotated[
        str | None, Field(description="Why an entry was not used or not published.")
    ] = None


class ConversionStatus(ApiModel):
    """The converter's report of the last conversion."""

    result: Annotated[str | None, Field(description="Succeeded or Failed.")] = None
    reason: Annotated[
        str | None, Field(description="Converter reason, e.g. AccuracyGateFailed.")
    ] = None
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
    cache: Annotated[
        CacheStatus | None, Field(description="What the converted-model cache did.")
    ] = None


class BenchmarkResult(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BenchmarkModelResult(ApiModel):
    """One side of the comparison, at the highest concurrency level."""

    name: Annotated[str | None, Field(description="TRTModel name.")] = None
    generation: Annotated[
        int | None, Field(ge=0, description="metadata.generation of that TRTModel.")
    ] = None
    uid: Annotated[str | None, Field(description="metadata.uid of that TRTModel.")] = None
    endpoint: Annotated[str | None, Field(description="Address that was measured.")] = None
    qps: Annotated[float | None, Field(description="Successful responses per second.")] = None
    p50_ms: Annotated[float | None, Field(description="Median latency, milliseconds.")] = None
    p99_ms: Annotated[float | None, Field(description="99th percentile latency, ms.")] = None
    errors: Annotated[int | None, Field(ge=0, description="Failed requests.")] = None


class BenchmarkLevel(ApiModel):
    """One concurrency level: both models and the comparison."""

    concurrency: Annotated[int, Field(ge=1, description="Requests in flight.")]
    qps: Annotated[float | None, Field(description="This model's QPS.")] = None
    p50_ms: Annotated[float | None, Field(description="This model's p50, ms.")] = None
    p99_ms: Annotated[float | None, Field(description="This model's p99, ms.")] = None
    baseline_qps: Annotated[float | None, Field(description="The baseline's QPS.")] = None
    baseline_p50_ms: Annotated[float | None, Field(description="The baseline's p50, ms.")] = None
    baseline_p99_ms: Annotated[float | None, Field(description="The baseline's p99, ms.")] = None
    qps_change_percent: Annotated[
        float | None, Field(description="(qps / baselineQps - 1) x 100.")
    ] = None
    p50_change_percent: Annotated[
        float | None, Field(description="(p50 / baselineP50 - 1) x 100; negative is faster.")
    ] = None
    p99_change_percent: Annotated[
        float | None, Field(description="(p99 / baselineP99 - 1) x 100; negative is faster.")
    ] = None
    noise_percent: Annotated[
        float | None, Field(description="Run-to-run spread of QPS between rounds, percent.")
    ] = None
    significant: Annotated[
        bool | None, Field(description="Whether the QPS change exceeds the noise.")
    ] = None


class BenchmarkStatus(ApiModel):
    """The last A/B benchmark against spec.benchmark.baseline."""

    result: Annotated[
        BenchmarkResult | None,
        Field(description="Pending (waiting for both models), Running, Succeeded or Failed."),
    ] = None
    reason: Annotated[
        str | None, Field(max_length=256, description="CamelCase reason, e.g. BaselineNotReady.")
    ] = None
    message: Annotated[str | None, Field(max_length=4096, description="One-line summary.")] = None
    job: Annotated[str | None, Field(description="Name of the benchmark Job.")] = None
    start_time: Annotated[
        str | None,
        Field(
            description="When the Job was created (RFC 3339).",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None
    completion_time: Annotated[
        str | None,
        Field(
            description="When the result was read (RFC 3339).",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None
    speedup: Annotated[
        float | None,
        Field(description="This model's QPS / the baseline's, at the highest concurrency level."),
    ] = None
    significant: Annotated[
        bool | None,
        Field(description="Whether the difference at that level exceeds the run-to-run noise."),
    ] = None
    concurrency: Annotated[
        int | None, Field(ge=1, description="The level target, baseline and speedup are at.")
    ] = None
    target: Annotated[
        BenchmarkModelResult | None, Field(description="This model: generation and results.")
    ] = None
    baseline: Annotated[
        BenchmarkModelResult | None, Field(description="The baseline: generation and results.")
    ] = None
    levels: Annotated[
        list[BenchmarkLevel] | None,
        Field(max_length=rules.MAX_BENCHMARK_LEVELS, description="Every level measured."),
    ] = None


class ServedStatus(ApiModel):
    """The generation whose pods serve, its precision and its conversion report."""

    generation: Annotated[
        int | None,
        Field(
            ge=0,
            description=(
                "metadata.generation the ready pods were rendered for (absent when they "
                "predate this field)."
            ),
        ),
    ] = None
    precision: Annotated[str | None, Field(description="Precision those pods serve.")] = None
    ready_replicas: Annotated[
        int | None, Field(ge=0, description="Ready pods of that generation.")
    ] = None
    conversion: Annotated[
        ConversionStatus | None, Field(description="The report of their conversion.")
    ] = None


class TRTModelStatus(ApiModel):
    """Observed state of a TRTModel, written only by the operator."""

    phase: Annotated[Phase | None, Field(description="Summary of the lifecycle.")] = None
    observed_generation: Annotated[
        int | None, Field(ge=0, description="metadata.generation last acted on.")
    ] = None
    conditions: Annotated[
        list[Condition] | None,
        Field(
            max_length=16,
            description="Converted, Available, Progressing and Ready conditions.",
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        ),
    ] = None
    replicas: Annotated[int | None, Field(ge=0, description="Serving pods that exist.")] = None
    ready_replicas: Annotated[int | None, Field(ge=0, description="Serving pods ready.")] = None
    pods: Annotated[
        str | None,
        Field(
            max_length=32,
            description=(
                "Ready serving pods of any generation / desired (spec.serving.replicas), as "
                "kubectl shows a Deployment's READY: capacity, apart from the Ready condition."
            ),
        ),
    ] = None
    served: Annotated[
        ServedStatus | None,
        Field(
            description=(
                "What serves traffic now (absent while nothing does): during a rollout the "
                "previous generation until no pod of it is ready any more."
            )
        ),
    ] = None
    selector: Annotated[
        str | None, Field(description="Label selector of the serving pods (scale subresource).")
    ] = None
    endpoint: Annotated[Endpoint | None, Field(description="In-cluster endpoints.")] = None
    conversion: Annotated[
        ConversionStatus | None, Field(description="Report of the last conversion.")
    ] = None
    benchmark: Annotated[
        BenchmarkStatus | None,
        Field(
            description=(
                "The last A/B benchmark (spec.benchmark): written when a benchmark starts and "
                "finishes, kept unchanged by every other status update."
            )
        ),
    ] = None


def _check_metadata_name(name: str | None) -> str | None:
    """rules.METADATA_NAME in Python (the CRD checks it with CEL at its root)."""
    if name is not None and (
        len(name) > rules.METADATA_NAME_MAX or not re.search(rules.METADATA_NAME_PATTERN, name)
    ):
        raise rule_error("", rules.METADATA_NAME.message)
    return name


class ObjectMeta(BaseModel):
    """The parts of metav1.ObjectMeta a manifest sets; the rest is kept as given."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: Annotated[str | None, AfterValidator(_check_metadata_name)] = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class TRTModel(ApiModel):
    """A whole TRTModel object, e.g. a manifest of ``examples/`` or an object read back."""

    api_version: Literal["trtserve.io/v1alpha1"]
    kind: Literal["TRTModel"]
    metadata: ObjectMeta
    spec: TRTModelSpec
    status: TRTModelStatus | None = None

    @model_validator(mode="after")
    def _benchmark_not_self(self) -> Self:
        """rules.BENCHMARK_NOT_SELF: only the whole object knows its name."""
        benchmark = self.spec.benchmark
        if benchmark is not None and benchmark.baseline == self.metadata.name:
            raise rule_error(
                rules.BENCHMARK_NOT_SELF.field_path or "", rules.BENCHMARK_NOT_SELF.message
            )
        return self
