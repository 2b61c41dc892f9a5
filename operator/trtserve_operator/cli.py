"""``trtserve-operator``: run the operator, render manifests (dry run), print the CRD.

This module is also the composition root: its kopf startup handler creates the one
Kubernetes client and the services, so no lower layer imports the HTTP client. Tests run
the operator with ``kopf run -m trtserve_operator.cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import socket
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import kopf
import yaml
from aiohttp import web
from pydantic import ValidationError

from trtserve_operator.api.crd import render_crd
from trtserve_operator.api.v1alpha1 import API_VERSION, KIND
from trtserve_operator.api.validation import describe_validation_error
from trtserve_operator.handlers.changes import Changes
from trtserve_operator.handlers.follow import retries_of
from trtserve_operator.handlers.leadership import Leadership
from trtserve_operator.handlers.lifecycle import configure_kopf
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.handlers.view import Caches, CacheView
from trtserve_operator.kube.cache import ObjectCache
from trtserve_operator.kube.client import Kube, check_reachable
from trtserve_operator.kube.credentials import Credentials
from trtserve_operator.kube.election import ElectionConfig, LeaderElector
from trtserve_operator.kube.errors import ConfigurationError
from trtserve_operator.kube.fence import AlwaysOpen, Fence
from trtserve_operator.kube.projections import (
    JobProjector,
    PodProjector,
    Projector,
    TRTModelProjector,
    child_projector,
)
from trtserve_operator.kube.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    DISRUPTION_BUDGETS,
    JOBS,
    PODS,
    SERVICES,
    TRTMODELS,
)
from trtserve_operator.kube.watch import Informer
from trtserve_operator.memory import trim_periodically
from trtserve_operator.services.benchmark import Benchmarks
from trtserve_operator.services.builders import build_benchmark_jobs, build_children
from trtserve_operator.services.builders.benchmark_job import (
    BENCHMARK_JOB_LABELS,
    KEY_ANNOTATION,
)
from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.builders.names import (
    CONVERT_CONTAINER,
    HASH_ANNOTATION,
    LABEL_INSTANCE,
    MANAGED_LABELS,
    SERVING_CONTAINER,
    label_selector,
)
from trtserve_operator.services.reconciler import Reconciler
from trtserve_operator.services.targets import blocker_for, target_from_body
from trtserve_operator.settings import CONVERTER_IMAGE_MISSING, Settings

logger = logging.getLogger(__name__)

CRD_MISSING = (
    "is the TRTModel CRD installed? `trtserve-operator crd | kubectl apply -f -` (or the "
    "Helm chart) installs it; the operator waits for it"
)

HEAP_TRIM_INTERVAL = 15.0
"""Seconds between returning freed heap to the OS (see :mod:`trtserve_operator.memory`)."""


def shared_credentials(memo: kopf.Memo) -> Credentials:
    """The one :class:`Credentials` of the process: kopf's login and the adapter use it."""
    credentials = memo.get("credentials")
    if not isinstance(credentials, Credentials):
        credentials = memo["credentials"] = Credentials.from_environment()
    return credentials


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """The adapter's credentials, resolved again (kopf calls this at startup, on a 401 and
    when they expire): kopf's watches and the operator's writes authenticate the same way,
    with everything the kubeconfig may hold (token files, exec plugins, client
    certificates). See :mod:`trtserve_operator.kube.credentials`.
    """
    return await shared_credentials(memo).connection_info(refresh=True)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf settings, then the one shared API client, the services, and the adapter's
    informers; once every cache has its first listing, every TRTModel is converged
    (:meth:`Changes.start`, in the background: kopf serves ``/healthz`` only once this
    returns, and listing may have to wait for the API server or the CRD far longer than
    the liveness probe allows)."""
    configure_kopf(settings)
    operator_settings = Settings()
    if operator_settings.converter_image is None:
        logger.warning(
            "%s; until then every TRTModel without spec.converterImage is Ready=False "
            "ConverterImageMissing",
            CONVERTER_IMAGE_MISSING,
        )
    fence = Fence() if operator_settings.leader_election else AlwaysOpen()
    kube = Kube(shared_credentials(memo), fence=fence)
    reconciler = Reconciler(kube, operator_settings)
    memo["reconciler"] = reconciler
    benchmarks = Benchmarks(kube, operator_settings, reconciler.metrics, reconciler.writes)
    memo["benchmarks"] = benchmarks
    caches = Caches(
        trtmodels=ObjectCache(TRTMODELS.kind),
        deployments=ObjectCache(DEPLOYMENTS.kind),
        services=ObjectCache(SERVICES.kind),
        configmaps=ObjectCache(CONFIGMAPS.kind),
        disruption_budgets=ObjectCache(DISRUPTION_BUDGETS.kind),
        pods=ObjectCache(PODS.kind, group_label=LABEL_INSTANCE),
        jobs=ObjectCache(JOBS.kind, group_label=LABEL_INSTANCE),
    )
    view = CacheView(caches)
    memo["view"] = view
    retries = retries_of(memo)
    retries.observe(reconciler.metrics.retry_changed)
    changes = Changes(reconciler, benchmarks, view, retries)
    memo["changes"] = changes
    leadership = Leadership(changes, reconciler.metrics)
    memo["leadership"] = leadership
    projectors = build_projectors()
    namespaces = watched_namespaces(memo, operator_settings)
    managed = label_selector(MANAGED_LABELS)
    informers = [
        Informer(
            kube,
            projectors[cache.kind],
            cache,
            selector=selector,
            namespaces=namespaces,
            on_change=on_change,
            missing=CRD_MISSING if cache is caches.trtmodels else "",
        )
        for cache, selector, on_change in (
            # Users' TRTModels carry no label of ours: all of them, in the namespaces.
            (caches.trtmodels, "", changes.trtmodel),
            (caches.deployments, managed, changes.deployment),
            (caches.services, managed, changes.service),
            (caches.configmaps, managed, changes.configmap),
            (caches.disruption_budgets, managed, changes.disruption_budget),
            (caches.pods, managed, changes.pod),
            (caches.jobs, label_selector(BENCHMARK_JOB_LABELS), changes.job),
        )
    ]
    memo["informers"] = informers
    for informer in informers:
        informer.start()
    converging = asyncio.create_task(
        converge_once_listed(informers, caches, leadership), name="converge once listed"
    )
    memo["converging"] = converging
    if operator_settings.leader_election:
        elector = LeaderElector(kube, election_config(operator_settings), fence, leadership)
        memo["elector"] = elector
        memo["election"] = asyncio.create_task(elector.run(), name="leader election")
        logger.info(
            "Leader election on Lease %s/%s as %s",
            elector.config.namespace,
            elector.config.name,
            elector.config.identity,
        )
    else:
        leadership.started_leading()
    memo["resync"] = asyncio.create_task(
        resync_periodically(converging, changes, operator_settings.resync_seconds),
        name="resync",
    )
    memo["heap_trimmer"] = asyncio.create_task(trim_periodically(HEAP_TRIM_INTERVAL))
    if operator_settings.metrics_port:
        memo["metrics_server"] = await serve_metrics(reconciler, operator_settings.metrics_port)


async def converge_once_listed(
    informers: Sequence[Informer], caches: Caches, leadership: Leadership
) -> None:
    """The barrier: nothing is converged before every informer's first listing is in its
    cache (converging against a cache still listing could create a child that exists);
    then every TRTModel is, if this process leads (else once it does)."""
    await asyncio.gather(*(informer.wait_ready() for informer in informers))
    count = leadership.listed()
    logger.info(
        "Caches listed (%s); %s",
        ", ".join(f"{len(cache)} {cache.kind}s" for cache in caches.all()),
        f"converging {count} TRTModels" if count is not None else "following, caches warm",
    )


def election_config(settings: Settings) -> ElectionConfig:
    """The Lease, identity and timings of this process's candidacy."""
    namespace = settings.leader_election_namespace or own_namespace() or "default"
    prefix = settings.pod_name or socket.gethostname()
    return ElectionConfig(
        namespace=namespace,
        name=settings.leader_election_lease_name,
        identity=f"{prefix}_{uuid.uuid4().hex[:8]}",
        lease_duration=settings.leader_election_lease_duration,
        renew_deadline=settings.leader_election_renew_deadline,
        retry_period=settings.leader_election_retry_period,
    )


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str | None:
    """The pod's namespace, as its service account token's mount says (None outside a pod)."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


async def resync_periodically(listed: Awaitable[None], changes: Changes, seconds: float) -> None:
    """Once the first converge has started, every TRTModel again every ``seconds`` (0:
    never) from the caches, as client-go's resync period: the safety net for anything
    missed, with no write where the cluster already is as rendered."""
    await listed
    while seconds > 0:
        await asyncio.sleep(seconds)
        logger.debug("Resync: converging %d TRTModels from the caches", changes.resync())


@kopf.on.probe(id="informers")
async def informers_probe(memo: kopf.Memo, **_: Any) -> dict[str, int | str]:
    """Part of kopf's ``/healthz`` (the liveness and readiness probes): the cached objects
    per kind (``listing`` until the first listing is in). Fails if an informer's loop has
    ended, which only a defect can do (it retries every API error), so that the kubelet
    restarts a process that would converge nothing more. An unreachable API server or a
    missing CRD does not fail it: a restart would not help."""
    informers: list[Informer] = memo.get("informers") or []
    ended = [informer.kind for informer in informers if not informer.running]
    if ended:
        raise kopf.PermanentError(f"the informers of {', '.join(ended)} have ended")
    return {
        informer.kind: len(informer.cache) if informer.cache.ready else "listing"
        for informer in informers
    }


@kopf.on.probe(id="leadership")
async def leadership_probe(memo: kopf.Memo, **_: Any) -> dict[str, str]:
    """Part of ``/healthz``: ``leader`` or ``follower`` (both healthy) and the holder seen."""
    leadership = memo.get("leadership")
    if not isinstance(leadership, Leadership):
        return {"role": "starting"}
    return {"role": leadership.role(), "holder": leadership.holder}


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """On SIGTERM: stop writing and hand the lease over first (the follower takes over
    within about a retry period), then stop the rest."""
    election = memo.get("election")
    if isinstance(election, asyncio.Task):
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
    elector = memo.get("elector")
    if isinstance(elector, LeaderElector):
        await elector.release()
    for name in ("resync", "converging"):
        task = memo.get(name)
        if isinstance(task, asyncio.Task):
            task.cancel()
    for informer in memo.get("informers") or []:
        await informer.stop()
    changes = memo.get("changes")
    if isinstance(changes, Changes):
        await changes.close()
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
        await reconciler.close()
        await reconciler.kube.close()


def build_projectors() -> dict[str, Projector[Any]]:
    """The adapter's decoders of the kinds it watches, by kind: what the operator reads of
    each (the pod's template hash, the converter's initContainer, the Job's run key)."""
    return {
        TRTMODELS.kind: TRTModelProjector(TRTMODELS),
        DEPLOYMENTS.kind: child_projector(DEPLOYMENTS),
        SERVICES.kind: child_projector(SERVICES),
        CONFIGMAPS.kind: child_projector(CONFIGMAPS),
        DISRUPTION_BUDGETS.kind: child_projector(DISRUPTION_BUDGETS),
        PODS.kind: PodProjector(
            PODS,
            group_label=LABEL_INSTANCE,
            annotations=(HASH_ANNOTATION,),
            init_containers=(CONVERT_CONTAINER,),
            containers=(SERVING_CONTAINER,),
        ),
        JOBS.kind: JobProjector(JOBS, group_label=LABEL_INSTANCE, annotations=(KEY_ANNOTATION,)),
    }


def watched_namespaces(memo: kopf.Memo, settings: Settings) -> tuple[str, ...]:
    """The namespaces ``run`` gave kopf (in the memo), else ``TRTSERVE_NAMESPACES``; empty:
    all namespaces."""
    given = memo.get("namespaces")
    if given is not None:
        return tuple(given)
    return tuple(settings.namespaces)


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


def package_version() -> str:
    try:
        return importlib.metadata.version("trtserve")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def settings_help() -> str:
    """The TRTSERVE_* environment variables of Settings, for ``run --help``."""
    lines = ["settings (environment variables):"]
    for name, field in Settings.model_fields.items():
        default = "none" if field.default is None else repr(field.default)
        lines.append(f"  TRTSERVE_{name.upper()} (default {default})")
        if field.description:
            lines += textwrap.wrap(field.description, 76, initial_indent="      ",
                                   subsequent_indent="      ")  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtserve-operator",
        description="Serve TensorFlow SavedModels as TF-TRT models on Kubernetes GPUs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run the operator against the current kubeconfig or in-cluster",
        description="Run the operator against the current kubeconfig or in-cluster.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "-f", "--filename", required=True, help="YAML file with TRTModel(s); - reads stdin"
    )
    render.add_argument(
        "--namespace", default="default", help="namespace for objects that set none"
    )
    render.add_argument(
        "--no-owner",
        dest="owner",
        action="store_false",
        help=(
            "leave out the ownerReferences even for TRTModels read back from a cluster "
            "(with metadata.uid); without a uid they are always left out"
        ),
    )

    commands.add_parser("crd", help="print the TRTModel CustomResourceDefinition")
    commands.add_parser(
        "check",
        help="check that the Kubernetes configuration works and its API server answers",
    )
    return parser


TEXT_LOG_FORMAT = "[%(asctime)s] %(name)s [%(levelname)-8.8s] %(message)s"
"""kopf's ``FULL`` format with the whole logger name: kopf pads and cuts it to 20
characters, which leaves ``trtserve_operator.ha`` of ``trtserve_operator.handlers...``."""


def configure_logging(settings: Settings) -> None:
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        verbose=settings.log_level in ("DEBUG", "INFO"),
        # kopf annotates LogFormat but takes a format string too (make_formatter: case str()).
        log_format=(
            kopf.LogFormat.JSON if settings.log_format == "json" else TEXT_LOG_FORMAT  # type: ignore[arg-type]
        ),
    )
    logging.getLogger().setLevel(settings.log_level)


def check(out: TextIO, err: TextIO) -> int:
    """``trtserve-operator check``: is there a configuration and does its API server answer?"""
    try:
        print(check_reachable(Credentials.from_environment()), file=out)
    except ConfigurationError as error:
        print(f"error: {error}", file=err)
        return 2
    return 0


def _health_port_free(port: int) -> str | None:
    """Why kopf could not serve ``/healthz`` on ``port``, or None (kopf would fail later,
    with a traceback, after connecting)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            return (
                f"the health port {port} is not free ({error.strerror}): set "
                "TRTSERVE_HEALTH_PORT to a free port"
            )
    return None


def run_operator(args: argparse.Namespace, settings: Settings) -> int:
    namespaces: Sequence[str] = (
        () if args.all_namespaces else (args.namespace or settings.namespaces)
    )
    try:
        check_reachable(Credentials.from_environment())
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    busy = _health_port_free(settings.health_port)
    if busy:
        print(f"error: {busy}", file=sys.stderr)
        return 2
    configure_logging(settings)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        kopf.run(
            loop=runner.get_loop(),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            memo=kopf.Memo(namespaces=tuple(namespaces)),
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        )
    return 0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the operator image has it), as kopf's own
    CLI does; else asyncio's default."""
    try:
        import uvloop  # noqa: PLC0415  (optional)
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _read_documents(source: str | Path, stdin: TextIO) -> list[Any]:
    """The YAML documents of a file, or of stdin for ``-``; :class:`RenderError` if neither
    can be read or parsed."""
    name = "<stdin>" if str(source) == "-" else str(source)
    try:
        text = stdin.read() if str(source) == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise RenderError(f"cannot read {name}: {detail}") from error
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise RenderError(f"{name}: invalid YAML{where}: {problem}") from error


class RenderError(Exception):
    """A problem with ``render``'s input, reported in one line."""


def _is_trtmodel(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("kind") == KIND
        and document.get("apiVersion") == API_VERSION
    )


def render(
    source: str | Path,
    namespace: str,
    settings: Settings,
    out: TextIO,
    err: TextIO,
    *,
    stdin: TextIO | None = None,
    owner: bool = True,
) -> int:
    """Print the children of every TRTModel in ``source`` (a path, or ``-`` for stdin),
    after the namespace-wide monitoring ConfigMap of each namespace and followed by the
    benchmark Jobs the file's models would run.

    All or nothing: when a TRTModel is invalid or refused (e.g. an unsupported serving
    image, for which the operator creates no Deployment), or there is no TRTModel at all,
    the problems go to ``err`` one line each, nothing is printed to ``out`` and 1 is
    returned, so ``render | kubectl apply -f -`` never applies half a file. The children are
    owned by their TRTModel only when it has a ``metadata.uid`` (read back from a cluster)
    and ``owner`` is True.
    """
    try:
        documents = _read_documents(source, stdin or sys.stdin)
    except RenderError as error:
        print(f"error: {error}", file=err)
        return 1
    models = [doc for doc in documents if _is_trtmodel(doc)]
    if not models:
        name = "<stdin>" if str(source) == "-" else str(source)
        print(
            f"error: no TRTModel in {name} (want apiVersion: {API_VERSION}, kind: {KIND})",
            file=err,
        )
        return 1
    manifests: list[dict[str, Any]] = []
    targets = []
    status = 0
    for document in models:
        metadata = document.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            print("error: TRTModel ?: metadata must be a mapping", file=err)
            status = 1
            continue
        metadata.setdefault("namespace", namespace)
        name = metadata.get("name", "?")
        try:
            target = target_from_body(document)
        except (ValidationError, KeyError) as error:
            detail = (
                describe_validation_error(error, root="spec")
                if isinstance(error, ValidationError)
                else f"missing metadata.{error.args[0]}"
            )
            print(f"error: TRTModel {name}: {detail}", file=err)
            status = 1
            continue
        blocker = blocker_for(target, settings)
        if blocker is not None:
            print(
                f"error: TRTModel {name}: {blocker.reason}: {blocker.message} "
                "(the operator creates no Deployment for it)",
                file=err,
            )
            status = 1
            continue
        manifests += build_children(target, settings).all()
        targets.append(target)
    if status:
        return status
    namespaces = dict.fromkeys(target.namespace for target in targets)
    shared = [build_monitoring_configmap(namespace) for namespace in namespaces]
    manifests = [*shared, *manifests, *build_benchmark_jobs(targets, settings)]
    for manifest in manifests:
        # An ownerReference needs the TRTModel's uid, which only a TRTModel read back from
        # a cluster has: without it the API server refuses the child (`uid: ""`), so
        # `render | kubectl apply` would apply half a file. Owners without a uid are left out.
        metadata = manifest["metadata"]
        owners = [ref for ref in metadata.pop("ownerReferences", []) if owner and ref.get("uid")]
        if owners:
            metadata["ownerReferences"] = owners
    yaml.safe_dump_all(manifests, out, sort_keys=False)
    return 0


def print_crd(out: TextIO) -> int:
    out.write(render_crd())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command == "run":
        return run_operator(args, settings)
    if args.command == "check":
        return check(sys.stdout, sys.stderr)
    if args.command == "render":
        return _to_stdout(
            lambda: render(
                args.filename, args.namespace, settings, sys.stdout, sys.stderr, owner=args.owner
            )
        )
    return _to_stdout(lambda: print_crd(sys.stdout))


def _to_stdout(command: Callable[[], int]) -> int:
    """Run a command that prints to stdout; a reader that went away (``| head``) ends it
    quietly with 141 (128 + SIGPIPE, what a shell reports for ``yes | head``)."""
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush of stdout again at exit: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
