"""Provider and model ``options:`` checked at load against the provider class's declarations.

A provider class declares ``Options`` (a pydantic model of its ``options:`` in
providers.yaml) and ``ModelOptions`` (of a model's ``options:`` in models.yaml). The loader
calls ``option_problems`` for every provider whose class is one of ours (cheap to import:
no HTTP library or SDK at module import), and for every class under ``--strict``; each
problem is reported like every other config error, with file:line:column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .suggest import did_you_mean

__all__ = ["OptionProblem", "check_option_values", "option_problems"]

#: (path below ``options``, message, whether to point at the key rather than the value)
OptionProblem = tuple[tuple[str | int, ...], str, bool]


def _known(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def option_problems(
    declared: type[BaseModel] | None, options: Mapping[str, Any], *, owner: str
) -> Iterator[OptionProblem]:
    """Every problem of ``options`` against ``declared`` (None: the class takes no options)."""
    if declared is None:
        for key in options:
            yield (key,), f"{owner} takes no options here", True
        return
    try:
        declared.model_validate(dict(options))
    except ValidationError as exc:
        known = _known(declared)
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] == "extra_forbidden" and loc:
                name = str(loc[-1])
                hint = did_you_mean(name, known)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                yield loc, f"unknown option {name!r}{extra}; known: {', '.join(known)}", True
            else:
                yield loc, _readable(err), False


_TYPES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
}


def _readable(err: Any) -> str:
    """A pydantic error as a config author reads it (never quoting the value)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _TYPES:
        return _TYPES[kind]
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "")
        return f"must be {bounds[kind]} {limit}"
    return str(err["msg"]).removeprefix("Value error, ")


def check_option_values(
    declared: type[BaseModel] | None, options: Mapping[str, Any], *, owner: str
) -> BaseModel | None:
    """``options`` validated as ``declared``; ConfigError naming every problem (call time)."""
    problems = list(option_problems(declared, options, owner=owner))
    if problems:
        from .errors import ConfigError

        text = "; ".join(
            f"{'.'.join(['options', *map(str, path)])}: {message}" for path, message, _ in problems
        )
        raise ConfigError(f"{owner}: {text}")
    return declared.model_validate(dict(options)) if declared is not None else None
