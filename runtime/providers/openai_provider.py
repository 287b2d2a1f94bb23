"""The OpenAI Chat Completions wire protocol, for OpenAI and every service that speaks it.

``OpenAIProvider`` POSTs ``{base_url}/chat/completions``. The protocol's pieces (request body,
the reply and chunk decoders, the error envelope) are module functions and classes that
``AzureOpenAIProvider`` and ``OpenAISDKProvider`` reuse, so the three send and read the same
JSON.

Decisions worth knowing:

* A ``refusal`` from the model (structured outputs, or ``delta.refusal`` in a stream) with
  no content raises ``ContentFilteredError`` (``vendor_code="refusal"``) carrying the
  refusal text: the model declined and produced no answer. A reply that stopped with
  ``finish_reason: content_filter`` is *not* raised: its (possibly partial) text is returned
  with ``finish_reason="content_filter"`` and the caller decides.
* ``insufficient_quota`` arrives as HTTP 429 and becomes a ``RateLimitError`` that is not
  retried (waiting does not refill a quota; a fallback may still answer).
* A stream must end with ``data: [DONE]``; one that ends without it raises
  ``ProviderConnectionError`` (a proxy or server cut it short). ``data: [DONE]`` that the
  end of the stream cuts off before its blank line still ends it normally, as in the SDK.
* ``error`` objects inside a 200 reply or a stream chunk are mapped as the HTTP status they
  stand for (``server_error`` as 5xx, ``rate_limit_exceeded`` as 429, others as 400), with
  ``status_code`` None since the HTTP status itself was 200.

The request body (tools, ``response_format``, images, reasoning, the message rules) is
``openai_body.build_body``; see that module for its decisions.

Replies: ``message.tool_calls`` and streamed ``delta.tool_calls`` become a ``ToolCallDelta``
per fragment as it arrives and a ``ToolCallDone`` for each call once it is complete: when
the next index starts, and for every open call at ``finish_reason`` (as the SDK's stream
accumulator decides). Arguments that are not a JSON object raise ToolArgumentsError with the
raw text. A call without an id (some compatible servers) gets ``call_{index}``.
``reasoning_content`` / ``reasoning`` text (DeepSeek, vLLM, OpenRouter, Groq) is read as
reasoning.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from ..errors import ContentFilteredError, MalformedResponseError
from ..types import (
    ChatRequest,
    FinishReason,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .openai_body import build_body
from .wire import Route, StreamDecoder, WireOptions, WireProvider

if TYPE_CHECKING:
    from ..sse import SSEEvent
    from ..status import ErrorInfo

__all__ = [
    "DEFAULT_BASE_URL",
    "FINISH_REASONS",
    "OpenAIOptions",
    "OpenAIProvider",
    "OpenAIStream",
    "build_body",
    "error_status",
    "openai_error_parser",
    "parse_usage",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the deprecated functions API
}

#: Error ``type``/``code`` values that stand for a server-side failure (mapped as 5xx).
_SERVER_KINDS = frozenset(
    {"server_error", "api_error", "internal_error", "internal_server_error", "service_unavailable"}
)
#: Error ``type``/``code`` values that stand for HTTP 429.
_RATE_KINDS = frozenset({"rate_limit_exceeded", "rate_limit_error", "insufficient_quota"})


class OpenAIOptions(WireOptions):
    """Options of an OpenAI-protocol provider (providers.yaml ``options:``)."""

    organization: str | None = Field(None, description="Sent as OpenAI-Organization.")
    project: str | None = Field(None, description="Sent as OpenAI-Project.")
    stream_usage: bool = Field(
        True,
        description="Ask for the final usage chunk (stream_options.include_usage); turn off "
        "for compatible servers that reject stream_options.",
    )


# --------------------------------------------------------------------------- request


# --------------------------------------------------------------------------- replies


def openai_error_parser(body: Any) -> ErrorInfo | None:
    """Read ``{"error": {"message", "type", "param", "code"}}``; other shapes as the default.

    The ``param`` is appended to the message when the message does not already name it,
    since it is often the one word that says what to fix.
    """
    # Imported here: the status mapping is needed when a call fails, not to build a provider.
    from ..status import ErrorInfo, default_error_parser

    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        err = body["error"]
        message = err.get("message")
        if isinstance(message, str) and message:
            param = err.get("param")
            if isinstance(param, str) and param and param not in message:
                message = f"{message} (param: {param})"
            code, kind = err.get("code"), err.get("type")
            return ErrorInfo(
                message,
                str(code) if code is not None else None,
                str(kind) if kind is not None else None,
            )
    return default_error_parser(body)


def error_status(payload: Mapping[str, Any]) -> tuple[int, Any]:
    """(HTTP status an ``error`` object inside a 200 stands for, its envelope)."""
    inner = payload.get("error")
    envelope = payload if isinstance(inner, Mapping) else {"error": inner}
    info = openai_error_parser(envelope)
    markers = {x.lower() for x in (info.code, info.type) if x} if info else set()
    raw_code = inner.get("code") if isinstance(inner, Mapping) else None
    if isinstance(raw_code, int) and 400 <= raw_code <= 599:  # vLLM puts the status here
        return raw_code, envelope
    if markers & _SERVER_KINDS:
        return 500, envelope
    if markers & _RATE_KINDS:
        return 429, envelope
    return 400, envelope


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: What a JSON object may be: a dict (checked first: exact and fast), or any Mapping.
_MAP = (dict, Mapping)


def parse_usage(raw: Any) -> Usage:
    """Our Usage from an OpenAI ``usage`` object (missing or odd fields become None)."""
    if not isinstance(raw, _MAP):
        return Usage()
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    # An exact int is the common value (JSON gives no other kind): kept without a call.
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    total = raw.get("total_tokens")
    return Usage(
        prompt if type(prompt) is int else _int_or_none(prompt),
        completion if type(completion) is int else _int_or_none(completion),
        total if type(total) is int else _int_or_none(total),
        _int_or_none(prompt_details.get("cached_tokens"))
        if prompt_details is not None and isinstance(prompt_details, _MAP)
        else None,
        _int_or_none(completion_details.get("reasoning_tokens"))
        if completion_details is not None and isinstance(completion_details, _MAP)
        else None,
    )


class _Reader:
    """What the reply and the stream decoders share: the provider, the request, the refusal."""

    def __init__(self, provider: WireProvider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request

    def malformed(self, what: str) -> MalformedResponseError:
        return self.provider.malformed(what, self.request)

    def text(self, content: Any, what: str) -> str:
        """Text of a ``content`` field: a string, null, or a list of text parts."""
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # some compatible servers send content parts
            parts = [p.get("text") for p in content if isinstance(p, Mapping)]
            if all(isinstance(p, str) for p in parts) and len(parts) == len(content):
                return "".join(p for p in parts if isinstance(p, str))
        raise self.malformed(f"{what}: content is {type(content).__name__}, not text")

    def refused(self, refusal: str) -> ContentFilteredError:
        return ContentFilteredError(
            self.provider.scrub(f"the model refused to answer: {refusal}"),
            provider=self.provider.provider_name or None,
            model=self.request.model,
            vendor_code="refusal",
        )

    def error(self, payload: Mapping[str, Any], where: str) -> Exception:
        status, envelope = error_status(payload)
        return self.provider.error_in_body(status, envelope, self.request, where)


def _reasoning(source: Mapping[str, Any]) -> str:
    """Reasoning text some compatible servers add beside ``content`` (never sent back)."""
    for key in ("reasoning_content", "reasoning"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass(slots=True)
class _OpenCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    done: bool = False


class _ToolCalls:
    """Tool calls by index as they arrive: a delta per fragment, a done per complete call.

    A call is complete when a call with another index starts and, for all still open, at
    the finish reason (or the end of the reply).
    """

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        self._calls: dict[int, _OpenCall] = {}
        self._current: int | None = None

    def feed(self, raw: Any, where: str, index: int | None = None) -> list[StreamEvent]:
        """One entry of a ``tool_calls`` list -> its events (``index`` if the entry has none)."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("function", {}), Mapping):
            raise self._reader.malformed(f"{where}: a tool call is not an object with a function")
        if raw.get("type") not in (None, "function"):
            raise self._reader.malformed(
                f"{where}: a tool call of type {raw.get('type')!r} (only function tools are sent)"
            )
        function = raw.get("function") or {}
        call_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else None
        name = function.get("name") if isinstance(function.get("name"), str) else None
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):  # a few compatible servers send the object itself
            arguments = json.dumps(arguments)
        if not isinstance(arguments, str | None):
            raise self._reader.malformed(f"{where}: tool call arguments are not text")
        index = self._index(raw.get("index", index), call_id, where)
        out: list[StreamEvent] = []
        call = self._calls.get(index)
        if call is None:
            out.extend(self.close())
            call = self._calls[index] = _OpenCall()
        elif call.done:
            raise self._reader.malformed(
                f"{where}: tool call {index} got more arguments after it was complete"
            )
        self._current = index
        call.id = call.id or call_id
        call.name = call.name or name or None
        if arguments:
            call.arguments.append(arguments)
        if call_id or name or arguments:
            out.append(ToolCallDelta(index, call_id, name or None, arguments or ""))
        return out

    def _index(self, index: Any, call_id: str | None, where: str) -> int:
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            return index
        if index is not None:
            raise self._reader.malformed(f"{where}: a tool call index is not a number")
        # No index (some compatible servers): a new id starts the next call.
        current = self._calls.get(self._current) if self._current is not None else None
        if current is None or (call_id is not None and call_id != current.id):
            return max(self._calls, default=-1) + 1
        return self._current  # type: ignore[return-value]

    def close(self) -> list[StreamEvent]:
        """``ToolCallDone`` for every open call, in index order."""
        out: list[StreamEvent] = []
        for index in sorted(i for i, c in self._calls.items() if not c.done):
            call = self._calls[index]
            call.done = True
            if not call.name:
                raise self._reader.malformed(f"tool call {index} has no function name")
            reader = self._reader
            out.append(
                reader.provider.tool_call_done(
                    reader.request, index, call.id, call.name, "".join(call.arguments)
                )
            )
        return out


def reply_events(
    provider: WireProvider, body: Mapping[str, Any], request: ChatRequest
) -> list[StreamEvent]:
    """A ``chat.completion`` object as the events a stream of it would have yielded."""
    reader = _Reader(provider, request)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], _MAP):
        raise reader.malformed("the chat completion reply has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, _MAP):
        raise reader.malformed("the chat completion reply has no choices[0].message")
    content = message.get("content")
    text = content if type(content) is str else reader.text(content, "choices[0].message")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise reader.malformed("choices[0].message.tool_calls is not a list")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not text:
        raise reader.refused(refusal)
    events: list[StreamEvent] = []  # a list, not a generator: a reply is whole already
    thought = _reasoning(message)
    if thought:
        events.append(ReasoningDelta(thought))
    if text:
        events.append(TextDelta(text))
    if calls:
        tracker = _ToolCalls(reader)
        for index, raw in enumerate(calls):
            events.extend(tracker.feed(raw, f"choices[0].message.tool_calls[{index}]", index))
        events.extend(tracker.close())
    reported = body.get("model")
    reply_id = body.get("id")
    events.append(
        StreamEnd(
            provider.map_finish(choice.get("finish_reason")),
            parse_usage(body.get("usage")),
            reported if isinstance(reported, str) else None,
            reply_id if isinstance(reply_id, str) else None,
        )
    )
    return events


# A delta with only these keys, ``content`` a string, is a plain text delta (role comes
# in the first chunk; null ``refusal``/``tool_calls`` some servers send explicitly).
_PLAIN_DELTA = frozenset(("content", "role"))


class OpenAIStream(StreamDecoder):
    """A stream of ``chat.completion.chunk`` objects, ending at ``data: [DONE]``."""

    terminal = "'data: [DONE]'"

    def __init__(self, provider: WireProvider, request: ChatRequest) -> None:
        super().__init__()
        self._reader = _Reader(provider, request)
        self._calls = _ToolCalls(self._reader)
        self._finish: FinishReason | None = None
        self._usage = Usage()
        self._model: str | None = None
        self._id: str | None = None
        self._refusal = ""

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        data = event.data
        if data[:1] != "{":  # a chunk is an object: only then is it worth parsing at once
            if data.strip() == "[DONE]":
                self.done = True
                return ()
            return self.feed_chunk(self._reader.provider.parse_event(event, self._reader.request))
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):  # the seam's parser says how, with its message
            chunk = self._reader.provider.parse_event(event, self._reader.request)
        return self._feed_dict(chunk) if type(chunk) is dict else self.feed_chunk(chunk)

    def feed_chunk(self, chunk: Any) -> list[StreamEvent]:
        """One parsed chunk -> its events; an error chunk raises."""
        if type(chunk) is dict:  # what json.loads makes: the fast path, no ABC checks
            return self._feed_dict(chunk)
        if not isinstance(chunk, Mapping):
            raise self._reader.malformed(
                f"a stream chunk is a JSON {type(chunk).__name__}, not an object"
            )
        return self._feed_mapping(chunk)

    def _feed_mapping(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        if chunk.get("error"):
            raise self._reader.error(chunk, "the stream")
        if isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        if isinstance(chunk.get("id"), str):
            self._id = chunk["id"]
        out: list[StreamEvent] = []
        if isinstance(chunk.get("usage"), Mapping):  # the include_usage chunk, or per-chunk
            self._usage = parse_usage(chunk["usage"])
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            # With n > 1 choices interleave; we follow the first one only.
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                out.extend(self._delta(delta))
            if choice.get("finish_reason"):
                self._finish = self._reader.provider.map_finish(choice["finish_reason"])
                out.extend(self._calls.close())
        return out

    def _feed_dict(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """``feed_chunk`` of a plain dict, with the common text delta taken straight."""
        choices = chunk.get("choices")
        if (
            type(choices) is list
            and len(choices) == 1
            and not chunk.get("error")
            and chunk.get("usage") is None
        ):
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if (
                type(delta) is dict
                and choice.get("index", 0) == 0
                and not choice.get("finish_reason")
                and delta.keys() <= _PLAIN_DELTA
            ):
                model, ident = chunk.get("model"), chunk.get("id")
                if type(model) is str:
                    self._model = model
                if type(ident) is str:
                    self._id = ident
                content = delta.get("content")
                if type(content) is str:
                    return [TextDelta(content)] if content else []
        return self._feed_mapping(chunk)

    def _delta(self, delta: Mapping[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        thought = _reasoning(delta)
        if thought:
            out.append(ReasoningDelta(thought))
        text = self._reader.text(delta.get("content"), "a stream chunk's delta")
        if text:
            out.append(TextDelta(text))
        if isinstance(delta.get("refusal"), str):
            self._refusal += delta["refusal"]
        calls = delta.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise self._reader.malformed("a stream chunk's delta.tool_calls is not a list")
        for raw in calls or ():
            out.extend(self._calls.feed(raw, "a stream chunk's delta.tool_calls"))
        return out

    @property
    def finished(self) -> bool:
        """Whether a chunk carried the finish reason."""
        return self._finish is not None

    def finish(self) -> Iterable[StreamEvent]:
        """The final events; raises ContentFilteredError when the model refused."""
        if self._refusal:
            raise self._reader.refused(self._refusal)
        return (
            *self._calls.close(),
            StreamEnd(self._finish or "unknown", self._usage, self._model, self._id),
        )


# --------------------------------------------------------------------------- provider

_ROUTE = Route("/chat/completions")  # every call's (frozen, shared)


class OpenAIProvider(WireProvider):
    """OpenAI Chat Completions over HTTP (also Groq, Together, vLLM, Ollama, LM Studio...).

    Options: ``organization`` and ``project`` (sent as OpenAI-Organization /
    OpenAI-Project), ``headers`` (extra static headers; they win over the built-in ones),
    ``max_connections`` (pool size, default 100), ``stream_usage`` (default true). Without
    an API key no Authorization header is sent (local servers).
    """

    Options: ClassVar[type[WireOptions]] = OpenAIOptions
    content_kinds: ClassVar[frozenset[str]] = frozenset(
        {"text", "image", "tool_call", "tool_result", "reasoning"}  # reasoning: dropped
    )
    features: ClassVar[frozenset[str]] = frozenset({"tools", "structured_output", "reasoning"})
    protocol: ClassVar[str] = "openai"
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    finish_reasons: ClassVar[Mapping[str, FinishReason]] = FINISH_REASONS
    error_parser = staticmethod(openai_error_parser)

    options: OpenAIOptions

    def auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        if self.options.organization:
            headers["openai-organization"] = self.options.organization
        if self.options.project:
            headers["openai-project"] = self.options.project
        return headers

    def route(self, request: ChatRequest, stream: bool) -> Route:
        return _ROUTE

    def encode(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return build_body(request, stream=stream, stream_usage=self.options.stream_usage)

    def body_error(self, body: Any) -> tuple[int, Any] | None:
        if isinstance(body, _MAP) and body.get("error") and not body.get("choices"):
            return error_status(body)
        return None

    def reply_events(self, body: Mapping[str, Any], request: ChatRequest) -> Iterable[StreamEvent]:
        return reply_events(self, body, request)

    def stream_decoder(self, request: ChatRequest) -> OpenAIStream:
        return OpenAIStream(self, request)
