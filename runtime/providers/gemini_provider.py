"""The Google Gemini wire provider: ``generateContent`` and ``streamGenerateContent`` (SSE).

Request body
    ``contents`` holds the user and assistant turns (assistant becomes role ``"model"``);
    system messages become the top-level ``systemInstruction``. ``generationConfig`` gets
    ``maxOutputTokens`` from ``request.max_tokens`` (whatever ``max_tokens_param`` says, since
    Gemini has one name for it) and ``temperature``. Every other parameter is placed by this
    rule:

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
    either name, or two parameters that land on the same field (``top_p`` and ``topP``,
    ``stop`` and ``stop_sequences``, ``temperature`` in params while the request has one),
    raise ``InvalidRequestError`` rather than one silently winning.

Response
    The text is the concatenation of ``candidates[0].content.parts[*].text``, skipping thought
    summaries (parts with ``"thought": true``). ``completion_tokens`` is
    ``candidatesTokenCount + thoughtsTokenCount``: Gemini bills thinking as output and
    ``candidatesTokenCount`` excludes it, so this keeps prompt + completion = total and matches
    the OpenAI convention where reasoning tokens are part of completion tokens.
    ``reasoning_tokens`` is ``thoughtsTokenCount``, ``cached_tokens`` is
    ``cachedContentTokenCount`` (a part of the prompt tokens); ``prompt_tokens`` includes
    ``toolUsePromptTokenCount`` when present.

    A blocked prompt (``promptFeedback.blockReason`` and no candidates), or a candidate that
    ended for a content reason (SAFETY, RECITATION, BLOCKLIST, ...) with no text, raises
    ``ContentFilteredError`` naming the reason and the blocked safety categories. A candidate
    that ended for a content reason after some text returns that text with finish reason
    ``content_filter``. No candidates and no block reason is ``MalformedResponseError``.

Streaming
    Each SSE ``data:`` is a whole ``GenerateContentResponse`` chunk; Gemini sends no ``[DONE]``
    sentinel, so the terminal event is the chunk that carries a ``finishReason``. A stream that
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
    ``retry_after`` when the reply had no Retry-After header.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from ..config import HTTPConfig
from ..errors import (
    ConfigError,
    ContentFilteredError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    RuntimeClosedError,
)
from ..http import ErrorInfo, HTTPClient, SSEEvent, error_for_payload, finite_seconds, loads
from ..redact import scrub
from ..types import (
    ChatRequest,
    FinishReason,
    ProviderResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from .base import ChatProvider, reject_unknown_options

__all__ = ["DEFAULT_BASE_URL", "GENERATION_FIELDS", "GeminiProvider", "parse_gemini_error"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

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

#: gRPC status -> HTTP status, for error chunks inside a stream that carry no numeric code.
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


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One request as it goes on the wire; ``chat``, ``stream_chat`` and ``describe`` share it."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class GeminiProvider(ChatProvider):
    """Google Gemini (Generative Language API) over HTTP; the key travels in ``x-goog-api-key``.

    Options (providers.yaml ``options:``): ``headers`` (extra static headers),
    ``max_connections`` (pool size) and ``safety_settings`` (a list sent as
    ``safetySettings`` with every call unless the call gives its own).
    """

    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-goog-api-key"})
    streams_natively: ClassVar[bool] = True
    _OPTIONS: ClassVar[tuple[str, ...]] = ("headers", "max_connections", "safety_settings")

    def _initialize_client(self, **options: Any) -> None:
        reject_unknown_options("GeminiProvider", options, self._OPTIONS)
        headers = options.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError("GeminiProvider: option headers must map header names to strings")
        safety = options.get("safety_settings")
        if safety is not None and not isinstance(safety, list):
            raise ConfigError("GeminiProvider: option safety_settings must be a list")
        max_connections = options.get("max_connections", 100)
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError("GeminiProvider: option max_connections must be a positive integer")
        self.base_url = (self.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._static_headers = {k.lower(): v for k, v in headers.items()}
        self._safety_settings: list[Any] | None = safety
        # A key given through the headers option is a secret too.
        secrets = (self.api_key or "", self._static_headers.get("x-goog-api-key", ""))
        self._secrets = tuple(s for s in secrets if s)
        self._client = HTTPClient(
            base_url=self.base_url,
            error_parser=parse_gemini_error,
            max_connections=max_connections,
            secrets=self._secrets,
        )

    # ------------------------------------------------------------------ request building

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """The method, URL, headers and JSON body that ``chat`` / ``stream_chat`` send."""
        prepared = self._prepare(request, stream)
        query = f"?{urlencode(prepared.params)}" if prepared.params else ""
        # content-type is set by the transport for a JSON body, accept by the SSE seam.
        headers = {"content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        headers.update(prepared.headers)
        return {
            "method": "POST",
            "url": f"{self.base_url}{prepared.path}{query}",
            "headers": headers,
            "json": prepared.body,
        }

    def _prepare(self, request: ChatRequest, stream: bool) -> _Prepared:
        model = request.model
        # "tunedModels/x" or "models/x" are full resource names; a bare name is a base model.
        resource = model if "/" in model else f"models/{model}"
        method = "streamGenerateContent" if stream else "generateContent"
        headers = dict(self._static_headers)
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        return _Prepared(
            path=f"/{quote(resource, safe='/@')}:{method}",
            params={"alt": "sse"} if stream else {},
            headers=headers,
            body=self._body(request),
        )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        system: list[dict[str, str]] = []
        contents: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system":
                system.append({"text": message.content})
            else:
                role = "model" if message.role == "assistant" else "user"
                contents.append({"role": role, "parts": [{"text": message.content}]})
        if not contents:
            raise InvalidRequestError(
                "Gemini needs at least one user or assistant message besides system messages"
            )
        config: dict[str, Any] = {}
        origin: dict[str, str] = {}

        def put(field: str, value: Any, source: str) -> None:
            if field in origin:
                raise InvalidRequestError(
                    f"parameters {origin[field]!r} and {source!r} both set "
                    f"generationConfig.{field}; give only one"
                )
            if field == "stopSequences" and isinstance(value, str):
                value = [value]
            origin[field] = source
            config[field] = value

        if request.max_tokens is not None:
            put("maxOutputTokens", request.max_tokens, "max_tokens")
        if request.temperature is not None:
            put("temperature", request.temperature, "temperature")
        top: dict[str, Any] = {}
        top_origin: dict[str, str] = {}
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
                    put(_generation_field(key) or key, item, f"{name}.{key}")
                continue
            field = _generation_field(name)
            if field is not None:
                put(field, value, name)
                continue
            wire = _TOP_LEVEL_ALIASES.get(name, name)
            if wire in top_origin:
                raise InvalidRequestError(
                    f"parameters {top_origin[wire]!r} and {name!r} both set {wire}; give only one"
                )
            top_origin[wire] = name
            top[wire] = value
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if config:
            body["generationConfig"] = config
        if self._safety_settings is not None:
            body["safetySettings"] = list(self._safety_settings)
        body.update(top)
        return body

    # ------------------------------------------------------------------ calls

    def configure_http(self, config: HTTPConfig) -> None:
        """Bounds on replies and cookie handling, for this provider's HTTP client."""
        if isinstance(self._client, HTTPClient):
            self._client.configure(config)

    def _http(self) -> HTTPClient:
        client = self._client
        if not isinstance(client, HTTPClient) or client.closed:
            raise RuntimeClosedError(f"{type(self).__name__} was used after aclose()")
        # provider_name is set by the runtime after __init__; errors should carry it.
        client.provider = self.provider_name or None
        return client

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """One ``generateContent`` call: text, finish reason and usage."""
        prepared = self._prepare(request, stream=False)
        http = self._http()
        data = await http.post_json(
            prepared.path,
            prepared.body,
            headers=prepared.headers,
            model=request.model,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
        )
        if isinstance(data, Mapping | list) and _error_envelope(data) is not None:
            raise self._error_from_envelope(data, request.model)
        if not isinstance(data, Mapping):
            raise self._malformed(
                f"expected a JSON object, got {type(data).__name__}", request.model
            )
        candidate = self._candidate(data, request.model)
        if candidate is None:
            raise self._malformed("the reply has no candidates and no block reason", request.model)
        text, called = self._candidate_text(candidate, request.model)
        finish = _finish_reason(candidate.get("finishReason"), called)
        if finish == "content_filter" and not text:
            raise self._candidate_blocked(candidate, request.model)
        return ProviderResponse(
            text=text,
            finish_reason=finish,
            usage=_usage(data.get("usageMetadata")),
            model=_str_or_none(data.get("modelVersion")),
            raw=data,
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """One ``streamGenerateContent?alt=sse`` call: text deltas, then one ``StreamEnd``.

        Raises ``ProviderConnectionError`` when the stream closes before a chunk carried a
        ``finishReason`` (Gemini has no other end-of-stream marker).
        """
        prepared = self._prepare(request, stream=True)
        http = self._http()
        model = request.model
        got_text = called = False
        finish_raw: Any = None
        finished_candidate: Mapping[str, Any] = {}
        usage_meta: Any = None
        version: str | None = None
        async with http.stream_sse(
            prepared.path,
            prepared.body,
            headers=prepared.headers,
            params=prepared.params,
            model=model,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
            unframed=True,
        ) as events:
            async for event in events:
                if event.unframed:
                    # Text no data: line framed: Google ends a failed stream with its error
                    # object, pretty-printed over several lines. Anything else is ignored.
                    self._raise_unframed_error(event, model)
                    continue
                chunk = self._chunk(http, event, model)
                if _error_envelope(chunk) is not None:
                    raise self._error_from_envelope(chunk, model)
                usage_meta = chunk.get("usageMetadata", usage_meta)
                version = _str_or_none(chunk.get("modelVersion")) or version
                candidate = self._candidate(chunk, model)
                if candidate is None:
                    continue  # e.g. a chunk that only carries usage
                text, has_call = self._candidate_text(candidate, model)
                called = called or has_call
                if text:
                    got_text = True
                    yield TextDelta(text)
                if candidate.get("finishReason"):
                    finish_raw = candidate["finishReason"]
                    finished_candidate = candidate
        if finish_raw is None:
            raise ProviderConnectionError(
                "stream ended before the model finished (no chunk carried a finishReason); "
                "the connection was probably closed early, try again",
                provider=self.provider_name or None,
                model=model,
            )
        finish = _finish_reason(finish_raw, called)
        if finish == "content_filter" and not got_text:
            raise self._candidate_blocked(finished_candidate, model)
        yield StreamEnd(finish, _usage(usage_meta), version)

    # ------------------------------------------------------------------ reply reading

    def _chunk(self, http: HTTPClient, event: SSEEvent, model: str) -> Mapping[str, Any]:
        data = http.parse_event(event, model=model, what="a stream event's data")
        if isinstance(data, list) and _error_envelope(data) is not None:
            return {"error": _error_envelope(data)}
        if not isinstance(data, Mapping):
            raise MalformedResponseError(
                f"a stream event's data is a JSON {type(data).__name__}, not an object",
                provider=self.provider_name or None,
                model=model,
            )
        return data

    def _raise_unframed_error(self, event: SSEEvent, model: str) -> None:
        """Raise the error an unframed JSON error object at the end of a stream carries."""
        try:
            data = loads(event.data)
        except ValueError:
            return
        if _error_envelope(data) is not None:
            raise self._error_from_envelope(data, model)

    def _candidate(self, data: Mapping[str, Any], model: str) -> Mapping[str, Any] | None:
        """The first candidate (index 0); ContentFilteredError when the prompt was blocked."""
        candidates = data.get("candidates")
        if candidates is not None and not isinstance(candidates, list):
            raise self._malformed("candidates is not a list", model)
        for candidate in candidates or ():
            if not isinstance(candidate, Mapping):
                raise self._malformed("a candidate is not an object", model)
            if candidate.get("index", 0) == 0:
                return candidate
        feedback = data.get("promptFeedback")
        if isinstance(feedback, Mapping) and feedback.get("blockReason"):
            reason = str(feedback["blockReason"])
            detail = _str_or_none(feedback.get("blockReasonMessage"))
            raise ContentFilteredError(
                self._scrub(
                    f"Gemini blocked the prompt (blockReason {reason}"
                    f"{_blocked_categories(feedback.get('safetyRatings'))})"
                    f"{f': {detail}' if detail else ''}; {_hint(reason)}"
                ),
                provider=self.provider_name or None,
                model=model,
                vendor_code=reason,
            )
        return None

    def _candidate_text(self, candidate: Mapping[str, Any], model: str) -> tuple[str, bool]:
        """The candidate's text (thought summaries skipped) and whether it calls a function."""
        content = candidate.get("content")
        if content is None:
            return "", False
        parts = content.get("parts", []) if isinstance(content, Mapping) else None
        if not isinstance(parts, list):
            raise self._malformed("candidate content has no parts list", model)
        texts: list[str] = []
        called = False
        for part in parts:
            if not isinstance(part, Mapping):
                raise self._malformed("a content part is not an object", model)
            called = called or "functionCall" in part
            text = part.get("text")
            if text is None or part.get("thought") is True:
                continue
            if not isinstance(text, str):
                raise self._malformed("a content part's text is not a string", model)
            texts.append(text)
        return "".join(texts), called

    def _candidate_blocked(self, candidate: Mapping[str, Any], model: str) -> ContentFilteredError:
        reason = str(candidate.get("finishReason"))
        detail = _str_or_none(candidate.get("finishMessage"))
        return ContentFilteredError(
            self._scrub(
                f"Gemini blocked the answer (finishReason {reason}"
                f"{_blocked_categories(candidate.get('safetyRatings'))})"
                f"{f': {detail}' if detail else ''}; {_hint(reason)}"
            ),
            provider=self.provider_name or None,
            model=model,
            vendor_code=reason,
        )

    # ------------------------------------------------------------------ errors

    def _error_from_envelope(self, data: Any, model: str) -> ProviderError:
        """The error an ``{"error": ...}`` object maps to, as if it came with its HTTP status."""
        envelope = _error_envelope(data) or {}
        code = envelope.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
        if status is None:
            status = _GRPC_HTTP.get(str(envelope.get("status")), 500)
        return error_for_payload(
            status,
            {"error": envelope},
            provider=self.provider_name or None,
            model=model,
            parse=parse_gemini_error,
            secrets=self._secrets,
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _malformed(self, what: str, model: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"Gemini's reply does not follow the generateContent protocol: {what}",
            provider=self.provider_name or None,
            model=model,
        )


# ---------------------------------------------------------------------- helpers


def _generation_field(name: str) -> str | None:
    """The generationConfig field a parameter name stands for, or None."""
    if name in GENERATION_FIELDS:
        return GENERATION_FIELDS[name]
    return name if name in _GENERATION_CAMEL else None


def _error_envelope(data: Any) -> Mapping[str, Any] | None:
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        return data["error"]  # type: ignore[no-any-return]
    return None


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
