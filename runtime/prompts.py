"""Named prompt templates (models.yaml ``templates:``): variables -> messages, bounded.

A template has a ``user`` message template, an optional ``system`` one and the list of
``variables`` it takes. They render in the same bounded Jinja2 sandbox as chat templates
(``runtime.templates``: steps, sizes, depth and time), with undefined variables as errors.
The loader compiles each template once and renders it with a placeholder for every declared
variable, so a syntax error or a variable the list does not declare is a load error with
file:line; at call time every declared variable must be given, and no other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .config import ModelConfig, TemplateConfig
from .errors import InvalidRequestError, TemplateError
from .types import Message

__all__ = ["render_template", "template_problems", "with_system_prompt"]


def _fields(template: TemplateConfig) -> list[tuple[str, str]]:
    out = [("user", template.user)]
    if template.system is not None:
        out.insert(0, ("system", template.system))
    return out


def template_problems(template: TemplateConfig) -> Iterator[tuple[str, str]]:
    """(field, message) for each field that does not compile or render with placeholders."""
    from jinja2.exceptions import UndefinedError

    from .templates import _compile_problem, _render, _render_problem, _template

    sample = {name: f"<{name}>" for name in template.variables}
    for name, source in _fields(template):
        try:
            compiled = _template(source)
        except Exception as exc:
            yield name, f"the template {_compile_problem(exc)}"
            continue
        try:
            _render(compiled, (), dict(sample))
        except UndefinedError as exc:
            yield (
                name,
                (
                    f"the template uses a variable its variables list does not declare ({exc}); "
                    f"declared: {', '.join(template.variables) or 'none'}"
                ),
            )
        except Exception as exc:
            yield name, f"on placeholder variables the template {_render_problem(exc)}"


def render_template(template: TemplateConfig, variables: Mapping[str, Any]) -> tuple[Message, ...]:
    """The messages ``template`` makes from ``variables`` (every declared one, no other)."""
    from .templates import _render, _render_problem, _template

    given = set(variables)
    missing = [v for v in template.variables if v not in given]
    unknown = sorted(given - set(template.variables))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        raise InvalidRequestError(
            f"template {template.name!r}: variables {'; '.join(parts)} (it takes: "
            f"{', '.join(template.variables) or 'none'})"
        )
    messages = []
    for name, source in _fields(template):
        try:
            text = _render(_template(source), (), dict(variables))
        except Exception as exc:
            raise TemplateError(
                f"template {template.name!r}: its {name} template {_render_problem(exc)}"
            ) from exc
        messages.append(Message("system" if name == "system" else "user", text))
    return tuple(messages)


def with_system_prompt(model: ModelConfig, messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """``messages`` with the model's ``system_prompt`` first, unless they bring their own."""
    if model.system_prompt is None or any(m.role == "system" for m in messages):
        return messages
    return (Message("system", model.system_prompt), *messages)
