"""The Google Gemini wire provider: ``generateContent`` and ``streamGenerateContent`` (SSE).

Request body
    Built by ``gemini_request.build_body`` (see its docstring): ``contents`` and
    ``systemInstruction`` from the messages (images, function calls and results, Gemini's
    own reasoning and signatures included), ``generationConfig`` and the other parameters
    placed by one rule, tools as ``functionDeclarations`` with ``parametersJsonSchema``,
    ``response_format`` as ``responseJsonSchema``, ``reasoning`` as ``thinkingConfig``.

Response
    ``candidates[0].content.parts`` become events in their order: text parts as text (the
    text parts of one chunk joined), thought summaries (``"thought": true``) as
    ``ReasoningDelta`` (consecutive unsigned ones form one ``ReasoningPart``, origin
    ``gemini``), a ``thoughtSignature`` on a text or function-call part as a signature-only
    ``ReasoningDelta`` just before that part (so ``result.message`` keeps it where it came
    and ``gemini_request`` puts it back on the same part), and each ``functionCall`` as a
    ``ToolCallDelta`` with its whole arguments then its ``ToolCallDone`` at once (Gemini
    sends every call whole). A call's id is Gemini's ``id`` when it gives one, else
    ``gcall_<responseId>_<n>`` (unique across turns, as other vendors need); ``args`` that
    are not an object raise ``ToolArgumentsError``. ``STOP`` with a function call in the
    reply reads ``tool_calls``.

    ``completion_tokens`` is ``candidatesTokenCount + thoughtsTokenCount``: Gemini bills
    thinking as output and ``candidatesTokenCount`` excludes it, so this keeps prompt +
    completion = total and matches the OpenAI convention where reasoning tokens are part of
    completion tokens. ``reasoning_tokens`` is ``thoughtsTokenCount``, ``cached_tokens`` is
    ``cachedContentTokenCount`` (already a part of ``promptTokenCount``, never added to it);
    ``prompt_tokens`` includes ``toolUsePromptTokenCount`` when present.

    A blocked prompt (``promptFeedback.blockReason`` and no candidates), or a candidate that
    ended for a content reason (SAFETY, RECITATION, BLOCKLIST, ...) with no text, raises
    ``ContentFilteredError`` naming the reason and the blocked safety categories. A candidate
    that ended for a content reason after some text returns that text with finish reason
    ``content_filter``. No candidates and no block reason is ``MalformedResponseError``.

Streaming
    Each SSE ``data:`` is a whole ``GenerateContentResponse`` chunk; Gemini sends no ``[DONE]``
    sentinel, so the terminal event is the chunk that carries a ``finishReason`` (the stream
    is read on to its end, as the SDK does: usage may come in a later chunk). A stream that
    closes without one raises ``ProviderConnectionError`` ("stream ended before the model
    finished"); an ``{"error": ...}`` chunk raises the error its code maps to, and so does
    the bare error object Google sends after the last event of a failed stream, not framed
    as ``data:`` and pretty-printed over several lines (``RateLimitError`` for 429 /
    RESOURCE_EXHAUSTED, ``ServerError`` for 503 / UNAVAILABLE, ...).

Errors
    Gemini's envelope is ``{"error": {"code", "message", "status", "details": [...]}}``
    (sometimes wrapped in a one-item list). ``parse_gemini_error`` reports the
    ``google.rpc.ErrorInfo`` reason (e.g. ``API_KEY_INVALID``) as the vendor code, else the
    status. A 400 whose reason is ``API_KEY_INVALID`` becomes ``AuthenticationError``: the fix
    is the key, not the request. A ``google.rpc.RetryInfo`` ``retryDelay`` fills
    ``retry_after`` when the reply had no Retry-After header. An error object inside a 200
    reply or a ``data:`` chunk is mapped as the HTTP status its code stands for.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from ..errors import ContentFilteredError, MalformedResponseError, ToolArgumentsError
from ..status import ErrorInfo, finite_seconds
from ..types import (
    ChatRequest,
    FinishReason,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    Usage,
)
from .gemini_request import GENERATED_ID_PREFIX, GENERATION_FIELDS, build_body
from .wire import Route, StreamDecoder, WireOptions, WireProvider

if TYPE_CHECKING:
    from ..errors import ProviderError
    from ..sse import SSEEvent

__all__ = [
    "DEFAULT_BASE_URL",
    "GENERATION_FIELDS",
    "GeminiOptions",
    "GeminiProvider",
    "GeminiStream",
    "build_body",
    "parse_gemini_error",
]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

_FINISH: Mapping[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(
        (
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_RECITATION",
        ),
        "content_filter",
    ),
    # MALFORMED_FUNCTION_CALL, OTHER, LANGUAGE, FINISH_REASON_UNSPECIFIED and any reason
    # added later read as "unknown".
}
_SAFETY_REASONS = frozenset(("SAFETY", "IMAGE_SAFETY"))

#: ErrorInfo reasons that mean the key itself is wrong although Gemini answers 400.
_AUTH_REASONS = frozenset(("API_KEY_INVALID",))

#: gRPC status -> HTTP status, for error objects that carry no numeric code.
_GRPC_HTTP: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


class GeminiOptions(WireOptions):
    """Options of a Gemini provider (providers.yaml ``options:``)."""

    safety_settings: list[Any] | None = Field(
        None,
        description="Sent as safetySettings with every call unless the call gives its own.",
    )


# --------------------------------------------------------------------------- errors


def _parse_duration(value: Any) -> float | None:
    """Seconds from a protobuf Duration in JSON form ("21s", "1.5s"), or None."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return finite_seconds(float(match.group(1)))  # "1e999"-like digits give inf: unusable
    return None


def parse_gemini_error(body: Any) -> ErrorInfo | None:
    """Read Gemini's error envelope: the message, the ErrorInfo reason (or status), the status.

    A ``google.rpc.RetryInfo`` delay becomes ``retry_after`` (used when no Retry-After header
    came); an ``API_KEY_INVALID`` reason gets a hint, and the seam maps it to
    AuthenticationError although Gemini answers 400.
    """
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, Mapping):
        return None
    err = body.get("error")
    if not isinstance(err, Mapping):
        return None
    status = err.get("status") if isinstance(err.get("status"), str) else None
    reason: str | None = None
    delay: float | None = None
    details = err.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, Mapping):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reason = reason or detail["reason"]
        elif kind.endswith("google.rpc.RetryInfo"):
            delay = _parse_duration(detail.get("retryDelay"))
    message = err.get("message")
    if not isinstance(message, str) or not message:
        message = status or "Gemini returned an error without a message"
    if reason in _AUTH_REASONS:
        message = f"{message} (check the Gemini API key)"
    code = err.get("code")
    vendor_code = reason or status or (str(code) if code is not None else None)
    return ErrorInfo(message, vendor_code, status, retry_after=delay)


def _error_envelope(data: Any) -> Mapping[str, Any] | None:
    """The ``error`` object of ``{"error": {...}}`` (or of a one-item list of it), else None."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        return data["error"]  # type: ignore[no-any-return]
    return None


def error_status(envelope: Mapping[str, Any]) -> tuple[int, Any]:
    """(HTTP status an error object stands for, the envelope to parse): its numeric code,
    else its gRPC status, else 500."""
    code = envelope.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else None
    if status is None:
        status = _GRPC_HTTP.get(str(envelope.get("status")), 500)
    return status, {"error": envelope}


# --------------------------------------------------------------------------- replies


def _finish_reason(raw: Any, called: bool) -> FinishReason:
    finish = _FINISH.get(str(raw), "unknown") if raw is not None else "unknown"
    return "tool_calls" if finish == "stop" and called else finish


def _blocked_categories(ratings: Any) -> str:
    """ "; blocked categories: A, B" from safety ratings (flagged ones, else MEDIUM/HIGH)."""
    if not isinstance(ratings, list):
        return ""
    rated = [r for r in ratings if isinstance(r, Mapping) and isinstance(r.get("category"), str)]
    names = [r["category"] for r in rated if r.get("blocked") is True]
    if not names:
        names = [r["category"] for r in rated if r.get("probability") in ("MEDIUM", "HIGH")]
    return f"; blocked categories: {', '.join(names)}" if names else ""


def _hint(reason: str) -> str:
    if reason in _SAFETY_REASONS:
        return "rephrase the prompt or adjust the safetySettings parameter"
    return "rephrase the prompt"


def _usage(meta: Any) -> Usage:
    if not isinstance(meta, Mapping):
        return Usage()

    def count(key: str) -> int | None:
        value = meta.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt, tool_prompt = count("promptTokenCount"), count("toolUsePromptTokenCount")
    candidates, thoughts = count("candidatesTokenCount"), count("thoughtsTokenCount")
    if tool_prompt is not None:
        prompt = (prompt or 0) + tool_prompt
    completion = None
    if candidates is not None or thoughts is not None:
        completion = (candidates or 0) + (thoughts or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count("totalTokenCount"),
        cached_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class _Reader:
    """Reads ``GenerateContentResponse`` objects (a reply or one stream chunk) into events.

    It keeps what a stream spreads over chunks: usage, the model version, the response id,
    whether text or a function call came, the open thought block, the call and reasoning
    block counters, and the candidate that carried the finish reason.
    """

    def __init__(self, provider: WireProvider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request
        self.usage_meta: Any = None
        self.version: str | None = None
        self.got_text = False
        self.called = False
        self.finish_raw: Any = None
        self.finished: Mapping[str, Any] = {}
        self._response_id: str | None = None
        self._calls = 0  # function calls so far (their ToolCallDelta index)
        self._blocks = 0  # reasoning blocks so far (their ReasoningDelta index)
        self._thought: int | None = None  # the thought block unsigned summaries extend

    def malformed(self, what: str) -> MalformedResponseError:
        return self.provider.malformed(what, self.request)

    def read(self, data: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, list[StreamEvent]]:
        """(the first candidate or None, its events) of one response object."""
        self.usage_meta = data.get("usageMetadata", self.usage_meta)
        self.version = _str_or_none(data.get("modelVersion")) or self.version
        self._response_id = self._response_id or _str_or_none(data.get("responseId"))
        candidate = self._candidate(data)
        if candidate is None:
            return None, []
        events = self._events(candidate)
        if candidate.get("finishReason"):
            self.finish_raw = candidate["finishReason"]
            self.finished = candidate
        return candidate, events

    def end(self) -> StreamEnd:
        """The final event; ContentFilteredError when the answer was blocked before any text."""
        finish = _finish_reason(self.finish_raw, self.called)
        if finish == "content_filter" and not self.got_text:
            raise self._blocked(
                "the answer", "finishReason", self.finished, self.finished.get("finishReason")
            )
        return StreamEnd(finish, _usage(self.usage_meta), self.version)

    def _candidate(self, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The first candidate (index 0); ContentFilteredError when the prompt was blocked."""
        candidates = data.get("candidates")
        if candidates is not None and not isinstance(candidates, list):
            raise self.malformed("candidates is not a list")
        for candidate in candidates or ():
            if not isinstance(candidate, Mapping):
                raise self.malformed("a candidate is not an object")
            if candidate.get("index", 0) == 0:
                return candidate
        feedback = data.get("promptFeedback")
        if isinstance(feedback, Mapping) and feedback.get("blockReason"):
            raise self._blocked("the prompt", "blockReason", feedback, feedback["blockReason"])
        return None

    def _events(self, candidate: Mapping[str, Any]) -> list[StreamEvent]:
        """The events of a candidate's parts, in their order (see the module docstring)."""
        content = candidate.get("content")
        if content is None:
            return []
        parts = content.get("parts", []) if isinstance(content, Mapping) else None
        if not isinstance(parts, list):
            raise self.malformed("candidate content has no parts list")
        events: list[StreamEvent] = []
        texts: list[str] = []

        def flush() -> None:
            if texts:
                events.append(TextDelta("".join(texts)))
                texts.clear()

        for part in parts:
            if not isinstance(part, Mapping):
                raise self.malformed("a content part is not an object")
            text, signature = part.get("text"), part.get("thoughtSignature")
            if text is not None and not isinstance(text, str):
                raise self.malformed("a content part's text is not a string")
            if signature is not None and not isinstance(signature, str):
                raise self.malformed("a content part's thoughtSignature is not a string")
            if part.get("thought") is True:
                flush()
                if self._thought is None or signature:
                    self._thought = self._block()  # a signed summary stays a part of its own
                events.append(ReasoningDelta(text or "", signature, index=self._thought))
                self._thought = None if signature else self._thought
                continue
            self._thought = None
            if signature:  # it belongs to this part: it goes back on it (gemini_request)
                flush()
                events.append(ReasoningDelta("", signature, index=self._block()))
            if "functionCall" in part:
                flush()
                events.extend(self._call(part["functionCall"]))
            elif text:
                self.got_text = True
                texts.append(text)
            # Other parts (inlineData, executableCode, ...) carry nothing this runtime returns.
        flush()
        return events

    def _block(self) -> int:
        self._blocks += 1
        return self._blocks - 1

    def _call(self, call: Any) -> tuple[ToolCallDelta, ToolCallDone]:
        """A whole functionCall: its one argument delta and its completion at once."""
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise self.malformed("a functionCall has no name")
        name: str = call["name"]
        args = call.get("args")
        args = {} if args is None else args
        if not isinstance(args, dict):
            raw = json.dumps(args)
            raise ToolArgumentsError(
                self.provider.scrub(
                    f"the arguments of tool call {name!r} are not a JSON object "
                    f"(a JSON {type(args).__name__})"
                ),
                raw_arguments=raw,
                tool_name=name,
                provider=self.provider.provider_name or None,
                model=self.request.model,
            )
        index = self._calls
        self._calls += 1
        self.called = True
        call_id = _str_or_none(call.get("id")) or self._generated_id(index)
        return (
            ToolCallDelta(index, call_id, name, json.dumps(args)),
            ToolCallDone(index, ToolCall(call_id, name, args)),
        )

    def _generated_id(self, index: int) -> str:
        """An id for a call Gemini gave none: unique across turns (other vendors need that)."""
        if self._response_id is None:
            self._response_id = uuid.uuid4().hex[:20]
        stem = _ID_CHARS.sub("", self._response_id)[:24] or "x"
        return f"{GENERATED_ID_PREFIX}{stem}_{index}"

    def _blocked(
        self, what: str, field: str, source: Mapping[str, Any], reason: Any
    ) -> ContentFilteredError:
        """ContentFilteredError for a blocked prompt (promptFeedback) or answer (candidate)."""
        reason = str(reason)
        detail = _str_or_none(
            source.get("blockReasonMessage" if field == "blockReason" else "finishMessage")
        )
        return ContentFilteredError(
            self.provider.scrub(
                f"Gemini blocked {what} ({field} {reason}"
                f"{_blocked_categories(source.get('safetyRatings'))})"
                f"{f': {detail}' if detail else ''}; {_hint(reason)}"
            ),
            provider=self.provider.provider_name or None,
            model=self.request.model,
            vendor_code=reason,
        )


def reply_events(
    provider: WireProvider, body: Mapping[str, Any], request: ChatRequest
) -> Iterator[StreamEvent]:
    """A ``GenerateContentResponse`` as the events a stream of it would have yielded."""
    reader = _Reader(provider, request)
    candidate, events = reader.read(body)
    if candidate is None:
        raise reader.malformed("the reply has no candidates and no block reason")
    yield from events
    yield reader.end()


class GeminiStream(StreamDecoder):
    """A stream of ``GenerateContentResponse`` chunks; the terminal one has a finishReason."""

    terminal = "the model finished (no chunk carried a finishReason)"
    unframed = True
    read_to_end = True

    def __init__(self, provider: WireProvider, request: ChatRequest) -> None:
        super().__init__()
        self._reader = _Reader(provider, request)

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        reader = self._reader
        if event.unframed:
            # Text no data: line framed: Google ends a failed stream with its error object,
            # pretty-printed over several lines. Anything else there is ignored.
            self._raise_unframed(event)
            return ()
        chunk = reader.provider.parse_event(event, reader.request, "a stream event's data")
        envelope = _error_envelope(chunk)
        if envelope is not None:
            status, payload = error_status(envelope)
            raise reader.provider.error_in_body(status, payload, reader.request, "the stream")
        if not isinstance(chunk, Mapping):
            raise reader.malformed(
                f"a stream event's data is a JSON {type(chunk).__name__}, not an object"
            )
        _, events = reader.read(chunk)
        self.done = reader.finish_raw is not None
        return events

    def _raise_unframed(self, event: SSEEvent) -> None:
        """Raise the error an unframed JSON error object at the end of a stream carries."""
        from ..body import loads
        from ..status import error_for_payload

        try:
            envelope = _error_envelope(loads(event.data))
        except ValueError:
            return
        if envelope is None:
            return
        # The error of the exchange itself (Google could no longer change the status line):
        # reported as that HTTP status, not as an error inside a 200.
        provider, status, payload = self._reader.provider, *error_status(envelope)
        error: ProviderError = error_for_payload(
            status,
            payload,
            provider=provider.provider_name or None,
            model=self._reader.request.model,
            parse=provider.error_parser,
            secrets=provider.secrets,
        )
        raise error

    def finish(self) -> Iterable[StreamEvent]:
        return (self._reader.end(),)


# --------------------------------------------------------------------------- provider


class GeminiProvider(WireProvider):
    """Google Gemini (Generative Language API) over HTTP; the key travels in ``x-goog-api-key``.

    Options (providers.yaml ``options:``): ``headers`` (extra static headers),
    ``max_connections`` (pool size) and ``safety_settings`` (a list sent as
    ``safetySettings`` with every call unless the call gives its own).
    """

    Options: ClassVar[type[WireOptions]] = GeminiOptions
    protocol: ClassVar[str] = "gemini"
    content_kinds: ClassVar[frozenset[str]] = frozenset(
        {"text", "image", "tool_call", "tool_result", "reasoning"}
    )
    features: ClassVar[frozenset[str]] = frozenset({"tools", "structured_output", "reasoning"})
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-goog-api-key"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    malformed_prefix: ClassVar[str] = (
        "Gemini's reply does not follow the generateContent protocol: "
    )
    finish_reasons: ClassVar[Mapping[str, FinishReason]] = _FINISH
    error_parser = staticmethod(parse_gemini_error)

    options: GeminiOptions

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    def route(self, request: ChatRequest, stream: bool) -> Route:
        model = request.model
        # "tunedModels/x" or "models/x" are full resource names; a bare name is a base model.
        resource = model if "/" in model else f"models/{model}"
        method = "streamGenerateContent" if stream else "generateContent"
        return Route(f"/{quote(resource, safe='/@')}:{method}", {"alt": "sse"} if stream else {})

    def encode(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return build_body(request, safety_settings=self.options.safety_settings)

    def body_error(self, body: Any) -> tuple[int, Any] | None:
        envelope = _error_envelope(body)
        return error_status(envelope) if envelope is not None else None

    def reply_events(self, body: Mapping[str, Any], request: ChatRequest) -> Iterable[StreamEvent]:
        return reply_events(self, body, request)

    def stream_decoder(self, request: ChatRequest) -> GeminiStream:
        return GeminiStream(self, request)
