"""The OpenAI Chat Completions request body: messages, tools, output schema and reasoning.

``build_body`` is shared by ``OpenAIProvider``, ``AzureOpenAIProvider`` and
``OpenAISDKProvider``, so the three send the same JSON. Decisions worth knowing:

* Tools go as ``{"type": "function", "function": {name, description, parameters}}``, without
  ``strict`` (the API's default, and not every compatible server knows the key).
  ``tool_choice`` is ``"auto"``/``"required"``/``"none"`` or
  ``{"type": "function", "function": {"name": ...}}``. ``tool_choice`` and
  ``parallel_tool_calls`` are sent only with tools (the API refuses them alone), and
  ``parallel_tool_calls: false`` not at all to a model whose capabilities say it makes no
  parallel calls (o3-mini and o4-mini refuse the parameter itself).
* ``response_format`` goes as ``{"type": "json_schema", "json_schema": {name, schema,
  strict}}``. ``strict`` is true only when the caller did not turn it off *and* the schema
  already qualifies for OpenAI's strict mode (``strict_ready``: every object has
  ``additionalProperties: false`` and lists all its properties in ``required``), else false:
  the schema is sent as given, never rewritten, so the reply is checked against the schema
  the caller wrote. (A pydantic model qualifies when it forbids extra fields and every
  field is required.)
* ``reasoning={"effort": ...}`` becomes ``reasoning_effort``. Chat Completions has no token
  budget: a reasoning request with only ``budget_tokens`` raises CapabilityError before
  anything is sent (with both, the effort is sent and the budget left to vendors that take
  one). Call arguments (tools, response_format, reasoning) win over ``extra_params`` of the
  same wire name.
* Messages: an assistant turn's text becomes ``content`` (null when it only called tools)
  and its tool calls ``tool_calls`` with the arguments as JSON text; each ``ToolResult`` of a
  tool message becomes one ``{"role": "tool", "tool_call_id", "content"}`` message
  (``is_error`` has no field in this API: the content says it). Images become
  ``image_url`` parts: an https or data URL as given, bytes as a base64 data URL, with
  ``detail`` when set. Every ``ReasoningPart`` is dropped: Chat Completions takes no
  reasoning as input (from OpenAI or from any other vendor), and text made of another
  vendor's thinking would be a different conversation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import CapabilityError, InvalidRequestError
from ..types import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolResult,
)

__all__ = ["build_body", "encode_messages", "encode_tools", "strict_ready"]

#: Body keys the runtime owns; ``params`` may not set them.
_PROTECTED_PARAMS = ("model", "messages", "stream")


def build_body(request: ChatRequest, *, stream: bool, stream_usage: bool) -> dict[str, Any]:
    """The Chat Completions JSON body for ``request``.

    ``params`` are merged last (they may set anything but model, messages and stream, and
    what the call's tools, response_format and reasoning set).
    """
    params = request.params
    clash = [key for key in _PROTECTED_PARAMS if key in params] if params else None
    if clash:
        raise InvalidRequestError(
            f"parameter {clash[0]!r} cannot be passed as an extra parameter: the runtime sets "
            "it (choose the model by its id, pass messages as messages, and call stream() "
            "to stream)"
        )
    body: dict[str, Any] = {
        "model": request.model,
        "messages": encode_messages(request.messages),
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body[request.max_tokens_param] = request.max_tokens
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    if request.tools or request.response_format is not None or request.reasoning is not None:
        portable = _portable(request)
        body.update({k: v for k, v in params.items() if k not in portable})
        body.update(portable)
    elif params:
        body.update(params)
    return body


def _portable(request: ChatRequest) -> dict[str, Any]:
    """The body keys of the call's tools, tool choice, response format and reasoning."""
    out: dict[str, Any] = {}
    if request.tools:
        out["tools"] = encode_tools(request.tools)
        choice = request.tool_choice
        if choice in ("auto", "required", "none"):
            out["tool_choice"] = choice
        elif choice is not None:
            out["tool_choice"] = {"type": "function", "function": {"name": choice}}
        parallel = request.parallel_tool_calls
        # A model declared without parallel calls already makes one call per turn, and
        # some (o3-mini, o4-mini) refuse the parameter itself, even as false.
        if parallel is not None and not (
            parallel is False and request.capabilities.get("parallel_tool_calls") is False
        ):
            out["parallel_tool_calls"] = parallel
    schema = request.response_format
    if schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": schema.name,
                "schema": dict(schema.schema),
                "strict": schema.strict and strict_ready(schema.schema),
            },
        }
    reasoning = request.reasoning
    if reasoning is not None:
        if reasoning.effort is None:
            raise CapabilityError(
                f"model {request.model!r}: OpenAI Chat Completions controls reasoning by an "
                "effort level, not a token budget; pass reasoning={'effort': 'low'|'medium'|"
                "'high'} (or both, for a fallback chain that also reaches budget vendors)",
                capability="reasoning",
                model=request.model,
            )
        out["reasoning_effort"] = reasoning.effort
    return out


def encode_tools(tools: Iterable[Tool]) -> list[dict[str, Any]]:
    """``{"type": "function", "function": {name, description, parameters}}`` per tool."""
    out = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.schema
        out.append({"type": "function", "function": function})
    return out


#: Keywords whose value is a mapping of names to subschemas / a subschema or list of them.
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMAS = ("items", "prefixItems", "anyOf", "allOf", "oneOf", "not", "additionalProperties")


def strict_ready(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict mode takes ``schema`` as it is: an object at the root, and
    every object closed (``additionalProperties: false``) with all its properties required.
    """
    return schema.get("type") == "object" and _closed(schema, 0)


def _closed(node: Any, depth: int) -> bool:
    if depth > 100:  # deeper than any vendor accepts; not worth walking
        return False
    if isinstance(node, list):
        return all(_closed(item, depth + 1) for item in node)
    if not isinstance(node, Mapping):
        return True  # true/false schemas
    kind = node.get("type")
    properties = node.get("properties")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or properties:
        required = node.get("required", [])
        if node.get("additionalProperties") is not False or not isinstance(required, list):
            return False
        names = properties if isinstance(properties, Mapping) else {}
        if not all(isinstance(r, str) for r in required) or set(required) != set(names):
            return False
    for key in _SUBSCHEMA_MAPS:
        value = node.get(key)
        if isinstance(value, Mapping) and not _closed(list(value.values()), depth + 1):
            return False
    return all(_closed(node[key], depth + 1) for key in _SUBSCHEMAS if key in node)


def encode_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Messages in Chat Completions' shape (see the module docstring for the rules)."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.role
        if role in ("system", "user") and message.is_text:  # the common message
            out.append({"role": role, "content": message.content})
            continue
        where = f"messages[{index}]"
        if message.role == "tool":
            out.extend(_tool_result(part, where) for part in message.parts)
        elif message.role == "assistant":
            out.append(_assistant(message, where))
        elif message.is_text:
            out.append({"role": message.role, "content": message.content})
        else:
            content = [_content_part(part, message.role, where) for part in message.parts]
            out.append({"role": message.role, "content": content})
    return out


def _refuse(part: Part, role: str, where: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: a {role} message cannot carry a {part.type} part")


def _tool_result(part: Part, where: str) -> dict[str, Any]:
    if not isinstance(part, ToolResult):
        raise _refuse(part, "tool", where)
    return {"role": "tool", "tool_call_id": part.tool_call_id, "content": part.content}


def _assistant(message: Message, where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            arguments = json.dumps(dict(part.arguments), ensure_ascii=False, separators=(",", ":"))
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": arguments},
                }
            )
        elif not isinstance(part, ReasoningPart):  # reasoning: dropped, see the docstring
            raise _refuse(part, "assistant", where)
    text = "".join(texts)
    encoded: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        encoded["tool_calls"] = calls
    return encoded


def _content_part(part: Part, role: str, where: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart) and role == "user":
        url = part.url if part.url is not None else f"data:{part.media_type};base64,{part.base64}"
        image: dict[str, Any] = {"url": url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    raise _refuse(part, role, where)
