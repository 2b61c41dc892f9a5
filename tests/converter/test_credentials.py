"""Credentials from the environment and from the mounted secret directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from trtserve_converter.credentials import SecretSource, bearer_token, gcs_token, s3_options
from trtserve_converter.errors import SourceAuthFailed
from trtserve_converter.fetch import storage_options


def secrets(tmp_path: Path, env: dict[str, str] | None = None, /, **files: str) -> SecretSource:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    return SecretSource(env or {}, tmp_path)


def test_s3_keys_from_secret_files(tmp_path: Path) -> None:
    source = secrets(
        tmp_path,
        AWS_ACCESS_KEY_ID="AKIA\n",
        AWS_SECRET_ACCESS_KEY="s3cr3t\n",
        AWS_ENDPOINT_URL="http://minio:9000",
    )
    assert s3_options(source) == {
        "key": "AKIA",
        "secret": "s3cr3t",
        "client_kwargs": {"endpoint_url": "http://minio:9000"},
    }


def test_s3_keys_in_the_environment_are_left_to_botocore(tmp_path: Path) -> None:
    source = secrets(
        tmp_path, {"AWS_ACCESS_KEY_ID": "env-key"}, AWS_SECRET_ACCESS_KEY="file-secret"
    )
    assert s3_options(source) == {}


def test_s3_shared_credentials_file_and_profile(tmp_path: Path) -> None:
    ini = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n"
    ini += "[ci]\naws_access_key_id = C\naws_secret_access_key = D\naws_session_token = T\n"
    assert s3_options(secrets(tmp_path, credentials=ini)) == {"key": "A", "secret": "B"}
    profiled = SecretSource({"AWS_PROFILE": "ci"}, tmp_path)
    assert s3_options(profiled) == {"key": "C", "secret": "D", "token": "T"}
    assert s3_options(SecretSource({"AWS_PROFILE": "absent"}, tmp_path)) == {}


def test_gcs_token_sources(tmp_path: Path) -> None:
    key = {"type": "service_account", "project_id": "p"}
    in_env = SecretSource({"GOOGLE_APPLICATION_CREDENTIALS": json.dumps(key)}, tmp_path)
    assert gcs_token(in_env) == key
    key_file = tmp_path / "elsewhere.json"
    key_file.write_text(json.dumps(key))
    by_path = SecretSource({"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}, tmp_path)
    assert gcs_token(by_path) == str(key_file)
    assert gcs_token(SecretSource({}, tmp_path)) is None  # Google's default credentials
    source = secrets(tmp_path, **{"key.json": json.dumps(key)})
    assert gcs_token(source) == str(tmp_path / "key.json")


@pytest.mark.parametrize(
    ("env", "files", "fragment"),
    [
        ({"GOOGLE_APPLICATION_CREDENTIALS": '{"type": "nonsense"}'}, {}, "not a Google"),
        ({"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"}, {}, "cannot read"),
        ({}, {"key.json": "not json"}, "not a Google"),
    ],
)
def test_bad_gcs_keys_are_auth_failures(
    tmp_path: Path, env: dict[str, str], files: dict[str, str], fragment: str
) -> None:
    with pytest.raises(SourceAuthFailed, match=fragment):
        gcs_token(secrets(tmp_path, env, **files))


def test_bad_gcs_key_fails_the_fetch_as_auth(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"type": "nonsense"}')
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(key), "TRT_CONVERT_SECRET_DIR": str(tmp_path)}
    with pytest.raises(SourceAuthFailed):
        storage_options("gs", env)


def test_bearer_token_sources(tmp_path: Path) -> None:
    assert bearer_token(SecretSource({"TRT_CONVERT_HTTP_BEARER_TOKEN": "env"}, tmp_path)) == "env"
    assert bearer_token(secrets(tmp_path, token="from-file\n")) == "from-file"
    both = SecretSource({"TRT_CONVERT_HTTP_BEARER_TOKEN": "env"}, tmp_path)
    assert bearer_token(both) == "env"  # the environment wins


@pytest.mark.tf
def test_s3_source_with_keys_only_in_the_mounted_secret(
    models: Any, s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: Any
) -> None:
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    client.create_bucket(Bucket="mounted")
    archive = shutil.make_archive(str(tmp_path / "model"), "gztar", models.classifier)
    client.upload_file(archive, "mounted", "model.tar.gz")
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "AWS_ACCESS_KEY_ID").write_text("testing")
    (secret_dir / "AWS_SECRET_ACCESS_KEY").write_text("testing")
    (secret_dir / "AWS_ENDPOINT_URL").write_text(s3_env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("TRT_CONVERT_SECRET_DIR", str(secret_dir))
    result = run_cli(
        "--source", "s3://mounted/model.tar.gz", "--model-name", "m", "--precision", "NATIVE"
    )
    assert result.code == 0, result.report
    assert (result.output_base / "m" / "1" / "saved_model.pb").is_file()
