"""The chart's values: helm lint, a closed schema that rejects typos, and every value documented
(in values.yaml and in docs/admin.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART_DIR,
    REPO_ROOT,
    REQUIRED_VALUES,
    VALUE_SETS,
    VALUES_PATH,
    helm_template,
    run_tool,
    value_docs,
    values_args,
    values_table,
)

SCHEMA_PATH = CHART_DIR / "values.schema.json"
ADMIN_DOC = REPO_ROOT / "docs" / "admin.md"
TABLE_START = "<!-- values-table:start -->"
TABLE_END = "<!-- values-table:end -->"


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(helm: Path, value_set: str) -> None:
    result = run_tool(helm, "lint", "--strict", CHART_DIR, *values_args(value_set))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        # A misspelt nested key: additionalProperties false on every object.
        ("watch.namespace={a}", "additional properties 'namespace' not allowed"),
        # A misspelt top-level key.
        ("imagee.tag=1.0.0", "additional properties 'imagee' not allowed"),
        ("image.tag=latest", "/image/tag"),
        ("log.format=xml", "/log/format"),
        ("log.level=verbose", "/log/level"),
        ("health.port=0", "/health/port"),
        ("watch.namespaces={Team_A}", "/watch/namespaces/0"),
        ("resources.limits.gpu=1", "additional properties 'gpu' not allowed"),
        ("podMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("podMonitor.interval=soon", "/podMonitor/interval"),
        ("cache.uri=https://host/cache", "/cache/uri"),
        ("cache.uri=pvc://Bad_Claim/x", "/cache/uri"),
        ("cache.secretName=Bad_Name", "/cache/secretName"),
        ("cache.size=1", "additional properties 'size' not allowed"),
    ],
)
def test_bad_values_are_rejected_at_install(helm: Path, flag: str, expected: str) -> None:
    result = helm_template(helm, "--set", flag)
    assert result.returncode != 0, f"--set {flag} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert expected in result.stderr


def test_a_typo_in_a_values_file_is_rejected(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "typo.yaml"
    values.write_text(yaml.safe_dump({"metrics": {"enabled": True, "prot": 9100}}))
    result = helm_template(helm, "--values", values)
    assert result.returncode != 0
    assert "additional properties 'prot' not allowed" in result.stderr


def object_schemas(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema of the values schema with its dotted path."""
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from object_schemas(sub, f"{path}.{key}" if path else key)
    if isinstance(schema.get("items"), dict):
        yield from object_schemas(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from object_schemas(schema["additionalProperties"], f"{path}.*")


# Kubernetes scheduling terms inside `affinity` are passed through as they are; their
# fields are checked against the Kubernetes schema by the render tests and the API server.
OPAQUE_KUBERNETES_TERMS = re.compile(r"^affinity\.\w+\.\w+(\.nodeSelectorTerms)?\[\]$")


def test_schema_is_closed_everywhere() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    open_objects = [
        path
        for path, sub in object_schemas(schema)
        if "object" in sub.get("type", ())
        and "additionalProperties" not in sub
        and not OPAQUE_KUBERNETES_TERMS.match(path)
    ]
    assert open_objects == []


def test_defaults_satisfy_the_schema_once_the_repositories_are_set() -> None:
    """The image repositories are the only values without a usable default."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text())
    defaults = yaml.safe_load(VALUES_PATH.read_text())
    errors = sorted(
        "/".join(str(part) for part in error.absolute_path)
        for error in jsonschema.Draft7Validator(schema).iter_errors(defaults)
    )
    assert errors == ["converterImage/repository"] * 2 + ["image/repository"] * 2
    required = yaml.safe_load(REQUIRED_VALUES.read_text())
    for key, value in required.items():
        defaults[key].update(value)
    jsonschema.validate(defaults, schema)


def leaf_paths(values: object, prefix: str = "") -> Iterator[str]:
    if isinstance(values, dict) and values:
        for key, sub in values.items():
            yield from leaf_paths(sub, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_commented() -> None:
    docs = {doc.path: doc for doc in value_docs()}
    leaves = set(leaf_paths(yaml.safe_load(VALUES_PATH.read_text())))
    assert leaves <= docs.keys()
    undocumented = sorted(
        path for path in leaves if not (docs[path].comment or docs[path].parent_documented)
    )
    assert undocumented == []


def test_admin_values_table_is_generated_from_values_yaml() -> None:
    """docs/admin.md holds exactly the table generated from the `# --` comments."""
    doc = ADMIN_DOC.read_text()
    start, end = doc.index(TABLE_START) + len(TABLE_START), doc.index(TABLE_END)
    assert doc[start:end].strip() == values_table().strip(), (
        "docs/admin.md's values table is stale: replace it with the output of "
        "`.venv/bin/python tests/chart/chart_support.py`"
    )
    assert values_table().count("\n| `") > 20
