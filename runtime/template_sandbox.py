"""Jinja2's immutable sandbox, with every step of a render counted against its Budget.

The sandbox alone refuses attribute tricks and mutation, but not work: a template can loop,
recurse and multiply strings without end. Here the hooks Jinja2 3.1's sandbox offers
(``call`` for every call, ``call_binop`` for the arithmetic operators, ``finalize`` for
every printed value, ``concat`` for every rendered buffer, ``wrap_str_format`` for
``str.format``) and a rewrite of the parsed template (every ``for`` iterable, ``~``,
non-constant literal, slice and namespace assignment goes through a filter of ours, named
so that no template can name it) hand each step to the render's Budget
(template_budget.py): nothing runs without a step, nothing large is built unchecked.

A few features a chat template has no use for, and that could amplify in ways not worth
modelling, are not offered: ``lipsum``, the ``urlize`` filter, and the str/int methods
``encode``, ``decode``, ``expandtabs``, ``translate``, ``maketrans``, ``to_bytes`` and
``from_bytes``.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterable
from string import Formatter
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, LoopContext, markup_join
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from .template_budget import FILTER_CHECKS, BoundExceeded, Budget, BudgetedIterator, current, use

__all__ = ["BoundedEnvironment", "render"]

_ITER, _CONCAT, _SIZED = "rt:loop", "rt:concat", "rt:sized"  # no template can name these
_DROPPED_FILTERS = frozenset({"urlize"})
_DENIED_METHODS = frozenset(
    {"encode", "decode", "expandtabs", "translate", "maketrans", "to_bytes", "from_bytes"}
)


def render(template: Any, budget: Budget, /, **variables: Any) -> str:
    """Render ``template`` (compiled by a BoundedEnvironment) within ``budget``."""
    with use(budget):
        return str(template.render(**variables))


class _Loop:
    """A ``for`` iterable: iterates within the budget, keeps ``len`` (``loop.length``)."""

    __slots__ = ("_budget", "_iterable")

    def __init__(self, iterable: Any, budget: Budget) -> None:
        self._iterable = iterable
        self._budget = budget

    def __iter__(self) -> BudgetedIterator:
        return BudgetedIterator(self._iterable, self._budget)

    def __len__(self) -> int:
        return len(self._iterable)  # a TypeError makes LoopContext count by iterating


class _BoundedFormatting(Formatter):
    """``str.format``: refuses a field before formatting it too wide, counts what it builds."""

    _budget: Budget
    _total: int

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._budget = current()
        self._total = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in re.findall(r"\d+", format_spec):  # widths and precisions
            self._budget.need(int(digits) if len(digits) <= 18 else 10**18, "str.format")
        self._budget.check((value,), "str.format")
        text = super().format_field(value, format_spec)
        self._total += len(text)
        self._budget.need(self._total, "str.format")
        return text


class _Formatter(_BoundedFormatting, SandboxedFormatter):
    pass


class _EscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    pass


# --------------------------------------------------------------------------- our filters


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a filter that takes a step, checks its arguments and what it returns."""
    if getattr(func, "jinja_async_variant", False):
        func = func.__wrapped__  # type: ignore[attr-defined]  # the sync one: no async here
    check = FILTER_CHECKS.get(name)
    signature = inspect.signature(func) if check else None
    what = f"filter {name!r}"

    @functools.wraps(func)  # keeps jinja_pass_arg: context/environment arguments still passed
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        budget.check((*args, *kwargs.values()), what)
        if check is not None and signature is not None:
            bound = signature.bind(*args, **kwargs)
            check(budget, bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        return budget.keep(func(*args, **kwargs), what, (*args, *kwargs.values()))

    return bounded


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    # Python's sum() adds lists in C, quadratically and with no step between items: add
    # through the bounded '+' instead.
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in iterable:
        total = environment.call_binop(None, "+", total, item)
    return total


def _loop(value: Any) -> _Loop:
    budget = current()
    budget.tick()
    return _Loop(value, budget)


@pass_eval_context
def _concat(eval_ctx: Any, *parts: Any) -> Any:
    budget = current()
    budget.tick()
    budget.check(parts, "'~'")
    pieces, total = [], 0
    for part in parts:
        piece = part if isinstance(part, str) else str(part)
        total += len(piece)
        budget.need(total, "'~'")
        pieces.append(piece)
    return budget.keep(markup_join(pieces) if eval_ctx.autoescape else "".join(pieces), "'~'")


def _sized(value: Any, what: str) -> Any:
    budget = current()
    budget.tick()
    return budget.keep(value, what)


def _range(*args: int) -> range:
    budget = current()
    budget.tick()
    numbers = range(*args)
    try:
        count = str(len(numbers))
    except OverflowError:  # longer than sys.maxsize
        count = f"more than {sys.maxsize}"
    if not count.isdigit() or int(count) > budget.max_steps:
        raise BoundExceeded(
            f"asked for a range of {count} numbers, more than the {budget.max_steps} steps "
            "a render may take",
            "MAX_STEPS",
        )
    return numbers


def _finalize(value: Any) -> Any:
    """Every printed value: measured before it is turned into text, charged after."""
    budget = current()
    budget.check((value,), "a printed value")
    return budget.keep(value if isinstance(value, str) else str(value), "a printed value")


# --------------------------------------------------------------------------- the rewrite


def _filter(name: str, node: nodes.Node, *args: nodes.Node) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _Bound(NodeTransformer):
    """Routes every loop, ``~``, literal, slice and namespace assignment through our filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(_ITER, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        first, *rest = node.nodes
        return _filter(_CONCAT, first, *rest)

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.arg, nodes.Slice):
            return _filter(_SIZED, node, nodes.Const("a slice"))
        return node

    def visit_Assign(self, node: nodes.Assign) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.target, nodes.NSRef):
            node.node = _filter(_SIZED, node.node, nodes.Const("a namespace attribute"))
        return node

    def _literal(self, node: nodes.List | nodes.Tuple | nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # an assignment target: {% for a, b in ... %}
        parts = [
            part
            for item in node.items
            for part in ((item.key, item.value) if isinstance(item, nodes.Pair) else (item,))
        ]
        if all(isinstance(part, nodes.Const) for part in parts):
            return node  # constants only: as small as the source
        return _filter(_SIZED, node, nodes.Const("a literal"))

    visit_List = visit_Tuple = visit_Dict = _literal


# --------------------------------------------------------------------------- the environment


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every step of a render counted against its Budget."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            finalize=_finalize,
        )
        self.globals["range"] = _range
        del self.globals["lipsum"]
        self.filters = {
            name: _bounded_filter(name, func)
            for name, func in self.filters.items()
            if name not in _DROPPED_FILTERS
        }
        self.filters["sum"] = _bounded_filter("sum", _sum)
        self.filters.update({_ITER: _loop, _CONCAT: _concat, _SIZED: _sized})

    def compile_bounded(self, source: str) -> Any:
        """Parse ``source``, route its loops and builders through the budget, compile it."""
        tree = _Bound().visit(self.parse(source))
        tree.set_environment(self)
        return self.from_string(tree)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in _DENIED_METHODS and isinstance(obj, str | bytes | int):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = current()
        budget.tick()
        budget.check_binop(operator, left, right)
        return budget.keep(self.binop_table[operator](left, right), f"'{operator}'", (left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        if not self.is_safe_callable(obj):
            raise SecurityError(f"{obj!r} is not safely callable")
        what = _name_of(obj)
        budget.check((*args, *kwargs.values()), what)
        if isinstance(obj, LoopContext) and args:  # a recursive loop's next level
            args = (_Loop(args[0], budget), *args[1:])
        args = budget.check_method(obj, args, kwargs)
        budget.enter()
        try:
            result = context.call(obj, *args, **kwargs)
        finally:
            budget.leave()
        return budget.keep(result, what, (getattr(obj, "__self__", None), *args, *kwargs.values()))

    def concat(self, pieces: Iterable[str]) -> str:
        """Join rendered pieces (of the template, a macro, a block), refusing before too many."""
        budget = current()
        kept, total = [], 0
        for piece in pieces:
            total += len(piece)
            budget.need(total, "the rendered text")
            kept.append(piece)
        return str(budget.keep("".join(kept), "the rendered text"))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2's own, with formatters that bound what they build."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType):
            return None
        if value.__name__ not in ("format", "format_map") or not isinstance(value.__self__, str):
            return None
        f_self: str = value.__self__
        str_type, is_format_map = type(f_self), value.__name__ == "format_map"
        formatter: SandboxedFormatter = (
            _EscapeFormatter(self, escape=f_self.escape)
            if isinstance(f_self, Markup)
            else _Formatter(self)
        )

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)


def _name_of(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        return qualname
    name = getattr(obj, "name", None)
    return f"macro {name!r}" if isinstance(name, str) else "a call"
