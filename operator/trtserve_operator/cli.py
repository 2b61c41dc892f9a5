"""``trtserve-operator``: run the operator, render manifests (dry run), print the CRD.

This module is also the composition root: its kopf startup handler creates the one
Kubernetes client and the services, so no lower layer imports the HTTP client. Tests run
the operator with ``kopf run -m trtserve_operator.cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import kopf
import yaml
from aiohttp import web
from pydantic import ValidationError

import trtserve_operator.handlers  # noqa: F401  (registers the kopf handlers)
from trtserve_operator.api.crd import render_crd
from trtserve_operator.api.v1alpha1 import API_VERSION, KIND
from trtserve_operator.api.validation import describe_validation_error
from trtserve_operator.handlers.lifecycle import configure_kopf
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.kube.client import Kube
from trtserve_operator.kube.errors import ConfigurationError
from trtserve_operator.memory import trim_periodically
from trtserve_operator.services.benchmark import Benchmarks
from trtserve_operator.services.builders import build_benchmark_jobs, build_children
from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.reconciler import Reconciler
from trtserve_operator.services.targets import blocker_for, target_from_body
from trtserve_operator.settings import Settings

HEAP_TRIM_INTERVAL = 15.0
"""Seconds between returning freed heap to the OS (see :mod:`trtserve_operator.memory`)."""


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else the kubeconfig: the same sources as the adapter.

    Explicit, so kopf does not switch to another client library's login merely because
    that library happens to be imported in the process.
    """
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    return info or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf settings, then the one shared API client and the services."""
    configure_kopf(settings)
    operator_settings = Settings()
    reconciler = Reconciler(Kube.from_environment(), operator_settings)
    memo["reconciler"] = reconciler
    memo["benchmarks"] = Benchmarks(reconciler.kube, operator_settings, reconciler.metrics)
    memo["heap_trimmer"] = asyncio.create_task(trim_periodically(HEAP_TRIM_INTERVAL))
    if operator_settings.metrics_port:
        memo["metrics_server"] = await serve_metrics(reconciler, operator_settings.metrics_port)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    retries = memo.get("retries")
    if isinstance(retries, Retries):
        retries.cancel_all()
    trimmer = memo.get("heap_trimmer")
    if isinstance(trimmer, asyncio.Task):
        trimmer.cancel()
    server = memo.get("metrics_server")
    if isinstance(server, web.AppRunner):
        await server.cleanup()
    reconciler = memo.get("reconciler")
    if isinstance(reconciler, Reconciler):
        await reconciler.kube.close()


async def serve_metrics(reconciler: Reconciler, port: int) -> web.AppRunner:
    """``GET /metrics`` in Prometheus text format on ``port``."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=reconciler.metrics.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtserve-operator",
        description="Serve TensorFlow SavedModels as TF-TRT models on Kubernetes GPUs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run the operator against the current kubeconfig or in-cluster"
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="namespace to watch (repeatable); default: TRTSERVE_NAMESPACES, else all",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")

    render = commands.add_parser(
        "render", help="print the manifests the operator would create (no cluster needed)"
    )
    render.add_argument(
        "-f", "--filename", required=True, type=Path, help="YAML file with TRTModel(s)"
    )
    render.add_argument(
        "--namespace", default="default", help="namespace for objects that set none"
    )

    commands.add_parser("crd", help="print the TRTModel CustomResourceDefinition")
    return parser


def configure_logging(settings: Settings) -> None:
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        verbose=settings.log_level in ("DEBUG", "INFO"),
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger().setLevel(settings.log_level)
    # The HTTP client logs every request at INFO: keep it for DEBUG only.
    logging.getLogger("httpx2").setLevel(logging.WARNING)


def run_operator(args: argparse.Namespace, settings: Settings) -> int:
    namespaces: Sequence[str] = (
        () if args.all_namespaces else (args.namespace or settings.namespaces)
    )
    try:
        Kube.load_config()
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )
    return 0


def render(path: Path, namespace: str, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Print the children of every TRTModel in ``path`` (after the namespace-wide
    monitoring ConfigMap of each namespace, and followed by the benchmark Jobs the file's
    models would run); 1 when one is invalid or refused."""
    manifests: list[dict[str, Any]] = []
    namespaces: list[str] = []
    targets = []
    status = 0
    with path.open(encoding="utf-8") as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc]
    for document in documents:
        if document.get("kind") != KIND or document.get("apiVersion") != API_VERSION:
            continue
        document.setdefault("metadata", {}).setdefault("namespace", namespace)
        name = document["metadata"].get("name", "?")
        try:
            target = target_from_body(document)
        except (ValidationError, KeyError) as error:
            detail = (
                describe_validation_error(error, root="spec")
                if isinstance(error, ValidationError)
                else f"missing {error}"
            )
            print(f"error: TRTModel {name}: {detail}", file=err)
            status = 1
            continue
        children = build_children(target, settings)
        targets.append(target)
        if target.namespace not in namespaces:
            namespaces.append(target.namespace)
        blocker = blocker_for(target, settings)
        if blocker is not None:
            print(f"error: TRTModel {name}: {blocker.reason}: {blocker.message}", file=err)
            print("       (the operator keeps the Deployment as it is)", file=err)
            status = 1
        manifests += children.all()
    if not documents:
        print(f"error: no TRTModel in {path}", file=err)
        return 1
    shared = [build_monitoring_configmap(namespace) for namespace in namespaces]
    jobs = build_benchmark_jobs(targets, settings)
    yaml.safe_dump_all([*shared, *manifests, *jobs], out, sort_keys=False)
    return status


def print_crd(out: TextIO) -> int:
    out.write(render_crd())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command == "run":
        return run_operator(args, settings)
    if args.command == "render":
        return render(args.filename, args.namespace, settings, sys.stdout, sys.stderr)
    return print_crd(sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
