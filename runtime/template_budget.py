"""What one chat-template render may do: steps, sizes, depth and time, checked before work.

A ``Budget`` lives for one render, in a context variable (``use``/``current``), so renders in
several threads or tasks never share one. The Jinja2 hooks in template_sandbox.py call it:

- ``tick()`` at every step (a loop iteration, call, filter, operator, literal or slice),
  which also checks the wall-clock deadline;
- ``need(size)`` before an operation that amplifies builds its result (sizes estimated
  here from the arguments: ``*``, ``**``, ``+``, ``%``, ``str.format`` fields, ``ljust``...,
  ``replace``, ``join``, ``indent``, ``wordwrap``, ``batch``, ``slice``);
- ``measure(value)`` where a value is about to be printed or passed on: about how many
  characters it prints as, counting a string held twice twice, so no list of references
  prints as gigabytes; integers are bounded in bits;
- ``keep(value)`` on every value built: checked, charged to the render's total, and an
  iterator made to take a step per item (so ``list``, ``join``, ``sum`` of a generator
  count its items).
"""

from __future__ import annotations

import contextvars
import time
import types
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextlib import contextmanager
from typing import Any

from jinja2.utils import Namespace

__all__ = ["BoundExceeded", "Budget", "BudgetedIterator", "NoBudget", "current", "use"]


class BoundExceeded(Exception):
    """A render broke a bound: ``detail`` says how, ``knob`` names the limit's constant."""

    def __init__(self, detail: str, knob: str) -> None:
        self.detail = detail
        self.knob = knob
        super().__init__(detail)


class NoBudget(RuntimeError):
    """Template code ran outside a render (Jinja2 folding constants at compile time)."""


_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset)
_CONTAINERS = (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)
_CURRENT: contextvars.ContextVar[Budget] = contextvars.ContextVar("template_budget")


class Budget:
    """What one render may still do: created per render from its variables, never shared.

    ``max_size`` (characters or items of any one value, and of the output) is ``output``
    plus the size of the variables themselves; ``built_ratio`` times that bounds all values
    built together.
    """

    def __init__(
        self,
        variables: Mapping[str, Any],
        *,
        max_steps: int,
        output: int,
        built_ratio: int,
        max_depth: int,
        max_int_bits: int,
        seconds: float,
    ) -> None:
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.max_int_bits = max_int_bits
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.steps = self.depth = self.built = 0
        self.max_size = 1 << 62
        self._inputs = variables  # keeps the ids in _known valid
        self._known: dict[int, int] = {}  # id -> size of the variables' containers
        self.max_size = output + self._input_size(variables)
        self.max_built = built_ratio * self.max_size

    def _input_size(self, value: Any) -> int:
        if isinstance(value, Mapping):
            items: Iterable[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple):
            items = value
        else:
            return self.measure(value)
        size = 2 * len(value) + sum(self._input_size(item) for item in items)
        self._known[id(value)] = size
        return size

    # -- the bounds

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise BoundExceeded(
                f"ran more than {self.max_steps} steps (loop iterations, calls, filters and "
                "operators) in one render",
                "MAX_STEPS",
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() >= self.deadline:
            raise BoundExceeded(f"ran longer than {self.seconds:g} s in one render", "MAX_SECONDS")

    def need(self, size: int, what: str) -> None:
        """Refuse, before it is built, a value of ``size`` characters or items."""
        if size > self.max_size:
            raise BoundExceeded(
                f"would build a value of {size} characters or items ({what}), more than the "
                f"{self.max_size} allowed",
                "MAX_OUTPUT",
            )

    def need_bits(self, bits: int) -> None:
        if bits > self.max_int_bits:
            raise BoundExceeded(
                f"would build an integer of {bits} bits or more, more than the "
                f"{self.max_int_bits} allowed",
                "MAX_INT_BITS",
            )

    def enter(self) -> None:
        """One call deeper (``leave()`` after it, in a ``finally``)."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise BoundExceeded(
                f"nested calls more than {self.max_depth} deep (a macro that calls itself "
                "without end?)",
                "MAX_DEPTH",
            )

    def leave(self) -> None:
        self.depth -= 1

    def measure(self, value: Any) -> int:
        """About how many characters ``value`` prints as; stops once above ``max_size``.

        Strings count their length, containers two per item plus what the items count, so
        a list holding one big string twice counts it twice, as printing it would; integers
        count their digits (and are refused above ``max_int_bits``), anything else 1.
        Iterative, so deep nesting cannot recurse; checks the deadline as it goes.
        """
        total, visited, stack = 0, 0, [value]
        while stack and total <= self.max_size:
            item = stack.pop()
            visited += 1
            if not visited & 0xFFF:
                self.check_time()
            if isinstance(item, str | bytes | bytearray):
                total += len(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                self.need_bits(item.bit_length())
                total += item.bit_length() // 3 + 1
            elif (known := self._known.get(id(item))) is not None:
                total += known
            elif isinstance(item, dict):
                total += 2 * len(item)
                if total <= self.max_size:
                    stack.extend(item.keys())
                    stack.extend(item.values())
            elif isinstance(item, _CONTAINERS):
                total += 2 * len(item)
                if total <= self.max_size:
                    stack.extend(item)
            elif isinstance(item, Namespace):  # attributes stay assignable: measure them now
                stack.append(object.__getattribute__(item, "_Namespace__attrs"))
            else:
                total += 1
        return total

    def check(self, values: Iterable[Any], what: str) -> None:
        """Refuse values about to be printed or passed on that would print too long."""
        for value in values:
            if not isinstance(value, str):
                self.need(self.measure(value), what)

    def keep(self, value: Any, what: str, sources: Iterable[Any] = ()) -> Any:
        """Check a value just built, charge it to the render, bound it if it is an iterator.

        A value that is one of ``sources`` (e.g. ``trim`` of a string with nothing to trim)
        was not built, so it is not charged.
        """
        if isinstance(value, str):
            size = len(value)
            self.need(size, what)
        elif isinstance(value, Iterator) and not isinstance(value, BudgetedIterator):
            return BudgetedIterator(value, self)
        else:
            self.need(self.measure(value), what)
            size = len(value) if isinstance(value, _SIZED) else 1
        if not any(value is source for source in sources):
            self.built += size
            if self.built > self.max_built:
                raise BoundExceeded(
                    f"built more than {self.max_built} characters or items in all (strings, "
                    "lists and output together) in one render",
                    "MAX_BUILT_RATIO",
                )
        return value

    # -- estimates, before the work

    def check_binop(self, operator: str, left: Any, right: Any) -> None:
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "*":
            if ints:
                self.need_bits(left.bit_length() + right.bit_length() - 1)
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and times > 0:
                    self.need(self.measure(seq) * times, "'*'")
        elif operator == "**":
            if ints and right > 0 and abs(left) > 1:
                self.need_bits((abs(left).bit_length() - 1) * right + 1)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                self.need(self.measure(left) + self.measure(right), "'+'")
        elif operator == "%" and isinstance(left, str):
            self.need(printf_size(self, left, right), "'%' formatting")

    def check_method(
        self, obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        """Refuse a str method call that would build too much; returns the args to use."""
        owner = getattr(obj, "__self__", None)
        if not (isinstance(obj, types.BuiltinMethodType) and isinstance(owner, str)):
            return args
        name, what = obj.__name__, f"str.{obj.__name__}"
        if name in ("center", "ljust", "rjust", "zfill"):
            width = args[0] if args else kwargs.get("width")
            if isinstance(width, int):
                self.need(max(len(owner), width), what)
        elif name == "replace" and len(args) >= 2:
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            self.need(replaced_size(owner, args[0], args[1], count), what)
        elif name == "join" and args:
            items = list(args[0])  # an iterator is consumed within the budget
            self.need(joined_size(self, owner, items), what)
            args = (items, *args[1:])
        return args


class BudgetedIterator:
    """An iterator that takes one step of its render's budget per item."""

    __slots__ = ("_budget", "_iterator")

    def __init__(self, iterable: Iterable[Any], budget: Budget) -> None:
        self._iterator = iter(iterable)
        self._budget = budget

    def __iter__(self) -> BudgetedIterator:
        return self

    def __next__(self) -> Any:
        self._budget.tick()
        return next(self._iterator)


def current() -> Budget:
    """The budget of the render in progress in this thread or task."""
    budget = _CURRENT.get(None)
    if budget is None:
        raise NoBudget("template code runs only inside a bounded render")
    return budget


@contextmanager
def use(budget: Budget) -> Iterator[Budget]:
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------- size estimates


def replaced_size(s: Any, old: Any, new: Any, count: Any) -> int:
    """``len(s.replace(old, new, count))``, computed without building it."""
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return 0  # the real call raises TypeError
    found = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * (len(new) - len(old))


def joined_size(budget: Budget, separator: Any, items: list[Any], slack: int = 0) -> int:
    """An upper bound of ``len(separator.join(map(str, items)))``."""
    each = sum(budget.measure(item) + slack for item in items)
    return each + len(str(separator)) * max(len(items) - 1, 0)


def _printf_number(
    fmt: str, k: int, positional: tuple[Any, ...], used: int
) -> tuple[int, int, int]:
    """A width or precision at ``fmt[k]``: (value, next index, positional args used)."""
    if k < len(fmt) and fmt[k] == "*":
        arg = positional[used] if used < len(positional) else 0
        return (abs(arg) if isinstance(arg, int) else 0), k + 1, used + 1
    end = k
    while end < len(fmt) and fmt[end].isdigit():
        end += 1
    digits = fmt[k:end]
    return (int(digits) if len(digits) <= 18 else 10**18) if digits else 0, end, used


def printf_size(budget: Budget, fmt: str, args: Any) -> int:
    """An upper bound of ``len(fmt % args)``, parsing ``fmt`` as CPython parses it."""
    positional: tuple[Any, ...] = args if isinstance(args, tuple) else (args,)
    mapping = args if isinstance(args, Mapping) else None
    total, i, used, n = 0, 0, 0, len(fmt)
    while (j := fmt.find("%", i)) >= 0:
        total += j - i
        k, arg, keyed = j + 1, None, False
        if k < n and fmt[k] == "(":  # %(key)s, the key may hold balanced parentheses
            depth, k = 1, k + 1
            start = k
            while k < n and depth:
                depth += {"(": 1, ")": -1}.get(fmt[k], 0)
                k += 1
            keyed = True
            arg = mapping.get(fmt[start : k - 1]) if mapping is not None else None
        while k < n and fmt[k] in "-+ #0":
            k += 1
        width, k, used = _printf_number(fmt, k, positional, used)
        precision = 0
        if k < n and fmt[k] == ".":
            precision, k, used = _printf_number(fmt, k + 1, positional, used)
        while k < n and fmt[k] in "hlL":
            k += 1
        if k >= n:
            break  # an incomplete format: Python raises ValueError
        conversion = fmt[k]
        if conversion != "%" and not keyed:
            arg = positional[used] if used < len(positional) else None
            used += 1
        budget.need(max(width, precision), "'%' formatting")
        if conversion in "%c":
            piece = 1
        else:
            piece = budget.measure(arg) + precision
            piece += 320 if conversion in "eEfFgG" else 0  # '%f' % 1e308 prints 309 digits
        total += max(width, piece)
        budget.need(total, "'%' formatting")
        i = k + 1
    return total + max(n - i, 0)


# --------------------------------------------------------------------------- filters

FilterCheck = Callable[[Budget, dict[str, Any]], None]


def _center(budget: Budget, a: dict[str, Any]) -> None:
    width = a.get("width", 80)
    if isinstance(width, int):
        budget.need(max(budget.measure(a["value"]), width), "filter 'center'")


def _indent(budget: Budget, a: dict[str, Any]) -> None:
    s, width = a["s"], a.get("width", 4)
    step = width if isinstance(width, int) else len(width) if isinstance(width, str) else 0
    if isinstance(s, str):
        budget.need(len(s) + (len(s.splitlines()) + 2) * (step + 1), "filter 'indent'")


def _wordwrap(budget: Budget, a: dict[str, Any]) -> None:
    s, width = a["s"], a.get("width", 79)
    wrapstring = a.get("wrapstring") or a["environment"].newline_sequence
    if isinstance(s, str) and isinstance(width, int) and width > 0:
        # A wrapped line and the next one are longer than width together.
        lines = 2 * len(s) // width + len(s.splitlines()) + 1
        budget.need(len(s) + lines * len(str(wrapstring)), "filter 'wordwrap'")


def _format(budget: Budget, a: dict[str, Any]) -> None:
    if isinstance(a["value"], str):
        size = printf_size(budget, a["value"], a.get("kwargs") or a.get("args", ()))
        budget.need(size, "filter 'format'")


def _replace(budget: Budget, a: dict[str, Any]) -> None:
    count = a.get("count")
    size = replaced_size(a["s"], a["old"], a["new"], -1 if count is None else count)
    budget.need(size, "filter 'replace'")


def _join(budget: Budget, a: dict[str, Any]) -> None:
    a["value"] = items = list(a["value"])  # an iterator is consumed within the budget
    slack = 64 if a.get("attribute") is not None else 0  # an attribute prints about as long
    budget.need(joined_size(budget, a.get("d", ""), items, slack), "filter 'join'")


def _lists_of(name: str, argument: str) -> FilterCheck:
    """``batch(n, fill_with)`` and ``slice(n)`` build lists of ``n``: check ``n`` first."""

    def check(budget: Budget, a: dict[str, Any]) -> None:
        count = a.get(argument)
        if isinstance(count, int) and (name == "slice" or a.get("fill_with") is not None):
            budget.need(count, f"filter {name!r}")

    return check


#: Filter name -> the check of its bound arguments (by parameter name) before it runs.
FILTER_CHECKS: dict[str, FilterCheck] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "batch": _lists_of("batch", "linecount"),
    "slice": _lists_of("slice", "slices"),
}
