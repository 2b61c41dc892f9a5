"""A fake of the few GCS JSON API calls gcsfs makes, on 127.0.0.1 (free port).

Not an emulator: objects live in a dict, with a generation counter. It implements exactly
what gcsfs 2026.x sends for info, listing, download (with Range), simple (multipart)
upload with `ifGenerationMatch=0`, and delete, plus Google's OAuth token endpoint for a
service account key (`key_file`). Point gcsfs at it with STORAGE_EMULATOR_HOST. What a
real GCS does beyond that (resumable uploads, IAM, consistency, retries on 429/5xx,
composite objects) is not covered.
"""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BOUNDARY = b"--==0=="


@functools.cache
def private_key_pem() -> str:
    """A throwaway RSA key (service account keys sign their token requests)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account_key(token_uri: str) -> dict[str, str]:
    """A service account key file's content whose token endpoint is ``token_uri``."""
    return {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "1",
        "private_key": private_key_pem(),
        "client_email": "converter@test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


@dataclass
class FakeGcs:
    objects: dict[tuple[str, str], tuple[bytes, int]] = field(default_factory=dict)
    generations: Iterator[int] = field(default_factory=lambda: itertools.count(1_700_000_000))
    conditional_creates: int = 0
    downloads: dict[tuple[str, str], int] = field(default_factory=dict)
    tokens: int = 0
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    unavailable: set[tuple[str, str]] = field(default_factory=set)  # answer 503
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key_file(self, path: Path) -> Path:
        """A service account key whose token endpoint is this fake."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(service_account_key(f"{self.url}/token")), encoding="utf-8")
        return path

    def metadata(self, bucket: str, name: str) -> dict[str, Any]:
        data, generation = self.objects[(bucket, name)]
        return {
            "kind": "storage#object",
            "bucket": bucket,
            "name": name,
            "size": str(len(data)),
            "generation": str(generation),
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "updated": "2026-01-01T00:00:00.000Z",
            "timeCreated": "2026-01-01T00:00:00.000Z",
            "storageClass": "STANDARD",
        }


def _handler(gcs: FakeGcs) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes = b"", content_type: str = "") -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": {"code": status, "message": message}})

        def _parts(self) -> tuple[list[str], dict[str, list[str]]]:
            url = urlsplit(self.path)
            return [unquote(p) for p in url.path.split("/")], parse_qs(url.query)

        def _failing(self, bucket: str, name: str) -> bool:
            """Count the request; answer 503 for an object in `gcs.unavailable`."""
            gcs.requests[(self.command, bucket, name)] += 1
            if (bucket, name) in gcs.unavailable:
                self._error(503, "Service Unavailable")
                return True
            return False

        def do_GET(self) -> None:
            parts, query = self._parts()
            with gcs.lock:
                name = "/".join(parts[7:] if parts[1] == "download" else parts[6:])
                if len(parts) > 5 and self._failing(
                    parts[5 if parts[1] == "download" else 4], name
                ):
                    return
                if parts[1:5] == ["download", "storage", "v1", "b"] and parts[6] == "o":
                    self._download(parts[5], "/".join(parts[7:]))
                elif parts[1:4] == ["storage", "v1", "b"] and len(parts) > 6 and parts[5] == "o":
                    self._info(parts[4], "/".join(parts[6:]))
                elif parts[1:4] == ["storage", "v1", "b"] and parts[5:] == ["o"]:
                    self._list(parts[4], query)
                else:
                    self._error(404, f"not faked: GET {self.path}")

        def _download(self, bucket: str, name: str) -> None:
            if (bucket, name) not in gcs.objects:
                self._error(404, "No such object")
                return
            data = gcs.objects[(bucket, name)][0]
            gcs.downloads[(bucket, name)] = gcs.downloads.get((bucket, name), 0) + 1
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes="):
                start_text, _, end_text = ranged[6:].partition("-")
                start = int(start_text or 0)
                end = int(end_text) + 1 if end_text else len(data)
                self._send(206, data[start:end], "application/octet-stream")
            else:
                self._send(200, data, "application/octet-stream")

        def _info(self, bucket: str, name: str) -> None:
            if (bucket, name) not in gcs.objects:
                self._error(404, "No such object")
            else:
                self._json(200, gcs.metadata(bucket, name))

        def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
            prefix = query.get("prefix", [""])[0]
            delimiter = query.get("delimiter", [""])[0]
            items, prefixes = [], set()
            for b, name in sorted(gcs.objects):
                if b != bucket or not name.startswith(prefix):
                    continue
                rest = name[len(prefix) :]
                if delimiter and delimiter in rest:
                    prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                else:
                    items.append(gcs.metadata(b, name))
            self._json(
                200, {"kind": "storage#objects", "items": items, "prefixes": sorted(prefixes)}
            )

        def do_POST(self) -> None:
            parts, query = self._parts()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if parts[1:] == ["token"]:
                with gcs.lock:
                    gcs.tokens += 1
                self._json(200, {"access_token": "t0k", "expires_in": 3600})
                return
            if parts[1:5] != ["upload", "storage", "v1", "b"] or query.get("uploadType") != [
                "multipart"
            ]:
                self._error(501, f"not faked: POST {self.path}")
                return
            bucket = parts[5]
            _head, _, rest = body.partition(b"\n\n")
            meta_text, _, rest = rest.partition(b"\n" + BOUNDARY + b"\n")
            _, _, data = rest.partition(b"\n\n")
            data = data.removesuffix(b"\n" + BOUNDARY + b"--")
            name = json.loads(meta_text)["name"]
            with gcs.lock:
                if query.get("ifGenerationMatch") == ["0"]:
                    gcs.conditional_creates += 1
                    if (bucket, name) in gcs.objects:
                        self._error(412, "At least one of the pre-conditions did not hold.")
                        return
                gcs.objects[(bucket, name)] = (data, next(gcs.generations))
                self._json(200, gcs.metadata(bucket, name))

        def do_DELETE(self) -> None:
            parts, _ = self._parts()
            with gcs.lock:
                key = (parts[4], "/".join(parts[6:]))
                if key not in gcs.objects:
                    self._error(404, "No such object")
                    return
                del gcs.objects[key]
            self._send(204)

    return Handler


@contextmanager
def fake_gcs_server() -> Iterator[tuple[str, FakeGcs]]:
    """(endpoint, state) of a running fake on 127.0.0.1."""
    gcs = FakeGcs()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(gcs))
    gcs.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gcs.url, gcs
    finally:
        server.shutdown()
        thread.join()
