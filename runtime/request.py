"""Call arguments + ``ModelConfig`` -> ``ChatRequest``: merge order and parameter policy."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .config import ModelConfig
from .errors import CapabilityError, InvalidRequestError
from .prompts import with_system_prompt
from .types import (
    ChatRequest,
    Message,
    normalize_messages,
    normalize_reasoning,
    normalize_response_format,
    normalize_tool_choice,
    normalize_tools,
)

__all__ = [
    "RESERVED",
    "RUNTIME_OWNED",
    "PolicyNote",
    "build_request",
    "compose_request",
    "plan_request",
]

log = logging.getLogger("runtime")

#: Keyword arguments the runtime itself owns; a call may not pass them as parameters.
RESERVED = frozenset({"model", "messages", "prompt", "stream"})
#: Keyword arguments the runtime takes per call (never sent to a vendor as body fields).
RUNTIME_OWNED = frozenset({"timeout", "api_key", "base_url", "template", "variables"})
#: Call arguments every provider receives in its own vendor's shape (ChatRequest fields).
PORTABLE = frozenset(
    {"tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning"}
)


@dataclass(frozen=True, slots=True)
class PolicyNote:
    """What the model's parameter policy did to one parameter of a call, and why."""

    param: str
    action: str  # "dropped" or "pinned"
    why: str

    def __str__(self) -> str:
        return f"{self.param}: {self.action} ({self.why})"


def build_request(
    cfg: ModelConfig,
    *,
    prompt: str | None = None,
    messages: Iterable[Message | Mapping[str, Any]] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    **kwargs: Any,
) -> ChatRequest:
    """The request ``cfg``'s provider receives for these call arguments (see plan_request)."""
    request, _ = plan_request(
        cfg,
        prompt=prompt,
        messages=messages,
        temperature=temperature,
        max_tokens=max_tokens,
        **kwargs,
    )
    return request


def plan_request(
    cfg: ModelConfig,
    *,
    prompt: str | None = None,
    messages: Iterable[Message | Mapping[str, Any]] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    **kwargs: Any,
) -> tuple[ChatRequest, tuple[PolicyNote, ...]]:
    """The request ``cfg``'s provider receives, and what the parameter policy changed.

    Merge order: call arguments > the model's ``extra_params`` > its defaults. Then the
    model's policy: ``unsupported_params`` are dropped (or refused), ``fixed_params`` pinned.
    A ``chat_template`` renders messages into ``ChatRequest.prompt``.
    """
    return compose_request(cfg, prompt, messages, temperature, max_tokens, kwargs)


def compose_request(
    cfg: ModelConfig,
    prompt: str | None,
    messages: Iterable[Message | Mapping[str, Any]] | None,
    temperature: float | None,
    max_tokens: int | None,
    kwargs: Mapping[str, Any],
    *,
    capabilities: Mapping[str, Any] | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> tuple[ChatRequest, tuple[PolicyNote, ...]]:
    """``plan_request`` for the engine: call parameters as one mapping, and what the
    model's call plan holds already (its capabilities as a request carries them, the
    connect and read timeouts) instead of deriving them again."""
    msgs = _messages(prompt, messages, kwargs)
    if cfg.system_prompt is not None:
        with_system = with_system_prompt(cfg, msgs)
        if with_system is not msgs:
            msgs, prompt = with_system, None  # the prompt alone is no longer the request
    if kwargs:
        kwargs = dict(kwargs)
        portable = {name: kwargs.pop(name) for name in PORTABLE & kwargs.keys()}
        features = _portable(cfg, portable) if portable else _NO_FEATURES
    else:
        features = _NO_FEATURES
    params, notes = _merged(cfg, temperature, max_tokens, kwargs)

    rendered = prompt
    if cfg.chat_template is not None and prompt is None:
        from .templates import render_chat_template

        rendered = render_chat_template(cfg.chat_template, msgs, model=cfg.id)

    request = ChatRequest(
        model=cfg.provider_model,
        messages=msgs,
        temperature=params.pop("temperature", None),
        max_tokens=params.pop("max_tokens", None),
        max_tokens_param=cfg.max_tokens_param,
        params={k: v for k, v in params.items() if v is not None} if params else {},
        prompt=rendered,
        options=cfg.options,
        capabilities=(
            capabilities
            if capabilities is not None
            else cfg.capabilities.model_dump(exclude_none=True)
        ),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        **features,
    )
    if cfg.capabilities.images is False and any(
        part.type == "image" for m in msgs for part in m.parts
    ):
        raise CapabilityError(
            f"model {cfg.id!r} does not take images (capabilities.images: false in models.yaml)",
            capability="images",
            model=cfg.id,
        )
    return request, notes


#: The ChatRequest fields of a call that asks for no tools, output schema or reasoning:
#: none given, their defaults (no tools, no choice, no schema, no reasoning) are that call.
_NO_FEATURES: Mapping[str, Any] = MappingProxyType({})


def _portable(cfg: ModelConfig, given: Mapping[str, Any]) -> dict[str, Any]:
    """Tools, tool choice, output schema and reasoning: normalised, checked against the
    model's declared capabilities (a capability declared false is refused here)."""
    try:
        tools = normalize_tools(given.get("tools"))
        choice = normalize_tool_choice(given.get("tool_choice"), tools)
        response_format = normalize_response_format(given.get("response_format"))
        reasoning = normalize_reasoning(given.get("reasoning"))
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    parallel = given.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequestError("parallel_tool_calls must be true or false")
    caps = cfg.capabilities
    needs = [
        ("tools", bool(tools), caps.tools is False),
        ("parallel_tool_calls", parallel is True, caps.parallel_tool_calls is False),
        ("structured_output", response_format is not None, caps.structured_output == "none"),
        ("reasoning", reasoning is not None, caps.reasoning == "none"),
    ]
    for name, wanted, refused in needs:
        if wanted and refused:
            raise CapabilityError(
                f"model {cfg.id!r} does not support {name} (capabilities in models.yaml)",
                capability=name,
                model=cfg.id,
            )
    if reasoning is not None and caps.reasoning == "effort" and reasoning.effort is None:
        raise InvalidRequestError(
            f"model {cfg.id!r} takes a reasoning effort (low, medium or high), not a budget"
        )
    return {
        "tools": tools,
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
        "response_format": response_format,
        "reasoning": reasoning,
    }


def _messages(
    prompt: str | None,
    messages: Iterable[Message | Mapping[str, Any]] | None,
    kwargs: Mapping[str, Any],
) -> tuple[Message, ...]:
    """The call's messages (a prompt is one user message); its arguments checked."""
    if (prompt is None) == (messages is None):
        raise InvalidRequestError("give exactly one of prompt= or messages=")
    if kwargs:  # (none in the common call: nothing to look for)
        reserved = RESERVED.intersection(kwargs)
        if reserved:
            raise InvalidRequestError(
                f"{', '.join(sorted(reserved))}: set by the runtime, not a call parameter"
            )
        owned = RUNTIME_OWNED.intersection(kwargs)
        if owned:
            raise InvalidRequestError(
                f"{', '.join(sorted(owned))}: taken by the runtime per call (generate, stream, "
                "completion), never sent as a request parameter"
            )
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InvalidRequestError(f"prompt must be a string, not {type(prompt).__name__}")
        if not prompt.strip():
            raise InvalidRequestError("prompt is empty: give the text to complete")
        return (Message("user", prompt),)
    try:
        return normalize_messages(messages or ())
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def _merged(
    cfg: ModelConfig, temperature: float | None, max_tokens: int | None, kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], tuple[PolicyNote, ...]]:
    """call arguments > extra_params > defaults, then the model's parameter policy."""
    if (
        not kwargs
        and temperature is None
        and max_tokens is None
        and not cfg.extra_params
        and not cfg.unsupported_params
        and not cfg.fixed_params
    ):  # the common call: the model's defaults, nothing for the policy to do
        return {"temperature": cfg.default_temperature, "max_tokens": cfg.default_max_tokens}, ()
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
    _check_finite(params)
    return params, _apply_policy(cfg, params, explicit)


def _check_finite(params: Mapping[str, Any]) -> None:
    """Refuse NaN and infinities anywhere in the parameters: JSON has no way to carry them
    (Python's encoder would write ``NaN``, which no vendor parses). Iterative: a deeply
    nested value cannot reach the recursion limit here."""
    todo: list[tuple[str, Any]] = list(params.items())
    while todo:
        where, value = todo.pop()
        if type(value) is float and not math.isfinite(value):
            raise InvalidRequestError(
                f"{where}: {value!r} is not a finite number (JSON cannot carry it)"
            )
        if isinstance(value, Mapping):
            todo += ((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            todo += ((f"{where}[{i}]", v) for i, v in enumerate(value))


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


def _apply_policy(
    cfg: ModelConfig, params: dict[str, Any], explicit: Mapping[str, Any]
) -> tuple[PolicyNote, ...]:
    """Drop unsupported and pin fixed parameters; say what changed for the caller's ones."""
    notes: list[PolicyNote] = []

    def refuse(name: str, action: str, why: str, error: str) -> None:
        if cfg.on_unsupported == "error":
            raise InvalidRequestError(f"model {cfg.id!r}: parameter {name!r} {error}")
        log.warning("model %r: parameter %r %s (%s)", cfg.id, name, action, why)
        notes.append(PolicyNote(name, action, why))

    for name in cfg.unsupported_params:
        key = "max_tokens" if name == cfg.max_tokens_param else name
        if explicit.get(key) is not None:
            refuse(
                name,
                "dropped",
                "unsupported_params of this model",
                "is not supported by this model",
            )
        params.pop(key, None)
    for name, value in cfg.fixed_params.items():
        key = "max_tokens" if name == cfg.max_tokens_param else name
        given = explicit.get(key)
        if given is not None and given != value:
            refuse(
                name,
                f"pinned to {value!r}",
                f"fixed_params of this model; got {given!r}",
                f"is fixed to {value!r} for this model (got {given!r})",
            )
        params[key] = value
    return tuple(notes)
