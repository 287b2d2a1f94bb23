"""The JSON body of one Anthropic Messages call: turns, tools, thinking and output format.

``build_body`` turns a ``ChatRequest`` into the body ``POST /v1/messages`` takes. The rules
it follows (each tested in ``tests/wire/test_anthropic_tools.py``):

- Text-only turns keep the plain ``"content": "text"`` form; any other turn is a list of
  blocks. System messages at the start become the top-level ``system`` string.
- Tool calls are ``tool_use`` blocks, tool results ``tool_result`` blocks in a user turn;
  consecutive tool messages become one user turn. Ids keep only ``[A-Za-z0-9_-]`` (what the
  API accepts; others become ``_``, the same on both sides, so calls and results still
  pair up).
- Images: bytes and ``data:`` URLs as ``base64`` sources, ``https:`` URLs as ``url``
  sources; other URLs and media types other than jpeg/png/gif/webp are refused.
- Reasoning: our own (``origin == "anthropic"``) thinking goes back verbatim, with its
  signature, where it was in the assistant turn; ``redacted_thinking`` likewise. Reasoning
  from another protocol, or thinking that lost its signature, is dropped: the API cannot
  verify it and would reject it.
- ``reasoning`` becomes ``thinking: {type: enabled, budget_tokens}``; an effort is the
  budget in ``EFFORT_BUDGETS``; a budget below the API's minimum (1024) is raised to it and
  0 sends no thinking. When ``max_tokens`` is not above the budget it becomes budget +
  ``max_tokens``, so the answer keeps the room the call asked for. Thinking refuses a
  temperature other than 1, ``top_k``, ``top_p`` below 0.95 and a forced tool (the API's
  rules). It is left out, with a warning, when the last assistant turn called tools without
  a thinking block of ours (a history from another vendor): the API rejects that pair.
- Structured output: ``output_config.format`` (the API's JSON outputs) when the model's
  ``capabilities.structured_output`` is ``native``, with the schema made strict as the
  official SDK does (``strict_schema``); otherwise a forced tool named after the schema,
  whose input the reply decoder turns into the answer's text.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidRequestError
from ..types import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    ToolResult,
)

__all__ = [
    "EFFORT_BUDGETS",
    "MIN_THINKING_BUDGET",
    "PROTOCOL",
    "build_body",
    "output_tool",
    "strict_schema",
    "thinking_budget",
]

log = logging.getLogger("runtime")

#: The name our ``ReasoningPart``s carry as ``origin``.
PROTOCOL = "anthropic"
#: The thinking budget each reasoning effort asks for (low is the API's minimum).
EFFORT_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024
#: Image types the API takes as base64.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

#: Body keys the provider sets itself; ``params`` may not replace them.
_RESERVED = frozenset({"model", "messages", "system", "stream", "max_tokens"})
_BAD_ID = re.compile(r"[^A-Za-z0-9_-]")


def output_tool(request: ChatRequest) -> str | None:
    """The forced tool whose input is the answer, when structured output goes that way."""
    schema = request.response_format
    if schema is None or request.capabilities.get("structured_output") == "native":
        return None
    return schema.name


def thinking_budget(request: ChatRequest) -> int | None:
    """The thinking budget ``request.reasoning`` asks for (None: no thinking)."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    budget = reasoning.budget_tokens
    if budget is None:
        budget = EFFORT_BUDGETS[reasoning.effort or "medium"]
    return max(budget, MIN_THINKING_BUDGET) if budget else None


# --------------------------------------------------------------------------- messages


def _id(value: str) -> str:
    return _BAD_ID.sub("_", value) or "call"


def _image(part: ImagePart, where: str) -> dict[str, Any]:
    try:
        inline = part.inline()
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    if inline is not None:
        media_type, data = inline
        if media_type not in IMAGE_TYPES:
            raise InvalidRequestError(
                f"{where}: Anthropic takes jpeg, png, gif or webp images, not {media_type!r}"
            )
        source: dict[str, Any] = {
            "type": "base64",
            "media_type": media_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
    elif part.url is not None and part.url.startswith("https:"):
        source = {"type": "url", "url": part.url}
    else:
        raise InvalidRequestError(
            f"{where}: Anthropic takes an image by https: URL or as data (bytes or a data: URL)"
        )
    return {"type": "image", "source": source}


def _block(part: Any, where: str) -> dict[str, Any] | None:
    """One part as a content block (None: dropped, see the module docstring)."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ImagePart):
        return _image(part, where)
    if isinstance(part, ToolCall):
        return {
            "type": "tool_use",
            "id": _id(part.id),
            "name": part.name,
            "input": dict(part.arguments),
        }
    if isinstance(part, ToolResult):
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": _id(part.tool_call_id),
            "content": part.content,
        }
        if part.is_error:
            result["is_error"] = True
        return result
    if isinstance(part, ReasoningPart) and part.origin == PROTOCOL:
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    return None


def _turns(request: ChatRequest) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    previous: Message | None = None
    for index, message in enumerate(request.messages):
        if message.role == "system":
            if turns:
                raise InvalidRequestError(
                    f"messages[{index}]: a system message after the conversation started; "
                    "the Anthropic Messages API takes system text only at the start (it "
                    "becomes the top-level 'system')"
                )
            system.append(message.content)
            continue
        role = "user" if message.role == "tool" else message.role
        if message.is_text:
            turns.append({"role": role, "content": message.content})
        else:
            blocks = [
                _block(p, f"messages[{index}].content[{i}]") for i, p in enumerate(message.parts)
            ]
            content = [b for b in blocks if b is not None]
            if not content:
                continue  # nothing this API can take (another vendor's reasoning only)
            if message.role == "tool" and previous is not None and previous.role == "tool":
                turns[-1]["content"].extend(content)  # consecutive results: one user turn
            else:
                turns.append({"role": role, "content": content})
        previous = message
    if not turns:
        raise InvalidRequestError(
            "messages: the Anthropic Messages API needs at least one user or assistant "
            "message besides the system prompt"
        )
    return system, turns


# --------------------------------------------------------------------------- tools


def _tools(request: ChatRequest, out: str | None) -> list[dict[str, Any]]:
    tools = []
    for tool in request.tools:
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        entry["input_schema"] = tool.schema
        tools.append(entry)
    if out is not None:
        assert request.response_format is not None
        if any(t.name == out for t in request.tools):
            raise InvalidRequestError(
                f"response_format: its name {out!r} is also a tool's; the Anthropic provider "
                "answers through a tool of that name (rename the schema or the tool)"
            )
        tools.append(
            {
                "name": out,
                "description": "Give the final answer as this tool's input.",
                "input_schema": dict(request.response_format.schema),
            }
        )
    return tools


def _tool_choice(request: ChatRequest, out: str | None) -> dict[str, Any] | None:
    choice = request.tool_choice
    if out is not None:  # the answer is a tool call: some tool must be called
        if choice in (None, "auto", "required") and request.tools:
            choice = "required"
        elif choice in (None, "auto", "required", "none"):
            choice = out
    mapped: dict[str, Any] | None
    if choice is None:
        mapped = {"type": "auto"} if request.parallel_tool_calls is False else None
    elif choice in ("auto", "none"):
        mapped = {"type": choice}
    elif choice == "required":
        mapped = {"type": "any"}
    else:
        mapped = {"type": "tool", "name": choice}
    if mapped is not None and request.parallel_tool_calls is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    return mapped


# --------------------------------------------------------------------------- thinking


def _thinking_refusal(request: ChatRequest, forced: bool) -> str | None:
    temperature = request.temperature
    if temperature is None:
        temperature = request.params.get("temperature")
    if temperature is not None and temperature != 1:
        return f"temperature {temperature!r} (thinking takes only 1 or none; leave it unset)"
    if request.params.get("top_k") is not None:
        return "top_k (remove it)"
    top_p = request.params.get("top_p")
    if isinstance(top_p, int | float) and top_p < 0.95:
        return f"top_p {top_p!r} (thinking takes 0.95 to 1)"
    if forced:
        return (
            "a forced tool (tool_choice 'required' or a tool name, or response_format "
            "through a tool; use tool_choice 'auto', or capabilities.structured_output: "
            "native for a model that has it)"
        )
    return None


def _last_call_lacks_thinking(turns: list[dict[str, Any]]) -> bool:
    assistant = next((t for t in reversed(turns) if t["role"] == "assistant"), None)
    content = assistant["content"] if assistant is not None else None
    if not isinstance(content, list) or not any(b["type"] == "tool_use" for b in content):
        return False
    return content[0]["type"] not in ("thinking", "redacted_thinking")


def _thinking(
    request: ChatRequest, body: dict[str, Any], turns: list[dict[str, Any]]
) -> dict[str, Any] | None:
    budget = thinking_budget(request)
    if budget is None:
        return None
    choice = body.get("tool_choice") or {}
    problem = _thinking_refusal(request, choice.get("type") in ("any", "tool"))
    if problem is not None:
        raise InvalidRequestError(
            f"reasoning: Anthropic's extended thinking cannot be combined with {problem}"
        )
    if _last_call_lacks_thinking(turns):
        log.warning(
            "model %r: reasoning left out of this call: the last assistant turn called tools "
            "without an Anthropic thinking block (it came from another vendor), which the "
            "API rejects while thinking is on",
            request.model,
        )
        return None
    if body["max_tokens"] <= budget:
        body["max_tokens"] = budget + body["max_tokens"]
    return {"type": "enabled", "budget_tokens": budget}


# --------------------------------------------------------------------------- the body


def build_body(request: ChatRequest, *, stream: bool, default_max_tokens: int) -> dict[str, Any]:
    """The Messages JSON body for ``request``: one code path for sending and describing."""
    system, turns = _turns(request)
    max_tokens = request.max_tokens
    body: dict[str, Any] = {
        "model": request.model,
        "messages": turns,
        "max_tokens": default_max_tokens if max_tokens is None else max_tokens,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    out = output_tool(request)
    tools = _tools(request, out)
    if tools:
        body["tools"] = tools
        choice = _tool_choice(request, out)
        if choice is not None:
            body["tool_choice"] = choice
    thinking = _thinking(request, body, turns)
    if thinking is not None:
        body["thinking"] = thinking
    if request.response_format is not None and out is None:
        schema = strict_schema(dict(request.response_format.schema))
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    clash = sorted(k for k in request.params if k in _RESERVED or k in body)
    if clash:
        raise InvalidRequestError(
            f"parameter {clash[0]!r} may not be passed in params: the Anthropic provider "
            "sets it from the request (messages, max_tokens, temperature, stream, tools, "
            "reasoning, response_format)"
        )
    body.update(request.params)
    if stream:
        body["stream"] = True
    return body


# --------------------------------------------------------------------------- schemas

#: String formats the API's JSON outputs support (others move into the description).
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


def _primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` in the subset the API's JSON outputs accept, by the official SDK's rules.

    Every object gets ``additionalProperties: false``; ``oneOf`` becomes ``anyOf``; keywords
    the API does not enforce (``minimum``, ``pattern``, ...) move into the description as
    ``{name: value}`` so the model still reads them. The runtime validates the reply
    against the caller's own schema, those keywords included.
    """
    rest = dict(schema)
    out: dict[str, Any] = {}
    defs = rest.pop("$defs", None)
    if isinstance(defs, Mapping):
        out["$defs"] = {name: strict_schema(sub) for name, sub in defs.items()}
    ref = rest.pop("$ref", None)
    if ref is not None:
        out["$ref"] = ref
        return out
    kind = rest.pop("type", None)
    any_of, one_of, all_of = (
        rest.pop("anyOf", None),
        rest.pop("oneOf", None),
        rest.pop("allOf", None),
    )
    enum = rest.get("enum")
    if isinstance(enum, list) and enum and all(_primitive(v) for v in enum):
        out["enum"] = list(rest.pop("enum"))
    if "const" in rest and _primitive(rest["const"]):
        out["const"] = rest.pop("const")
    literal = "enum" in out or "const" in out
    if literal:
        kind = None
    if isinstance(any_of, list) or isinstance(one_of, list):
        out["anyOf"] = [strict_schema(v) for v in (any_of if isinstance(any_of, list) else one_of)]
    elif isinstance(all_of, list):
        out["allOf"] = [strict_schema(v) for v in all_of]
    elif not literal:
        if kind is None:
            raise InvalidRequestError(
                "response_format: every part of the schema needs a 'type', 'anyOf', 'oneOf', "
                "'allOf', 'const' or 'enum' for Anthropic's JSON outputs"
            )
        out["type"] = kind
    for key in ("description", "title"):
        if key in rest:
            out[key] = rest.pop(key)
    if kind == "object":
        properties = rest.pop("properties", {})
        out["properties"] = {k: strict_schema(v) for k, v in properties.items()}
        rest.pop("additionalProperties", None)
        out["additionalProperties"] = False
        if "required" in rest:
            required = rest.pop("required")
            out["required"] = list(required) if isinstance(required, list) else required
    elif kind == "string" and rest.get("format") in _FORMATS:
        out["format"] = rest.pop("format")
    elif kind == "array":
        if "items" in rest:
            out["items"] = strict_schema(rest.pop("items"))
        if rest.get("minItems") in (0, 1):
            out["minItems"] = rest.pop("minItems")
    if rest:
        extra = "{" + ", ".join(f"{key}: {value}" for key, value in rest.items()) + "}"
        description = out.get("description")
        out["description"] = f"{description}\n\n{extra}" if description is not None else extra
    return out
