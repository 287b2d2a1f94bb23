"""Each vendor's request schema, from its own published types, strict enough to fail.

A request body the runtime sent is checked here against what the vendor documents, not
against our encoder:

* OpenAI Chat Completions: the openai SDK's request TypedDicts
  (``completion_create_params.CompletionCreateParams{Non,}Streaming``, generated from
  OpenAI's OpenAPI spec).
* Anthropic Messages: the anthropic SDK's ``message_create_params.MessageCreateParams*``
  (generated from Anthropic's spec).
* Gemini ``generateContent``: the REST ``GenerateContentRequest`` (``contents``,
  ``systemInstruction``, ``generationConfig``, ``tools``, ``toolConfig``,
  ``safetySettings``, ``cachedContent``) over google-genai's pydantic types (camelCase
  aliases, ``extra="forbid"``, bytes as base64).

What the SDK types cannot say is checked as the vendors document it (each rule names its
source in a comment): unknown keys are refused everywhere (the SDK TypedDicts are
``total=False`` and would let them through, so a subclass gets ``extra="forbid"``, which
pydantic applies to every nested TypedDict too), pydantic's lazy ``Iterable`` validators are
consumed so nested items are really checked, tool results must answer the calls of the turn
before them, Gemini parts hold one kind of data, and so on. Every check raises
``pydantic.ValidationError`` or ``AssertionError`` with the path of the problem.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from anthropic.types import message_create_params as anthropic_params
from google.genai import types as genai
from openai.types.chat import completion_create_params as openai_params
from pydantic import BaseModel, ConfigDict, TypeAdapter, with_config
from pydantic.alias_generators import to_camel

__all__ = ["check_anthropic", "check_gemini", "check_openai", "check_request"]

_STRICT = ConfigDict(extra="forbid", strict=True)


def _consume(value: Any) -> Any:
    """``value`` with every lazy iterator pydantic made for an ``Iterable`` read to its end.

    The SDK TypedDicts type lists as ``Iterable[...]``, which pydantic validates lazily: the
    items are checked only when iterated, so a bad item would pass unseen without this.
    """
    if isinstance(value, BaseModel):
        # A union arm that is a response model (the anthropic SDK's MessageParam takes its
        # ContentBlock models too) allows extra keys: refuse them here, as the API does.
        extra = value.model_extra or {}
        assert not extra, f"{type(value).__name__}: unknown keys {sorted(extra)}"
        return {name: _consume(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {k: _consume(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [_consume(v) for v in value]
    return value


# The SDKs' TypedDicts, closed to unknown keys (a subclass: the SDK's own classes untouched).
class _OpenAIPlain(openai_params.CompletionCreateParamsNonStreaming):
    pass


class _OpenAIStream(openai_params.CompletionCreateParamsStreaming):
    pass


class _AnthropicPlain(anthropic_params.MessageCreateParamsNonStreaming):
    pass


class _AnthropicStream(anthropic_params.MessageCreateParamsStreaming):
    pass


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(with_config(_STRICT)(cls))


def _validated(cls: type, body: Mapping[str, Any]) -> dict[str, Any]:
    # A round trip through JSON: what the server received, not Python objects.
    out = _consume(_adapter(cls).validate_python(json.loads(json.dumps(body))))
    assert isinstance(out, dict)
    return out


# --------------------------------------------------------------------------- OpenAI


def check_openai(body: Mapping[str, Any]) -> None:
    """A Chat Completions body: the SDK's types, and tool messages answering their calls."""
    _validated(_OpenAIStream if body.get("stream") else _OpenAIPlain, body)
    # The function-calling guide's rule (and the API's 400 "messages with role 'tool' must be
    # a response to a preceding message with 'tool_calls'"): an assistant message's calls
    # are answered by the tool messages right after it, one per call id, nothing else.
    messages = body["messages"]
    open_calls: set[str] | None = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message["role"] == "tool":
            assert open_calls is not None, f"{where}: a tool message after no tool calls"
            call_id = message["tool_call_id"]
            assert call_id in open_calls, f"{where}: tool_call_id {call_id!r} answers no call"
            open_calls.discard(call_id)
            continue
        assert not open_calls, f"{where}: calls {sorted(open_calls or ())} were not answered"
        open_calls = None
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [call["id"] for call in message["tool_calls"]]
            assert len(set(ids)) == len(ids), f"{where}: tool call ids repeat: {ids}"
            open_calls = set(ids)
            for call in message["tool_calls"]:
                arguments = json.loads(call["function"]["arguments"])  # JSON text of an object
                assert isinstance(arguments, dict), f"{where}: arguments are not an object"


# --------------------------------------------------------------------------- Anthropic

#: The pattern the Messages API holds tool_use ids to (its 400 quotes it).
_ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_THINKING = ("thinking", "redacted_thinking")


def check_anthropic(body: Mapping[str, Any]) -> None:
    """A Messages body: the SDK's types, tool_use/tool_result pairing and thinking rules."""
    _validated(_AnthropicStream if body.get("stream") else _AnthropicPlain, body)
    messages = body["messages"]
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        content = message["content"]
        blocks = content if isinstance(content, list) else []
        calls = [b["id"] for b in blocks if b["type"] == "tool_use"]
        for call_id in calls:
            assert _ANTHROPIC_ID.match(call_id), f"{where}: tool_use id {call_id!r}"
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        if results:
            # The tool-use guide: results answer the tool_use blocks of the assistant turn
            # right before, and come first in the user turn's content.
            assert message["role"] == "user", f"{where}: tool_result outside a user turn"
            previous = messages[index - 1] if index else {"content": []}
            previous_blocks = previous["content"] if isinstance(previous["content"], list) else []
            asked = [b["id"] for b in previous_blocks if b["type"] == "tool_use"]
            assert sorted(results) == sorted(asked), f"{where}: results {results} for {asked}"
            kinds = [b["type"] for b in blocks]
            assert kinds[: len(results)] == ["tool_result"] * len(results), (
                f"{where}: tool_result blocks must come first, got {kinds}"
            )
        if calls:
            following = messages[index + 1] if index + 1 < len(messages) else None
            if following is not None:  # the last turn may be the one being continued
                answered = following["content"] if isinstance(following["content"], list) else []
                got = [b.get("tool_use_id") for b in answered if b["type"] == "tool_result"]
                assert sorted(got) == sorted(calls), f"{where}: calls {calls} answered by {got}"
    thinking = body.get("thinking")
    if thinking and thinking["type"] == "enabled":
        # The extended-thinking guide: budget_tokens at least 1024 and below max_tokens; with
        # tools, the last assistant turn that called tools starts with its thinking block.
        budget = thinking["budget_tokens"]
        assert 1024 <= budget < body["max_tokens"], f"thinking budget {budget} vs max_tokens"
        last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
        blocks = last["content"] if last is not None else None
        if isinstance(blocks, list) and any(b["type"] == "tool_use" for b in blocks):
            assert blocks[0]["type"] in _THINKING, (
                "thinking is on, but the last assistant turn's tool calls carry no thinking"
            )


# --------------------------------------------------------------------------- Gemini


class GeminiRequest(BaseModel):
    """The REST ``GenerateContentRequest`` body (the model is in the URL path)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", val_json_bytes="base64")

    contents: list[genai.Content]
    system_instruction: genai.Content | None = None
    generation_config: genai.GenerationConfig | None = None
    tools: list[genai.Tool] | None = None
    tool_config: genai.ToolConfig | None = None
    safety_settings: list[genai.SafetySetting] | None = None
    cached_content: str | None = None


#: The REST reference's ``Part``: "Union field data can be only one of the following".
_PART_DATA = (
    "text",
    "inline_data",
    "function_call",
    "function_response",
    "file_data",
    "executable_code",
    "code_execution_result",
)


def check_gemini(body: Mapping[str, Any]) -> None:
    """A generateContent body: google-genai's types and the REST reference's rules."""
    with warnings.catch_warnings():
        # google-genai only warns about an enum value it does not know; the API refuses it.
        warnings.simplefilter("error")
        request = GeminiRequest.model_validate_json(json.dumps(body), by_alias=True)
    contents = request.contents
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        # Content.role: "Must be either 'user' or 'model'"; an empty parts list is refused.
        assert content.role in ("user", "model"), f"{where}.role: {content.role!r}"
        assert content.parts, f"{where}.parts: contents.parts must not be empty"
        for i, part in enumerate(content.parts):
            data = [name for name in _PART_DATA if getattr(part, name) is not None]
            assert len(data) == 1, f"{where}.parts[{i}]: one kind of data per part, got {data}"
            # FunctionCall.name, FunctionResponse.name and .response are Required.
            if part.function_call is not None:
                assert part.function_call.name, f"{where}.parts[{i}].functionCall.name"
            if part.function_response is not None:
                response = part.function_response
                assert response.name, f"{where}.parts[{i}].functionResponse.name"
                assert response.response is not None, f"{where}.parts[{i}].functionResponse"
    # The API's 400: "the number of function response parts is equal to the number of function
    # call parts of the function call turn" -- the next turn answers every call, by name.
    for index, content in enumerate(contents):
        assert content.parts is not None
        calls = [p.function_call for p in content.parts if p.function_call is not None]
        if not calls:
            continue
        assert content.role == "model", f"contents[{index}]: function calls outside a model turn"
        if index + 1 == len(contents):
            continue
        following = contents[index + 1].parts or []
        answers = [p.function_response for p in following if p.function_response is not None]
        assert Counter(c.name for c in calls) == Counter(a.name for a in answers if a), (
            f"contents[{index + 1}]: responses {[a.name for a in answers if a]} for calls "
            f"{[c.name for c in calls]}"
        )
        ids = {c.id for c in calls if c.id}
        for answer in answers:
            assert answer is not None
            assert answer.id is None or answer.id in ids, f"response id {answer.id!r} unknown"


def check_request(vendor: str, body: Mapping[str, Any]) -> None:
    """The check for ``vendor`` ("openai", "anthropic" or "gemini")."""
    {"openai": check_openai, "anthropic": check_anthropic, "gemini": check_gemini}[vendor](body)
