"""Validate a manifest against the TRTModel CRD the way the API server would, without one.

:func:`validate_against_crd` runs, on a copy of the manifest:

1. strict field validation: fields the structural schema does not declare (outside
   ``x-kubernetes-preserve-unknown-fields``) are reported like ``kubectl apply``'s default
   ``--validate=strict`` reports them (``unknown field "spec.serving.bogus"``);
2. pruning of ``null`` fields, then defaulting from the schema's ``default`` values (the
   API server does both before it validates, so CEL rules see defaulted objects);
3. the OpenAPI v3 schema, checked with ``jsonschema`` (Draft 4 semantics, as OpenAPI 3.0)
   after translating the Kubernetes extensions (``x-kubernetes-int-or-string``,
   ``x-kubernetes-list-type``);
4. every ``x-kubernetes-validations`` CEL rule, evaluated with cel-python with ``self`` bound
   to the object the rule is attached to, unless a blocking schema error came first (as in
   the API server's custom resource strategy: then no rule is evaluated).

Each problem is one string that starts with the field's path (``spec.serving.replicas: ...``).
It is a test helper: other areas may import it (``from api.crd_validation import ...`` with
``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev extra
from celpy import adapter
from celpy.evaluation import CELEvalError

from trtserve_operator.api.crd import build_crd

Schema = dict[str, Any]


@functools.cache
def crd_schema() -> Schema:
    """openAPIV3Schema of the (only) version of the generated CRD."""
    schema: Schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def format_path(parts: Iterator[Any] | list[Any] | tuple[Any, ...]) -> str:
    """``["spec", "conversion", "inputs", 0]`` -> ``spec.conversion.inputs[0]``."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


# --- 1. unknown fields ------------------------------------------------------------------------


def unknown_fields(value: Any, schema: Schema, path: tuple[Any, ...] = ()) -> list[str]:
    """Fields the schema does not declare, as strict field validation reports them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    errors: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        if path == ("metadata",):
            return []  # ObjectMeta: validated by the API server itself, not the CRD schema.
        for key, child in value.items():
            if properties is not None and key in properties:
                errors += unknown_fields(child, properties[key], (*path, key))
            elif isinstance(additional, dict):
                errors += unknown_fields(child, additional, (*path, key))
            elif properties is not None or not path:
                errors.append(f'{format_path((*path, key))}: unknown field "{key}"')
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += unknown_fields(item, schema["items"], (*path, index))
    return errors


# --- 2. null pruning and defaulting -----------------------------------------------------------


def prune_nulls(value: Any, schema: Schema) -> Any:
    """Drop ``field: null`` of non-nullable fields, in place, as the API server does before
    defaulting (so a null field gets its default)."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in list(value):
            child_schema = properties.get(key)
            if child_schema is None and isinstance(additional, dict):
                child_schema = additional
            if child_schema is None:
                continue
            if value[key] is None and not child_schema.get("nullable"):
                del value[key]
            else:
                prune_nulls(value[key], child_schema)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            prune_nulls(item, schema["items"])
    return value


def apply_defaults(value: Any, schema: Schema) -> Any:
    """Fill in missing fields from the schema's defaults, depth first, in place."""
    if isinstance(value, dict):
        for key, child_schema in (schema.get("properties") or {}).items():
            if key not in value and "default" in child_schema:
                value[key] = copy.deepcopy(child_schema["default"])
            if key in value:
                apply_defaults(value[key], child_schema)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for child in value.values():
                apply_defaults(child, additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


# --- 3. OpenAPI schema ------------------------------------------------------------------------

_KUBERNETES_ONLY = {
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "default",
    "format",
}


def to_json_schema(schema: Schema) -> Schema:
    """A Kubernetes structural schema as a plain (Draft 4) JSON Schema."""
    out: Schema = {k: v for k, v in schema.items() if k not in _KUBERNETES_ONLY}
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if "properties" in schema:
        out["properties"] = {k: to_json_schema(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        out["items"] = to_json_schema(schema["items"])
        if schema.get("x-kubernetes-list-type") == "set":
            out["uniqueItems"] = True
    return out


def _schema_error_line(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{format_path([*path, missing])}: Required value"
    if error.validator == "enum":
        allowed = ", ".join(f'"{item}"' for item in error.validator_value)
        return (
            f'{format_path(path)}: Unsupported value: "{error.instance}": '
            f"supported values: {allowed}"
        )
    return f"{format_path(path)}: Invalid value: {error.instance!r}: {error.message}"


def list_map_duplicates(value: Any, schema: Schema, path: tuple[Any, ...] = ()) -> list[str]:
    """Duplicate keys in ``x-kubernetes-list-type: map`` lists (e.g. status.conditions)."""
    errors: list[str] = []
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        keys = schema.get("x-kubernetes-list-map-keys")
        if schema.get("x-kubernetes-list-type") == "map" and keys:
            seen: set[tuple[Any, ...]] = set()
            for index, item in enumerate(value):
                key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
                if key in seen:
                    errors.append(f"{format_path((*path, index))}: Duplicate value: {key!r}")
                seen.add(key)
        for index, item in enumerate(value):
            errors += list_map_duplicates(item, schema["items"], (*path, index))
    elif isinstance(value, dict):
        for key, child in value.items():
            child_schema = (schema.get("properties") or {}).get(key)
            if child_schema is None and isinstance(schema.get("additionalProperties"), dict):
                child_schema = schema["additionalProperties"]
            if child_schema is not None:
                errors += list_map_duplicates(child, child_schema, (*path, key))
    return errors


# --- 4. CEL -----------------------------------------------------------------------------------


@functools.cache
def _cel_program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def evaluate_rule(rule: str, value: Any) -> bool:
    """Evaluate one CEL rule with ``self`` bound to ``value``; errors propagate."""
    result = _cel_program(rule).evaluate({"self": adapter.json_to_cel(value)})
    if isinstance(result, CELEvalError):
        raise result
    return bool(result)


def cel_errors(value: Any, schema: Schema, path: tuple[Any, ...] = ()) -> list[str]:
    """Violations of every CEL rule on ``value`` and below, API-server style."""
    here = format_path(path)
    errors: list[str] = []
    for entry in schema.get("x-kubernetes-validations", []):
        try:
            ok = evaluate_rule(entry["rule"], value)
        except Exception as error:  # a rule that cannot evaluate is a bug in the rule
            errors.append(f"{here or '<root>'}: CEL evaluation error in {entry['rule']!r}: {error}")
            continue
        if not ok:
            field = here + entry.get("fieldPath", "") if here else entry.get("fieldPath", "")
            errors.append(f"{field.lstrip('.') or '<root>'}: {entry['message']}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            child_schema = properties.get(key)
            if child_schema is None and isinstance(additional, dict):
                child_schema = additional
            if child_schema is not None:
                errors += cel_errors(child, child_schema, (*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += cel_errors(item, schema["items"], (*path, index))
    return errors


BLOCKING = {"type", "required", "enum", "maxLength", "maxItems", "maxProperties"}
"""Schema violations after which the API server evaluates no CEL rule at all
(TypeInvalid, Required, NotSupported, TooLong, TooMany in its terms)."""

RULES_NOT_CHECKED = (
    "<root>: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
"""What the API server adds when a blocking schema error kept it from evaluating CEL."""


def validate_against_crd(manifest: dict[str, Any]) -> list[str]:
    """Every problem the API server would report for ``manifest``; ``[]`` when it is valid.

    ``manifest`` is a whole TRTModel object (apiVersion, kind, metadata, spec[, status]).
    Unknown fields fail the request on their own (strict decoding comes before validation).
    After a blocking schema error (wrong type, missing field, unsupported enum value, too
    long or too many) no CEL rule is evaluated and :data:`RULES_NOT_CHECKED` is added.
    """
    schema = crd_schema()
    unknown = unknown_fields(manifest, schema)
    if unknown:
        return unknown
    obj = apply_defaults(prune_nulls(copy.deepcopy(manifest), schema), schema)
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "name" not in metadata and "generateName" in metadata:
        metadata["name"] = f"{metadata['generateName']}x7k2q"  # the API server names it first
    validator = jsonschema.Draft4Validator(to_json_schema(schema))
    schema_errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    errors = [_schema_error_line(error) for error in schema_errors]
    errors += list_map_duplicates(obj, schema)
    if any(error.validator in BLOCKING for error in schema_errors):
        return [*errors, RULES_NOT_CHECKED]
    return errors + cel_errors(obj, schema)
