"""``explain``: the exact request a call would send, secrets redacted; nothing is sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..config import ModelConfig
from ..redact import redact
from ..types import Message
from .call import CallArgs
from .resolve import Snapshot, construct

__all__ = ["explain"]


async def explain(
    snapshot: Snapshot,
    cfg: ModelConfig,
    prompt: str | None,
    messages: Iterable[Message | Mapping[str, Any]] | None,
    stream: bool,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """What ``cfg``'s provider would receive for these arguments, and how it was decided.

    A throwaway provider instance (the real key only to redact it, else a ``$VAR``
    placeholder) describes the request; ``parameter_policy`` lists what the model's policy
    dropped or pinned, and why.
    """
    plan = snapshot.plan(cfg)
    template = kwargs.get("template")
    args = CallArgs.split(
        prompt,
        messages,
        kwargs.pop("temperature", None),
        kwargs.pop("max_tokens", None),
        kwargs,
        snapshot.catalog.templates,
    )
    request, notes = args.request_for(cfg)
    timeouts = plan.timeouts
    key_env = plan.key_env
    configured = snapshot.api_key(plan) if key_env and snapshot.env(key_env) else None
    api_key = args.api_key or configured
    placeholder = api_key or (f"${key_env}" if key_env else None)
    cls = snapshot.provider_class(plan.provider)
    provider = construct(
        cls, plan.provider, placeholder, snapshot.base_url(plan), plan.http, plan.http_engine
    )
    streaming = stream and cfg.supports_streaming
    try:
        timed = replace(request, connect_timeout=timeouts.connect, read_timeout=timeouts.read)
        described = provider.describe_request(timed, stream=streaming)
    finally:
        await provider.aclose()
    if args.api_key:
        key_state = "given for this call"
    else:
        key_state = "set" if api_key else ("unset" if key_env else "not needed")
    secrets = [api_key] if api_key else []
    return {
        "model": cfg.id,
        "provider": plan.provider.name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "api_key_env": key_env,
        "api_key": key_state,
        "stream": streaming,
        "timeout": args.timeout if args.timeout is not None else timeouts.total,
        "parameter_policy": [str(note) for note in notes],
        **({"template": template} if template is not None else {}),
        "messages": redact([m.to_dict() for m in request.messages], secrets=secrets),
        "request": redact(described, getattr(provider, "secret_headers", ()), secrets),
    }
