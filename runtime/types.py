"""The vocabulary of one call: messages, requests, usage, results and stream events; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatRequest",
    "Completion",
    "FinishReason",
    "Message",
    "ProviderResponse",
    "Role",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "normalize_messages",
]

Role = Literal["system", "user", "assistant"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant"))

#: Why generation stopped, normalised across vendors:
#: "stop" (natural end or a stop sequence), "length" (max tokens), "content_filter",
#: "tool_calls", or "unknown" when the provider did not say.
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "unknown"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def normalize_messages(messages: Iterable[Message | Mapping[str, Any]]) -> tuple[Message, ...]:
    """Accept ``Message`` objects or ``{"role": ..., "content": ...}`` dicts; refuse anything else.

    Raises ``ValueError`` naming the offending index.
    """
    out: list[Message] = []
    for index, item in enumerate(messages):
        if isinstance(item, Message):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValueError(f"messages[{index}]: expected a mapping with role and content")
        role = item.get("role")
        content = item.get("content")
        extra = set(item) - {"role", "content"}
        if role not in ROLES:
            raise ValueError(
                f"messages[{index}].role: expected one of system, user, assistant; got {role!r}"
            )
        if not isinstance(content, str):
            raise ValueError(f"messages[{index}].content: expected a string")
        if extra:
            raise ValueError(f"messages[{index}]: unknown keys {sorted(extra)}")
        out.append(Message(role, content))
    if not out:
        raise ValueError("messages: at least one message is needed")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, as the provider reported them (None where it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.total_tokens is None and (
            self.prompt_tokens is not None and self.completion_tokens is not None
        ):
            object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a provider receives after defaults, merging and the parameter policy.

    ``model`` is the name the provider knows (``provider_model``); ``max_tokens_param`` is the
    wire name the model wants for ``max_tokens``; ``params`` holds every other parameter
    (``extra_params`` and call kwargs), already filtered by the model's policy. A provider
    sends ``temperature`` / ``max_tokens`` only when they are not None.
    """

    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    max_tokens_param: str = "max_tokens"
    params: Mapping[str, Any] = field(default_factory=dict)
    prompt: str | None = None  # set when the caller gave a plain prompt, not messages
    options: Mapping[str, Any] = field(default_factory=dict)  # the model's provider options
    connect_timeout: float | None = None  # seconds; None: the provider's default
    read_timeout: float | None = None  # seconds between bytes; None: the provider's default

    def as_prompt(self) -> str:
        """The request as one prompt string, for providers that only take text."""
        if self.prompt is not None:
            return self.prompt
        if len(self.messages) == 1 and self.messages[0].role == "user":
            return self.messages[0].content
        lines = [f"{m.role.capitalize()}: {m.content}" for m in self.messages]
        lines.append("Assistant:")
        return "\n\n".join(lines)


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """What a provider returns for one non-streamed call."""

    text: str
    finish_reason: FinishReason = "unknown"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None  # the model name the vendor reported, if any
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of generated text, as it arrived."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a stream: why it stopped and what it used."""

    finish_reason: FinishReason = "unknown"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


StreamEvent = TextDelta | StreamEnd


@dataclass(frozen=True, slots=True)
class Completion:
    """The result of ``LLMRuntime.generate``: the text and everything known about the call."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str  # the model id from models.yaml that answered (after fallbacks)
    provider: str
    latency: float  # seconds, wall clock, including retries
    attempts: int = 1
    provider_model: str | None = None  # what the vendor reported it ran

    def __str__(self) -> str:
        return self.text
