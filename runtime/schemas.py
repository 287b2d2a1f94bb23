"""The JSON Schemas of providers.yaml and models.yaml, and a failure told against them.

The schemas are generated from the pydantic models of ``runtime.config`` (the committed
``schemas/*.json`` are these, written by ``llm-runtime schema --write``). When a file fails
the loader's strict check, jsonschema (imported only then) validates it against them, as a
config author's editor does, and ``explain`` words each schema error for a person.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from .config import _DOTTED, _ENV_NAME, _NAME, models_file_schema, providers_file_schema
from .suggest import did_you_mean
from .yamlpos import Path

if TYPE_CHECKING:  # jsonschema is imported when a file needs explaining, not before
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError as SchemaError

__all__ = [
    "Found",
    "Kind",
    "describe",
    "explain",
    "file_schema",
    "hint",
    "schema_text",
    "validator",
    "write_schemas",
]

Kind = Literal["providers", "models"]

_PATTERN_HINTS = {
    _ENV_NAME: "is not an environment variable name (letters, digits and _, not starting "
    "with a digit)",
    _DOTTED: "is not a dotted import path like package.module.Class",
    _NAME: "is not a valid name (letters, digits and . _ : / @ + -, starting with a letter "
    "or digit)",
}
_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


# --------------------------------------------------------------------------- schemas


def file_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema (2020-12) of providers.yaml or models.yaml, generated from config."""
    return providers_file_schema() if kind == "providers" else models_file_schema()


def schema_text(kind: Kind) -> str:
    """``file_schema(kind)`` as the committed file holds it: indented JSON and a newline."""
    return json.dumps(file_schema(kind), indent=2) + "\n"


def write_schemas(directory: str | os.PathLike[str]) -> list[pathlib.Path]:
    """Write ``providers.schema.json`` and ``models.schema.json`` into ``directory``."""
    target = pathlib.Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in ("providers", "models"):
        path = target / f"{kind}.schema.json"
        path.write_text(schema_text(kind), encoding="utf-8")
        written.append(path)
    return written


@cache
def validator(kind: Kind) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(file_schema(kind))


# --------------------------------------------------------------------------- messages


def _show(value: Any) -> str:
    """A value as a config author wrote it: 'text', 3, true, null, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return repr(value)
    return "a mapping" if isinstance(value, dict) else "a list"


def describe(value: Any) -> str:
    """``a string ('hot')``, ``an integer (3)``, ``null``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return _show(value)
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{kind.get(type(value), type(value).__name__)} ({_show(value)})"


def _either(types: Iterable[str]) -> str:
    names = list(dict.fromkeys(_TYPE_NAMES.get(t, t) for t in types))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def hint(suggestion: str | None) -> str:
    return f" (did you mean {suggestion!r}?)" if suggestion else ""


Found = tuple[Path, str, bool]  # (path, message, point at the key rather than the value)


def explain(error: SchemaError) -> list[Found]:
    """One schema error as (path, message, at_key) rows written for a person."""
    path: Path = tuple(error.absolute_path)
    rule = error.validator
    limit: Any = error.validator_value
    value: Any = error.instance
    if rule in ("anyOf", "oneOf"):
        return _explain_choice(error, path)
    if rule == "additionalProperties" and isinstance(value, dict):
        known = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
        return [
            ((*path, key), f"unknown key {key!r}{hint(did_you_mean(key, known))}", True)
            for key in value
            if key not in known
        ]
    if rule == "required" and isinstance(value, dict):
        return [(path, f"missing required key {k!r}", True) for k in limit if k not in value]
    if rule == "type":
        return [
            (
                path,
                f"expected {_either([limit] if isinstance(limit, str) else limit)}, "
                f"got {describe(value)}",
                False,
            )
        ]
    if rule == "enum" and len(limit) == 1:
        return [(path, f"must be {_show(limit[0])}, got {_show(value)}", False)]
    if rule == "enum":
        return [(path, f"{_show(value)} is not one of {', '.join(map(_show, limit))}", False)]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if rule in bounds:
        return [(path, f"must be {bounds[str(rule)]} {_show(limit)}, got {_show(value)}", False)]
    if rule == "pattern":
        words = _PATTERN_HINTS.get(limit, f"does not match the pattern {limit}")
        if "propertyNames" in error.relative_schema_path:  # the key itself is misnamed
            return [((*path, value), f"{_show(value)} {words}", True)]
        field_name = str(path[-1]) if path else ""
        if field_name.endswith("api_key_env"):
            # The value may be the key itself, pasted in the wrong field: never echo it.
            return [
                (
                    path,
                    f"the value {words}: name the variable that holds the key here, "
                    "not the key itself",
                    False,
                )
            ]
        if limit == _ENV_NAME and not field_name.endswith("_env"):
            words = "is not a parameter name (letters, digits and _, not starting with a digit)"
        return [(path, f"{_show(value)} {words}", False)]
    return [(path, error.message, False)]


def _explain_choice(error: SchemaError, path: Path) -> list[Found]:
    """anyOf/oneOf (nullable fields): report the branch the value was meant for."""
    branches: dict[Any, list[SchemaError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def wrong_type(errors: list[SchemaError]) -> bool:
        return len(errors) == 1 and errors[0].validator == "type" and not errors[0].relative_path

    for errors in branches.values():
        if not wrong_type(errors):  # the value has this branch's type: its details matter
            return [found for sub in errors for found in explain(sub)]
    expected: list[str] = []
    for errors in branches.values():
        limit: Any = errors[0].validator_value
        expected.extend([limit] if isinstance(limit, str) else limit)
    if not expected:
        return [(path, error.message, False)]
    return [(path, f"expected {_either(expected)}, got {describe(error.instance)}", False)]
