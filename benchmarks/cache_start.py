#!/usr/bin/env python3
"""Converted-model cache benchmark: cold start (miss) vs warm start (hit) from S3.

Issue 9's target: a hit costs at most 1.3x a plain download of the same bytes.

What it does, all on 127.0.0.1 (moto server, a free port):
  1. saves Keras ResNet50 (weights=None, ~100 MB of float32 weights) as a SavedModel
     and uploads it to s3://models/resnet50;
  2. runs `trt-convert` (in-process, so TensorFlow is imported once, before timing)
     with --cache-uri s3://cache/trtserve: a miss (fetch, convert, serve, publish);
  3. runs it again into another output directory: a hit (lookup, download with every
     file's sha256 computed as it arrives, verify sizes and digests, load the model and
     run its warmup input in a child process started when the hit began, rename);
  4. downloads the same entry's files with s3fs alone (the plain download).

It prints each run's wall seconds and the report's cache seconds, the check child's own
timings (its TensorFlow import, the part of it that ran during the download, its load +
warmup), and two ratios:
  hit/download          (lookup + download + verify + check + install) / plain download
  hit-without-check     the same without the wait for the check (`check`)

The precision is NATIVE: there is no TensorRT here, so the miss does not include a
TF-TRT conversion. On a GPU node (FP16/INT8) the miss adds minutes of conversion and
engine building, and the hit stays what is measured here. Usage:

  python benchmarks/cache_start.py [--precision NATIVE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Heavy modules (TensorFlow, Keras, moto) are imported where used: --help stays fast.
# ruff: noqa: PLC0415


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )


def _save_resnet50(path: Path) -> int:
    import keras

    model = keras.applications.ResNet50(weights=None)
    model.export(str(path), verbose=False)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _upload(client: Any, root: Path, bucket: str, prefix: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


class _CheckTimings(logging.Handler):
    """Collects cache_check.ModelCheck's timings of each hit (from its INFO record)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.runs: list[tuple[float, ...]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("cache: load check in a child"):
            self.runs.append(tuple(float(value) for value in record.args))  # type: ignore[union-attr]


def _convert(work: Path, name: str, precision: str, cache_uri: str) -> tuple[float, dict[str, Any]]:
    from trtserve_converter.cli import main

    report = work / f"{name}.json"
    started = time.perf_counter()
    code = main(
        [
            "--source", "s3://models/resnet50", "--model-name", "resnet50",
            "--precision", precision, "--output-base", str(work / name),
            "--report-path", str(report), "--cache-uri", cache_uri,
            "--log-level", "INFO",
        ]
    )  # fmt: skip
    seconds = time.perf_counter() - started
    data = json.loads(report.read_text(encoding="utf-8"))
    if code != 0:
        raise SystemExit(f"{name}: trt-convert failed: {data['message']}")
    return seconds, data


def _plain_download(endpoint: str, prefix: str, target: Path) -> float:
    import s3fs

    fs = s3fs.S3FileSystem(
        key="bench",
        secret="bench",
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        skip_instance_cache=True,
    )
    started = time.perf_counter()
    for name in sorted(fs.find(prefix)):
        if name.endswith("/manifest.json"):
            continue
        local = target / name[len(prefix) :].lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(local))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="NATIVE")
    parser.add_argument("--repeat", type=int, default=3, help="hits and downloads measured")
    args = parser.parse_args()

    timings = _CheckTimings()
    checks = logging.getLogger("trtserve_converter.cache.check")
    checks.addHandler(timings)
    checks.propagate = False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    import tensorflow as tf  # imported before any timing

    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            started = time.perf_counter()
            size = _save_resnet50(work / "resnet50")
            print(
                f"ResNet50 SavedModel: {size / 1e6:.1f} MB, saved in "
                f"{time.perf_counter() - started:.1f}s (TensorFlow {tf.__version__})"
            )
            client = _s3_client(endpoint)
            for bucket in ("models", "cache"):
                client.create_bucket(Bucket=bucket)
            _upload(client, work / "resnet50", "models", "resnet50")

            miss_s, miss = _convert(work, "miss", args.precision, "s3://cache/trtserve")
            assert miss["cache"]["result"] == "Miss", miss["cache"]
            key = miss["cache"]["key"]
            hits = []
            for index in range(args.repeat):
                seconds, hit = _convert(work, f"hit{index}", args.precision, "s3://cache/trtserve")
                assert hit["cache"]["result"] == "Hit", hit["cache"]
                hits.append((seconds, hit["cache"]))
            downloads = [
                _plain_download(endpoint, f"cache/trtserve/default/{key}", work / f"plain{i}")
                for i in range(args.repeat)
            ]
    finally:
        server.stop()

    _print_results(args.precision, (miss_s, miss), hits, downloads=downloads, checks=timings.runs)


def _print_results(
    precision: str,
    miss_run: tuple[float, dict[str, Any]],
    hits: list[tuple[float, dict[str, Any]]],
    *,
    downloads: list[float],
    checks: list[tuple[float, ...]],
) -> None:
    miss_s, miss = miss_run
    repeat = len(hits)
    hit_s = statistics.median(s for s, _ in hits)
    steps = {
        name: statistics.median(c.get(name, 0.0) for _, c in hits)
        for name in ("lookup", "download", "verify", "check")
    }
    plain = statistics.median(downloads)
    install = max(hit_s - sum(steps.values()), 0.0)
    print(f"precision {precision}, S3 = moto server on 127.0.0.1, medians of {repeat}")
    print(
        f"cold start (miss): {miss_s:.2f}s  report durations {miss['durations']}, "
        f"cache {miss['cache']}"
    )
    print(
        f"warm start (hit):  {hit_s:.2f}s  lookup {steps['lookup']:.2f}s, download "
        f"{steps['download']:.2f}s, verify (size+sha256) {steps['verify']:.2f}s, check "
        f"(load + warmup) {steps['check']:.2f}s, rest {install:.2f}s"
    )
    if checks:
        child = [statistics.median(run[i] for run in checks) for i in range(3)]
        print(
            f"check child: TensorFlow import {child[0]:.2f}s ({child[1]:.2f}s of it during "
            f"lookup + download), load + warmup {child[2]:.2f}s"
        )
    print(f"plain download of the same bytes: {plain:.2f}s")
    print(f"hit/download: {hit_s / plain:.2f}x (target <= 1.3x)")
    print(f"hit-without-check/download: {(hit_s - steps['check']) / plain:.2f}x")
    print(f"miss/hit: {miss_s / hit_s:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
