"""Content parts: the closed set of things a message can carry (text, image, tool call, ...).

Every part is a frozen dataclass with a ``type`` tag. The set is closed on purpose: a wire
provider encodes each kind for its vendor (or refuses it clearly), so a part added here is
added to every encoder by design.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = [
    "ImagePart",
    "Part",
    "ReasoningPart",
    "TextPart",
    "ToolCall",
    "ToolResult",
]


@dataclass(frozen=True, slots=True)
class TextPart:
    """Plain text."""

    text: str
    type: ClassVar[Literal["text"]] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image, by URL (``https:`` or ``data:``) or by its bytes with a media type.

    ``detail`` is OpenAI's resolution hint (``low``/``high``/``auto``); other vendors ignore it.
    """

    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    media_type: str | None = None
    detail: str | None = None
    type: ClassVar[Literal["image"]] = "image"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image needs exactly one of url or data")
        if self.data is not None and not self.media_type:
            raise ValueError("an image given as data needs its media_type (e.g. image/png)")

    @property
    def base64(self) -> str | None:
        """The bytes as base64 text (None for an image by URL)."""
        return base64.b64encode(self.data).decode("ascii") if self.data is not None else None

    def inline(self) -> tuple[str, bytes] | None:
        """(media type, bytes) of an image given as data or as a ``data:`` URL, else None."""
        if self.data is not None:
            assert self.media_type is not None
            return self.media_type, self.data
        assert self.url is not None
        if not self.url.startswith("data:"):
            return None
        head, sep, payload = self.url[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            raise ValueError("a data: URL image must be base64 (data:<type>;base64,<data>)")
        try:
            return head[: -len(";base64")] or "application/octet-stream", base64.b64decode(
                payload, validate=True
            )
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"a data: URL image is not valid base64: {exc}") from None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call of a tool the model asked for: ``arguments`` is the parsed JSON object."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    type: ClassVar[Literal["tool_call"]] = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned for the call ``tool_call_id`` (``name`` is the tool's name)."""

    tool_call_id: str
    content: str
    name: str | None = None
    is_error: bool = False
    type: ClassVar[Literal["tool_result"]] = "tool_result"


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """The model's reasoning (thinking) as the vendor returned it.

    ``signature`` (Anthropic's thinking signature, Gemini's thoughtSignature) and
    ``redacted`` (Anthropic's encrypted ``redacted_thinking`` data) must go back verbatim
    on the next turn to the same vendor; ``origin`` names the wire protocol that produced
    them, because another vendor cannot verify them.
    """

    text: str = ""
    signature: str | None = field(default=None, repr=False)
    redacted: str | None = field(default=None, repr=False)
    origin: str | None = None
    type: ClassVar[Literal["reasoning"]] = "reasoning"


Part = TextPart | ImagePart | ToolCall | ToolResult | ReasoningPart
