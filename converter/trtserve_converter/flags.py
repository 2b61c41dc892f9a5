"""Every flag of `trt-convert` in one place: its name, type, default, help and group; its
environment variable (`TRT_CONVERT_<FLAG>`) follows from the name (:data:`ENV`).

`cli.build_parser` builds the parser from :data:`FLAG_GROUPS`; docs/contract.md
("Arguments") documents the same flags and a test holds the two together.
"""

from __future__ import annotations

import argparse
import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trtserve_converter.config import (
    DEFAULT_TOLERANCES,
    GIB,
    MAX_WARMUP_RECORDS,
    Precision,
    ProfileStrategy,
)
from trtserve_converter.envflags import EnvFlags, choice
from trtserve_converter.errors import InvalidArguments
from trtserve_converter.report import STDOUT
from trtserve_converter.shapes import parse_build_shape

ENV_PREFIX = "TRT_CONVERT_"
ENV = EnvFlags(ENV_PREFIX, InvalidArguments)
# Kubernetes creates the termination log in every container (terminationMessagePath);
# outside a pod it does not exist, and the report goes to stdout instead of a regular
# file created in /dev (which is what happened as root).
TERMINATION_LOG = "/dev/termination-log"


@dataclass(frozen=True)
class Flag:
    """One flag, as ``argparse`` takes it; ``env`` is its environment variable."""

    name: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None
    action: str | builtins.type[argparse.Action] | None = None
    dest: str | None = None

    @property
    def env(self) -> str:
        return ENV.name(self.name)

    def add_to(self, group: argparse._ArgumentGroup) -> None:
        options: dict[str, Any] = {
            key: value
            for key, value in (
                ("metavar", self.metavar),
                ("type", self.type),
                ("action", self.action),
                ("dest", self.dest),
            )
            if value is not None
        }
        group.add_argument(self.name, default=self.default, help=self.help, **options)


@dataclass(frozen=True)
class FlagGroup:
    """A section of ``--help``."""

    title: str
    flags: tuple[Flag, ...]


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _warmup_count(text: str) -> int:
    value = _non_negative_int(text)
    if value > MAX_WARMUP_RECORDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: TF Serving refuses more than {MAX_WARMUP_RECORDS} warmup records"
        )
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _build_shape(text: str) -> dict[str, tuple[int, ...]]:
    try:
        return parse_build_shape(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _tolerance_help(kind: str) -> str:
    return ", ".join(f"{p.value} {getattr(t, kind):g}" for p, t in DEFAULT_TOLERANCES.items())


SOURCE = FlagGroup(
    "source",
    (
        Flag(
            "--source",
            metavar="URI",
            help="SavedModel directory or .tar.gz/.tgz/.zip archive: s3://, gs://, http://, "
            "https://, file:// or a local path (required)",
        ),
        Flag(
            "--source-version",
            metavar="N",
            type=_non_negative_int,
            help="version directory to take when the source holds numbered version "
            "directories (default: the highest)",
        ),
        Flag(
            "--max-source-bytes",
            metavar="N",
            type=_positive_int,
            default=20 * GIB,
            help="size cap of the download and of the extracted archive (default: 20 GiB)",
        ),
    ),
)


OUTPUT = FlagGroup(
    "output",
    (
        Flag(
            "--output-base",
            metavar="DIR",
            default="/models",
            help="TF Serving model base; the model is written to "
            "DIR/<model-name>/<model-version>/ (default: /models)",
        ),
        Flag("--model-name", metavar="NAME", help="served model name (required)"),
        Flag(
            "--model-version",
            metavar="N",
            type=_non_negative_int,
            help="version directory written and served (default: --source-version, else the "
            "number of the source's version directory, else 1)",
        ),
        Flag(
            "--warmup-records",
            metavar="N",
            type=_warmup_count,
            default=1,
            help="warmup requests written to assets.extra/tf_serving_warmup_requests "
            f"(0: none, at most {MAX_WARMUP_RECORDS}; default: 1)",
        ),
    ),
)


CONVERSION = FlagGroup(
    "conversion",
    (
        Flag(
            "--signature-key",
            metavar="KEY",
            default="serving_default",
            help="signature converted and checked (default: serving_default)",
        ),
        Flag(
            "--precision",
            metavar="P",
            type=choice([p.value for p in Precision]),
            default=Precision.FP16.value,
            help="FP32, FP16, INT8 (TF-TRT) or NATIVE (re-save unchanged, no TensorRT) "
            "(default: FP16)",
        ),
        Flag(
            "--max-workspace-bytes",
            metavar="N",
            type=_positive_int,
            default=GIB,
            help="TensorRT workspace, TF-TRT max_workspace_size_bytes (default: 1073741824)",
        ),
        Flag(
            "--minimum-segment-size",
            metavar="N",
            type=_int,
            default=3,
            help="TF-TRT minimum_segment_size: fewest nodes replaced by one TRTEngineOp; "
            "-1 disables main-graph conversion (default: 3)",
        ),
        Flag(
            "--maximum-cached-engines",
            metavar="N",
            type=_positive_int,
            default=1,
            help="TF-TRT maximum_cached_engines per TRTEngineOp (default: 1)",
        ),
        Flag(
            "--dynamic-shapes",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="TF-TRT use_dynamic_shape (explicit batch with optimization profiles) "
            "(default: on)",
        ),
        Flag(
            "--profile-strategy",
            metavar="S",
            type=choice([s.value for s in ProfileStrategy]),
            default=ProfileStrategy.RANGE.value,
            help="TF-TRT dynamic_shape_profile_strategy: Range, Optimal, Range+Optimal, "
            "ImplicitBatchModeCompatible (default: Range)",
        ),
        Flag(
            "--build-shape",
            metavar="SPEC",
            type=_build_shape,
            action="append",
            dest="build_shapes",
            help="one engine's input shapes, name=1x224x224x3[,name2=1x10]; repeatable "
            "(default: the signature's shapes with unknown dims = 1)",
        ),
    ),
)


CALIBRATION = FlagGroup(
    "INT8 calibration",
    (
        Flag(
            "--calibration-source",
            metavar="URI",
            help="calibration data: .npz (one array per input name), .npy (single input) or "
            "TFRecord of tf.io.serialize_tensor records (single input); any --source scheme",
        ),
        Flag(
            "--calibration-batches",
            metavar="N",
            type=_positive_int,
            default=10,
            help="calibration batches (default: 10)",
        ),
        Flag(
            "--calibration-batch-size",
            metavar="N",
            type=_positive_int,
            default=8,
            help="inputs per calibration batch (default: 8)",
        ),
        Flag(
            "--synthetic-calibration",
            action="store_true",
            default=False,
            help="allow INT8 calibration on seeded random inputs (logged as a warning; "
            "the resulting ranges may hurt accuracy)",
        ),
    ),
)


ACCURACY = FlagGroup(
    "accuracy gate",
    (
        Flag(
            "--accuracy-check",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="compare original and converted outputs and fail beyond tolerance "
            "(default: on for FP16/INT8, off otherwise)",
        ),
        Flag(
            "--accuracy-samples",
            metavar="N",
            type=_positive_int,
            default=32,
            help="inputs compared (default: 32)",
        ),
        Flag(
            "--accuracy-rtol",
            metavar="X",
            type=_non_negative_float,
            help=f"relative tolerance per output value (default: {_tolerance_help('rtol')})",
        ),
        Flag(
            "--accuracy-atol",
            metavar="X",
            type=_non_negative_float,
            help=f"absolute tolerance per output value (default: {_tolerance_help('atol')})",
        ),
        Flag(
            "--accuracy-min-top1",
            metavar="X",
            type=_fraction,
            help="minimum top-1 agreement (0..1) of classifier outputs (rank 2, more than one "
            "column); when given it replaces rtol/atol for them (default: none)",
        ),
    ),
)


RUN = FlagGroup(
    "run",
    (
        Flag(
            "--timeout-seconds",
            metavar="N",
            type=_positive_float,
            default=3600,
            help="limit for the whole run, enforced by this process: the conversion (a child) "
            "is stopped and the report names the step it was in (default: 3600)",
        ),
        Flag(
            "--report-path",
            metavar="PATH",
            help=f"where the JSON report is written, '{STDOUT}' for stdout (default: "
            f"{TERMINATION_LOG} where it exists, i.e. in a pod; else stdout)",
        ),
        Flag(
            "--log-level",
            metavar="L",
            type=choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
            default="INFO",
            help="DEBUG, INFO, WARNING or ERROR (default: INFO)",
        ),
        Flag(
            "--log-format",
            metavar="F",
            type=choice(["text", "json"]),
            default="text",
            help="text or json (one JSON object per line) (default: text)",
        ),
    ),
)


CACHE = FlagGroup(
    "converted-model cache",
    (
        Flag(
            "--cache-uri",
            metavar="URI",
            help="cache of converted models: s3://bucket/prefix, gs://bucket/prefix or a local "
            "directory (a pvc:// cache is mounted by the operator) (default: no cache)",
        ),
        Flag(
            "--cache-credentials-dir",
            metavar="DIR",
            help="the cache's credentials as files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
            "AWS_ENDPOINT_URL, credentials, key.json, ...), separate from the source's "
            "(default: the pod's default credentials)",
        ),
        Flag(
            "--cache-publish",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="publish a conversion to the cache; --no-cache-publish only reads (default: on)",
        ),
        Flag(
            "--cache-namespace",
            metavar="NS",
            default="default",
            help="namespace the cache entries are scoped to, <cache>/<NS>/<key>/ "
            "(default: default)",
        ),
        Flag(
            "--cache-signing-key-file",
            metavar="PATH",
            help="HMAC-SHA256 key: sign published manifests and use only entries signed with it "
            "(default: unsigned)",
        ),
    ),
)


FLAG_GROUPS = (SOURCE, OUTPUT, CONVERSION, CALIBRATION, ACCURACY, RUN, CACHE)
"""Every flag, by ``--help`` section, in order."""


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of :data:`FLAG_GROUPS`, each help ending with its environment variable."""
    for group in FLAG_GROUPS:
        section = parser.add_argument_group(group.title)
        for flag in group.flags:
            flag.add_to(section)
    ENV.document(parser)
