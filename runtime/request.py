"""Call arguments + ``ModelConfig`` -> ``ChatRequest``: merge order and parameter policy."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .config import ModelConfig
from .errors import InvalidRequestError
from .types import ChatRequest, Message, normalize_messages

__all__ = ["build_request"]

log = logging.getLogger("runtime")

#: Keyword arguments the runtime itself owns; a call may not pass them as parameters.
RESERVED = frozenset({"model", "messages", "prompt", "stream"})


def build_request(
    cfg: ModelConfig,
    *,
    prompt: str | None = None,
    messages: Iterable[Message | Mapping[str, Any]] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    **kwargs: Any,
) -> ChatRequest:
    """The request ``cfg``'s provider receives for these call arguments.

    Merge order: call arguments > the model's ``extra_params`` > its defaults. Then the
    model's policy: ``unsupported_params`` are dropped (or refused), ``fixed_params`` pinned.
    A ``chat_template`` renders messages into ``ChatRequest.prompt``.
    """
    if (prompt is None) == (messages is None):
        raise InvalidRequestError("give exactly one of prompt= or messages=")
    reserved = RESERVED.intersection(kwargs)
    if reserved:
        raise InvalidRequestError(
            f"{', '.join(sorted(reserved))}: set by the runtime, not a call parameter"
        )
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InvalidRequestError(f"prompt must be a string, not {type(prompt).__name__}")
        msgs: tuple[Message, ...] = (Message("user", prompt),)
    else:
        try:
            msgs = normalize_messages(messages or ())
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None

    explicit = dict(kwargs)  # what the caller asked for, to judge the policy
    if temperature is not None:
        explicit["temperature"] = temperature
    if max_tokens is not None:
        explicit["max_tokens"] = max_tokens
    if cfg.max_tokens_param != "max_tokens" and cfg.max_tokens_param in explicit:
        explicit["max_tokens"] = explicit.pop(cfg.max_tokens_param)
    _check_types(explicit)

    params: dict[str, Any] = {
        "temperature": cfg.default_temperature,
        "max_tokens": cfg.default_max_tokens,
    }
    extra = dict(cfg.extra_params)
    if cfg.max_tokens_param != "max_tokens" and cfg.max_tokens_param in extra:
        extra["max_tokens"] = extra.pop(cfg.max_tokens_param)
    params.update(extra)
    params.update(explicit)
    _apply_policy(cfg, params, explicit)

    rendered = prompt
    if cfg.chat_template is not None and prompt is None:
        from .templates import render_chat_template

        rendered = render_chat_template(cfg.chat_template, msgs, model=cfg.id)

    return ChatRequest(
        model=cfg.provider_model,
        messages=msgs,
        temperature=params.pop("temperature", None),
        max_tokens=params.pop("max_tokens", None),
        max_tokens_param=cfg.max_tokens_param,
        params={k: v for k, v in params.items() if v is not None},
        prompt=rendered,
        options=cfg.options,
    )


def _check_types(explicit: Mapping[str, Any]) -> None:
    temperature, max_tokens = explicit.get("temperature"), explicit.get("max_tokens")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float)
    ):
        raise InvalidRequestError(f"temperature must be a number, got {temperature!r}")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")


def _apply_policy(cfg: ModelConfig, params: dict[str, Any], explicit: Mapping[str, Any]) -> None:
    def refuse(name: str, why: str) -> None:
        if cfg.on_unsupported == "error":
            raise InvalidRequestError(f"model {cfg.id!r}: parameter {name!r} {why}")
        log.warning("model %r: dropping parameter %r: %s", cfg.id, name, why)

    for name in cfg.unsupported_params:
        key = "max_tokens" if name == cfg.max_tokens_param else name
        if explicit.get(key) is not None:
            refuse(name, "is not supported by this model")
        params.pop(key, None)
    for name, value in cfg.fixed_params.items():
        key = "max_tokens" if name == cfg.max_tokens_param else name
        given = explicit.get(key)
        if given is not None and given != value:
            refuse(name, f"is fixed to {value!r} for this model (got {given!r})")
        params[key] = value
