"""Cross-field rules of the TRTModel API, once for both enforcers.

Each :class:`Rule` holds a CEL expression (the CRD's ``x-kubernetes-validations`` entry,
evaluated by the API server with ``self`` bound to the object the rule is attached to) and
the message both the API server and the pydantic models report. The models' validators
implement the same condition in Python and raise the rule's message, so a user sees the
same words from ``kubectl apply`` and from the operator; tests evaluate every CEL rule with
cel-python against the same objects as the models.

CEL rules are written to hold with and without the API server's defaulting (``has()``
guards on defaulted fields), and every list and string they touch is bounded in the schema
so the API server's static cost estimate stays within its per-expression budget.
"""

from __future__ import annotations

from dataclasses import dataclass

URI_SCHEMES = ("s3", "gs", "http", "https", "pvc")
URI_SCHEME_PATTERN = r"^(s3|gs|http|https|pvc)://"
URI_AUTHORITY_PATTERN = r"^[a-z0-9]+://[^/]"
PVC_URI_PATTERN = r"^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/|$)"
"""A pvc URI names its claim (a DNS-1123 subdomain) before the path inside the volume."""

METADATA_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
METADATA_NAME_MAX = 63

MANAGED_SERVER_FLAGS = (
    "port",
    "rest_api_port",
    "model_name",
    "model_base_path",
    "model_config_file",
    "enable_model_warmup",
    "enable_batching",
    "batching_parameters_file",
    "per_process_gpu_memory_fraction",
    "monitoring_config_file",
)
"""tensorflow_model_server flags the operator sets (from the spec, or always, like
``--enable_model_warmup=true`` for the converter's warmup records); extraArgs may not."""
MANAGED_FLAG_PATTERN = r"^--?(" + "|".join(MANAGED_SERVER_FLAGS) + r")(=|$)"

MAX_RANK = 16
"""Longest shape (maxItems of InputSpec.shape and of every build shape)."""
MAX_ALLOWED_BATCH_SIZES = 32
"""maxItems of serving.batching.allowedBatchSizes."""
MAX_BENCHMARK_LEVELS = 16
"""maxItems of benchmark.concurrency (trt-bench's limit: its summary must fit 4096 bytes)."""


def _indices(count: int) -> str:
    """A CEL list literal ``[0, 1, ..., count-1]``: standard CEL has no range function."""
    return "[" + ", ".join(str(i) for i in range(count)) + "]"


@dataclass(frozen=True)
class Rule:
    """One ``x-kubernetes-validations`` entry."""

    rule: str
    message: str
    field_path: str | None = None
    """Path of the field the rule is about, relative to the object it is attached to."""
    reason: str | None = None
    """FieldValueInvalid (the API server's default), FieldValueRequired, FieldValueForbidden."""

    def to_schema(self) -> dict[str, str]:
        """The rule as it appears in the CRD."""
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason:
            entry["reason"] = self.reason
        return entry


# --- strings --------------------------------------------------------------------------------

URI_SCHEME = Rule(
    rule=f"self.matches('{URI_SCHEME_PATTERN}')",
    message="uri scheme must be one of s3, gs, http, https, pvc (e.g. s3://bucket/path)",
)
URI_AUTHORITY = Rule(
    rule=f"!self.matches('{URI_SCHEME_PATTERN}') || self.matches('{URI_AUTHORITY_PATTERN}')",
    message="uri must name a bucket, host or claim after the scheme (e.g. s3://bucket/path)",
)
PVC_CLAIM = Rule(
    rule=f"!self.startsWith('pvc://') || self.matches('{PVC_URI_PATTERN}')",
    message="pvc URIs must name a claim: pvc://<claim-name>/<path-in-volume>",
)
URI_RULES = (URI_SCHEME, URI_AUTHORITY, PVC_CLAIM)
"""Each URI violates at most one of them: the API server reports every failing rule."""

CACHE_URI_SCHEME_PATTERN = r"^(s3|gs|pvc)://"
CACHE_URI_SCHEME = Rule(
    rule=f"self.matches('{CACHE_URI_SCHEME_PATTERN}')",
    message="cache uri scheme must be one of s3, gs, pvc (e.g. s3://bucket/prefix)",
)
CACHE_URI_RULES = (CACHE_URI_SCHEME, URI_AUTHORITY, PVC_CLAIM)

# --- conversion -------------------------------------------------------------------------------

INT8_CALIBRATION = Rule(
    rule=(
        "!has(self.precision) || self.precision != 'INT8' || (has(self.calibration) && "
        "(has(self.calibration.uri) || "
        "(has(self.calibration.synthetic) && self.calibration.synthetic)))"
    ),
    message="INT8 requires calibration.uri or calibration.synthetic: true",
    field_path=".calibration",
    reason="FieldValueRequired",
)
INPUT_NAMES_UNIQUE = Rule(
    rule="self.all(i, self.exists_one(j, j.name == i.name))",
    message="input names must be unique",
)
_WITH_INPUTS = "!has(self.inputs) || !has(self.buildShapes) || "
BUILD_SHAPE_INPUTS = Rule(
    rule=_WITH_INPUTS + "self.buildShapes.all(s, s.all(k, self.inputs.exists(i, i.name == k)))",
    message="buildShapes may only name inputs declared in conversion.inputs",
    field_path=".buildShapes",
)
BUILD_SHAPE_RANK = Rule(
    rule=_WITH_INPUTS
    + "self.buildShapes.all(s, self.inputs.all(i, "
    + "!(i.name in s) || size(s[i.name]) == size(i.shape)))",
    message="each build shape must have the rank of its declared input",
    field_path=".buildShapes",
)
BUILD_SHAPE_DIMS = Rule(
    rule=_WITH_INPUTS
    + "self.buildShapes.all(s, self.inputs.all(i, "
    + "!(i.name in s) || size(s[i.name]) != size(i.shape) || "
    + f"{_indices(MAX_RANK)}.all(d, d >= size(i.shape) || i.shape[d] == -1 || "
    + "s[i.name][d] == i.shape[d])))",
    message="build shapes must match the fixed (not -1) dimensions of their declared input",
    field_path=".buildShapes",
)
CONVERSION_RULES = (INT8_CALIBRATION, BUILD_SHAPE_INPUTS, BUILD_SHAPE_RANK, BUILD_SHAPE_DIMS)

# --- serving ----------------------------------------------------------------------------------

BATCH_SIZES_INCREASING = Rule(
    rule=(
        f"{_indices(MAX_ALLOWED_BATCH_SIZES - 1)}"
        ".all(j, j + 1 >= size(self) || self[j] < self[j + 1])"
    ),
    message="allowedBatchSizes must be strictly increasing",
)
BATCH_SIZES_LAST = Rule(
    rule=(
        "!has(self.allowedBatchSizes) || !has(self.maxBatchSize) || "
        "size(self.allowedBatchSizes) == 0 || "
        "self.allowedBatchSizes[size(self.allowedBatchSizes) - 1] == self.maxBatchSize"
    ),
    message="the last allowedBatchSizes entry must equal maxBatchSize",
    field_path=".allowedBatchSizes",
)
MANAGED_FLAGS = Rule(
    rule=f"self.all(a, !a.matches('{MANAGED_FLAG_PATTERN}'))",
    message=(
        "extraArgs must not set flags the operator manages: "
        + ", ".join(f"--{flag}" for flag in MANAGED_SERVER_FLAGS)
    ),
)

MAX_UNAVAILABLE_LIMIT = 1000
"""The largest integer serving.disruptionBudget.maxUnavailable (serving.replicas' maximum)."""
PERCENT_PATTERN = r"^([1-9][0-9]?|100)%$"
MAX_UNAVAILABLE = Rule(
    rule=(
        f"type(self) == int ? self >= 1 && self <= {MAX_UNAVAILABLE_LIMIT} : "
        f"self.matches('{PERCENT_PATTERN}')"
    ),
    message=(
        f"maxUnavailable must be a number of pods from 1 to {MAX_UNAVAILABLE_LIMIT} or a "
        "percentage from 1% to 100% (0 would block every drain; use enabled: false for no budget)"
    ),
)

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""The NVIDIA GPU Feature Discovery label that spec.serving.gpuProduct selects on."""
GPU_PRODUCT_SELECTOR = Rule(
    rule=(
        "!has(self.gpuProduct) || !has(self.nodeSelector) || "
        f"!('{GPU_PRODUCT_LABEL}' in self.nodeSelector) || "
        f"self.nodeSelector['{GPU_PRODUCT_LABEL}'] == self.gpuProduct"
    ),
    message=f"nodeSelector['{GPU_PRODUCT_LABEL}'] must equal gpuProduct when both are set",
    field_path=".gpuProduct",
)

# --- benchmark --------------------------------------------------------------------------------

BENCHMARK_LEVELS_INCREASING = Rule(
    rule=(
        f"{_indices(MAX_BENCHMARK_LEVELS - 1)}.all(j, j + 1 >= size(self) || self[j] < self[j + 1])"
    ),
    message="benchmark concurrency levels must be strictly increasing",
)

# --- spec and object --------------------------------------------------------------------------

GPUS_REQUIRED = Rule(
    rule=(
        "!has(self.serving) || !has(self.serving.gpus) || self.serving.gpus >= 1 || "
        "(has(self.conversion) && has(self.conversion.precision) && "
        "self.conversion.precision == 'NATIVE' && "
        "has(self.serving.allowCpu) && self.serving.allowCpu)"
    ),
    message=(
        "gpus: 0 is only allowed with conversion.precision: NATIVE and serving.allowCpu: true "
        "(TensorRT needs a GPU)"
    ),
    field_path=".serving.gpus",
)
METADATA_NAME = Rule(
    rule=(
        f"size(self.metadata.name) <= {METADATA_NAME_MAX} && "
        f"self.metadata.name.matches('{METADATA_NAME_PATTERN}')"
    ),
    message=(
        f"metadata.name must be at most {METADATA_NAME_MAX} characters of a-z, 0-9 and '-', "
        "starting with a letter: it names the model's Service and Deployment"
    ),
)
"""Attached to the CRD's root (CEL may read metadata.name there); a fieldPath into metadata
is not allowed because the schema does not declare metadata's properties."""
BENCHMARK_NOT_SELF = Rule(
    rule="!has(self.spec.benchmark) || self.spec.benchmark.baseline != self.metadata.name",
    message="benchmark.baseline must name another TRTModel of the namespace, not this one",
    field_path=".spec.benchmark.baseline",
)
"""Attached to the CRD's root too: only there may CEL compare a spec field with the name."""
