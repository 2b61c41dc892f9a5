"""The generated part of ``docs/api.md``: field, rule and column tables from the CRD.

The tables are rendered from :func:`trtserve_operator.api.crd.build_crd` (itself built from
the models), between two marker lines of ``docs/api.md``; the prose around them is written
by hand. ``python -m trtserve_operator.api.reference docs/api.md`` rewrites the tables in
place; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trtserve_operator.api import corev1
from trtserve_operator.api.crd import build_crd

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m trtserve_operator.api.reference docs/api.md -->"
END = "<!-- END GENERATED REFERENCE -->"

Schema = dict[str, Any]

_BOUNDS = (
    ("minimum", "≥"),
    ("maximum", "≤"),
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("minProperties", "min entries"),
    ("maxProperties", "max entries"),
    ("pattern", "pattern"),
)


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, one line."""
    return " ".join(text.replace("|", "\\|").split())


def _type(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(node.get("type", ""))
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"[]{_type(node['items'])}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return kind


def core_type(node: Schema) -> str | None:
    """The embedded core/v1 type ``node`` (or its list item) is, if any: the reference
    links to Kubernetes' documentation instead of repeating its fields."""
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        node = node["items"]
    for name, schema in corev1.schemas().items():
        if "properties" in node and node["properties"] == schema["properties"]:
            return name
    return None


def _constraints(node: Schema) -> str:
    parts: list[str] = []
    embedded = core_type(node)
    if embedded:
        parts.append(
            f"core/v1 {embedded}: validated with the Kubernetes {corev1.KUBERNETES_VERSION} schema"
        )
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{value}`" for value in node["enum"]))
    for key, label in _BOUNDS:
        if key in node:
            shown = ">" if key == "minimum" and node.get("exclusiveMinimum") else label
            parts.append(f"{shown} `{node[key]}`")
    return "; ".join(parts)


def fields(schema: Schema, prefix: str = "") -> Iterator[tuple[str, Schema, bool]]:
    """(path, node, required) for every declared field, depth first."""
    required = set(schema.get("required", []))
    for name, node in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, node, name in required
        if core_type(node):
            continue
        child = node
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            child = node["items"]
            path += "[]"
        yield from fields(child, path)


def field_table(schema: Schema, prefix: str) -> list[str]:
    lines = [
        "| field | type | default | constraints | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, node, required in fields(schema, prefix):
        default = "required" if required else ""
        if "default" in node:
            default = f"`{json.dumps(node['default'])}`"
        lines.append(
            f"| `{path}` | {_type(node)} | {default} | {_cell(_constraints(node))} "
            f"| {_cell(node.get('description', ''))} |"
        )
    return lines


def _rules(schema: Schema, path: str) -> Iterator[tuple[str, dict[str, str]]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for name, node in (schema.get("properties") or {}).items():
        yield from _rules(node, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from _rules(schema["items"], f"{path}[]")


def rule_table(schema: Schema) -> list[str]:
    lines = ["| on | field | message | CEL |", "| --- | --- | --- | --- |"]
    for path, rule in _rules(schema, ""):
        where = path or "(root)"
        field = (path + rule.get("fieldPath", "")) if rule.get("fieldPath") else where
        lines.append(
            f"| `{where}` | `{field}` | {_cell(rule['message'])} | `{_cell(rule['rule'])}` |"
        )
    return lines


def column_table(columns: list[dict[str, Any]]) -> list[str]:
    lines = ["| column | JSONPath | shown |", "| --- | --- | --- |"]
    for column in columns:
        shown = "`-o wide`" if column.get("priority", 0) else "always"
        lines.append(f"| {column['name']} | `{_cell(column['jsonPath'])}` | {shown} |")
    return lines


def render_reference() -> str:
    """The generated tables, markers included."""
    version = build_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    sections = [
        BEGIN,
        "",
        "### Spec fields",
        "",
        *field_table(schema["properties"]["spec"], "spec"),
        "",
        "### Status fields",
        "",
        *field_table(schema["properties"]["status"], "status"),
        "",
        "### Validation rules (CEL)",
        "",
        *rule_table(schema),
        "",
        "### Printer columns",
        "",
        *column_table(version["additionalPrinterColumns"]),
        "",
        END,
    ]
    return "\n".join(sections)


def replace_reference(document: str) -> str:
    """``document`` with the text between the markers replaced by fresh tables."""
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + render_reference() + document[end:]


def main() -> None:
    path = Path(sys.argv[1])
    path.write_text(replace_reference(path.read_text()))


if __name__ == "__main__":
    main()
