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
from .tools import (
    OutputSchema,
    ReasoningConfig,
    Tool,
    ToolChoice,
    normalize_reasoning,
    normalize_response_format,
    normalize_tool_choice,
    normalize_tools,
)

__all__ = [
    "ROLES",
    "Accumulator",
    "ChatRequest",
    "Completion",
    "FinishReason",
    "ImagePart",
    "Message",
    "OutputSchema",
    "Part",
    "ProviderResponse",
    "ReasoningConfig",
    "ReasoningDelta",
    "ReasoningPart",
    "Role",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallDone",
    "ToolChoice",
    "ToolResult",
    "Usage",
    "UsageUpdate",
    "normalize_messages",
    "normalize_reasoning",
    "normalize_response_format",
    "normalize_tool_choice",
    "normalize_tools",
    "part_to_dict",
]
