"""A model's chat template: messages -> one prompt string, bounded, failures as TemplateError.

Templates come from YAML, so they are data, not code: they run in Jinja2's immutable
sandbox, which refuses attribute tricks (``__class__``, ``mro``...) and mutation, and each
render is bounded (template_budget.py and template_sandbox.py say how), so a hostile or
careless template can neither hang the event loop nor exhaust memory. The limits, read at
every render (assign them to change them, e.g. ``runtime.templates.MAX_STEPS = 500_000``):

``MAX_STEPS`` = 100 000
    loop iterations, calls, filters, operators, literals and slices in one render, all
    loops together (nested loops are bounded as a product). ``range()`` longer than this
    is refused at once.
``MAX_OUTPUT`` = 1 MiB (1 048 576)
    characters of the rendered prompt, and of any one value built on the way (a string,
    or a list or dict counted as the length it would print at), *beyond the length of the
    messages themselves*, so a long conversation is never refused by a template that
    copies it. All values a render builds together may reach ``MAX_BUILT_RATIO`` (16)
    times that.
``MAX_DEPTH`` = 32
    nested calls: macros calling macros (or themselves), ``caller()``, recursive loops.
``MAX_SECONDS`` = 1.0
    wall-clock time of one render, checked at every step; rendering is synchronous (it
    runs in the event loop), so this is about the longest it can hold the loop.
``MAX_INT_BITS`` = 4096
    bits of any integer (``2 ** 10000000`` is refused before it is computed).

Every failure — a syntax error, an undefined variable (undefined is an error here), a
sandbox refusal, a bound, ``raise_exception(...)``, MemoryError, RecursionError, any
exception from template code — raises one TemplateError naming the model and its
chat_template. Jinja2 is imported on first use only, to keep ``import runtime`` light.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import TemplateError
from .types import Message

if TYPE_CHECKING:
    from jinja2 import Template

    from .template_sandbox import BoundedEnvironment

__all__ = [
    "MAX_BUILT_RATIO",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_OUTPUT",
    "MAX_SECONDS",
    "MAX_STEPS",
    "render_chat_template",
    "template_problem",
]

MAX_STEPS = 100_000
MAX_OUTPUT = 1 << 20
MAX_BUILT_RATIO = 16
MAX_DEPTH = 32
MAX_SECONDS = 1.0
MAX_INT_BITS = 4096

#: What ``validate --strict`` renders each chat template with.
SAMPLE = (
    Message("system", "You are a helpful assistant."),
    Message("user", "Hello!"),
    Message("assistant", "Hi! How can I help?"),
    Message("user", "Tell me a joke."),
)

_lock = threading.Lock()


class _Refused(Exception):
    """``raise_exception(message)`` in a template: it refuses these messages."""


def raise_exception(message: Any) -> None:
    from .template_budget import current

    current().check((message,), "raise_exception")
    raise _Refused(_shorten(str(message)))


def _shorten(text: str, limit: int = 300) -> str:
    """Error text stays one readable line, whatever a template puts in it."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@lru_cache(maxsize=1)
def _environment() -> BoundedEnvironment:
    from .template_sandbox import BoundedEnvironment

    env = BoundedEnvironment()
    env.globals["raise_exception"] = raise_exception  # as Hugging Face chat templates use it
    return env


@lru_cache(maxsize=64)
def _compile(source: str) -> Template:
    return _environment().compile_bounded(source)  # type: ignore[no-any-return]


def _template(source: str) -> Template:
    with _lock:
        return _compile(source)


def _render(template: Template, messages: Sequence[Message], variables: dict[str, Any]) -> str:
    from .template_budget import Budget
    from .template_sandbox import render

    variables = {"messages": [m.to_dict() for m in messages], **variables}
    budget = Budget(
        variables,
        max_steps=MAX_STEPS,
        output=MAX_OUTPUT,
        built_ratio=MAX_BUILT_RATIO,
        max_depth=MAX_DEPTH,
        max_int_bits=MAX_INT_BITS,
        seconds=MAX_SECONDS,
    )
    return render(template, budget, **variables)


def _compile_problem(exc: Exception) -> str:
    """Why a template does not compile, as a phrase that follows "the chat template"."""
    from jinja2 import TemplateSyntaxError

    if isinstance(exc, TemplateSyntaxError):
        return f"does not compile: {exc.message} (template line {exc.lineno})"
    return f"does not compile: {_explain(exc)}"


def _render_problem(exc: Exception) -> str:
    """What went wrong in a render, as a phrase that follows "the chat template"."""
    from jinja2.exceptions import SecurityError

    from .template_budget import BoundExceeded

    if isinstance(exc, BoundExceeded):
        return f"{exc.detail}; fix the template, or raise runtime.templates.{exc.knob}"
    if isinstance(exc, _Refused):
        return f"refused the messages: {exc}"
    if isinstance(exc, SecurityError):
        return f"was refused by the sandbox: {exc}"
    return f"failed: {_explain(exc)}"


def _explain(exc: Exception) -> str:
    if isinstance(exc, MemoryError):
        return "MemoryError: it ran out of memory"
    if isinstance(exc, RecursionError):
        return "RecursionError: it nests too deeply"
    return _shorten(f"{type(exc).__name__}: {exc}")


def render_chat_template(
    source: str,
    messages: Sequence[Message],
    *,
    model: str | None = None,
    add_generation_prompt: bool = True,
    **extra: Any,
) -> str:
    """Render ``messages`` with the template; variables: messages, add_generation_prompt, ...

    Any failure raises TemplateError naming ``model`` (its catalog id) and its chat_template.
    """
    subject = f"model {model!r}: its chat_template" if model else "chat_template"
    try:
        template = _template(source)
    except Exception as exc:
        raise TemplateError(f"{subject} {_compile_problem(exc)}", model=model) from exc
    variables = {"add_generation_prompt": add_generation_prompt, **extra}
    try:
        return _render(template, messages, variables)
    except Exception as exc:
        raise TemplateError(f"{subject} {_render_problem(exc)}", model=model) from exc


def template_problem(source: str) -> str | None:
    """Why ``source`` fails as a chat template, or None: it must compile and render SAMPLE.

    A template that calls ``raise_exception`` refuses that conversation on purpose, which
    is no problem; it is tried once more without the system message (some models refuse
    one) so that the rest of the template is rendered too.
    """
    try:
        template = _template(source)
    except Exception as exc:
        return f"the chat template {_compile_problem(exc)}"
    for messages in (SAMPLE, SAMPLE[1:]):
        try:
            _render(template, messages, {"add_generation_prompt": True})
        except _Refused:
            continue
        except Exception as exc:
            roles = ", ".join(m.role for m in messages)
            return f"on a sample conversation ({roles}) the chat template {_render_problem(exc)}"
        break
    return None
