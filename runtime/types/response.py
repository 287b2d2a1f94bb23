"""Responses: what a provider returns, what the runtime returns, and the one accumulator.

``Accumulator`` turns events into a ``ProviderResponse``. A wire provider decodes a JSON
reply into the same events its stream decoder yields, and both go through the accumulator,
so a non-streamed and a streamed reply cannot be read differently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .content import Part, ReasoningPart, TextPart, ToolCall
from .events import (
    FinishReason,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    Usage,
    UsageUpdate,
)
from .messages import Message

__all__ = [
    "Accumulator",
    "Completion",
    "ProviderResponse",
    "ToolArgumentsError",
    "parse_arguments",
]

_NOT_PRICED: Any = object()
_NO_USAGE = Usage()


class ToolArgumentsError(ValueError):
    """A tool call's arguments are not a JSON object; ``raw`` holds the text as it came.

    Internal: the runtime raises it as ``runtime.errors.ToolArgumentsError`` (a
    MalformedResponseError) with the provider and model named.
    """

    def __init__(self, name: str, raw: str, why: str) -> None:
        self.name = name
        self.raw = raw
        super().__init__(f"the arguments of tool call {name!r} are not a JSON object ({why})")


def _text_of(parts: Iterable[Part]) -> str:
    return "".join(p.text for p in parts if isinstance(p, TextPart))


def _reasoning_of(parts: Iterable[Part]) -> str | None:
    texts = [p.text for p in parts if isinstance(p, ReasoningPart) and p.text]
    return "".join(texts) if texts else None


@dataclass(frozen=True, slots=True, init=False)
class ProviderResponse:
    """What a provider returns for one non-streamed call.

    ``ProviderResponse(text, finish_reason, usage, model)`` is the text-only form; richer
    providers pass ``parts`` (text, tool calls, reasoning, in the order the vendor gave).
    """

    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str | None  # the model name the vendor reported, if any
    parts: tuple[Part, ...]
    id: str | None
    raw: Any = field(repr=False, compare=False)

    def __init__(
        self,
        text: str | None = None,
        finish_reason: FinishReason = "unknown",
        usage: Usage | None = None,
        model: str | None = None,
        raw: Any = None,
        *,
        parts: Iterable[Part] | None = None,
        id: str | None = None,
    ) -> None:
        parts = tuple(parts) if parts is not None else ((TextPart(text),) if text else ())
        single = len(parts) == 1 and type(parts[0]) is TextPart  # the common reply
        if text is None:
            text = parts[0].text if single else _text_of(parts)  # type: ignore[union-attr]
        if (
            not single
            and finish_reason in ("stop", "unknown")
            and any(isinstance(p, ToolCall) for p in parts)
        ):
            finish_reason = "tool_calls"  # some vendors say "stop" when the model called a tool
        setattr_ = object.__setattr__
        setattr_(self, "text", text)
        setattr_(self, "finish_reason", finish_reason)
        setattr_(self, "usage", usage if usage is not None else Usage())
        setattr_(self, "model", model)
        setattr_(self, "parts", parts)
        setattr_(self, "id", id)
        setattr_(self, "raw", raw)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def reasoning(self) -> str | None:
        return _reasoning_of(self.parts)

    @property
    def message(self) -> Message:
        """The assistant turn, to append to the conversation."""
        return Message("assistant", self.parts)

    def events(self) -> list[StreamEvent]:
        """This response as the events a stream of it would have yielded."""
        out: list[StreamEvent] = []
        calls = 0
        for index, part in enumerate(self.parts):
            if isinstance(part, TextPart):
                if part.text:
                    out.append(TextDelta(part.text))
            elif isinstance(part, ReasoningPart):
                out.append(ReasoningDelta(part.text, part.signature, part.redacted, index))
            elif isinstance(part, ToolCall):
                out.append(ToolCallDone(calls, part))
                calls += 1
        out.append(StreamEnd(self.finish_reason, self.usage, self.model, self.id))
        return out


class Accumulator:
    """Builds one ``ProviderResponse`` from stream events, in the order they came."""

    __slots__ = (
        "_calls",
        "_done",
        "_end",
        "_parts",
        "_reasoning",
        "_text",
        "_usage",
        "_usage_seen",
        "origin",
    )

    def __init__(self, origin: str | None = None) -> None:
        self.origin = origin  # stamped on reasoning parts: the protocol that made them
        self._parts: list[_TextRun | _OpenCall | _OpenReasoning] = []
        self._text: list[str] | None = None  # the text run being collected
        self._calls: dict[int, _OpenCall] = {}
        self._reasoning: dict[int, _OpenReasoning] = {}
        self._done: list[ToolCall] = []
        self._usage = _NO_USAGE
        self._usage_seen = False  # a UsageUpdate came (else the usage is the StreamEnd's)
        self._end: StreamEnd | None = None

    @property
    def text(self) -> str:
        """The text so far."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, _TextRun):
                out.append("".join(part.pieces))
        return "".join(out)

    @property
    def ended(self) -> bool:
        return self._end is not None

    def add(self, event: StreamEvent) -> None:
        """Take one event (kinds it does not know are ignored)."""
        kind = type(event)
        if kind is TextDelta:  # the common events first, by exact type
            if self._text is None:
                run = _TextRun()
                self._parts.append(run)
                self._text = run.pieces
            self._text.append(event.text)  # type: ignore[union-attr]
            return
        if kind is StreamEnd:
            self._end = event  # type: ignore[assignment]
            return
        if isinstance(event, TextDelta):
            if self._text is None:
                run = _TextRun()
                self._parts.append(run)
                self._text = run.pieces
            self._text.append(event.text)
            return
        self._text = None if not isinstance(event, UsageUpdate | StreamEnd) else self._text
        if isinstance(event, ReasoningDelta):
            block = self._reasoning.get(event.index)
            if block is None:
                block = self._reasoning[event.index] = _OpenReasoning()
                self._parts.append(block)
            block.pieces.append(event.text)
            block.signature = event.signature or block.signature
            block.redacted = event.redacted or block.redacted
        elif isinstance(event, ToolCallDelta):
            call = self._calls.get(event.index)
            if call is None:
                call = self._calls[event.index] = _OpenCall()
                self._parts.append(call)
            call.id = call.id or event.id
            call.name = call.name or event.name
            call.arguments.append(event.arguments)
        elif isinstance(event, ToolCallDone):
            open_call = self._calls.get(event.index)
            if open_call is not None:
                open_call.final = event.call
            else:
                self._calls[event.index] = done = _OpenCall()
                done.final = event.call
                self._parts.append(done)
        elif isinstance(event, UsageUpdate):
            self._usage = self._usage.merged(event.usage)
            self._usage_seen = True
        elif isinstance(event, StreamEnd):
            self._end = event

    def response(self, raw: Any = None) -> ProviderResponse:
        """The response the events so far describe (tool-call arguments parsed now)."""
        end = self._end or StreamEnd()
        parts: list[Part] = []
        for part in self._parts:
            if isinstance(part, _TextRun):
                text = "".join(part.pieces)
                if text:
                    parts.append(TextPart(text))
            elif isinstance(part, _OpenCall):
                parts.append(part.final or part.build())
            else:
                parts.append(part.build(self.origin))
        usage = (
            self._usage.merged(end.usage)
            if self._usage_seen and self._usage != _NO_USAGE
            else end.usage
        )
        return ProviderResponse(
            None, end.finish_reason, usage, end.model, raw, parts=parts, id=end.id
        )


class _TextRun:
    __slots__ = ("pieces",)

    def __init__(self) -> None:
        self.pieces: list[str] = []


class _OpenReasoning:
    __slots__ = ("pieces", "redacted", "signature")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.signature: str | None = None
        self.redacted: str | None = None

    def build(self, origin: str | None) -> ReasoningPart:
        return ReasoningPart("".join(self.pieces), self.signature, self.redacted, origin)


class _OpenCall:
    __slots__ = ("arguments", "final", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []
        self.final: ToolCall | None = None

    def build(self) -> ToolCall:
        name = self.name or ""
        return ToolCall(self.id or "", name, parse_arguments(name, "".join(self.arguments)))


def parse_arguments(name: str, raw: str) -> dict[str, Any]:
    """The JSON object of tool call ``name``'s arguments text (empty text: ``{}``).

    Raises ToolArgumentsError (with ``raw``) for text that is not a JSON object.
    """
    try:
        value = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise ToolArgumentsError(name, raw, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(value, dict):
        raise ToolArgumentsError(name, raw, f"a JSON {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Completion:
    """The result of ``LLMRuntime.generate``: the answer and everything known about the call.

    ``failures`` lists ``(model id, error)`` for every model of the fallback chain that
    failed before ``model`` answered (empty when the first one did).
    """

    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str  # the model id from models.yaml that answered (after fallbacks)
    provider: str
    latency: float  # seconds, wall clock, including retries
    attempts: int = 1
    provider_model: str | None = None  # what the vendor reported it ran
    parts: tuple[Part, ...] = ()
    failures: tuple[tuple[str, Exception], ...] = field(default=(), compare=False)
    parsed: Any = None  # the validated structured output, when response_format was given
    response_id: str | None = None
    #: Prices the call when ``cost`` is first read (set by the runtime; see runtime.pricing).
    pricer: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    _cost: Any = field(default=_NOT_PRICED, repr=False, compare=False)

    @property
    def cost(self) -> Any:
        """What the call cost (``runtime.pricing.Cost``), or None when it is not known.

        Computed when first read, never during the call; never 0 for "unknown".
        """
        if self._cost is _NOT_PRICED:
            try:
                value = self.pricer() if self.pricer is not None else None
            except Exception:  # a price is never worth an error
                value = None
            object.__setattr__(self, "_cost", value)
        return self._cost

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def reasoning(self) -> str | None:
        """The reasoning text the vendor returned, or None."""
        return _reasoning_of(self.parts)

    @property
    def message(self) -> Message:
        """The assistant turn (text, tool calls and reasoning), to append to the conversation."""
        return Message("assistant", self.parts or (TextPart(self.text),))

    def __str__(self) -> str:
        return self.text
