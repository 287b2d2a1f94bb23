"""Stream events: what a provider yields while it answers; the union is open.

A provider yields deltas as they arrive and exactly one ``StreamEnd`` last. Consumers must
ignore event kinds they do not know, so a new kind can be added without breaking them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .content import ToolCall

__all__ = [
    "FinishReason",
    "ReasoningDelta",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallDone",
    "Usage",
    "UsageUpdate",
]

#: Why generation stopped, normalised across vendors:
#: "stop" (natural end or a stop sequence), "length" (max tokens), "content_filter",
#: "tool_calls" (the model called tools), or "unknown" when the provider did not say.
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "unknown"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, as the provider reported them (None where it did not).

    ``prompt_tokens`` is the whole prompt (cached tokens included); ``cached_tokens`` the part
    read from the vendor's cache, ``cache_write_tokens`` the part written to it;
    ``completion_tokens`` includes ``reasoning_tokens``.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.total_tokens is None and (
            self.prompt_tokens is not None and self.completion_tokens is not None
        ):
            object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)

    def merged(self, later: Usage) -> Usage:
        """This usage with every field ``later`` reports replacing it."""
        values = {
            name: getattr(later, name) if getattr(later, name) is not None else getattr(self, name)
            for name in self.__dataclass_fields__
        }
        if later.total_tokens is None:
            values["total_tokens"] = None  # recomputed from the merged counts
        return Usage(**values)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of generated text, as it arrived."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning; ``signature``/``redacted`` close a reasoning block.

    ``index`` groups deltas into blocks: a new index starts a new ``ReasoningPart``.
    """

    text: str = ""
    signature: str | None = field(default=None, repr=False)
    redacted: str | None = field(default=None, repr=False)
    index: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call: ``index`` names the call (several may interleave).

    The first fragment of a call usually carries ``id`` and ``name``; ``arguments`` is a
    piece of the JSON text of its arguments, split anywhere.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallDone:
    """A tool call whose arguments are complete (parsed), as soon as the stream says so."""

    index: int
    call: ToolCall


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Token counts reported mid-stream; later updates replace the fields they report."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a stream: why it stopped and what it used."""

    finish_reason: FinishReason = "unknown"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    id: str | None = None  # the vendor's response id


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | ToolCallDone | UsageUpdate | StreamEnd
