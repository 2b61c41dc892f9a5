"""``trtserve-operator render`` at its edges: one-line errors, nothing printed on error,
stdin, ``| head``, ``--no-owner``, and ``make render`` printing YAML only."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from builder_inputs import REPO, SETTINGS

from trtserve_operator.cli import main, render

EXAMPLE = REPO / "examples" / "resnet50-fp16-s3.yaml"
VALID = (
    "apiVersion: trtserve.io/v1alpha1\nkind: TRTModel\nmetadata: {name: m}\n"
    "spec: {source: {uri: s3://b/m}}\n"
)


def run_render(source: str | Path, stdin: str = "", *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = render(
        source,
        "default",
        SETTINGS,
        out,
        err,
        stdin=io.StringIO(stdin),
        owner="--no-owner" not in extra,
    )
    return code, out.getvalue(), err.getvalue()


def one_line(text: str) -> str:
    assert text.endswith("\n")
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    return text.strip()


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = run_render(missing)
    assert (code, out) == (1, "")
    line = one_line(err)
    assert line.startswith("error: cannot read ")
    assert str(missing) in line
    assert "No such file or directory" in line


def test_missing_file_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(tmp_path / "nope.yaml")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    one_line(captured.err)


def test_stdin_with_dash() -> None:
    code, out, err = run_render("-", VALID)
    assert (code, err) == (0, "")
    kinds = {doc["kind"] for doc in yaml.safe_load_all(out)}
    assert kinds >= {"Deployment", "Service"}


def test_invalid_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: [unclosed\n")
    code, out, err = run_render(bad)
    assert (code, out) == (1, "")
    line = one_line(err)
    assert line.startswith(f"error: {bad}: invalid YAML")
    assert "line " in line


def test_a_file_without_a_trtmodel_is_an_error(tmp_path: Path) -> None:
    other = tmp_path / "cm.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n- a list\n")
    code, out, err = run_render(other)
    assert (code, out) == (1, "")
    line = one_line(err)
    assert line.startswith(f"error: no TRTModel in {other}")
    assert "trtserve.io/v1alpha1" in line


def test_an_unsupported_serving_image_prints_no_manifest() -> None:
    manifest = VALID.replace(
        "{source: {uri: s3://b/m}}",
        "{source: {uri: s3://b/m}, serving: {image: 'tensorflow/serving:2.18.0-gpu'}}",
    )
    code, out, err = run_render("-", manifest)
    assert code == 1
    assert out == ""
    assert "UnsupportedServingImage" in err
    assert "Traceback" not in err


def test_one_bad_model_prints_nothing_for_the_others() -> None:
    """Exit code non-zero means stdout is empty: `render | kubectl apply -f -` applies
    all or nothing."""
    bad = VALID.replace("name: m", "name: bad").replace("uri: s3://b/m", "uri: ftp://b/m")
    code, out, err = run_render("-", VALID + "---\n" + bad)
    assert (code, out) == (1, "")
    assert "TRTModel bad: spec.source.uri" in err


def test_no_owner_output_is_applicable() -> None:
    code, out, err = run_render(EXAMPLE, "", "--no-owner")
    assert (code, err) == (0, "")
    documents = list(yaml.safe_load_all(out))
    assert documents
    for document in documents:
        assert "ownerReferences" not in document["metadata"]
        kubernetes_validate.validate(document, "1.36.0", strict=True)


def test_a_trtmodel_without_uid_renders_applicable_children_without_owner() -> None:
    """A manifest from a file has no uid, and `uid: ""` makes the API server refuse the
    child after the ConfigMap went in (issue 19, item 9): no ownerReferences then."""
    code, out, err = run_render(EXAMPLE)
    assert code == 0
    documents = list(yaml.safe_load_all(out))
    assert documents
    assert all("ownerReferences" not in d["metadata"] for d in documents)
    assert err == ""


def test_a_trtmodel_read_back_from_a_cluster_owns_its_children(tmp_path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d.get("kind") == "TRTModel"]
    documents[0]["metadata"]["uid"] = "6f9b2c1e-0000-4000-8000-000000000001"
    read_back = tmp_path / "read-back.yaml"
    read_back.write_text(yaml.safe_dump_all(documents))
    code, out, _ = run_render(read_back)
    assert code == 0
    rendered = list(yaml.safe_load_all(out))
    # The namespace's shared monitoring ConfigMap is owned by no model (docs/operator.md).
    shared = [d for d in rendered if d["metadata"]["name"] == "trtserve-monitoring"]
    assert shared
    assert all("ownerReferences" not in d["metadata"] for d in shared)
    owners = [d["metadata"]["ownerReferences"] for d in rendered if d not in shared]
    assert owners
    assert all(o[0]["uid"] == "6f9b2c1e-0000-4000-8000-000000000001" for o in owners)
    code, out, _ = run_render(read_back, "", "--no-owner")
    assert all("ownerReferences" not in d["metadata"] for d in yaml.safe_load_all(out))


def test_no_owner_flag_is_parsed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(EXAMPLE), "--no-owner"]) == 0
    assert "ownerReferences" not in capsys.readouterr().out


def _cli_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "converter")]),
    }


def test_a_closed_pipe_ends_quietly() -> None:
    """`render | head` must not print a BrokenPipeError traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trtserve_operator.cli", "render", "-f", str(EXAMPLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_cli_env(),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # like `head` exiting before the output is written
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr
    assert stderr == ""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("setup_needed", [False, True], ids=["venv-ready", "venv-stale"])
def test_make_render_prints_only_yaml(tmp_path: Path, setup_needed: bool) -> None:
    """`make render > x.yaml` is a valid manifest file even when make sets up the venv."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    cli = venv / "bin" / "trtserve-operator"
    cli.write_text(f'#!/bin/sh\nexec {sys.executable} -m trtserve_operator.cli "$@"\n')
    uv = tmp_path / "uv"  # the installer the setup runs: its output must go to stderr
    uv.write_text("#!/bin/sh\necho uv-output-is-not-yaml: [\n")
    for script in (cli, uv):
        script.chmod(0o755)
    installed = venv / ".installed"
    if not setup_needed:
        installed.touch()
    result = subprocess.run(
        ["make", "-C", str(REPO), "render", f"OPERATOR_VENV={venv}", f"UV={uv}", "PYTHON=true"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        check=True,
        timeout=120,
    )
    documents = list(yaml.safe_load_all(result.stdout))
    assert {doc["kind"] for doc in documents} >= {"Deployment", "Service"}
    assert installed.exists()
    if not setup_needed:  # no make chatter ("Nothing to be done") either (issue 19, item 9)
        assert result.stderr == ""


def test_render_without_a_converter_image_says_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """trtserve publishes no images: no default name nobody owns (issue 19, item 5)."""
    monkeypatch.delenv("TRTSERVE_CONVERTER_IMAGE")
    assert main(["render", "-f", str(EXAMPLE)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ConverterImageMissing" in captured.err
    assert "TRTSERVE_CONVERTER_IMAGE" in captured.err
    assert "spec.converterImage" in captured.err


def test_version_and_the_settings_in_run_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("trtserve-operator 0.1.0")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "TRTSERVE_CONVERTER_IMAGE (default none)" in text
    assert "TRTSERVE_NAMESPACES" in text
