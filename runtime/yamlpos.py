"""Read YAML safely into plain Python values, with the (line, column) of every key and value.

Only the safe subset of YAML is read: mappings with string keys, lists, and scalars tagged
null, bool, int, float or str (timestamps are kept as their text). Any other tag is refused,
a duplicate key is an error (not a silent overwrite), and the work is bounded: the file size,
the nesting depth and the number of values built (every use of an alias counts, so an
alias bomb stops early) all have a ceiling. Merge keys (``<<: *defaults``) are supported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT_BITS",
    "MAX_NODES",
    "Path",
    "PositionMap",
    "YAMLProblem",
    "YAMLReadError",
    "format_path",
    "load_yaml_file",
    "parse_yaml",
]

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_INT_BITS = 256

Path = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_MERGE = _YAML + "merge"
# Timestamps stay text: a date has no JSON form, and the YAML 1.1 rule that turns an
# unquoted 2024-01-01 into a date surprises people more than it helps them.
_TEXT_TAGS = frozenset(_YAML + t for t in ("str", "timestamp", "value", "merge"))
_KEY_KINDS = {
    _YAML + "int": "a number",
    _YAML + "float": "a number",
    _YAML + "bool": "a boolean",
    _YAML + "null": "null",
}


@dataclass(frozen=True)
class YAMLProblem:
    """One problem found while reading a YAML file (1-based line and column)."""

    line: int
    column: int
    path: Path
    message: str


class YAMLReadError(Exception):
    """The file could not be read as safe YAML; ``problems`` says where and why."""

    def __init__(self, problems: list[YAMLProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{p.line}:{p.column}: {p.message}" for p in problems))


@dataclass
class PositionMap:
    """Where each value (and each mapping key) of a document stands in its file."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def value(self, path: Path) -> tuple[int, int]:
        """Position of the value at ``path``, or of its nearest known ancestor."""
        for prefix in _prefixes(path):
            if prefix in self.values:
                return self.values[prefix]
        return (1, 1)

    def key(self, path: Path) -> tuple[int, int]:
        """Position of the mapping key whose value is at ``path`` (else of the value)."""
        return self.keys.get(path) or self.value(path)


def _prefixes(path: Path) -> Iterator[Path]:
    for end in range(len(path), -1, -1):
        yield path[:end]


def format_path(path: Path) -> str:
    """``("models", "gpt-4o", "fallbacks", 1)`` -> ``models.gpt-4o.fallbacks[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class _Refused(Exception):
    """A bound was crossed or the structure is unsafe: stop reading at ``mark``."""

    def __init__(self, mark: yaml.Mark | None, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.path = path


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting and huge node counts as it goes.

    PyYAML's composer recurses once per nesting level, so without this check a file of
    a million ``[`` would end in RecursionError rather than a clear message.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._composed = 0

    def _mark(self) -> yaml.Mark | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        return getattr(event, "start_mark", None)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._composed += 1
        if self._composed > MAX_NODES:
            raise _Refused(self._mark(), _too_many())
        opens = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if opens:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(self._mark(), _too_deep())
        try:
            return super().compose_node(parent, index)
        finally:
            if opens:
                self._depth -= 1


def _too_many() -> str:
    return (
        f"more than {MAX_NODES:,} values (an alias counts each time it is used): "
        "refusing to read further"
    )


def _too_deep() -> str:
    return f"nesting deeper than {MAX_DEPTH} levels: refusing to read further"


def _pos(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Builder:
    """Turns a composed node tree into plain values, recording positions and problems."""

    def __init__(self, loader: _BoundedLoader) -> None:
        self.loader = loader
        self.positions = PositionMap()
        self.problems: list[YAMLProblem] = []
        self.count = 0
        self.open: set[int] = set()

    def problem(self, mark: yaml.Mark | None, path: Path, message: str) -> None:
        line, column = _pos(mark)
        self.problems.append(YAMLProblem(line, column, path, message))

    def tick(self, node: Node, path: Path) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Refused(node.start_mark, _too_many(), path)

    def build(self, node: Node, path: Path, depth: int) -> Any:
        self.tick(node, path)
        self.positions.values[path] = _pos(node.start_mark)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if depth >= MAX_DEPTH:
            raise _Refused(node.start_mark, _too_deep(), path)
        if id(node) in self.open:
            raise _Refused(node.start_mark, "recursive alias: this value contains itself", path)
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode) and node.tag == _YAML + "seq":
                return [
                    self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)
                ]
            if isinstance(node, MappingNode) and node.tag == _YAML + "map":
                return self.mapping(node, path, depth)
            self.problem(node.start_mark, path, f"unsupported YAML tag {_show_tag(node.tag)!r}")
            return None
        finally:
            self.open.discard(id(node))

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        tag = node.tag
        if tag in _TEXT_TAGS:
            return node.value
        construct = {
            _YAML + "null": self.loader.construct_yaml_null,
            _YAML + "bool": self.loader.construct_yaml_bool,
            _YAML + "int": self.loader.construct_yaml_int,
            _YAML + "float": self.loader.construct_yaml_float,
        }.get(tag)
        if construct is None:
            self.problem(node.start_mark, path, f"unsupported YAML tag {_show_tag(tag)!r}")
            return None
        try:
            value = construct(node)
        except (ArithmeticError, LookupError, TypeError, ValueError):
            # An explicit tag on text that does not fit (`!!int abc`), or an integer
            # longer than Python converts (sys.get_int_max_str_digits).
            self.problem(
                node.start_mark, path, f"cannot read {_short(node.value)} as {_show_tag(tag)}"
            )
            return None
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            # Python refuses to print an integer this long (sys.get_int_max_str_digits),
            # and no setting needs one.
            self.problem(node.start_mark, path, f"integer too large (over {MAX_INT_BITS} bits)")
            return None
        return value

    def key(self, node: Node, path: Path) -> str | None:
        self.tick(node, path)
        if isinstance(node, ScalarNode) and node.tag == _YAML + "str":
            return str(node.value)
        if isinstance(node, ScalarNode):
            kind = _KEY_KINDS.get(node.tag, _show_tag(node.tag))
            self.problem(
                node.start_mark,
                path,
                f"mapping key {node.value or '(empty)'} is read as {kind}, not as text: "
                f'quote it ("{node.value}")',
            )
        else:
            self.problem(node.start_mark, path, "mapping keys must be plain strings")
        return None

    def mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Node] = []
        explicit: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            if key in first_line:
                self.problem(
                    key_node.start_mark,
                    (*path, key),
                    f"duplicate key {key!r} (first defined at line {first_line[key]})",
                )
                continue
            first_line[key] = key_node.start_mark.line + 1
            explicit.append((key, key_node, value_node))
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            # Earlier sources win over later ones, explicit keys over all of them.
            for source in reversed(sources):
                if not isinstance(source, MappingNode):
                    self.problem(source.start_mark, path, "'<<' merges only mappings")
                    continue
                result.update(self.build(source, path, depth))
        self.positions.values[path] = _pos(node.start_mark)
        for key, key_node, value_node in explicit:
            self.positions.keys[(*path, key)] = _pos(key_node.start_mark)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result


def _syntax_problem(exc: yaml.YAMLError, text: str) -> YAMLProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character
        code = f"U+{ord(char) if isinstance(char, str) else char:04X}"
        return YAMLProblem(line, column, (), f"control character {code} is not allowed in YAML")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            where = ""
            if exc.context_mark is not None:
                where = f" started at line {exc.context_mark.line + 1}"
            message = f"{exc.problem} ({exc.context}{where})"
        line, column = _pos(mark)
        return YAMLProblem(line, column, (), f"YAML syntax error: {message}")
    return YAMLProblem(1, 1, (), f"YAML syntax error: {exc}")


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


def parse_yaml(raw: bytes) -> tuple[Any, PositionMap]:
    """Read one YAML document from ``raw`` bytes; an empty document gives ``None``.

    Raises YAMLReadError listing every problem found (all duplicate keys, for example).
    """
    if len(raw) > MAX_FILE_BYTES:
        size = f"{MAX_FILE_BYTES // (1024 * 1024)} MiB"
        raise YAMLReadError([YAMLProblem(1, 1, (), f"file is larger than {size}: refusing it")])
    text = _decode(raw)
    try:
        loader = _BoundedLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return None, PositionMap()
            builder = _Builder(loader)
            data = builder.build(root, (), 0)
        finally:
            loader.dispose()
    except _Refused as exc:
        line, column = _pos(exc.mark)
        raise YAMLReadError([YAMLProblem(line, column, exc.path, exc.message)]) from None
    except yaml.YAMLError as exc:
        raise YAMLReadError([_syntax_problem(exc, text)]) from None
    if builder.problems:
        raise YAMLReadError(builder.problems)
    return data, builder.positions


def load_yaml_file(path: str | os.PathLike[str]) -> tuple[Any, PositionMap]:
    """Read the YAML file at ``path`` (at most MAX_FILE_BYTES); see ``parse_yaml``."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise YAMLReadError([YAMLProblem(1, 1, (), f"cannot read the file: {reason}")]) from None
    return parse_yaml(raw)
