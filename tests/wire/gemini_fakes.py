"""Gemini-shaped replies for loopback servers: responses, stream chunks, blocks and errors.

The shapes follow the Generative Language API v1beta ``GenerateContentResponse`` and the
google.rpc error envelope, so tests read like the real traffic.
"""

from __future__ import annotations

from typing import Any

from tests.loopback import Reply, sse

__all__ = [
    "MODEL_VERSION",
    "blocked_prompt",
    "candidate",
    "error_body",
    "error_info",
    "error_reply",
    "function_call",
    "parts_candidate",
    "response",
    "retry_info",
    "sse_reply",
    "usage",
]

MODEL_VERSION = "gemini-2.5-flash"


def usage(
    prompt: int | None = None,
    candidates: int | None = None,
    total: int | None = None,
    *,
    cached: int | None = None,
    thoughts: int | None = None,
) -> dict[str, Any]:
    """A ``usageMetadata`` object with only the counts given."""
    keys = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": total,
        "cachedContentTokenCount": cached,
        "thoughtsTokenCount": thoughts,
    }
    return {k: v for k, v in keys.items() if v is not None}


def candidate(
    *texts: str,
    finish: str | None = "STOP",
    thoughts: tuple[str, ...] = (),
    ratings: list[dict[str, Any]] | None = None,
    index: int | None = 0,
) -> dict[str, Any]:
    """One candidate: thought-summary parts first (``"thought": true``), then text parts."""
    parts: list[dict[str, Any]] = [{"text": t, "thought": True} for t in thoughts]
    parts += [{"text": t} for t in texts]
    out: dict[str, Any] = {}
    if parts:
        out["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        out["finishReason"] = finish
    if ratings is not None:
        out["safetyRatings"] = ratings
    if index is not None:
        out["index"] = index
    return out


def function_call(
    name: str, args: Any, *, id: str | None = None, signature: str | None = None
) -> dict[str, Any]:
    """A ``functionCall`` part (Gemini sends ``args`` as an object, ``id`` only sometimes)."""
    call: dict[str, Any] = {"name": name, "args": args}
    if id is not None:
        call["id"] = id
    part: dict[str, Any] = {"functionCall": call}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def parts_candidate(*parts: dict[str, Any], finish: str | None = "STOP") -> dict[str, Any]:
    """A candidate with these exact content parts (function calls, signed parts, ...)."""
    out: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish is not None:
        out["finishReason"] = finish
    return out


def response(
    *candidates: dict[str, Any],
    usage_metadata: dict[str, Any] | None = None,
    prompt_feedback: dict[str, Any] | None = None,
    model_version: str | None = MODEL_VERSION,
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` (also the shape of one stream chunk)."""
    out: dict[str, Any] = {}
    if candidates:
        out["candidates"] = list(candidates)
    if prompt_feedback is not None:
        out["promptFeedback"] = prompt_feedback
    if usage_metadata is not None:
        out["usageMetadata"] = usage_metadata
    if model_version is not None:
        out["modelVersion"] = model_version
        out["responseId"] = "resp-1"
    return out


def blocked_prompt(reason: str = "SAFETY", *blocked: str) -> dict[str, Any]:
    """A reply whose prompt was blocked: promptFeedback, no candidates, prompt usage only."""
    ratings = [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        *({"category": c, "probability": "HIGH", "blocked": True} for c in blocked),
    ]
    return response(
        prompt_feedback={"blockReason": reason, "safetyRatings": ratings},
        usage_metadata=usage(7, total=7),
    )


def sse_reply(chunks: list[Any], **kwargs: Any) -> Reply:
    """An SSE reply: each chunk (dict -> JSON, str as is) becomes one ``data:`` event."""
    return Reply(chunks=sse((None, c) for c in chunks), **kwargs)


def error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def error_body(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    """Gemini's error envelope."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = list(details)
    return {"error": err}


def error_reply(
    code: int,
    status: str,
    message: str,
    *details: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Reply:
    return Reply(code, error_body(code, status, message, *details), headers=headers or {})
