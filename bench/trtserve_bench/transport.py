"""The two ways to talk to TF Serving: gRPC (grpc.aio + TF Serving's stubs) and REST
(aiohttp + TF Serving's JSON API). Both expose the same small async interface.

No library retries: a failed request is counted, never silently repeated (gRPC retries
are disabled on the channel; aiohttp does not retry).
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from trtserve_bench.errors import (
    EndpointUnavailable,
    InvalidInputs,
    ModelNotAvailable,
)
from trtserve_bench.inputs import (
    InputSpec,
    predict_request,
    rest_body,
    signature_inputs,
)
from trtserve_bench.protos import Protos

STATUS_POLL_SECONDS = 1.0
GRPC_OPTIONS = (
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
)
# gRPC status codes that mean "not up yet" while waiting for the endpoint.
UNREACHABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


class RequestError(Exception):
    """One request failed; `code` is a gRPC status name (or HTTP_<status>)."""

    def __init__(self, code: str, detail: str) -> None:
        self.code, self.detail = code, " ".join(detail.split())[:300]
        super().__init__(f"{code}: {self.detail}")


class Transport(Protocol):
    """What the runner needs from an endpoint."""

    address: str
    model_name: str

    async def wait_available(self, wait_seconds: float) -> int | None:
        """Wait until the model has an AVAILABLE version; return it (None: unknown)."""

    async def signature(self, signature_key: str) -> dict[str, InputSpec]:
        """The signature's input specs, from the model's metadata."""

    def prepare(
        self, arrays: Mapping[str, Any], specs: Mapping[str, InputSpec], signature_key: str
    ) -> None:
        """Build the request sent by every predict()."""

    async def predict(self) -> None:
        """Send one prepared request; raise RequestError on any failure."""

    def rejected(self, failure: RequestError) -> InvalidInputs:
        """The error for a request the server refuses (bad inputs)."""

    async def close(self) -> None: ...


def _unreachable(role: str, address: str, wait_seconds: float, detail: str) -> EndpointUnavailable:
    return EndpointUnavailable(
        f"cannot reach the {role} endpoint {address} within --wait-seconds={wait_seconds:g} "
        f"({detail}): check the host:port (TF Serving listens on 8500 for gRPC, 8501 for "
        "REST) and that the server is running"
    )


def _not_served(
    role: str, address: str, model: str, wait_seconds: float, detail: str
) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"the {role} endpoint {address} has no AVAILABLE version of model {model!r} within "
        f"--wait-seconds={wait_seconds:g} ({detail}): check --model-name against TF "
        "Serving's --model_name, or wait for the model to load"
    )


def _rejected(role: str, address: str, failure: RequestError) -> InvalidInputs:
    return InvalidInputs(
        f"the {role} endpoint {address} rejects the request ({failure}): give the inputs' "
        "shapes with --shape or real data with --inputs"
    )


class GrpcTransport:
    """TF Serving's PredictionService and ModelService over one grpc.aio channel."""

    def __init__(
        self, protos: Protos, address: str, model_name: str, role: str, deadline_seconds: float
    ) -> None:
        import grpc.aio

        self.address, self.model_name, self.role = address, model_name, role
        self._protos, self._deadline = protos, deadline_seconds
        self._grpc = grpc
        self._channel = grpc.aio.insecure_channel(address, options=list(GRPC_OPTIONS))
        self._prediction = protos.prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = protos.model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._request: Any = None

    async def _call(self, method: Any, request: Any, timeout: float) -> Any:
        try:
            return await method(request, timeout=timeout)
        except self._grpc.aio.AioRpcError as error:
            raise RequestError(error.code().name, error.details() or "") from None

    async def wait_available(self, wait_seconds: float) -> int | None:
        status_pb2 = self._protos.get_model_status_pb2
        request = status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        stop = time.monotonic() + wait_seconds
        last = "no answer"
        while True:
            # each status call gets the request deadline, shortened to the wait left (>= 1 s)
            timeout = min(self._deadline, max(stop - time.monotonic(), 1.0))
            try:
                response = await self._call(self._models.GetModelStatus, request, timeout)
            except RequestError as failure:
                if failure.code == "UNIMPLEMENTED":  # not TF Serving's ModelService
                    return None
                last = str(failure)
                reachable = failure.code not in UNREACHABLE_CODES
            else:
                available = [
                    status.version
                    for status in response.model_version_status
                    if status.state == status_pb2.ModelVersionStatus.State.AVAILABLE
                ]
                if available:
                    return int(max(available))
                states = ", ".join(
                    f"version {status.version} "
                    f"{status_pb2.ModelVersionStatus.State.Name(status.state)}"
                    for status in response.model_version_status
                )
                last, reachable = states or "no versions", True
            remaining = stop - time.monotonic()
            if remaining <= 0:
                if reachable:
                    raise _not_served(self.role, self.address, self.model_name, wait_seconds, last)
                raise _unreachable(self.role, self.address, wait_seconds, last)
            await asyncio.sleep(min(STATUS_POLL_SECONDS, remaining))

    async def signature(self, signature_key: str) -> dict[str, InputSpec]:
        metadata_pb2 = self._protos.get_model_metadata_pb2
        request = metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        try:
            response = await self._call(self._prediction.GetModelMetadata, request, self._deadline)
        except RequestError as failure:
            if failure.code in UNREACHABLE_CODES:
                raise _unreachable(self.role, self.address, 0, str(failure)) from None
            raise _not_served(self.role, self.address, self.model_name, 0, str(failure)) from None
        signature_map = metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_inputs(signature_map.signature_def, signature_key, self._protos.types_pb2)

    def prepare(
        self, arrays: Mapping[str, Any], specs: Mapping[str, InputSpec], signature_key: str
    ) -> None:
        self._request = predict_request(arrays, specs, self.model_name, signature_key, self._protos)

    async def predict(self) -> None:
        await self._call(self._prediction.Predict, self._request, self._deadline)

    def rejected(self, failure: RequestError) -> InvalidInputs:
        return _rejected(self.role, self.address, failure)

    async def close(self) -> None:
        await self._channel.close()


# HTTP status -> the gRPC status name TF Serving's REST API maps it from.
HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class RestTransport:
    """TF Serving's REST API (`/v1/models/...`) with one aiohttp session."""

    def __init__(
        self,
        protos: Protos,
        address: str,
        model_name: str,
        role: str,
        *,
        deadline_seconds: float,
        connections: int,
    ) -> None:
        import aiohttp

        self.address, self.model_name, self.role = address, model_name, role
        self._protos, self._deadline = protos, deadline_seconds
        self._aiohttp = aiohttp
        base = address if "://" in address else f"http://{address}"
        self._model_url = f"{base.rstrip('/')}/v1/models/{model_name}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=deadline_seconds),
            headers={"Content-Type": "application/json"},
        )
        self._body = b""

    async def _request(self, method: str, url: str, data: bytes | None = None) -> Any:
        try:
            async with self._session.request(method, url, data=data) as response:
                payload = await response.read()
                if response.status != 200:
                    code = HTTP_CODES.get(response.status, f"HTTP_{response.status}")
                    raise RequestError(code, _error_text(payload) or response.reason or "")
                return payload
        except TimeoutError:
            raise RequestError(
                "DEADLINE_EXCEEDED", f"no answer within {self._deadline:g} s"
            ) from None
        except self._aiohttp.ClientError as error:
            raise RequestError("UNAVAILABLE", f"{type(error).__name__}: {error}") from None

    async def wait_available(self, wait_seconds: float) -> int | None:
        stop = time.monotonic() + wait_seconds
        while True:
            try:
                status = json.loads(await self._request("GET", self._model_url))
            except RequestError as failure:
                last, reachable = str(failure), failure.code not in UNREACHABLE_CODES
            else:
                versions = status.get("model_version_status", [])
                available = [int(v["version"]) for v in versions if v.get("state") == "AVAILABLE"]
                if available:
                    return max(available)
                last = ", ".join(f"version {v['version']} {v.get('state')}" for v in versions)
                reachable = True
            remaining = stop - time.monotonic()
            if remaining <= 0:
                if reachable:
                    raise _not_served(
                        self.role, self.address, self.model_name, wait_seconds, last or "none"
                    )
                raise _unreachable(self.role, self.address, wait_seconds, last)
            await asyncio.sleep(min(STATUS_POLL_SECONDS, remaining))

    async def signature(self, signature_key: str) -> dict[str, InputSpec]:
        from google.protobuf import json_format

        try:
            payload = json.loads(await self._request("GET", f"{self._model_url}/metadata"))
        except RequestError as failure:
            if failure.code in UNREACHABLE_CODES:
                raise _unreachable(self.role, self.address, 0, str(failure)) from None
            raise _not_served(self.role, self.address, self.model_name, 0, str(failure)) from None
        signature_map = self._protos.get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(
            payload.get("metadata", {}).get("signature_def", {}),
            signature_map,
            ignore_unknown_fields=True,
        )
        return signature_inputs(signature_map.signature_def, signature_key, self._protos.types_pb2)

    def prepare(
        self, arrays: Mapping[str, Any], specs: Mapping[str, InputSpec], signature_key: str
    ) -> None:
        self._body = json.dumps(rest_body(arrays, signature_key)).encode("utf-8")

    async def predict(self) -> None:
        await self._request("POST", f"{self._model_url}:predict", self._body)

    def rejected(self, failure: RequestError) -> InvalidInputs:
        return _rejected(self.role, self.address, failure)

    async def close(self) -> None:
        await self._session.close()


def _error_text(payload: bytes) -> str:
    """TF Serving's REST errors are {"error": "..."}."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:200].decode("utf-8", "replace")
    return str(data.get("error", "")) if isinstance(data, dict) else ""
