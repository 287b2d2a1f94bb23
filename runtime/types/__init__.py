"""The vocabulary of one call, with no I/O: content parts, messages, requests, events, results.

Provider authors import these from here (or from ``runtime.providers``); application code
gets the ones it needs from ``runtime``.
"""

from __future__ import annotations

from .content import ImagePart, Part, ReasoningPart, TextPart, ToolCall, ToolResult
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
from .messages import ROLES, Message, Role, normalize_messages, part_to_dict
from .request import ChatRequest
from .response import Accumulator, Completion, ProviderResponse, ToolArgumentsError

__all__ = [
    "ROLES",
    "Accumulator",
    "ChatRequest",
    "Completion",
    "FinishReason",
    "ImagePart",
    "Message",
    "Part",
    "ProviderResponse",
    "ReasoningDelta",
    "ReasoningPart",
    "Role",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallDone",
    "ToolResult",
    "Usage",
    "UsageUpdate",
    "normalize_messages",
    "part_to_dict",
]
