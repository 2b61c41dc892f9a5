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
    ConvertConfig,
    Precision,
    ProfileStrategy,
)
from trtserve_converter.errors import ConverterError, InternalError, InvalidArguments, exit_codes
from trtserve_converter.fetch import SUPPORTED_SCHEMES, scheme_of
from trtserve_converter.flags import ENV, ENV_PREFIX, TERMINATION_LOG, add_flags
from trtserve_converter.logsetup import setup_logging
from trtserve_converter.report import STDOUT, Report, write_report
from trtserve_converter.supervisor import CHILD_MARKER, child_environment, supervise

LOG = logging.getLogger("trtserve_converter")


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


def env_name(flag: str) -> str:
    """`--max-workspace-bytes` -> `TRT_CONVERT_MAX_WORKSPACE_BYTES`."""
    return ENV.name(flag)


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
    add_flags(parser)
    return parser


CACHE_SCHEMES = frozenset({"s3", "gs", "gcs", "file", ""})


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
