"""Structured output: a reply's text checked against the call's ``response_format``.

A pydantic model class parses the reply into an instance of itself; a JSON Schema dict is
checked with jsonschema (imported then, not before). Anything that does not parse or
validate raises ``StructuredOutputError`` with the raw text and the problem.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import StructuredOutputError
from ..redact import snippet
from ..types import OutputSchema

__all__ = ["parse_output"]


def _fail(text: str, problem: str, model: str) -> StructuredOutputError:
    return StructuredOutputError(
        f"model {model!r}: the reply does not follow the response_format schema: {problem}; "
        f"the reply began: {snippet(text, (), 200)!r}",
        raw_text=text,
        problem=problem,
        model=model,
    )


def _strip_fence(text: str) -> str:
    """JSON inside a markdown code fence (some models add one) -> the JSON."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        first, _, rest = inner.partition("\n")
        return rest if first.strip().isalpha() or not first.strip() else inner
    return stripped


def parse_output(text: str, schema: OutputSchema, model: str) -> Any:
    """The validated value of ``text`` (a model instance, or the checked JSON value)."""
    try:
        value = json.loads(_strip_fence(text))
    except (ValueError, RecursionError) as exc:
        raise _fail(text, f"not JSON ({exc})", model) from None
    if schema.model is not None:
        from pydantic import ValidationError

        try:
            return schema.model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the value"
            problem = f"{where}: {first['msg']} ({exc.error_count()} problem(s))"
            raise _fail(text, problem, model) from None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        validator = Draft202012Validator(dict(schema.schema))
        error = next(iter(validator.iter_errors(value)), None)
    except (SchemaError, RecursionError) as exc:
        raise _fail(text, f"the schema itself is invalid: {exc}", model) from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the value"
        raise _fail(text, f"{where}: {error.message}", model)
    return value
