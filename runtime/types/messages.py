"""Chat messages: a role and its content parts; plain strings and OpenAI's shapes accepted.

``Message("user", "Hi")`` is the simple form. Content may also be a list of parts (text,
image, tool call, tool result, reasoning). ``normalize_messages`` accepts ``Message``
objects and dicts, in our shape (``{"role", "content"}``, content a string or a list of
``{"type": ...}`` parts) and in OpenAI's Chat Completions shape (assistant ``tool_calls``,
``role: tool`` with ``tool_call_id``, ``image_url`` parts), so code moving from the openai
SDK works unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .content import ImagePart, Part, ReasoningPart, TextPart, ToolCall, ToolResult

__all__ = ["ROLES", "Message", "Role", "normalize_messages"]

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))

#: Which parts each role may carry.
_ALLOWED: dict[str, tuple[type, ...]] = {
    "system": (TextPart,),
    "user": (TextPart, ImagePart),
    "assistant": (TextPart, ToolCall, ReasoningPart),
    "tool": (ToolResult,),
}


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """One chat message: a role and a tuple of content parts.

    ``Message(role, "text")`` holds one ``TextPart``; ``content`` is the text of all text
    parts joined (what a text-only provider reads).
    """

    role: Role
    parts: tuple[Part, ...]

    def __init__(self, role: Role, content: str | Iterable[Part] = "") -> None:
        parts = (TextPart(content),) if isinstance(content, str) else tuple(content)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "parts", parts)

    @property
    def content(self) -> str:
        """The text of the message (text parts joined; a tool message: its results)."""
        parts = self.parts
        if len(parts) == 1 and type(parts[0]) is TextPart:  # the common message
            return parts[0].text
        texts = [p.text for p in self.parts if isinstance(p, TextPart)]
        texts += [p.content for p in self.parts if isinstance(p, ToolResult)]
        return "".join(texts)

    @property
    def text(self) -> str:
        return self.content

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def is_text(self) -> bool:
        """Whether every part is text (a text-only provider can take it as it is)."""
        parts = self.parts
        if len(parts) == 1:  # the common message: no generator for one part
            return isinstance(parts[0], TextPart)
        return all(isinstance(p, TextPart) for p in parts)

    def to_dict(self) -> dict[str, Any]:
        """``{"role", "content"}``; content is a string for text-only messages, else parts."""
        if self.is_text:
            return {"role": self.role, "content": self.content}
        return {"role": self.role, "content": [part_to_dict(p) for p in self.parts]}


def part_to_dict(part: Part) -> dict[str, Any]:
    """A part in our dict shape (bytes of images as base64)."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        out: dict[str, Any] = {"type": "image"}
        if part.url is not None:
            out["url"] = part.url
        else:
            out["data"] = part.base64
            out["media_type"] = part.media_type
        if part.detail:
            out["detail"] = part.detail
        return out
    if isinstance(part, ToolCall):
        return {
            "type": "tool_call",
            "id": part.id,
            "name": part.name,
            "arguments": dict(part.arguments),
        }
    if isinstance(part, ToolResult):
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_call_id": part.tool_call_id,
            "content": part.content,
        }
        if part.name:
            result["name"] = part.name
        if part.is_error:
            result["is_error"] = True
        return result
    reasoning: dict[str, Any] = {"type": "reasoning", "text": part.text}
    for key in ("signature", "redacted", "origin"):
        if getattr(part, key) is not None:
            reasoning[key] = getattr(part, key)
    return reasoning


def normalize_messages(messages: Iterable[Message | Mapping[str, Any]]) -> tuple[Message, ...]:
    """``Message`` objects or dicts (ours or OpenAI's shape) -> messages; ValueError says where."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise ValueError(f"messages: expected a list of messages, got {type(messages).__name__}")
    out: list[Message] = []
    for index, item in enumerate(messages):
        where = f"messages[{index}]"
        message = item if isinstance(item, Message) else _from_mapping(item, where)
        allowed = _ALLOWED.get(message.role)
        if allowed is None:
            raise ValueError(
                f"{where}.role: expected one of system, user, assistant, tool; got {message.role!r}"
            )
        for i, part in enumerate(message.parts):
            if not isinstance(part, allowed):
                raise ValueError(
                    f"{where}.content[{i}]: a {message.role} message cannot carry "
                    f"a {getattr(part, 'type', type(part).__name__)} part"
                )
        if not message.parts:
            raise ValueError(f"{where}: the message has no content")
        out.append(message)
    if not out:
        raise ValueError("messages: at least one message is needed")
    return tuple(out)


_MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name", "refusal"})


def _from_mapping(item: Any, where: str) -> Message:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected a mapping with role and content")
    role = item.get("role")
    if role not in ROLES:
        raise ValueError(
            f"{where}.role: expected one of system, user, assistant, tool; got {role!r}"
        )
    extra = set(item) - _MESSAGE_KEYS
    if extra:
        raise ValueError(f"{where}: unknown keys {sorted(extra)}")
    content = item.get("content")
    if role == "tool":
        return Message("tool", (_tool_result(item, where),))
    parts: list[Part] = []
    if isinstance(content, str):
        if content or "tool_calls" not in item:
            parts.append(TextPart(content))
    elif isinstance(content, list):
        parts.extend(_part(p, f"{where}.content[{i}]") for i, p in enumerate(content))
    elif content is not None or "tool_calls" not in item:
        raise ValueError(f"{where}.content: expected a string or a list of parts")
    calls = item.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list):
            raise ValueError(f"{where}.tool_calls: only an assistant message has a tool_calls list")
        parts.extend(_openai_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls))
    return Message(role, parts)


def _tool_result(item: Mapping[str, Any], where: str) -> ToolResult:
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ValueError(f"{where}.tool_call_id: a tool message needs the id of its tool call")
    content = item.get("content")
    if isinstance(content, list):  # OpenAI allows text parts here
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{where}.content: a tool result's parts must be text")
        content = "".join(t for t in texts if isinstance(t, str))
    if not isinstance(content, str):
        content = json.dumps(content) if isinstance(content, dict) else None
    if content is None:
        raise ValueError(f"{where}.content: expected the tool's result as text")
    name = item.get("name")
    return ToolResult(call_id, content, name if isinstance(name, str) else None)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value


def _part(raw: Any, where: str) -> Part:
    if isinstance(raw, TextPart | ImagePart | ToolCall | ToolResult | ReasoningPart):
        return raw
    if isinstance(raw, str):
        return TextPart(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a part mapping with a 'type'")
    kind = raw.get("type")
    if kind == "text":
        return TextPart(_text(raw.get("text"), f"{where}.text"))
    if kind == "image":
        return _image(raw, where)
    if kind == "image_url":  # OpenAI: {"image_url": {"url": ..., "detail": ...}}
        inner = raw.get("image_url")
        inner = {"url": inner} if isinstance(inner, str) else inner
        if not isinstance(inner, Mapping):
            raise ValueError(f"{where}.image_url: expected a mapping with url")
        return _image({"url": inner.get("url"), "detail": inner.get("detail")}, where)
    if kind == "tool_call":
        args = raw.get("arguments", {})
        if isinstance(args, str):
            args = _json_object(args, f"{where}.arguments")
        if not isinstance(args, Mapping):
            raise ValueError(f"{where}.arguments: expected a JSON object")
        return ToolCall(
            _text(raw.get("id"), f"{where}.id"), _text(raw.get("name"), f"{where}.name"), dict(args)
        )
    if kind == "tool_result":
        return ToolResult(
            _text(raw.get("tool_call_id"), f"{where}.tool_call_id"),
            _text(raw.get("content"), f"{where}.content"),
            raw.get("name") if isinstance(raw.get("name"), str) else None,
            bool(raw.get("is_error", False)),
        )
    if kind == "reasoning":

        def opt(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        return ReasoningPart(
            str(raw.get("text") or ""), opt("signature"), opt("redacted"), opt("origin")
        )
    raise ValueError(
        f"{where}.type: expected text, image, image_url, tool_call, tool_result or reasoning; "
        f"got {kind!r}"
    )


def _image(raw: Mapping[str, Any], where: str) -> ImagePart:
    url, data, media = raw.get("url"), raw.get("data"), raw.get("media_type")
    detail = raw.get("detail") if isinstance(raw.get("detail"), str) else None
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}.data: not valid base64") from None
    if data is not None and not isinstance(data, bytes | bytearray):
        raise ValueError(f"{where}.data: expected bytes or base64 text")
    if url is not None and not isinstance(url, str):
        raise ValueError(f"{where}.url: expected a string")
    try:
        image = ImagePart(
            url=url,
            data=bytes(data) if data is not None else None,
            media_type=media if isinstance(media, str) else None,
            detail=detail,
        )
        image.inline()  # a data: URL must decode
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return image


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        raise ValueError(f"{where}: not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object")
    return value


def _openai_tool_call(raw: Any, where: str) -> ToolCall:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    function = raw.get("function")
    if not isinstance(function, Mapping):
        raise ValueError(f"{where}.function: expected a mapping with name and arguments")
    args = function.get("arguments", "{}")
    arguments = _json_object(args, f"{where}.function.arguments") if isinstance(args, str) else args
    if not isinstance(arguments, Mapping):
        raise ValueError(f"{where}.function.arguments: expected a JSON object")
    return ToolCall(
        _text(raw.get("id"), f"{where}.id"),
        _text(function.get("name"), f"{where}.function.name"),
        dict(arguments),
    )
