"""The committed JSON Schemas: equal to the generated ones, documented, closed to unknown keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from runtime import loader
from runtime.loader import Kind

ROOT = Path(__file__).resolve().parents[2]
KINDS = [pytest.param("providers", id="providers"), pytest.param("models", id="models")]


def committed(kind: Kind) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (ROOT / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def subschemas(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping inside a schema, with a JSON-pointer-like location."""
    if isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            yield from subschemas(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from subschemas(value, f"{where}/{index}")


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_equals_the_generated_one(kind: Kind) -> None:
    path = ROOT / "schemas" / f"{kind}.schema.json"
    regenerate = "from runtime.loader import write_schemas; write_schemas('schemas')"
    assert path.read_text(encoding="utf-8") == loader.schema_text(kind), regenerate


def test_write_schemas_writes_both_files(tmp_path: Path) -> None:
    written = loader.write_schemas(tmp_path / "out")
    assert [p.name for p in written] == ["providers.schema.json", "models.schema.json"]
    for path in written:
        kind: Kind = "providers" if path.name.startswith("providers") else "models"
        assert path.read_text(encoding="utf-8") == loader.schema_text(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12(kind: Kind) -> None:
    schema = committed(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description(kind: Kind) -> None:
    missing = [
        f"{where}/properties/{name}"
        for where, schema in subschemas(committed(kind))
        if isinstance(schema.get("properties"), dict)
        for name, prop in schema["properties"].items()
        if not (isinstance(prop, dict) and str(prop.get("description", "")).strip())
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_object_with_properties_refuses_unknown_keys(kind: Kind) -> None:
    schema = committed(kind)
    objects = [where for where, sub in subschemas(schema) if "properties" in sub]
    open_objects = [
        where for where, sub in subschemas(schema) if "properties" in sub
        if sub.get("additionalProperties") is not False
    ]  # fmt: skip
    assert len(objects) >= 2
    assert open_objects == []
    entry = schema["$defs"]["entry"]
    assert entry["additionalProperties"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_bundled_yaml_validates_against_the_committed_schema(kind: Kind) -> None:
    """What an editor checks with the committed file: the bundled catalog has no error."""
    document = yaml.safe_load((ROOT / f"{kind}.yaml").read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(committed(kind)).iter_errors(document)]
    assert errors == []
