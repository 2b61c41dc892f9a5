"""Source credentials from the environment and from the mounted secret.

The operator exposes `spec.source.secretRef` twice: as environment variables (`envFrom`)
and as files under /var/run/secrets/trtserve/source (`TRT_CONVERT_SECRET_DIR`). The
environment wins; a file named like the variable is the fallback (keys that are not
valid variable names, e.g. a JSON key file, only exist as files). Nothing here is logged.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtserve_converter.errors import SourceAuthFailed

SECRET_DIR_ENV = "TRT_CONVERT_SECRET_DIR"
DEFAULT_SECRET_DIR = "/var/run/secrets/trtserve/source"
GCS_KEY_FILES = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "key.json",
    "service-account.json",
    "credentials.json",
)
AWS_CREDENTIALS_FILE = "credentials"  # the AWS shared-credentials (INI) format
GCS_KEY_TYPES = frozenset(
    {"service_account", "authorized_user", "external_account", "impersonated_service_account"}
)
BEARER_TOKEN = "TRT_CONVERT_HTTP_BEARER_TOKEN"
BEARER_TOKEN_FILE = "token"


@dataclass(frozen=True)
class SecretSource:
    """Where credentials are looked up: an environment and a mounted secret directory."""

    environ: Mapping[str, str]
    secret_dir: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> SecretSource:
        return cls(environ, Path(environ.get(SECRET_DIR_ENV, DEFAULT_SECRET_DIR)))

    def file(self, *names: str) -> Path | None:
        for name in names:
            path = self.secret_dir / name
            if path.is_file():
                return path
        return None

    def value(self, name: str) -> str | None:
        """The variable, else the content of the secret file of the same name."""
        if self.environ.get(name):
            return self.environ[name]
        path = self.file(name)
        return path.read_text(encoding="utf-8").strip() if path else None


def s3_options(secrets: SecretSource) -> dict[str, Any]:
    """s3fs keyword arguments: endpoint, region and keys not already in the environment.

    Keys in the environment are left to botocore's own chain (env, web identity, ...).
    """
    options: dict[str, Any] = {}
    client_kwargs: dict[str, Any] = {}
    endpoint = secrets.value("AWS_ENDPOINT_URL_S3") or secrets.value("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    region = secrets.value("AWS_REGION") or secrets.value("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    if secrets.environ.get("AWS_ACCESS_KEY_ID"):
        return options
    key, secret = secrets.value("AWS_ACCESS_KEY_ID"), secrets.value("AWS_SECRET_ACCESS_KEY")
    token = secrets.value("AWS_SESSION_TOKEN")
    if not (key and secret):
        shared = secrets.file(AWS_CREDENTIALS_FILE)
        if shared is not None:
            key, secret, token = _shared_credentials(shared, secrets.environ.get("AWS_PROFILE"))
    if key and secret:
        options.update(key=key, secret=secret)
        if token:
            options["token"] = token
    return options


def _shared_credentials(path: Path, profile: str | None) -> tuple[str | None, ...]:
    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    section = profile or "default"
    if not parser.has_section(section):
        return (None, None, None)
    return tuple(
        parser.get(section, name, fallback=None)
        for name in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    )


def gcs_token(secrets: SecretSource) -> Any:
    """gcsfs `token`: a key file path, the key itself, or None for Google's defaults.

    The key is checked here: gcsfs would otherwise fail later with an unrelated error
    (e.g. KeyError 'refresh_token') that looks like a network problem.
    """
    value = secrets.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    if value.startswith("{"):  # envFrom of a secret key holding the JSON itself
        return _checked_gcs_key(value, "GOOGLE_APPLICATION_CREDENTIALS")
    path = Path(value) if value else secrets.file(*GCS_KEY_FILES)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SourceAuthFailed(
            f"cannot read the GCS key file {path} ({error}): check spec.source.secretRef"
        ) from error
    _checked_gcs_key(text, str(path))
    return str(path)


def _checked_gcs_key(text: str, where: str) -> dict[str, Any]:
    try:
        key = json.loads(text)
    except ValueError:
        key = None
    if not isinstance(key, dict) or key.get("type") not in GCS_KEY_TYPES:
        raise SourceAuthFailed(
            f"{where} is not a Google credentials JSON key (its type must be one of "
            f"{', '.join(sorted(GCS_KEY_TYPES))}): check spec.source.secretRef"
        )
    return key


def bearer_token(secrets: SecretSource) -> str | None:
    """The http(s) bearer token: variable, or a `token` file in the secret."""
    token = secrets.value(BEARER_TOKEN)
    if token:
        return token
    path = secrets.file(BEARER_TOKEN_FILE)
    return path.read_text(encoding="utf-8").strip() if path else None
