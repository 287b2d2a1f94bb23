"""OpenTelemetry spans and metrics of each call, by the GenAI semantic conventions.

``rt.enable_tracing(tracer_provider=None, meter_provider=None, capture_content=False)``
builds a ``Tracer`` and hangs it on the runtime's observer; this module and
``opentelemetry-api`` (extra ``otel``) are imported only then, so a runtime without tracing
pays nothing. Each call gets one CLIENT span named ``"chat {gen_ai.request.model}"``;
retries and fallbacks are events on it; the histograms ``gen_ai.client.token.usage``,
``gen_ai.client.operation.duration`` and, for streams,
``gen_ai.client.operation.time_to_first_chunk`` are recorded at its end.

Names that changed after v1.36.0 of the conventions follow ``OTEL_SEMCONV_STABILITY_OPT_IN``
as the conventions ask: by default the v1.36.0 names (``gen_ai.system``, Azure as
``az.ai.openai``, xAI as ``xai``, message content as the ``gen_ai.{role}.message`` /
``gen_ai.choice`` events, recorded on the span), with ``gen_ai.provider.name`` (its latest
value) set beside ``gen_ai.system`` so a dashboard written for either finds the provider;
with ``gen_ai_latest_experimental`` in the list, only the latest ones (``gen_ai.provider.name``,
``azure.ai.openai``, ``x_ai``, content in the ``gen_ai.input.messages`` /
``gen_ai.output.messages`` attributes). Attributes that were only added (cache and
reasoning token counts, time to first chunk) are set either way.

Message content is recorded only with ``capture_content=True``, with the call's API keys
scrubbed. Nothing here may break a call: every method logs what went wrong and returns.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .errors import MissingDependencyError
from .redact import redact, scrub
from .types import ChatRequest, Completion, Message, Part, Usage

__all__ = [
    "LATEST_OPT_IN",
    "OPT_IN_ENV",
    "CallSpan",
    "Tracer",
    "latest_conventions",
    "provider_name",
]

log = logging.getLogger("runtime")

OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_OPT_IN = "gen_ai_latest_experimental"
OPERATION = "chat"

#: The conventions' advisory bucket boundaries for these histograms.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                   40.96, 81.92)  # fmt: skip

#: Hosts the conventions name a provider for (host, or ``.suffix`` of a host).
_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("api.moonshot.ai", "moonshot_ai"),
)
#: Protocols whose vendor is known whatever the host (a proxy still speaks its flavour).
_PROTOCOLS = {"anthropic": "anthropic", "gemini": "gcp.gemini"}
#: Values renamed after v1.36.0 (semantic-conventions #2046): latest -> v1.36.0.
_V136_NAMES = {"azure.ai.openai": "az.ai.openai", "azure.ai.inference": "az.ai.inference",
               "x_ai": "xai"}  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def _never_raises(method: F) -> F:
    """Log and swallow any exception: a tracer failure must never break a call."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            # Loud once per tracer, then quiet: a broken exporter must not flood the log.
            owner = getattr(args[0], "_tracer", args[0]) if args else None
            seen = getattr(owner, "failures", 0)
            with contextlib.suppress(AttributeError):
                owner.failures = seen + 1  # type: ignore[union-attr]
            level = logging.WARNING if not seen else logging.DEBUG
            log.log(level, "tracing failed in %s (the call goes on): %r", method.__name__, exc)
            return None

    return guarded  # type: ignore[return-value]


def latest_conventions(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``."""
    value = (os.environ if environ is None else environ).get(OPT_IN_ENV, "")
    return LATEST_OPT_IN in {token.strip() for token in value.split(",")}


def _host_port(base_url: str | None) -> tuple[str | None, int | None]:
    if not base_url:
        return None, None
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None, None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.hostname, port


def provider_name(name: str, instance: Any = None, *, latest: bool = True) -> str:
    """The conventions' ``gen_ai.provider.name`` (``gen_ai.system``) for a provider.

    Best knowledge, in order: a host the conventions name (``api.openai.com`` -> ``openai``),
    the Azure class, a protocol with one vendor (Anthropic, Gemini); otherwise the provider's
    name in providers.yaml (an OpenAI-compatible service, a local server: a custom value).
    """
    found = None
    host, _ = _host_port(getattr(instance, "base_url", None))
    if host:
        host = host.lower()
        for known, value in _HOSTS:
            if host == known or (known.startswith(".") and host.endswith(known)):
                found = value
                break
    if found is None and instance is not None:
        cls = type(instance)
        if any(c.__name__ == "AzureOpenAIProvider" for c in cls.__mro__):
            found = "azure.ai.openai"
        else:
            found = _PROTOCOLS.get(str(getattr(cls, "protocol", "")))
    found = found or name
    return found if latest else _V136_NAMES.get(found, found)


def _part(part: Part) -> dict[str, Any]:
    """One content part in the conventions' message-part shape."""
    kind = part.type
    if kind == "text":
        return {"type": "text", "content": part.text}  # type: ignore[union-attr]
    if kind == "tool_call":
        return {
            "type": "tool_call",
            "id": part.id,  # type: ignore[union-attr]
            "name": part.name,  # type: ignore[union-attr]
            "arguments": dict(part.arguments),  # type: ignore[union-attr]
        }
    if kind == "tool_result":
        return {
            "type": "tool_call_response",
            "id": part.tool_call_id,  # type: ignore[union-attr]
            "response": part.content,  # type: ignore[union-attr]
        }
    if kind == "reasoning":
        return {"type": "reasoning", "content": part.text}  # type: ignore[union-attr]
    if kind == "image":
        url = getattr(part, "url", None)
        mime = getattr(part, "media_type", None)
        if url and not url.startswith("data:"):
            return {"type": "uri", "modality": "image", "uri": url, "mime_type": mime}
        # Inline bytes are left out: too large for an attribute.
        return {"type": "image", "mime_type": mime}
    return {"type": kind}


def _input_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    return [{"role": m.role, "parts": [_part(p) for p in m.parts]} for m in messages]


def _output_parts(completion: Completion) -> list[dict[str, Any]]:
    if completion.parts:
        return [_part(p) for p in completion.parts]
    return [{"type": "text", "content": completion.text}]


def _v136_body(message: dict[str, Any]) -> dict[str, Any]:
    """A message in the body shape of the v1.36.0 ``gen_ai.{role}.message`` events."""
    body: dict[str, Any] = {}
    text = "".join(p["content"] for p in message["parts"] if p["type"] == "text")
    if text:
        body["content"] = text
    calls = [
        {"id": p["id"], "type": "function", "function": {"name": p["name"],
                                                          "arguments": p["arguments"]}}
        for p in message["parts"]
        if p["type"] == "tool_call"
    ]  # fmt: skip
    if calls:
        body["tool_calls"] = calls
    results = [p for p in message["parts"] if p["type"] == "tool_call_response"]
    if results:
        body["id"] = results[0]["id"]
        body["content"] = results[0]["response"]
    return body


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class Tracer:
    """Spans and metrics for one runtime, on the given (or the global) OTel providers."""

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        capture_content: bool = False,
        latest: bool | None = None,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
            from opentelemetry.trace import SpanKind, Status, StatusCode
        except ImportError as exc:
            raise MissingDependencyError(
                "opentelemetry-api", "otel", purpose="tracing (enable_tracing)"
            ) from exc
        from . import __version__

        self.capture_content = capture_content
        self.failures = 0  # tracer errors swallowed so far (the first one is logged loudly)
        self.latest = latest_conventions() if latest is None else latest
        self.system_key = "gen_ai.provider.name" if self.latest else "gen_ai.system"
        self._kind = SpanKind.CLIENT
        self._status = Status
        self._error = StatusCode.ERROR
        self.tracer = trace.get_tracer("llm-runtime", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("llm-runtime", __version__, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

    def provider_attrs(self, provider: str, instance: Any = None) -> dict[str, str]:
        """The provider's name under this mode's key; by default (v1.36.0) also under
        ``gen_ai.provider.name`` with its latest value, so either kind of dashboard finds it."""
        attrs = {self.system_key: provider_name(provider, instance, latest=self.latest)}
        if not self.latest:
            attrs["gen_ai.provider.name"] = provider_name(provider, instance, latest=True)
        return attrs

    @_never_raises
    def start(self, model: str, provider: str, stream: bool) -> CallSpan:
        """The span of one call (opened at its first attempt, when the request is known)."""
        return CallSpan(self, model, provider, stream)


class CallSpan:
    """The span and metric attributes of one call; ``CallTrace`` tells it what happens."""

    def __init__(self, tracer: Tracer, model: str, provider: str, stream: bool) -> None:
        self._tracer = tracer
        self._model = model  # the catalog id: the request model until a request is known
        self._provider = provider
        self._stream = stream
        self._start_ns = time.time_ns()
        self._sent = 0.0  # monotonic time the current attempt was sent
        self._first: float | None = None  # seconds from sending to the first chunk
        self._secrets: list[str] = []
        self._span: Any = None
        self._metric: dict[str, Any] = {}

    # ------------------------------------------------------------------ events

    @_never_raises
    def request(
        self, model: str, provider: str, request: ChatRequest, instance: Any = None
    ) -> None:
        """An attempt is about to be sent; the first one opens the span."""
        self._sent = time.monotonic()
        key = getattr(instance, "api_key", None)
        if isinstance(key, str) and key not in self._secrets:
            self._secrets.append(key)
        if self._span is not None:
            return
        t = self._tracer
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            **t.provider_attrs(provider, instance),
            "gen_ai.request.model": request.model,
        }
        host, port = _host_port(getattr(instance, "base_url", None))
        if host:
            attrs["server.address"] = host
            if port is not None:
                attrs["server.port"] = port
        self._metric = dict(attrs)
        params = request.params
        numbers = {
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.top_p": params.get("top_p"),
            "gen_ai.request.top_k": params.get("top_k"),
            "gen_ai.request.frequency_penalty": params.get("frequency_penalty"),
            "gen_ai.request.presence_penalty": params.get("presence_penalty"),
            "gen_ai.request.seed": params.get("seed"),
        }
        for name, value in numbers.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[name] = value
        stop = params.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
            attrs["gen_ai.request.stop_sequences"] = [self._clean(s) for s in stop]
        attrs["gen_ai.request.stream"] = self._stream
        self._open(request.model, attrs)
        if t.capture_content:
            self._input(request)

    @_never_raises
    def event(self, name: str, **fields: Any) -> None:
        """A retry or a fallback, as an event on the span."""
        span = self._ensure()
        error = fields.get("error")
        attrs: dict[str, Any] = {"llm_runtime.model": str(fields.get("model"))}
        if error is not None:
            attrs["error.type"] = _error_type(error)
        if "attempt" in fields:
            attrs["llm_runtime.attempt"] = int(fields["attempt"])
        if "delay" in fields:
            attrs["llm_runtime.retry.delay_s"] = float(fields["delay"])
        if "next" in fields:
            attrs["llm_runtime.fallback.model"] = str(fields["next"])
        span.add_event(name, attrs)

    @_never_raises
    def first_chunk(self) -> None:
        """The first chunk of the answer arrived (streams)."""
        if self._first is None:
            self._first = max(0.0, time.monotonic() - self._sent)

    @_never_raises
    def end(self, completion: Completion) -> None:
        """The call succeeded: response attributes, content, metrics; the span ends."""
        span = self._ensure()
        t = self._tracer
        attrs: dict[str, Any] = {"gen_ai.response.finish_reasons": [completion.finish_reason]}
        if completion.response_id:
            attrs["gen_ai.response.id"] = completion.response_id
        if completion.provider_model:
            attrs["gen_ai.response.model"] = completion.provider_model
            self._metric["gen_ai.response.model"] = completion.provider_model
        attrs.update(_usage_attributes(completion.usage))
        if self._first is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = self._first
        span.set_attributes(attrs)
        if t.capture_content:
            self._output(completion)
        span.end()
        self._record(completion.latency, completion.usage)

    @_never_raises
    def stop(self, reason: BaseException) -> None:
        """The call ended without a result: closed early by the caller, cancelled, a bug."""
        if isinstance(reason, GeneratorExit):  # the caller stopped reading: not an error
            span = self._ensure()
            span.set_attribute("llm_runtime.stream.closed_early", True)
            span.end()
            return
        self.fail(reason)

    @_never_raises
    def fail(self, error: BaseException, latency: float | None = None) -> None:
        """The call failed: ``error.type``, status ERROR, the duration metric; the span ends."""
        span = self._ensure()
        kind = _error_type(error)
        span.set_attribute("error.type", kind)
        span.set_status(self._tracer._status(self._tracer._error, self._clean(str(error))))
        span.end()
        self._metric["error.type"] = kind
        if latency is None:
            latency = max(0.0, (time.time_ns() - self._start_ns) / 1e9)
        self._record(latency, None)

    # ------------------------------------------------------------------ helpers

    def _open(self, request_model: str, attrs: dict[str, Any]) -> None:
        self._span = self._tracer.tracer.start_span(
            f"{OPERATION} {request_model}",
            kind=self._tracer._kind,
            attributes=attrs,
            start_time=self._start_ns,
        )

    def _ensure(self) -> Any:
        """The span; opened with what is known when the call ended before any attempt."""
        if self._span is None:
            t = self._tracer
            attrs = {
                "gen_ai.operation.name": OPERATION,
                **t.provider_attrs(self._provider),
                "gen_ai.request.model": self._model,
                "gen_ai.request.stream": self._stream,
            }
            self._metric = {k: v for k, v in attrs.items() if k != "gen_ai.request.stream"}
            self._open(self._model, attrs)
        return self._span

    def _clean(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _record(self, seconds: float, usage: Usage | None) -> None:
        t = self._tracer
        attrs = self._metric
        t.duration.record(seconds, attrs)
        if self._stream and self._first is not None:
            plain = {k: v for k, v in attrs.items() if k != "error.type"}
            t.first_chunk.record(self._first, plain)
        if usage is not None:
            counts = (("input", usage.prompt_tokens), ("output", usage.completion_tokens))
            for kind, count in counts:
                if count is not None:
                    t.token_usage.record(count, {**attrs, "gen_ai.token.type": kind})

    def _input(self, request: ChatRequest) -> None:
        messages = redact(_input_messages(request.messages), secrets=self._secrets)
        if self._tracer.latest:
            self._span.set_attribute("gen_ai.input.messages", _json(messages))
            return
        system = self._metric.get("gen_ai.system")
        for message in messages:
            self._span.add_event(
                f"gen_ai.{message['role']}.message",
                {"gen_ai.system": str(system), "gen_ai.event.content": _json(_v136_body(message))},
            )

    def _output(self, completion: Completion) -> None:
        message = {"role": "assistant", "parts": _output_parts(completion)}
        message = redact(message, secrets=self._secrets)
        if self._tracer.latest:
            out = [{**message, "finish_reason": completion.finish_reason}]
            self._span.set_attribute("gen_ai.output.messages", _json(out))
            return
        body = {
            "index": 0,
            "finish_reason": completion.finish_reason,
            "message": {"role": "assistant", **_v136_body(message)},
        }
        self._span.add_event(
            "gen_ai.choice",
            {"gen_ai.system": str(self._metric.get("gen_ai.system")),
             "gen_ai.event.content": _json(body)},
        )  # fmt: skip


def _error_type(error: BaseException) -> str:
    """A low-cardinality error identifier: the exception's class name."""
    return type(error).__qualname__


def _usage_attributes(usage: Usage) -> dict[str, int]:
    names = {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
    }
    return {name: value for name, value in names.items() if value is not None}
