#!/usr/bin/env python3
"""trt-bench's own ceiling: how many requests per second one trt-bench process can drive.

A benchmark measures the client as well as the server; this one measures the client
alone. It starts a do-nothing TF Serving stand-in (a grpc.aio server with TF Serving's
PredictionService/ModelService, answering every Predict with an empty response at once)
in its own process, runs `python -m trtserve_bench` against it in another one,
and prints QPS, p50/p99 and the client's event-loop CPU per concurrency level. When a
real model's QPS comes close to these numbers, the A/B Job needs more CPU (or the
measurement is the client's, not the server's): trt-bench warns above 90 % loop CPU.

The stand-in server and the client share this machine's cores, so the numbers are a
lower bound of the client's ceiling on a dedicated core.

Usage:
  PYTHONPATH=converter python benchmarks/bench_client_ceiling.py [--levels 1,8,32,64]
      [--duration 6] [--payload 1x224x224x3]
"""

# The server's imports live in serve(): only the --serve process needs them.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


async def serve(dims: list[int], port_file: Path) -> None:
    """The stand-in: GetModelStatus AVAILABLE, a signature `x` float of `dims`, instant
    empty Predict answers."""
    import grpc.aio

    sys.path.insert(0, str(REPO_ROOT / "converter"))
    from trtserve_bench import protos

    p = protos.load()
    signature_map = p.get_model_metadata_pb2.SignatureDefMap()
    info = signature_map.signature_def["serving_default"].inputs["x"]
    info.dtype = p.types_pb2.DT_FLOAT
    for size in dims:
        info.tensor_shape.dim.add(size=size)

    class Prediction(p.prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc,name-defined]
        async def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802
            return p.predict_pb2.PredictResponse()

        async def GetModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
            response = p.get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.metadata["signature_def"].Pack(signature_map)
            return response

    class Models(p.model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc,name-defined]
        async def GetModelStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
            response = p.get_model_status_pb2.GetModelStatusResponse()
            status = response.model_version_status.add()
            status.version = 1
            status.state = p.get_model_status_pb2.ModelVersionStatus.State.AVAILABLE
            return response

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
    p.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    p.model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--payload", default="1x1", help="shape of the float input x")
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dims = [int(d) for d in args.payload.split("x")]
    if args.serve:
        asyncio.run(serve(dims, Path(args.serve)))
        return 0
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "converter")}
    port_file = Path(f"/tmp/trt-bench-ceiling-{os.getpid()}.port")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), "--payload", args.payload], env=env
    )
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.1)
        endpoint = f"127.0.0.1:{port_file.read_text()}"
        result = subprocess.run(
            [
                sys.executable, "-m", "trtserve_bench", "--endpoint", endpoint,
                "--model-name", "noop", "--concurrency", args.levels, "--duration-seconds",
                str(args.duration), "--warmup-seconds", "1", "--rounds", "2", "--json",
                "--max-error-rate", "1",
            ],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
        port_file.unlink(missing_ok=True)
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        return result.returncode
    summary = json.loads(result.stdout)
    print(
        f"trt-bench client ceiling (gRPC, payload x={args.payload} float32, "
        f"{os.cpu_count()} cores, server on the same machine)"
    )
    print(f"{'concurrency':>11} {'QPS':>9} {'p50 ms':>8} {'p99 ms':>8} {'loop CPU %':>10}")
    for level in summary["target"]["levels"]:
        print(
            f"{level['concurrency']:>11} {level['qps']:>9.1f} {level['p50Ms']:>8.3f} "
            f"{level['p99Ms']:>8.3f} {level.get('clientCpuPercent') or 0:>10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
