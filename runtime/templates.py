"""Sandboxed Jinja2 rendering of chat templates (messages -> one prompt string).

Templates come from YAML, so they are data, not code: they run in Jinja2's immutable
sandbox, which refuses attribute tricks (``__class__``, ``mro``...) and mutation. Jinja2 is
imported on first use only, to keep ``import runtime`` light.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequestError
from .types import Message

if TYPE_CHECKING:
    from jinja2 import Template

__all__ = ["render_chat_template", "template_problem"]

_lock = threading.Lock()


@lru_cache(maxsize=64)
def _compile(source: str) -> Template:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise InvalidRequestError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def render_chat_template(
    source: str, messages: Sequence[Message], *, add_generation_prompt: bool = True, **extra: Any
) -> str:
    """Render ``messages`` with the template; variables: messages, add_generation_prompt, ...

    Errors in the template or while rendering raise InvalidRequestError naming the cause.
    """
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    try:
        with _lock:
            template = _compile(source)
        return template.render(
            messages=[m.to_dict() for m in messages],
            add_generation_prompt=add_generation_prompt,
            **extra,
        )
    except InvalidRequestError:
        raise
    except SecurityError as exc:
        raise InvalidRequestError(f"chat template refused by the sandbox: {exc}") from exc
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # A template is data: any error while it renders is the config's, not ours.
        raise InvalidRequestError(f"chat template failed: {type(exc).__name__}: {exc}") from exc


def template_problem(source: str) -> str | None:
    """Why ``source`` does not compile as a chat template, or None when it does."""
    from jinja2 import TemplateSyntaxError

    try:
        with _lock:
            _compile(source)
    except TemplateSyntaxError as exc:
        return f"the chat template does not compile: {exc.message} (template line {exc.lineno})"
    return None
