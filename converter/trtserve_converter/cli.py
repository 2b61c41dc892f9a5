"""`trt-convert`: the converter's command line (docs/contract.md, "Arguments").

Every flag can also be given as `TRT_CONVERT_<FLAG>`; a flag on the command line wins.
TensorFlow is imported only after the arguments are valid, so `--help` and argument
errors are fast and never touch it.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from trtserve_converter import __version__
from trtserve_converter.config import (
    DEFAULT_TOLERANCES,
    GIB,
    MAX_WARMUP_RECORDS,
    ConvertConfig,
    Precision,
    ProfileStrategy,
)
from trtserve_converter.envflags import EnvFlags, choice
from trtserve_converter.errors import ConverterError, InternalError, InvalidArguments, exit_codes
from trtserve_converter.fetch import SUPPORTED_SCHEMES, scheme_of
from trtserve_converter.logsetup import setup_logging
from trtserve_converter.report import STDOUT, Report, write_report
from trtserve_converter.shapes import parse_build_shape
from trtserve_converter.supervisor import CHILD_MARKER, child_environment, supervise

LOG = logging.getLogger("trtserve_converter")

ENV_PREFIX = "TRT_CONVERT_"
# Kubernetes creates the termination log in every container (terminationMessagePath);
# outside a pod it does not exist, and the report goes to stdout instead of a regular
# file created in /dev (which is what happened as root).
TERMINATION_LOG = "/dev/termination-log"

EXIT_CODE_MEANINGS = {
    "Succeeded": "model written",
    "InvalidArguments": "bad flag or value",
    "SourceNotFound": "nothing at the source URI",
    "SourceAuthFailed": "credentials missing or refused",
    "FetchFailed": "network error or timeout after retries",
    "BadArchive": "corrupt archive, or an entry escaping the target",
    "SourceTooLarge": "download over --max-source-bytes",
    "NotASavedModel": "no saved_model.pb found, or it does not load",
    "SignatureNotFound": "signature key missing (the message lists the existing ones)",
    "InvalidBuildShape": "build shape contradicts the signature",
    "TensorRTUnavailable": "this TensorFlow has no TensorRT, or no GPU is visible",
    "ConversionFailed": "TF-TRT conversion failed",
    "CalibrationFailed": "INT8 calibration data missing, unreadable or failing",
    "EngineBuildFailed": "building engines for the build shapes failed",
    "AccuracyGateFailed": "converted outputs differ from the original beyond tolerance",
    "OutputWriteFailed": "the model could not be written",
    "Timeout": "--timeout-seconds exceeded",
    "InternalError": "anything else (a bug: please report it)",
}


class ContractArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise InvalidArguments instead of exiting.

    main() must write a report even for a bad flag, so argparse may not call sys.exit.
    """

    def error(self, message: str) -> NoReturn:
        raise InvalidArguments(f"{message} (see trt-convert --help)")


ENV = EnvFlags(ENV_PREFIX, InvalidArguments)


def env_name(flag: str) -> str:
    """`--max-workspace-bytes` -> `TRT_CONVERT_MAX_WORKSPACE_BYTES`."""
    return ENV.name(flag)


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


def _epilog() -> str:
    codes = exit_codes()
    lines = ["exit codes:"]
    lines += [
        f"  {code:>3}  {reason:<20} {EXIT_CODE_MEANINGS[reason]}" for reason, code in codes.items()
    ]
    lines += [
        "",
        f"Every flag can also be set as an environment variable {ENV_PREFIX}<FLAG>",
        "(upper case, '-' -> '_', e.g. TRT_CONVERT_SOURCE); the command line wins.",
        "Repeatable --build-shape: separate specs with ';' in TRT_CONVERT_BUILD_SHAPE.",
        "Boolean flags in the environment: true/false, 1/0, yes/no, on/off.",
        "",
        "credentials: AWS_* (incl. AWS_ENDPOINT_URL) for s3://, GOOGLE_APPLICATION_CREDENTIALS",
        "for gs://, TRT_CONVERT_HTTP_BEARER_TOKEN for http(s)://.",
        "The JSON report (<= 4096 bytes) is written to --report-path on success and failure.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every flag in docs/contract.md (no environment applied here)."""
    parser = ContractArgumentParser(
        prog="trt-convert",
        description=textwrap.fill(
            "Fetch a TensorFlow SavedModel, convert it with TF-TRT (FP32/FP16/INT8, engines "
            "pre-built for the build shapes) or re-save it unchanged (NATIVE), check its "
            "accuracy, write it atomically as <output-base>/<model-name>/<model-version>/ "
            "and write a JSON report.",
            width=79,
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trt-convert {__version__}")
    src = parser.add_argument_group("source")
    src.add_argument(
        "--source",
        metavar="URI",
        help="SavedModel directory or .tar.gz/.tgz/.zip archive: s3://, gs://, http://, "
        "https://, file:// or a local path (required)",
    )
    src.add_argument(
        "--source-version",
        metavar="N",
        type=_non_negative_int,
        help="version directory to take when the source holds numbered version "
        "directories (default: the highest)",
    )
    src.add_argument(
        "--max-source-bytes",
        metavar="N",
        type=_positive_int,
        default=20 * GIB,
        help="size cap of the download and of the extracted archive (default: 20 GiB)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output-base",
        metavar="DIR",
        default="/models",
        help="TF Serving model base; the model is written to "
        "DIR/<model-name>/<model-version>/ (default: /models)",
    )
    out.add_argument("--model-name", metavar="NAME", help="served model name (required)")
    out.add_argument(
        "--model-version",
        metavar="N",
        type=_non_negative_int,
        help="version directory written and served (default: --source-version, else the "
        "number of the source's version directory, else 1)",
    )
    out.add_argument(
        "--warmup-records",
        metavar="N",
        type=_warmup_count,
        default=1,
        help="warmup requests written to assets.extra/tf_serving_warmup_requests "
        f"(0: none, at most {MAX_WARMUP_RECORDS}; default: 1)",
    )
    conv = parser.add_argument_group("conversion")
    conv.add_argument(
        "--signature-key",
        metavar="KEY",
        default="serving_default",
        help="signature converted and checked (default: serving_default)",
    )
    conv.add_argument(
        "--precision",
        metavar="P",
        type=choice([p.value for p in Precision]),
        default=Precision.FP16.value,
        help="FP32, FP16, INT8 (TF-TRT) or NATIVE (re-save unchanged, no TensorRT) (default: FP16)",
    )
    conv.add_argument(
        "--max-workspace-bytes",
        metavar="N",
        type=_positive_int,
        default=GIB,
        help="TensorRT workspace, TF-TRT max_workspace_size_bytes (default: 1073741824)",
    )
    conv.add_argument(
        "--minimum-segment-size",
        metavar="N",
        type=_int,
        default=3,
        help="TF-TRT minimum_segment_size: fewest nodes replaced by one TRTEngineOp; "
        "-1 disables main-graph conversion (default: 3)",
    )
    conv.add_argument(
        "--maximum-cached-engines",
        metavar="N",
        type=_positive_int,
        default=1,
        help="TF-TRT maximum_cached_engines per TRTEngineOp (default: 1)",
    )
    conv.add_argument(
        "--dynamic-shapes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TF-TRT use_dynamic_shape (explicit batch with optimization profiles) (default: on)",
    )
    conv.add_argument(
        "--profile-strategy",
        metavar="S",
        type=choice([s.value for s in ProfileStrategy]),
        default=ProfileStrategy.RANGE.value,
        help="TF-TRT dynamic_shape_profile_strategy: Range, Optimal, Range+Optimal, "
        "ImplicitBatchModeCompatible (default: Range)",
    )
    conv.add_argument(
        "--build-shape",
        metavar="SPEC",
        type=_build_shape,
        action="append",
        dest="build_shapes",
        help="one engine's input shapes, name=1x224x224x3[,name2=1x10]; repeatable "
        "(default: the signature's shapes with unknown dims = 1)",
    )
    cal = parser.add_argument_group("INT8 calibration")
    cal.add_argument(
        "--calibration-source",
        metavar="URI",
        help="calibration data: .npz (one array per input name), .npy (single input) or "
        "TFRecord of tf.io.serialize_tensor records (single input); any --source scheme",
    )
    cal.add_argument(
        "--calibration-batches",
        metavar="N",
        type=_positive_int,
        default=10,
        help="calibration batches (default: 10)",
    )
    cal.add_argument(
        "--calibration-batch-size",
        metavar="N",
        type=_positive_int,
        default=8,
        help="inputs per calibration batch (default: 8)",
    )
    cal.add_argument(
        "--synthetic-calibration",
        action="store_true",
        default=False,
        help="allow INT8 calibration on seeded random inputs (logged as a warning; "
        "the resulting ranges may hurt accuracy)",
    )
    acc = parser.add_argument_group("accuracy gate")
    acc.add_argument(
        "--accuracy-check",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare original and converted outputs and fail beyond tolerance "
        "(default: on for FP16/INT8, off otherwise)",
    )
    acc.add_argument(
        "--accuracy-samples",
        metavar="N",
        type=_positive_int,
        default=32,
        help="inputs compared (default: 32)",
    )
    acc.add_argument(
        "--accuracy-rtol",
        metavar="X",
        type=_non_negative_float,
        help=f"relative tolerance per output value (default: {_tolerance_help('rtol')})",
    )
    acc.add_argument(
        "--accuracy-atol",
        metavar="X",
        type=_non_negative_float,
        help=f"absolute tolerance per output value (default: {_tolerance_help('atol')})",
    )
    acc.add_argument(
        "--accuracy-min-top1",
        metavar="X",
        type=_fraction,
        help="minimum top-1 agreement (0..1) of classifier outputs (rank 2, more than one "
        "column); when given it replaces rtol/atol for them (default: none)",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--timeout-seconds",
        metavar="N",
        type=_positive_float,
        default=3600,
        help="limit for the whole run, enforced by this process: the conversion (a child) "
        "is stopped and the report names the step it was in (default: 3600)",
    )
    run.add_argument(
        "--report-path",
        metavar="PATH",
        help=f"where the JSON report is written, '{STDOUT}' for stdout (default: "
        f"{TERMINATION_LOG} where it exists, i.e. in a pod; else stdout)",
    )
    run.add_argument(
        "--log-level",
        metavar="L",
        type=choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
        default="INFO",
        help="DEBUG, INFO, WARNING or ERROR (default: INFO)",
    )
    run.add_argument(
        "--log-format",
        metavar="F",
        type=choice(["text", "json"]),
        default="text",
        help="text or json (one JSON object per line) (default: text)",
    )
    _add_cache_arguments(parser)
    ENV.document(parser)
    return parser


CACHE_SCHEMES = frozenset({"s3", "gs", "gcs", "file", ""})


def _add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """The converted-model cache's flags (docs/converter.md, "Converted-model cache")."""
    cache = parser.add_argument_group("converted-model cache")
    cache.add_argument(
        "--cache-uri",
        metavar="URI",
        help="cache of converted models: s3://bucket/prefix, gs://bucket/prefix or a local "
        "directory (a pvc:// cache is mounted by the operator) (default: no cache)",
    )
    cache.add_argument(
        "--cache-credentials-dir",
        metavar="DIR",
        help="the cache's credentials as files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL, credentials, key.json, ...), separate from the source's "
        "(default: the pod's default credentials)",
    )
    cache.add_argument(
        "--cache-publish",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish a conversion to the cache; --no-cache-publish only reads (default: on)",
    )
    cache.add_argument(
        "--cache-namespace",
        metavar="NS",
        default="default",
        help="namespace the cache entries are scoped to, <cache>/<NS>/<key>/ (default: default)",
    )
    cache.add_argument(
        "--cache-signing-key-file",
        metavar="PATH",
        help="HMAC-SHA256 key: sign published manifests and use only entries signed with it "
        "(default: unsigned)",
    )


def _cache_config(args: argparse.Namespace) -> dict[str, Any]:
    """The cache's part of the config (checked here: the scheme; by the config: the rest)."""
    if args.cache_uri and scheme_of(args.cache_uri) not in CACHE_SCHEMES:
        raise InvalidArguments(
            f"--cache-uri {args.cache_uri!r}: unsupported scheme {scheme_of(args.cache_uri)!r}, "
            "use s3://, gs://, file:// or a local directory"
        )
    return {
        "cache_uri": args.cache_uri or None,
        "cache_credentials_dir": args.cache_credentials_dir or None,
        "cache_publish": args.cache_publish,
        "cache_namespace": args.cache_namespace,
        "cache_signing_key_file": args.cache_signing_key_file or None,
    }


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Make `TRT_CONVERT_<FLAG>` values the defaults, so the command line still wins."""
    ENV.apply(parser, environ)


def parse_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> ConvertConfig:
    """Parse flags and environment into a validated config, or raise InvalidArguments."""
    parser = build_parser()
    apply_environment(parser, environ)
    args = parser.parse_args(argv)
    return config_from_args(args)


def config_from_args(args: argparse.Namespace) -> ConvertConfig:
    """Cross-check the parsed flags and build the config."""
    missing = [
        f"--{name.replace('_', '-')}"
        for name in ("source", "model_name")
        if not getattr(args, name)
    ]
    if missing:
        raise InvalidArguments(
            f"missing {' and '.join(missing)} (or {', '.join(env_name(m) for m in missing)})"
        )
    for flag, uri in (("--source", args.source), ("--calibration-source", args.calibration_source)):
        if uri and scheme_of(uri) not in SUPPORTED_SCHEMES:
            raise InvalidArguments(
                f"{flag} {uri!r}: unsupported scheme {scheme_of(uri)!r}, use s3://, gs://, "
                "http(s)://, file:// or a local path"
            )
    precision = Precision(args.precision)
    accuracy_check = args.accuracy_check
    if accuracy_check is None:
        accuracy_check = precision in (Precision.FP16, Precision.INT8)
    if args.minimum_segment_size <= 0 and args.minimum_segment_size != -1:
        raise InvalidArguments(
            "--minimum-segment-size must be positive or -1 (-1 disables main graph conversion)"
        )
    if args.calibration_source and args.synthetic_calibration:
        raise InvalidArguments(
            "--calibration-source and --synthetic-calibration exclude each other: give one"
        )
    model_version = args.model_version
    if model_version is None:
        model_version = args.source_version  # None: decided once the source is inspected
    try:
        return ConvertConfig(
            source=args.source,
            source_version=args.source_version,
            output_base=args.output_base,
            model_name=args.model_name,
            model_version=model_version,
            signature_key=args.signature_key,
            precision=precision,
            max_workspace_bytes=args.max_workspace_bytes,
            minimum_segment_size=args.minimum_segment_size,
            maximum_cached_engines=args.maximum_cached_engines,
            dynamic_shapes=args.dynamic_shapes,
            profile_strategy=ProfileStrategy(args.profile_strategy),
            build_shapes=tuple(args.build_shapes or ()),
            calibration_source=args.calibration_source,
            calibration_batches=args.calibration_batches,
            calibration_batch_size=args.calibration_batch_size,
            synthetic_calibration=args.synthetic_calibration,
            accuracy_check=accuracy_check,
            accuracy_samples=args.accuracy_samples,
            accuracy_rtol=args.accuracy_rtol,
            accuracy_atol=args.accuracy_atol,
            accuracy_min_top1=args.accuracy_min_top1,
            warmup_records=args.warmup_records,
            timeout_seconds=args.timeout_seconds,
            max_source_bytes=args.max_source_bytes,
            report_path=args.report_path or default_report_path(),
            log_level=args.log_level,
            log_format=args.log_format,
            **_cache_config(args),
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = "--" + "-".join(str(part) for part in first["loc"]).replace("_", "-")
        raise InvalidArguments(f"{field}: {first['msg']}") from None


def default_report_path() -> str:
    """The termination log in a pod (where the kubelet created it), else stdout."""
    return TERMINATION_LOG if os.path.exists(TERMINATION_LOG) else STDOUT


def _fallback_report_path(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """Where to report when the arguments themselves are invalid."""
    for index, arg in enumerate(argv):
        if arg.startswith("--report-path="):
            return arg.split("=", 1)[1]
        if arg == "--report-path" and index + 1 < len(argv):
            return argv[index + 1]
    return environ.get(env_name("--report-path")) or default_report_path()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `trt-convert`: returns the contract exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ
    try:
        config = parse_config(args, environ)
    except SystemExit as done:  # --help / --version
        return done.code if isinstance(done.code, int) else 0
    except ConverterError as error:
        setup_logging(
            environ.get(env_name("--log-level"), "INFO"), _fallback_log_format(args, environ)
        )
        LOG.error("%s: %s", error.reason, error.message)
        write_report(Report.failed(error), _fallback_report_path(args, environ))
        return error.exit_code
    setup_logging(config.log_level, config.log_format)
    if not environ.get(CHILD_MARKER):
        # The conversion runs as a child (supervisor.py): this process owns
        # --timeout-seconds, stopping the child at the deadline, and with --log-format json
        # turns its stderr (TensorFlow's C++ logging included) into JSON lines.
        return supervise(
            [sys.executable, "-m", "trtserve_converter", *args],
            env=child_environment(),
            report_path=config.report_path,
            timeout_seconds=config.timeout_seconds,
            json_stderr=config.log_format == "json",
        )
    return run_and_report(config)


def _fallback_log_format(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The log format asked for, when the arguments as a whole are invalid."""
    for index, arg in enumerate(argv):
        value = None
        if arg.startswith("--log-format="):
            value = arg.split("=", 1)[1]
        elif arg == "--log-format" and index + 1 < len(argv):
            value = argv[index + 1]
        if value is not None:
            return "json" if value.strip().lower() == "json" else "text"
    return "json" if environ.get(env_name("--log-format"), "").lower() == "json" else "text"


def run_and_report(config: ConvertConfig) -> int:
    """Run the pipeline, write the report, return its exit code (never raises)."""
    from trtserve_converter.pipeline import run  # lazy: pulls in TensorFlow

    try:
        report = run(config)
    except Exception as error:  # a bug outside the pipeline's own handling
        LOG.exception("internal error")
        report = Report.failed(InternalError(f"{type(error).__name__}: {error}"))
    text = write_report(report, config.report_path)
    if config.report_path == STDOUT:
        where = "stdout"
    else:
        where = config.report_path
        LOG.info("report: %s", text)
    if report.exit_code == 0:
        LOG.info("succeeded: %s (report on %s)", report.message, where)
    else:
        LOG.info("failed: %s, exit code %d (report on %s)", report.reason, report.exit_code, where)
    return report.exit_code
