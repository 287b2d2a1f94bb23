"""``ChatRequest``: what a provider receives after defaults, merging and the parameter policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .content import TextPart
from .messages import Message
from .tools import OutputSchema, ReasoningConfig, Tool, ToolChoice

__all__ = ["ChatRequest"]


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
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: OutputSchema | None = None
    reasoning: ReasoningConfig | None = None
    #: The model's declared capabilities (models.yaml ``capabilities:``, unset ones omitted).
    capabilities: Mapping[str, Any] = field(default_factory=dict)

    def as_prompt(self) -> str:
        """The request as one prompt string, for providers that only take text."""
        if self.prompt is not None:
            return self.prompt
        if len(self.messages) == 1 and self.messages[0].role == "user":
            return self.messages[0].content
        lines = [f"{m.role.capitalize()}: {m.content}" for m in self.messages]
        lines.append("Assistant:")
        return "\n\n".join(lines)

    @property
    def is_text(self) -> bool:
        """Whether every message is plain text (what a text-only provider can take)."""
        return all(isinstance(p, TextPart) for m in self.messages for p in m.parts)
