"""Provider classes: the contract (``base``), the name registry and one module per wire API.

Provider authors import what they need from here: ``LLMProvider`` (the seed's contract),
``ChatProvider``, ``WireProvider`` (the base of HTTP wire protocols), the call's types and
``register_provider``. Provider modules themselves are imported only when a provider that
names them is first used (or its options are checked at load).
"""

from __future__ import annotations

from ..types import (
    ChatRequest,
    ImagePart,
    Message,
    ProviderResponse,
    ReasoningDelta,
    ReasoningPart,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolResult,
    Usage,
    UsageUpdate,
)
from .base import ChatProvider, LLMProvider
from .registry import register_provider
from .wire import Route, StreamDecoder, WireOptions, WireProvider

__all__ = [
    "ChatProvider",
    "ChatRequest",
    "ImagePart",
    "LLMProvider",
    "Message",
    "ProviderResponse",
    "ReasoningDelta",
    "ReasoningPart",
    "Route",
    "StreamDecoder",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallDone",
    "ToolResult",
    "Usage",
    "UsageUpdate",
    "WireOptions",
    "WireProvider",
    "register_provider",
]
