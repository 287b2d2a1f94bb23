"""What a call asks of the model beyond messages: tools, tool choice, output schema, reasoning.

The caller's shapes are accepted here once (``runtime.Tool``, plain dicts, OpenAI's
``{"type": "function", "function": {...}}``, a pydantic model class for parameters or for
the output), and every wire provider encodes the same normalised values for its vendor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "OutputSchema",
    "ReasoningConfig",
    "Tool",
    "ToolChoice",
    "normalize_reasoning",
    "normalize_response_format",
    "normalize_tool_choice",
    "normalize_tools",
]

#: "auto" | "required" | "none", or the name of the one tool the model must call.
ToolChoice = Literal["auto", "required", "none"] | str

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: its name, what it does, and a JSON Schema of its arguments.

    ``parameters`` may also be a pydantic model class; its JSON Schema is used.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | Any = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64 or not set(self.name) <= _NAME_CHARS:
            raise ValueError(
                f"tool name {self.name!r}: use 1-64 letters, digits, _ or - (every vendor "
                "accepts these)"
            )
        schema = _schema_of(self.parameters)
        if schema is None:
            raise ValueError(
                f"tool {self.name!r}: parameters must be a JSON Schema mapping or a pydantic "
                "model class"
            )
        if schema.get("type", "object") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must describe an object")
        object.__setattr__(self, "parameters", schema)

    @property
    def schema(self) -> dict[str, Any]:
        """The parameters as a JSON Schema dict."""
        return dict(self.parameters)


def _schema_of(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping):
        return dict(value)
    schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema):
        return dict(schema())
    return None


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """The JSON Schema a reply must follow (``response_format=``).

    ``model`` is the pydantic class it came from, when it came from one: the reply is then
    parsed into an instance of it.
    """

    name: str
    schema: Mapping[str, Any]
    strict: bool = True
    model: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ReasoningConfig:
    """How much the model may think: an ``effort`` level or a token ``budget_tokens``."""

    effort: Literal["low", "medium", "high"] | None = None
    budget_tokens: int | None = None


def normalize_tools(tools: Iterable[Any] | None) -> tuple[Tool, ...]:
    """Tools in any accepted shape -> ``Tool``; ValueError says which one and why."""
    if tools is None:
        return ()
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        raise ValueError(f"tools: expected a list of tools, got {type(tools).__name__}")
    out: list[Tool] = []
    for index, raw in enumerate(tools):
        where = f"tools[{index}]"
        try:
            out.append(_tool(raw))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"tools: the name {dupes[0]!r} is given twice")
    return tuple(out)


def _tool(raw: Any) -> Tool:
    if isinstance(raw, Tool):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError("expected a Tool or a mapping with name, description and parameters")
    if raw.get("type") == "function" and isinstance(raw.get("function"), Mapping):
        raw = raw["function"]  # OpenAI's shape
    unknown = set(raw) - {"name", "description", "parameters", "strict"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    parameters = raw.get("parameters", {"type": "object", "properties": {}})
    return Tool(name, description, parameters)


def normalize_tool_choice(choice: Any, tools: tuple[Tool, ...]) -> ToolChoice | None:
    """``tool_choice`` -> "auto" | "required" | "none" | a tool name (checked against tools)."""
    if choice is None:
        return None
    if isinstance(choice, Mapping):  # {"name": x}, or OpenAI's {"type": "function", ...}
        function = choice.get("function")
        inner: Mapping[str, Any] = function if isinstance(function, Mapping) else choice
        choice = inner.get("name")
        if not isinstance(choice, str):
            raise ValueError("tool_choice: a mapping must name the tool ({'name': ...})")
        named = True
    else:
        named = False
    if not isinstance(choice, str):
        raise ValueError("tool_choice: expected 'auto', 'required', 'none' or {'name': ...}")
    if choice == "any":
        choice = "required"  # Anthropic's word for it
    if not named and choice in ("auto", "required", "none"):
        if choice != "none" and not tools:
            raise ValueError(f"tool_choice {choice!r} needs tools")
        return str(choice)
    if choice not in {t.name for t in tools}:
        raise ValueError(f"tool_choice names {choice!r}, which is not one of the tools given")
    return str(choice)


def normalize_response_format(value: Any) -> OutputSchema | None:
    """A pydantic model class, a JSON Schema dict, or OpenAI's json_schema shape."""
    if value is None:
        return None
    if isinstance(value, OutputSchema):
        return value
    make_schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(make_schema):
        return OutputSchema(value.__name__, make_schema(), True, value)
    if isinstance(value, Mapping):
        if value.get("type") == "json_schema" and isinstance(value.get("json_schema"), Mapping):
            inner = value["json_schema"]  # OpenAI's response_format shape
            schema = inner.get("schema")
            if not isinstance(schema, Mapping):
                raise ValueError("response_format.json_schema.schema: expected a JSON Schema")
            name = inner.get("name") if isinstance(inner.get("name"), str) else "output"
            return OutputSchema(name, dict(schema), bool(inner.get("strict", True)))
        if value.get("type") == "json_object":
            raise ValueError(
                "response_format: give a JSON Schema (or a pydantic model class); "
                "{'type': 'json_object'} has no schema to validate the reply against"
            )
        title = value.get("title")
        name = title if isinstance(title, str) and title else "output"
        return OutputSchema(_name(name), dict(value), True)
    raise ValueError("response_format: expected a pydantic model class or a JSON Schema mapping")


def _name(text: str) -> str:
    cleaned = "".join(c if c in _NAME_CHARS else "_" for c in text)[:64]
    return cleaned or "output"


def normalize_reasoning(value: Any) -> ReasoningConfig | None:
    """``{"effort": "low|medium|high"}`` or ``{"budget_tokens": N}`` (or a level as text)."""
    if value is None:
        return None
    if isinstance(value, ReasoningConfig):
        return value
    if isinstance(value, str):
        value = {"effort": value}
    if not isinstance(value, Mapping):
        raise ValueError("reasoning: expected {'effort': ...} or {'budget_tokens': ...}")
    unknown = set(value) - {"effort", "budget_tokens"}
    if unknown:
        raise ValueError(f"reasoning: unknown keys {sorted(unknown)}")
    effort = value.get("effort")
    budget = value.get("budget_tokens")
    if effort is not None and effort not in ("low", "medium", "high"):
        raise ValueError(f"reasoning.effort: expected low, medium or high, got {effort!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise ValueError("reasoning.budget_tokens: expected a whole number of tokens")
    if budget is not None and budget < 0:
        raise ValueError("reasoning.budget_tokens: must be >= 0")
    if effort is None and budget is None:
        raise ValueError("reasoning: give effort or budget_tokens")
    return ReasoningConfig(effort, budget)
