"""Read YAML safely into plain Python values, with the (line, column) of every key and value.

Only the safe subset of YAML is read: mappings with string keys, lists, and scalars tagged
null, bool, int, float or str (timestamps are kept as their text). Any other tag is refused,
a duplicate key is an error (not a silent overwrite; every one is reported), and merge keys
(``<<: *defaults``) are supported.

The work is bounded, and the bounds fit a catalog of tens of thousands of models:

- ``MAX_FILE_BYTES`` (32 MiB): a larger file is refused unread;
- ``MAX_NODES`` (4,000,000): the values read, keys included; an alias counts the values it
  stands for each time it is used, so an alias bomb stops as soon as its sum crosses the
  bound, and nothing is ever expanded: an alias gives the same object as its anchor (as
  ``yaml.safe_load`` does), and the bound keeps what walks the result later (pydantic, a
  JSON encoder) bounded too. A 10,000-model catalog holds about 250,000 values;
- ``MAX_DEPTH`` (64): nesting deeper than this is refused where it starts, a million ``[``
  included (nothing here recurses per level);
- ``MAX_INT_BITS`` (256): a longer integer is a problem, not a slow conversion.

The first two can be raised per call (``parse_yaml(raw, Limits(max_bytes=...))``,
``load_catalog(..., limits=...)``) or by the environment variables
``LLM_RUNTIME_MAX_YAML_BYTES`` and ``LLM_RUNTIME_MAX_YAML_NODES`` (``Limits.from_environ``).

libyaml (PyYAML's C extension) parses when it is installed, else PyYAML's pure-Python parser
does; both hand their events to one builder (``runtime.yamltree``), so values, positions and
problems are the same. Where the two parsers disagree, PyYAML's word is taken, so that a
file valid on one machine is valid on every other: when libyaml reports a syntax error
(for PyYAML's wording), and when the text has a tab between tokens (libyaml reads it as a
space, as the YAML spec says; PyYAML refuses it). Either way the pure-Python parser reads
the text again only up to the point in question, and only within the first MiB (the old
size cap: every file the loader ever read keeps its messages); past it, libyaml's answer
stands, as re-reading megabytes in pure Python would take minutes.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import yaml
from yaml.events import ScalarEvent, StreamEndEvent
from yaml.reader import Reader

from .yamltree import (
    MAX_DEPTH,
    MAX_INT_BITS,
    Events,
    Path,
    PositionMap,
    Refused,
    YAMLProblem,
    YAMLReadError,
    build,
    format_path,
    too_deep,
    unpack,
)

__all__ = [
    "ENV_MAX_BYTES",
    "ENV_MAX_NODES",
    "LIBYAML",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT_BITS",
    "MAX_NODES",
    "Limits",
    "Path",
    "PositionMap",
    "YAMLProblem",
    "YAMLReadError",
    "format_path",
    "load_yaml_file",
    "parse_yaml",
]

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_NODES = 4_000_000

#: Environment variables that raise (or lower) the two bounds that grow with a catalog.
ENV_MAX_BYTES = "LLM_RUNTIME_MAX_YAML_BYTES"
ENV_MAX_NODES = "LLM_RUNTIME_MAX_YAML_NODES"

#: Whether libyaml parses (False when PyYAML was built without it; tests set it to compare).
LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))

# Where libyaml and PyYAML may disagree this far into the text, PyYAML reads it again.
_RECHECK_CHARS = 1024 * 1024
# In a longer text, the pure-Python re-read stops this far past that point (PyYAML refuses
# before it, or libyaml's reading stands).
_RECHECK_MARGIN = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """The bounds on one YAML file that grow with the catalog: bytes, and values read."""

    max_bytes: int = MAX_FILE_BYTES
    max_nodes: int = MAX_NODES

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Limits:
        """The defaults, overridden by ``LLM_RUNTIME_MAX_YAML_BYTES`` / ``..._NODES``.

        Raises ValueError naming the variable when one is set to anything but a positive
        whole number.
        """
        values: dict[str, int] = {}
        for name, variable in (("max_bytes", ENV_MAX_BYTES), ("max_nodes", ENV_MAX_NODES)):
            text = environ.get(variable)
            if text is None or not text.strip():
                continue
            try:
                number = int(text)
            except ValueError:
                number = 0
            if number < 1:
                raise ValueError(
                    f"environment variable {variable} must be a positive whole number "
                    f"(e.g. {getattr(cls, name):_}), got {text.strip()[:40]!r}: fix or unset it"
                )
            values[name] = number
        return cls(**values)


class _GiveUp(Exception):
    """The pure-Python re-read went past libyaml's error without failing: use libyaml's."""


def _too_many(limit: int) -> str:
    return (
        f"more than {limit:,} values (an alias counts each time it is used): refusing to "
        f"read further (if the file is meant to be this large, raise {ENV_MAX_NODES})"
    )


def _size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit:,} bytes"


def _syntax_problem(exc: yaml.YAMLError, text: str) -> YAMLProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        return _control_character(text, exc.position)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if exc.problem == "exceeded maximum nesting depth":  # libyaml's own bound (1,000)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            return YAMLProblem(line, column, (), too_deep())
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            where = ""
            if exc.context_mark is not None:
                where = f" started at line {exc.context_mark.line + 1}"
            message = f"{exc.problem} ({exc.context}{where})"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return YAMLProblem(line, column, (), f"YAML syntax error: {message}")
    return YAMLProblem(1, 1, (), f"YAML syntax error: {exc}")


def _control_character(text: str, index: int) -> YAMLProblem:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return YAMLProblem(
        line, column, (), f"control character U+{ord(text[index]):04X} is not allowed in YAML"
    )


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line_start = raw.rfind(b"\n", 0, start) + 1
        column = len(raw[line_start:start].decode("utf-8", errors="replace")) + 1
        line = raw.count(b"\n", 0, start) + 1
        raise YAMLReadError(
            [
                YAMLProblem(
                    line,
                    column,
                    (),
                    f"not UTF-8 text (byte 0x{raw[start]:02x}): save the file as UTF-8",
                )
            ]
        ) from None
    return text.removeprefix("\ufeff")


def _python_events(text: str, stop: int | None = None) -> Events:
    """PyYAML's pure-Python parser; with ``stop``, give up past that character index."""
    parser = yaml.SafeLoader(text)
    if stop is None:
        return parser.get_event
    get_event: Events = parser.get_event

    def guarded() -> Any:
        event = get_event()
        if event.start_mark is not None and event.start_mark.index > stop:
            raise _GiveUp
        return event

    return guarded


def _read(text: str, limits: Limits, events: Events) -> tuple[Any, PositionMap]:
    try:
        return build(events, limits.max_nodes, _too_many(limits.max_nodes))
    except Refused as exc:
        line, column = unpack(exc.pos)
        raise YAMLReadError([YAMLProblem(line, column, exc.path, exc.message)]) from None


def _styled_spans(text: str) -> list[tuple[int, int]]:
    """Where the quoted and block scalars of ``text`` stand (libyaml parses it fine)."""
    get_event: Events = yaml.CSafeLoader(text).get_event
    spans: list[tuple[int, int]] = []
    try:
        while True:
            event = get_event()
            kind = type(event)  # (not narrowing event: its marks are typed Optional)
            if kind is ScalarEvent and event.style:  # from its quote or |, past any tag
                end = event.end_mark.index
                spans.append((text.find(event.style, event.start_mark.index, end), end))
            elif kind is StreamEndEvent:
                return spans
    except yaml.YAMLError:  # past a bound the builder stopped at (libyaml's nesting limit)
        return spans


# YAML's line breaks (PyYAML's and libyaml's): a comment ends at any of them.
_BREAKS = "\n\r\x85\u2028\u2029"
# An empty value after ':' in a flow collection (`{a: }`): libyaml places it at the next
# token, PyYAML right after the colon.
_EMPTY_FLOW_VALUE = re.compile(r":[ \t\r\n]*[,\]}]")
# An explicit key (`? key`): an empty value after it is placed differently, too.
_EXPLICIT_KEY = re.compile(r"(?:^|[ \t\r\n\[{,])\?(?:[ \t\r\n]|$)")
# A tag (`!foo`, `!!str`): libyaml scans tag characters PyYAML refuses (`!a:b`), wherever
# the tagged node stands (a value, a mapping key).
_TAG = re.compile(r"(?:^|[ \t\r\n\[{,])!")
# A block scalar header running into a comment or a tab (`>#`, `>` then a tab): libyaml takes it,
# PyYAML does not.
_HEADER_COMMENT = re.compile(r"[|>][-+0-9]*[#\t]")


def _pyyaml_reads_otherwise(text: str) -> int | None:
    """Where PyYAML may read ``text`` otherwise than libyaml did, if anywhere (an index).

    - a tab between tokens: PyYAML's scanner skips only spaces there (its own TODO says
      so) and refuses the tab, while libyaml takes it as the YAML spec does;
    - a byte order mark past the start: libyaml skips it at the start of any line, PyYAML
      keeps it as text;
    - an empty value in a flow collection or after an explicit key: the two place it
      differently;
    - a block scalar header running into a comment (`|#`): libyaml reads it;
    - a tag: libyaml scans tag characters PyYAML refuses (`!a:b`).

    Text inside quoted and block scalars and inside comments is neither of these (a chat
    template's ``messages[1:]`` is text), so only what stands outside them counts; finding
    which is which takes one more libyaml pass, made only when a pattern matched at all.
    One more is found by what libyaml gave (in ``parse_yaml``): an empty document (its
    position).
    """
    found = [text.find("\ufeff")]
    outside = _Outside(text)
    for pattern in (_EMPTY_FLOW_VALUE, _EXPLICIT_KEY, _HEADER_COMMENT, _TAG):
        found.append(outside.first(_mark(match) for match in pattern.finditer(text)))
    if "\t" in text:
        found.append(outside.first(_finds(text, "\t")))
    return min((i for i in found if i >= 0), default=None)


def _mark(match: re.Match[str]) -> int:
    """The index of the character a pattern is about (past a separator it matched before)."""
    start = match.start()
    return start + 1 if match.group()[0] in " \t\r\n[{," else start


def _finds(text: str, char: str) -> Iterator[int]:
    index = text.find(char)
    while index != -1:
        yield index
        index = text.find(char, index + 1)


class _Outside:
    """Which indices of ``text`` stand outside quoted and block scalars and comments."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._spans: list[tuple[int, int]] | None = None  # computed on first need
        self._starts: list[int] = []

    def _quoted(self, index: int) -> bool:
        if self._spans is None:
            self._spans = _styled_spans(self._text)
            self._starts = [start for start, _ in self._spans]
        i = bisect_right(self._starts, index) - 1
        # A scalar's own quote or block indicator (its span's first index) is outside it.
        return i >= 0 and self._spans[i][0] < index < self._spans[i][1]

    def _commented(self, index: int) -> bool:
        text = self._text
        line_start = max(text.rfind(c, 0, index) for c in _BREAKS) + 1
        hash_ = text.find("#", line_start, index)
        while hash_ != -1:
            if (hash_ == line_start or text[hash_ - 1] in " \t") and not self._quoted(hash_):
                return True
            hash_ = text.find("#", hash_ + 1, index)
        return False

    def first(self, indices: Iterable[int]) -> int:
        """The first of ``indices`` (ascending) that stands outside, or -1."""
        for index in indices:
            if not self._quoted(index) and not self._commented(index):
                return index
        return -1


def _python_read(text: str, limits: Limits, near: int) -> tuple[Any, PositionMap] | None:
    """PyYAML's reading of ``text``, where it may differ from libyaml's at ``near``.

    The whole text when it is within the first MiB; else the text up to a little past
    ``near`` when that is within the first MiB (PyYAML refuses there, or None); else None:
    libyaml's reading stands.
    """
    stop = None if len(text) <= _RECHECK_CHARS else near + _RECHECK_MARGIN
    if near > _RECHECK_CHARS:
        return None
    try:
        return _read(text, limits, _python_events(text, stop))
    except _GiveUp:
        return None
    except yaml.YAMLError as exc:
        raise YAMLReadError([_syntax_problem(exc, text)]) from None


def parse_yaml(raw: bytes, limits: Limits | None = None) -> tuple[Any, PositionMap]:
    """Read one YAML document from ``raw`` bytes; an empty document gives ``None``.

    Raises YAMLReadError listing every problem found (all duplicate keys, for example).
    """
    limits = limits or Limits()
    if len(raw) > limits.max_bytes:
        message = (
            f"file is larger than {_size(limits.max_bytes)}: refusing it "
            f"(if it is meant to be this large, raise {ENV_MAX_BYTES})"
        )
        raise YAMLReadError([YAMLProblem(1, 1, (), message)])
    text = _decode(raw)
    # PyYAML's reader checks the whole text before parsing; so do both paths here.
    bad = Reader.NON_PRINTABLE.search(text)
    if bad is not None:
        raise YAMLReadError([_control_character(text, bad.start())])
    if not LIBYAML:
        try:
            return _read(text, limits, _python_events(text))
        except yaml.YAMLError as exc:
            raise YAMLReadError([_syntax_problem(exc, text)]) from None
    try:
        outcome: tuple[Any, PositionMap] | YAMLReadError = _read(
            text, limits, yaml.CSafeLoader(text).get_event
        )
    except yaml.YAMLError as exc:  # PyYAML words it (and may not refuse at all)
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        python = _python_read(text, limits, mark.index if mark is not None else len(text))
        if python is not None:
            return python
        raise YAMLReadError([_syntax_problem(exc, text)]) from None
    except YAMLReadError as exc:  # problems in the file: still, PyYAML may read it otherwise
        outcome = exc
    near = _pyyaml_reads_otherwise(text)
    if not isinstance(outcome, YAMLReadError) and outcome[0] is None:
        near = 0
    python = _python_read(text, limits, near) if near is not None else None
    if python is not None:
        return python
    if isinstance(outcome, YAMLReadError):
        raise outcome
    return outcome


def _read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes, read in pieces: ``read(limit)`` would allocate all of it first."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = handle.read(min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def load_yaml_file(
    path: str | os.PathLike[str], limits: Limits | None = None
) -> tuple[Any, PositionMap]:
    """Read the YAML file at ``path`` (at most ``limits.max_bytes``); see ``parse_yaml``."""
    limits = limits or Limits()
    try:
        with open(path, "rb") as handle:
            raw = _read_at_most(handle, limits.max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise YAMLReadError([YAMLProblem(1, 1, (), f"cannot read the file: {reason}")]) from None
    return parse_yaml(raw, limits)
