"""The Gemini ``generateContent`` request body: contents, parameters, tools, schema, thinking.

Messages
    System messages become the top-level ``systemInstruction``; user and assistant turns
    become ``contents`` with role ``user`` / ``model``. A text-only message is one text part
    (its text parts joined). Other parts, in their order:

    * an image -> ``inlineData`` (bytes, or a ``data:`` URL) or ``fileData`` (an
      ``https://`` URL, public or signed, a Files API URI, or a ``gs://`` object registered
      with the API: what Gemini fetches itself). Any other URL (``http://``, ``file:``...)
      is refused: download it and pass the bytes. ``mimeType`` is the part's media_type,
      else guessed from the URL's file name (as the google-genai SDK does; Files API URIs
      need none); ``detail`` has no Gemini equivalent and is ignored.
    * a tool call -> ``functionCall {name, args, id}``; ``id`` is sent unless it is one this
      module's reader made up because Gemini gave none (``GENERATED_ID_PREFIX``).
    * reasoning of origin ``gemini``: a thought summary -> ``{"text", "thought": true}``
      with its ``thoughtSignature``; a signature alone goes back on the part after it (the
      part that carried it), or as an empty text part when nothing follows. Reasoning of
      any other origin is dropped: Gemini cannot verify another vendor's signatures.
    * tool results -> ``functionResponse {name, response, id}`` parts, a run of tool
      messages in ONE user content (Gemini wants every response of a step together).
      Gemini matches results by function name: the result's ``name``, else the name of
      the earlier tool call with its id (InvalidRequestError when neither exists).
      ``response`` is ``{"output": text}``, or ``{"error": text}`` for an error result,
      the keys the API reference names.

    For models that take a thinking level (``capabilities.reasoning: effort``: Gemini 3 and
    later, which refuse a function call without a signature in the current turn), a model
    turn whose function calls carry no signature (a history from another vendor or model)
    gets Google's documented ``SIGNATURE_SENTINEL`` on its first call.

Portable features
    ``tools`` -> one ``{"functionDeclarations": [...]}`` tool (after any ``tools`` given as a
    parameter, as the SDK orders them), each with ``parametersJsonSchema``: the JSON Schema
    as given (Gemini takes JSON Schema there; no conversion to the OpenAPI subset of
    ``parameters``). A name Gemini cannot take (it must start with a letter or ``_``) is an
    InvalidRequestError. ``tool_choice`` -> ``toolConfig.functionCallingConfig.mode``
    (auto AUTO, required ANY, none NONE; a tool name: ANY with ``allowedFunctionNames``).
    ``parallel_tool_calls=False`` is refused: Gemini has no switch for it.
    ``response_format`` -> ``responseMimeType: application/json`` + ``responseJsonSchema``.
    ``reasoning`` -> ``thinkingConfig`` with ``includeThoughts`` (so thought summaries come
    back): ``budget_tokens`` as ``thinkingBudget``; an effort as ``thinkingLevel`` on
    models declared ``reasoning: effort``, else as the budget Google's OpenAI compatibility
    layer uses for it (``EFFORT_BUDGETS``). Thinking counts against ``maxOutputTokens``: a
    budget at or above it raises ``maxOutputTokens`` to budget + the caller's limit, so
    the answer keeps its room.

Parameters
    ``maxOutputTokens`` comes from ``request.max_tokens`` (whatever ``max_tokens_param``
    says, since Gemini has one name for it) and ``temperature`` from the request. Every other
    parameter is placed by this rule:

    1. A known generation parameter in snake_case (``top_p``, ``top_k``, ``stop_sequences``,
       ``candidate_count``, ``seed``, ``response_mime_type``, ``thinking_config``, ...; see
       ``GENERATION_FIELDS``) goes into ``generationConfig`` under its camelCase name;
       ``stop`` is an alias of ``stopSequences`` (a single string becomes a one-item list).
    2. A parameter already named as a ``generationConfig`` field in camelCase (``topP``,
       ``stopSequences``, ``thinkingConfig``, ...) goes there unchanged.
    3. A ``generationConfig`` (or ``generation_config``) mapping is merged into it, its keys
       translated by rules 1-2 and other keys kept as given.
    4. Anything else goes to the top level of the body: ``safety_settings``, ``tool_config``
       and ``cached_content`` under their camelCase names, other names unchanged (``tools``,
       ``toolConfig``, ``cachedContent``, ``labels``...). A ``safetySettings`` parameter
       replaces the provider's ``safety_settings`` option for that call.

    ``contents`` and ``systemInstruction`` come from the messages only: a parameter with
    either name, or two sources that land on the same field (``top_p`` and ``topP``,
    ``stop`` and ``stop_sequences``, ``temperature`` in params while the request has one,
    ``response_mime_type`` with ``response_format``, ``tool_config`` with ``tool_choice``),
    raise ``InvalidRequestError`` rather than one silently winning.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidRequestError
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

__all__ = [
    "EFFORT_BUDGETS",
    "GENERATED_ID_PREFIX",
    "GENERATION_FIELDS",
    "SIGNATURE_SENTINEL",
    "build_body",
]

#: snake_case parameter -> its ``generationConfig`` field (camelCase).
GENERATION_FIELDS: Mapping[str, str] = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "candidate_count": "candidateCount",
    "max_output_tokens": "maxOutputTokens",
    "stop_sequences": "stopSequences",
    "stop": "stopSequences",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
    "response_mime_type": "responseMimeType",
    "response_schema": "responseSchema",
    "response_json_schema": "responseJsonSchema",
    "response_modalities": "responseModalities",
    "response_logprobs": "responseLogprobs",
    "logprobs": "logprobs",
    "thinking_config": "thinkingConfig",
    "speech_config": "speechConfig",
    "image_config": "imageConfig",
    "media_resolution": "mediaResolution",
    "enable_enhanced_civic_answers": "enableEnhancedCivicAnswers",
}
_GENERATION_CAMEL = frozenset(GENERATION_FIELDS.values())
_GENERATION_CONFIG_PARAMS = frozenset(("generationConfig", "generation_config"))
_TOP_LEVEL_ALIASES: Mapping[str, str] = {
    "safety_settings": "safetySettings",
    "tool_config": "toolConfig",
    "cached_content": "cachedContent",
}
_RESERVED = frozenset(("contents", "systemInstruction", "system_instruction"))

#: Reasoning effort -> thinkingBudget, as Google's OpenAI-compatible endpoint maps it.
EFFORT_BUDGETS: Mapping[str, int] = {"low": 1024, "medium": 8192, "high": 24576}
#: Google's documented thoughtSignature for function calls Gemini did not make.
SIGNATURE_SENTINEL = "skip_thought_signature_validator"
#: Starts the ids the reader makes for Gemini's function calls that came without one.
GENERATED_ID_PREFIX = "gcall_"

_MODES: Mapping[str, str] = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_FETCHED_SCHEMES = frozenset(("https", "gs"))
#: Files API URIs carry no file name; the API knows their type (the SDK's own pattern).
_FILES_API = re.compile(
    r"https://(?:[a-z0-9-]+-)?generativelanguage(?:\.sandbox)?\.googleapis\.com/"
    r"(?:v1|v1beta|v1alpha|v1main)/files/[a-z0-9-]+(?::download(?:\?alt=media)?)?$"
)


class _Fields:
    """Fields of one object set from named sources; a second source for a field is refused."""

    def __init__(self, prefix: str = "") -> None:
        self.values: dict[str, Any] = {}
        self._origin: dict[str, str] = {}
        self._prefix = prefix

    def put(self, field: str, value: Any, source: str) -> None:
        if field in self._origin:
            raise InvalidRequestError(
                f"parameters {self._origin[field]!r} and {source!r} both set "
                f"{self._prefix}{field}; give only one"
            )
        if field == "stopSequences" and isinstance(value, str):
            value = [value]
        self._origin[field] = source
        self.values[field] = value


def _generation_field(name: str) -> str | None:
    """The generationConfig field a parameter name stands for, or None."""
    if name in GENERATION_FIELDS:
        return GENERATION_FIELDS[name]
    return name if name in _GENERATION_CAMEL else None


# --------------------------------------------------------------------------- messages


def _image(part: ImagePart, where: str) -> dict[str, Any]:
    try:
        inline = part.inline()
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    if inline is not None:
        media_type, data = inline
        encoded = base64.b64encode(data).decode("ascii")
        return {"inlineData": {"mimeType": media_type, "data": encoded}}
    url = part.url or ""
    scheme = urlsplit(url).scheme.lower()
    # The URL is not quoted in errors: a signed URL carries a credential.
    if scheme not in _FETCHED_SCHEMES:
        raise InvalidRequestError(
            f"{where}: Gemini fetches images only from https:// URLs (public or signed), "
            f"Files API URIs and registered gs:// objects, not from a {scheme or 'relative'} "
            "URL: download the image and pass its bytes (data= and media_type=)"
        )
    guessed = part.media_type or mimetypes.guess_type(urlsplit(url).path)[0]
    file_data: dict[str, str] = {"fileUri": url}
    if guessed:
        file_data["mimeType"] = guessed
    elif not _FILES_API.match(url):
        raise InvalidRequestError(
            f"{where}: the image URL's file name does not tell its type, which Gemini needs: "
            "give media_type (e.g. image/png)"
        )
    return {"fileData": file_data}


def _call(part: ToolCall) -> dict[str, Any]:
    call: dict[str, Any] = {"name": part.name, "args": dict(part.arguments)}
    if part.id and not part.id.startswith(GENERATED_ID_PREFIX):
        call["id"] = part.id
    return {"functionCall": call}


def _model_parts(parts: Iterable[Part], sentinel: bool) -> list[dict[str, Any]]:
    """An assistant turn's parts; Gemini's signatures back on the parts that carried them."""
    out: list[dict[str, Any]] = []
    pending: str | None = None  # a signature for the text or call after it

    def flush() -> None:  # a signature that came on an empty text part
        nonlocal pending
        if pending:
            out.append({"text": "", "thoughtSignature": pending})
        pending = None

    for part in parts:
        if isinstance(part, ReasoningPart):
            if part.origin != "gemini":
                continue  # another vendor's reasoning: Gemini cannot take it
            flush()
            if part.text:
                thought: dict[str, Any] = {"text": part.text, "thought": True}
                if part.signature:
                    thought["thoughtSignature"] = part.signature
                out.append(thought)
            else:
                pending = part.signature
            continue
        if isinstance(part, ToolCall):
            item = _call(part)
        elif isinstance(part, TextPart):
            item = {"text": part.text}
        else:
            raise InvalidRequestError(f"an assistant message cannot carry a {part.type} part")
        if pending:
            item["thoughtSignature"] = pending
            pending = None
        out.append(item)
    flush()
    calls = [p for p in out if "functionCall" in p]
    if sentinel and calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = SIGNATURE_SENTINEL
    return out


def _response(result: ToolResult, names: Mapping[str, str], where: str) -> dict[str, Any]:
    name = result.name or names.get(result.tool_call_id)
    if not name:
        raise InvalidRequestError(
            f"{where}: the tool result for call {result.tool_call_id!r} names no tool and no "
            "earlier assistant message made that call; Gemini matches results by function "
            "name: keep the assistant turn with the call, or give the result's name"
        )
    response = {"error": result.content} if result.is_error else {"output": result.content}
    out: dict[str, Any] = {"name": name, "response": response}
    if result.tool_call_id in names and not result.tool_call_id.startswith(GENERATED_ID_PREFIX):
        out["id"] = result.tool_call_id
    return {"functionResponse": out}


def _user_part(part: Part, where: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart):
        return _image(part, where)
    raise InvalidRequestError(f"{where}: a user message cannot carry a {part.type} part")


def _contents(
    messages: Iterable[Message], sentinel: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents) of the messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, from the turns so far
    responses: list[dict[str, Any]] | None = None  # the open run of function responses
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role == "system":
            system.append({"text": message.content})
            continue
        if message.role == "tool":
            if responses is None:
                responses = []
                contents.append({"role": "user", "parts": responses})
            responses.extend(
                _response(p, names, where) for p in message.parts if isinstance(p, ToolResult)
            )
            continue
        responses = None
        if message.is_text:
            parts = [{"text": message.content}]
        elif message.role == "user":
            parts = [_user_part(p, f"{where}.content[{i}]") for i, p in enumerate(message.parts)]
        else:
            names.update((c.id, c.name) for c in message.tool_calls)
            parts = _model_parts(message.parts, sentinel)
        role = "model" if message.role == "assistant" else "user"
        if parts:  # a turn of another vendor's reasoning only has nothing to send
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message besides system messages"
        )
    return system, contents


# --------------------------------------------------------------------------- features


def _declaration(tool: Tool) -> dict[str, Any]:
    if not (tool.name[0].isascii() and (tool.name[0].isalpha() or tool.name[0] == "_")):
        raise InvalidRequestError(
            f"tool {tool.name!r}: Gemini function names must start with a letter or an "
            "underscore; rename the tool"
        )
    schema = dict(tool.parameters)
    schema.setdefault("type", "object")
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parametersJsonSchema"] = schema
    return out


def _tools(request: ChatRequest, top: _Fields) -> None:
    """Function declarations and the function-calling mode of the request."""
    if request.parallel_tool_calls is False:
        raise InvalidRequestError(
            "Gemini cannot be limited to one function call per turn: leave "
            "parallel_tool_calls unset and answer every call it makes"
        )
    if request.tools:
        functions = {"functionDeclarations": [_declaration(t) for t in request.tools]}
        given = top.values.get("tools")
        if given is None:
            top.put("tools", [functions], "tools")
        elif isinstance(given, list):  # e.g. [{"googleSearch": {}}] from extra_params
            top.values["tools"] = [*given, functions]
        else:
            top.put("tools", [functions], "tools")  # refused: names both sources
    choice = request.tool_choice
    if choice is None or not request.tools:
        return
    config: dict[str, Any] = {"mode": _MODES.get(choice, "ANY")}
    if choice not in _MODES:
        config["allowedFunctionNames"] = [choice]
    top.put("toolConfig", {"functionCallingConfig": config}, "tool_choice")


def _thinking(request: ChatRequest, config: _Fields) -> None:
    """``reasoning`` as thinkingConfig (and room for the answer in maxOutputTokens)."""
    reasoning = request.reasoning
    if reasoning is None:
        return
    thinking: dict[str, Any] = {}
    budget = reasoning.budget_tokens
    if budget is None and reasoning.effort is not None:
        if request.capabilities.get("reasoning") == "effort":
            thinking["thinkingLevel"] = reasoning.effort.upper()
        else:
            budget = EFFORT_BUDGETS[reasoning.effort]
    if budget is not None:
        thinking["thinkingBudget"] = budget
    if budget != 0:
        thinking["includeThoughts"] = True
    config.put("thinkingConfig", thinking, "reasoning")
    limit = config.values.get("maxOutputTokens")
    if budget and isinstance(limit, int) and not isinstance(limit, bool) and budget >= limit:
        config.values["maxOutputTokens"] = budget + limit


def build_body(request: ChatRequest, *, safety_settings: list[Any] | None) -> dict[str, Any]:
    """The ``generateContent`` JSON body for ``request`` (see the module docstring)."""
    sentinel = request.capabilities.get("reasoning") == "effort"
    system, contents = _contents(request.messages, sentinel)
    config = _Fields("generationConfig.")
    if request.max_tokens is not None:
        config.put("maxOutputTokens", request.max_tokens, "max_tokens")
    if request.temperature is not None:
        config.put("temperature", request.temperature, "temperature")
    top = _Fields()
    for name, value in request.params.items():
        if name in _RESERVED:
            raise InvalidRequestError(
                f"parameter {name!r} cannot be set: Gemini's contents and systemInstruction "
                "are built from the messages"
            )
        if name in _GENERATION_CONFIG_PARAMS:
            if not isinstance(value, Mapping):
                raise InvalidRequestError(f"parameter {name!r} must be a mapping")
            for key, item in value.items():
                config.put(_generation_field(key) or key, item, f"{name}.{key}")
            continue
        field = _generation_field(name)
        if field is not None:
            config.put(field, value, name)
        else:
            top.put(_TOP_LEVEL_ALIASES.get(name, name), value, name)
    if request.response_format is not None:
        config.put("responseMimeType", "application/json", "response_format")
        config.put("responseJsonSchema", dict(request.response_format.schema), "response_format")
    _thinking(request, config)
    _tools(request, top)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if config.values:
        body["generationConfig"] = config.values
    if safety_settings is not None:
        body["safetySettings"] = list(safety_settings)
    body.update(top.values)
    return body
