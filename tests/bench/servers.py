"""A test double of TensorFlow Serving: a real gRPC server (and a REST one) with TF
Serving's own protos, serving a real SavedModel on CPU.

It implements what trt-bench calls: PredictionService.Predict and .GetModelMetadata,
ModelService.GetModelStatus, and the REST equivalents (/v1/models/NAME, /metadata,
:predict). Predict really runs the SavedModel's signature; GetModelMetadata serves the
SignatureDefs of its saved_model.pb, as TF Serving does. Knobs inject latency, failures
and rejections by request index, so tests know exactly what the client should measure.

Test fixture, not product code. Binds 127.0.0.1 port 0.
"""

# ruff: noqa: N802 - gRPC servicer method names are the proto's

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from aiohttp import web
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

# index of a Predict call (0-based, in arrival order) -> seconds to sleep first
Latency = Callable[[int], float]
# index -> a gRPC status code to fail with, or None
Failure = Callable[[int], grpc.StatusCode | None]


@dataclass
class Behaviour:
    """What the server does with the i-th Predict call."""

    latency: Latency = lambda index: 0.0
    failure: Failure = lambda index: None
    available_after: float = 0.0  # seconds after start before the version is AVAILABLE


@dataclass
class CallLog:
    """Every Predict call: (server name, arrival time) in arrival order, across servers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[tuple[str, float]] = field(default_factory=list)

    def add(self, name: str) -> None:
        with self.lock:
            self.calls.append((name, time.monotonic()))


class ServedModel:
    """A SavedModel loaded once: its signatures and its SignatureDefs."""

    def __init__(self, version_dir: Path, name: str, version: int) -> None:
        self.name, self.version = name, version
        self.loaded = tf.saved_model.load(str(version_dir))
        saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
        self.signature_defs = saved.meta_graphs[0].signature_def

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        function = self.loaded.signatures[signature]
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: tensor.numpy() for name, tensor in outputs.items()}


class Core:
    """The behaviour shared by the gRPC and the REST front ends."""

    def __init__(self, model: ServedModel, name: str, behaviour: Behaviour, log: CallLog) -> None:
        self.model, self.name, self.behaviour, self.log = model, name, behaviour, log
        self.started = time.monotonic()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.predict_calls = 0
        self.status_calls = 0
        self.metadata_calls = 0

    def next_index(self) -> int:
        with self._lock:
            self.predict_calls += 1
            index = next(self._counter)
        self.log.add(self.name)
        return index

    def available(self) -> bool:
        return time.monotonic() - self.started >= self.behaviour.available_after


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, core: Core) -> None:
        self.core = core

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        core = self.core
        index = core.next_index()
        if request.model_spec.name != core.model.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}"
            )
        time.sleep(core.behaviour.latency(index))
        code = core.behaviour.failure(index)
        if code is not None:
            context.abort(code, f"injected failure of request {index}")
        signature = request.model_spec.signature_name or "serving_default"
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        try:
            outputs = core.model.run(signature, inputs)
        except (TypeError, ValueError, KeyError, tf.errors.OpError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0])
        response = predict_pb2.PredictResponse()
        response.model_spec.name = core.model.name
        response.model_spec.version.value = core.model.version
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        core = self.core
        core.metadata_calls += 1
        if request.model_spec.name != core.model.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}"
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = core.model.name
        response.model_spec.version.value = core.model.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in core.model.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signature_map)
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, core: Core) -> None:
        self.core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        core = self.core
        core.status_calls += 1
        if request.model_spec.name != core.model.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find any versions of model {request.model_spec.name}",
            )
        state = get_model_status_pb2.ModelVersionStatus.State
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = core.model.version
        status.state = state.AVAILABLE if core.available() else state.LOADING
        return response


class GrpcServer:
    """The gRPC front end on 127.0.0.1:<free port>."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(core), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(core), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    return value


class RestServer:
    """The REST front end (TF Serving's /v1/models API) on 127.0.0.1:<free port>."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/v1/models/{name}", self._status)
        app.router.add_get("/v1/models/{name}/metadata", self._metadata)
        app.router.add_post("/v1/models/{spec}", self._predict)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def _not_found(self, name: str) -> web.Response:
        return web.json_response({"error": f"Servable not found for request: {name}"}, status=404)

    async def _status(self, request: web.Request) -> web.Response:
        core = self.core
        core.status_calls += 1
        if request.match_info["name"] != core.model.name:
            return self._not_found(request.match_info["name"])
        state = "AVAILABLE" if core.available() else "LOADING"
        return web.json_response(
            {"model_version_status": [{"version": str(core.model.version), "state": state}]}
        )

    async def _metadata(self, request: web.Request) -> web.Response:
        core = self.core
        core.metadata_calls += 1
        if request.match_info["name"] != core.model.name:
            return self._not_found(request.match_info["name"])
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in core.model.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        return web.json_response(
            {
                "model_spec": {"name": core.model.name, "version": str(core.model.version)},
                "metadata": {"signature_def": json_format.MessageToDict(signature_map)},
            }
        )

    async def _predict(self, request: web.Request) -> web.Response:
        core = self.core
        name, _, verb = request.match_info["spec"].partition(":")
        index = core.next_index()
        if verb != "predict" or name != core.model.name:
            return self._not_found(name)
        await asyncio.sleep(core.behaviour.latency(index))
        code = core.behaviour.failure(index)
        if code is not None:
            return web.json_response({"error": f"injected failure of request {index}"}, status=500)
        body = await request.json()
        signature = body.get("signature_name", "serving_default")
        specs = core.model.signature_defs[signature].inputs
        try:
            inputs = {
                key: np.asarray(
                    _from_json(value),
                    dtype=tf.dtypes.as_dtype(specs[key].dtype).as_numpy_dtype,
                )
                for key, value in body["inputs"].items()
            }
            outputs = await asyncio.to_thread(core.model.run, signature, inputs)
        except (TypeError, ValueError, KeyError, tf.errors.OpError) as error:
            return web.json_response({"error": str(error).splitlines()[0]}, status=400)
        return web.json_response({"outputs": {k: v.tolist() for k, v in outputs.items()}})

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
