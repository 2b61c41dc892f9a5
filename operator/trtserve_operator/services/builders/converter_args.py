"""Arguments of the ``convert`` initContainer, rendered from the spec (docs/contract.md).

Every value is passed explicitly, so the converter's own defaults never decide what the
spec means. ``pvc://<claim>/<path>`` URIs are mounted by the Deployment builder and passed
to the converter as local paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtserve_operator.api.v1alpha1 import Conversion, Precision
from trtserve_operator.services.builders.names import (
    CALIBRATION_PVC_DIR,
    MODEL_BASE,
    SOURCE_PVC_DIR,
)
from trtserve_operator.services.builders.target import Target

PVC_SCHEME = "pvc://"


@dataclass(frozen=True)
class PvcMount:
    """A PersistentVolumeClaim the converter reads from, and where it is mounted."""

    volume: str
    claim: str
    mount_path: str


@dataclass(frozen=True)
class ResolvedUri:
    """A URI as the converter sees it, and the claim to mount for it (pvc:// only)."""

    value: str
    mount: PvcMount | None = None


def resolve_uri(uri: str, volume: str, mount_path: str) -> ResolvedUri:
    """``pvc://claim/dir/x`` -> ``/mnt/.../dir/x`` plus the claim's mount; others unchanged."""
    if not uri.startswith(PVC_SCHEME):
        return ResolvedUri(uri)
    claim, _, path = uri.removeprefix(PVC_SCHEME).partition("/")
    local = f"{mount_path}/{path.strip('/')}" if path.strip("/") else mount_path
    return ResolvedUri(local, PvcMount(volume=volume, claim=claim, mount_path=mount_path))


def resolved_source(target: Target) -> ResolvedUri:
    return resolve_uri(target.spec.source.uri, "source-pvc", SOURCE_PVC_DIR)


def resolved_calibration(target: Target) -> ResolvedUri | None:
    calibration = target.spec.conversion.calibration
    if calibration is None or calibration.uri is None:
        return None
    return resolve_uri(calibration.uri, "calibration-pvc", CALIBRATION_PVC_DIR)


def render_build_shape(shapes: dict[str, list[int]]) -> str:
    """One engine's shapes: ``{"a": [1, 224], "b": [1, 10]}`` -> ``a=1x224,b=1x10``."""
    return ",".join(
        f"{name}={'x'.join(str(dim) for dim in shape)}" for name, shape in shapes.items()
    )


def _conversion_args(conversion: Conversion) -> list[str]:
    args = [
        f"--precision={conversion.precision.value}",
        f"--max-workspace-bytes={conversion.max_workspace_bytes}",
        f"--minimum-segment-size={conversion.minimum_segment_size}",
        f"--maximum-cached-engines={conversion.maximum_cached_engines}",
        "--dynamic-shapes" if conversion.dynamic_shapes else "--no-dynamic-shapes",
        f"--profile-strategy={conversion.profile_strategy.value}",
    ]
    args += [f"--build-shape={render_build_shape(s)}" for s in conversion.build_shapes or []]
    return args


def _calibration_args(target: Target) -> list[str]:
    conversion = target.spec.conversion
    calibration = conversion.calibration
    if conversion.precision is not Precision.INT8 or calibration is None:
        return []
    args: list[str] = []
    resolved = resolved_calibration(target)
    if resolved is not None:
        args.append(f"--calibration-source={resolved.value}")
    args += [
        f"--calibration-batches={calibration.batches}",
        f"--calibration-batch-size={calibration.batch_size}",
    ]
    if calibration.synthetic:
        args.append("--synthetic-calibration")
    return args


def _accuracy_args(conversion: Conversion) -> list[str]:
    accuracy = conversion.accuracy
    args: list[str] = []
    if accuracy.enabled is not None:
        args.append("--accuracy-check" if accuracy.enabled else "--no-accuracy-check")
    args.append(f"--accuracy-samples={accuracy.samples}")
    # Unset tolerances are left to the converter's per-precision defaults (docs/api.md).
    if accuracy.rtol is not None:
        args.append(f"--accuracy-rtol={accuracy.rtol!r}")
    if accuracy.atol is not None:
        args.append(f"--accuracy-atol={accuracy.atol!r}")
    if accuracy.min_top1_agreement is not None:
        args.append(f"--accuracy-min-top1={accuracy.min_top1_agreement!r}")
    return args


def build_converter_args(target: Target, log_format: str = "text") -> list[str]:
    """The ``trt-convert`` command line for ``target`` (without the program name)."""
    spec = target.spec
    args = [
        f"--source={resolved_source(target).value}",
        f"--output-base={MODEL_BASE}",
        f"--model-name={target.model_name}",
        f"--signature-key={spec.source.signature_key}",
    ]
    if spec.source.version is not None:
        args += [
            f"--source-version={spec.source.version}",
            f"--model-version={spec.source.version}",
        ]
    args += _conversion_args(spec.conversion)
    args += _calibration_args(target)
    args += _accuracy_args(spec.conversion)
    args += [
        f"--warmup-records={spec.conversion.warmup_records}",
        f"--timeout-seconds={spec.conversion.timeout_seconds}",
        f"--log-format={log_format}",
    ]
    return args
