"""YAML parser events -> plain values and a tree of their positions, safely and bounded.

The events come from libyaml or from PyYAML's pure-Python parser (``runtime.yamlpos``
chooses); one builder turns them into values, so both give the same result. It reads the
safe subset only: mappings with string keys, lists, and scalars tagged null, bool, int,
float or str (timestamps stay text); it reports every duplicate key, unsupported tag and
non-string key, supports merge keys, and stops at the first bound crossed: ``max_nodes``
values (an alias counts the values it stands for, each time, without being expanded),
``MAX_DEPTH`` levels, a recursive alias. It is iterative: no nesting recurses in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import yaml
from yaml.composer import ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "Events",
    "Path",
    "PositionMap",
    "Refused",
    "YAMLProblem",
    "YAMLReadError",
    "build",
    "format_path",
    "too_deep",
    "unpack",
]

MAX_DEPTH = 64
MAX_INT_BITS = 256

Path = tuple[str | int, ...]
# The parser's get_event: PyYAML's and libyaml's events are untyped (yaml.events.* with
# attributes set in __init__), so the builder reads them as Any.
Events = Callable[[], Any]


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


# A position is one int: line * _W + column (both 0-based, as marks count them). Positions
# live in a tree shaped like the document, one tuple per value: (value position, key
# position or None, children), children being a dict by key, a list, or None for a scalar.
# An alias shares the tree of its anchor, so it costs nothing however often it is used.
_W: Final = 1 << 40
_PosNode = tuple[int, int | None, Any]


def unpack(pos: int) -> tuple[int, int]:
    """A packed position as (line, column), both 1-based."""
    line, column = divmod(pos, _W)
    return line + 1, column + 1


class PositionMap:
    """Where each value (and each mapping key) of a document stands in its file."""

    __slots__ = ("_root",)

    def __init__(self, root: _PosNode | None = None) -> None:
        self._root = root

    def _find(self, path: Path) -> tuple[_PosNode | None, bool]:
        """The node at ``path``, else its nearest known ancestor; and whether it is exact."""
        node = self._root
        if node is None:
            return None, False
        for part in path:
            kids = node[2]
            child = None
            if type(kids) is dict:
                if isinstance(part, str):
                    child = kids.get(part)
            elif type(kids) is list and isinstance(part, int) and 0 <= part < len(kids):
                child = kids[part]
            if child is None:
                return node, False
            node = child
        return node, True

    def value(self, path: Path) -> tuple[int, int]:
        """Position of the value at ``path``, or of its nearest known ancestor."""
        node, _ = self._find(path)
        return unpack(node[0]) if node is not None else (1, 1)

    def key(self, path: Path) -> tuple[int, int]:
        """Position of the mapping key whose value is at ``path`` (else of the value)."""
        node, exact = self._find(path)
        if node is not None and exact and node[1] is not None:
            return unpack(node[1])
        return self.value(path)


def format_path(path: Path) -> str:
    """``("models", "gpt-4o", "fallbacks", 1)`` -> ``models.gpt-4o.fallbacks[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class Refused(Exception):
    """A bound was crossed or the structure is unsafe: stop reading at ``pos``."""

    def __init__(self, pos: int, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message
        self.path = path


def too_deep() -> str:
    return f"nesting deeper than {MAX_DEPTH} levels: refusing to read further"


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


_YAML = "tag:yaml.org,2002:"
_STR = _YAML + "str"
_SEQ = _YAML + "seq"
_MAP = _YAML + "map"
_MERGE_TAG = _YAML + "merge"
# Timestamps stay text: a date has no JSON form, and the YAML 1.1 rule that turns an
# unquoted 2024-01-01 into a date surprises people more than it helps them.
_TEXT_TAGS = frozenset(_YAML + t for t in ("str", "timestamp", "value", "merge"))
_KEY_KINDS = {
    _YAML + "int": "a number",
    _YAML + "float": "a number",
    _YAML + "bool": "a boolean",
    _YAML + "null": "null",
}
_CONSTRUCTOR = SafeConstructor()
_CONSTRUCT: dict[str, Callable[[ScalarNode], Any]] = {
    _YAML + "null": _CONSTRUCTOR.construct_yaml_null,
    _YAML + "bool": _CONSTRUCTOR.construct_yaml_bool,
    _YAML + "int": _CONSTRUCTOR.construct_yaml_int,
    _YAML + "float": _CONSTRUCTOR.construct_yaml_float,
}
_RESOLVER = Resolver()


def _construct(tag: str, text: str) -> tuple[Any, str | None]:
    """A non-text scalar as a value, or None and the problem."""
    construct = _CONSTRUCT.get(tag)
    if construct is None:
        return None, f"unsupported YAML tag {_show_tag(tag)!r}"
    try:
        value = construct(ScalarNode(tag, text))
    except (ArithmeticError, LookupError, TypeError, ValueError):
        # An explicit tag on text that does not fit (`!!int abc`), or an integer
        # longer than Python converts (sys.get_int_max_str_digits).
        return None, f"cannot read {_short(text)} as {_show_tag(tag)}"
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        # Python refuses to print an integer this long, and no setting needs one.
        return None, f"integer too large (over {MAX_INT_BITS} bits)"
    return value, None


# States of a mapping frame's ``key``: a str is the key whose value comes next.
_NO_KEY: Final = object()  # the next event is a key
_MERGE: Final = object()  # the next value is merged (`<<`)
_SKIP: Final = object()  # the next value is read (for its anchors) and dropped
_KEY_NODE: Final = object()  # a collection is being read as a key (refused), then _SKIP


class _Frame:
    """A collection being read: its value, its position children, the key pending."""

    __slots__ = (
        "anchor",
        "bad",
        "height",
        "is_map",
        "key",
        "key_pos",
        "key_text",
        "kids",
        "kpos",
        "merges",
        "start",
        "transparent",
        "value",
        "vpos",
    )

    def __init__(self, is_map: bool, vpos: int, kpos: int | None, start: int) -> None:
        self.is_map = is_map
        self.value: Any = {} if is_map else []
        self.kids: Any = {} if is_map else []
        self.vpos = vpos
        self.kpos = kpos
        self.start = start
        self.key: Any = _NO_KEY
        self.key_pos = 0
        self.key_text: str | None = None
        self.merges: list[tuple[Any, _PosNode, bool]] | None = None
        self.anchor: str | None = None
        self.height = 0  # levels of collections below this one
        self.bad = False  # an unsupported tag: the value is None
        self.transparent = False  # not a step of problem paths (the document, merge lists)


@dataclass(frozen=True)
class _Anchor:
    """What an alias stands for: the value, its positions, and what repeating it costs."""

    value: Any
    node: _PosNode
    size: int  # values, keys included
    height: int  # levels of collections
    scalar: tuple[str, str] | None = None  # (tag, text) of a scalar anchor


def _path(stack: list[_Frame]) -> Path:
    """Where the value being read stands: the pending key or index of each open frame."""
    parts: list[str | int] = []
    for frame in stack:
        if frame.transparent:
            continue
        if not frame.is_map:
            parts.append(len(frame.value))
        elif type(frame.key) is str:
            parts.append(frame.key)
        elif frame.key_text is not None and frame.key is not _MERGE:
            parts.append(frame.key_text)
    return tuple(parts)


def _problem(problems: list[YAMLProblem], pos: int, path: Path, message: str) -> None:
    line, column = unpack(pos)
    problems.append(YAMLProblem(line, column, path, message))


def _mark(pos: int) -> yaml.Mark:
    line, column = divmod(pos, _W)
    return yaml.Mark("<unicode string>", 0, line, column, None, 0)


def _odd_key(
    top: _Frame, stack: list[_Frame], problems: list[YAMLProblem], tag: str, text: str, pos: int
) -> None:
    """A scalar key that is not a new plain string: a merge, a duplicate, a number..."""
    if tag == _MERGE_TAG:
        top.key = _MERGE
        return
    top.key = _SKIP
    if tag == _STR:
        first = top.kids[text][1] // _W + 1
        message = f"duplicate key {text!r} (first defined at line {first})"
        _problem(problems, pos, (*_path(stack[:-1]), text), message)
        top.key_text = text
        return
    kind = _KEY_KINDS.get(tag, _show_tag(tag))
    _problem(
        problems,
        pos,
        _path(stack[:-1]),
        f'mapping key {text or "(empty)"} is read as {kind}, not as text: quote it ("{text}")',
    )


def _scalar(
    scalars: dict[tuple[str, str], tuple[Any, str | None]], tag: str, text: str
) -> tuple[Any, str | None]:
    done = scalars.get((tag, text))
    if done is None:
        done = scalars[(tag, text)] = _construct(tag, text)
    return done


def build(get_event: Events, max_nodes: int, too_many: str) -> tuple[Any, PositionMap]:
    """Read the events of one YAML stream into a value and its positions.

    Iterative (an explicit stack), so no nesting reaches the recursion limit. Raises
    ``Refused`` at a bound, ``YAMLError`` for bad syntax, ``YAMLReadError`` for problems.
    """
    problems: list[YAMLProblem] = []
    anchors: dict[str, _Anchor | _Frame] = {}
    plain_tags: dict[str, str] = {}  # resolving is a regex match: once per distinct text
    scalars: dict[tuple[str, str], tuple[Any, str | None]] = {}
    resolve: Callable[[type[ScalarNode], str, tuple[bool, bool]], str] = _RESOLVER.resolve
    count = 0

    document = _Frame(False, 0, None, 0)
    document.transparent = True
    stack = [document]
    top = document

    get_event()  # StreamStartEvent
    if type(get_event()) is StreamEndEvent:  # else DocumentStartEvent
        return None, PositionMap()
    while True:
        event = get_event()
        kind = type(event)
        node_kids: Any = None
        height = 0
        bad = False
        scalar = kind is ScalarEvent  # or an alias to a scalar: both are read below
        if scalar:
            count += 1
            mark = event.start_mark
            pos = mark.line * _W + mark.column
            if count > max_nodes:
                raise Refused(pos, too_many)
            text = event.value
            tag = event.tag
            if tag is None or tag == "!":
                # "!" is resolved as plain text always (PyYAML's rule; libyaml's events
                # differ for an empty "!" value).
                if tag is not None or event.implicit[0]:
                    found = plain_tags.get(text)
                    if found is None:
                        found = plain_tags[text] = resolve(ScalarNode, text, (True, False))
                    tag = found
                else:
                    tag = _STR
            anchor = event.anchor
            if anchor is not None:
                if anchor in anchors:
                    _duplicate_anchor(anchor, anchors, mark)
                anchors[anchor] = _Anchor(None, (pos, None, None), 1, 0, (tag, text))
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            count += 1
            mark = event.start_mark
            pos = mark.line * _W + mark.column
            if count > max_nodes:
                raise Refused(pos, too_many)
            if len(stack) > MAX_DEPTH:
                raise Refused(pos, too_deep())
            anchor = event.anchor
            if anchor is not None and anchor in anchors:
                _duplicate_anchor(anchor, anchors, mark)
            is_map = kind is MappingStartEvent
            kpos: int | None = None
            if top.is_map:
                if top.key is _NO_KEY:
                    _problem(problems, pos, _path(stack[:-1]), "mapping keys must be plain strings")
                    top.key = _KEY_NODE
                elif type(top.key) is str:
                    kpos = top.key_pos
            frame = _Frame(is_map, pos, kpos, count - 1)
            tag = event.tag
            if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
                _problem(problems, pos, _path(stack), f"unsupported YAML tag {_show_tag(tag)!r}")
                frame.bad = True
            if not is_map and top.is_map and top.key is _MERGE:
                frame.transparent = True  # `<<: [*a, *b]`: the sources merge at the mapping
            if anchor is not None:
                frame.anchor = anchor
                anchors[anchor] = frame  # open: an alias to it now is recursive
            stack.append(frame)
            top = frame
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            frame = stack.pop()
            top = stack[-1]
            value = frame.value
            node_kids = frame.kids
            if frame.merges is not None:
                value, node_kids = _merged(frame, problems, _path(stack))
            height = frame.height + 1
            bad = frame.bad
            if bad:
                value = node_kids = None
            pos = frame.vpos
            if frame.anchor is not None:
                size = count - frame.start
                anchors[frame.anchor] = _Anchor(value, (pos, None, node_kids), size, height)
        elif kind is AliasEvent:
            count += 1
            mark = event.start_mark
            pos = mark.line * _W + mark.column
            target = anchors.get(event.anchor)
            if target is None:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
            as_key = top.is_map and top.key is _NO_KEY
            if isinstance(target, _Frame):  # its collection is still open
                if not as_key:
                    message = "recursive alias: this value contains itself"
                    raise Refused(target.vpos, message, _path(stack))
                target = _Anchor(None, (target.vpos, None, None), 1, 1)
            if target.scalar is not None:  # read again, as the composer would
                if count > max_nodes:
                    raise Refused(pos, too_many)
                tag, text = target.scalar
                pos = target.node[0]
                scalar = True
            else:
                count += target.size - 1
                if count > max_nodes:
                    raise Refused(pos, too_many, _path(stack))
                if as_key:
                    _problem(
                        problems,
                        target.node[0],
                        _path(stack[:-1]),
                        "mapping keys must be plain strings",
                    )
                    top.key = _SKIP
                    continue
                height = target.height
                if len(stack) - 1 + height > MAX_DEPTH:
                    raise Refused(pos, too_deep(), _path(stack))
                value = target.value  # the same object, as yaml.safe_load gives
                pos, _, node_kids = target.node
                bad = value is None
        else:  # a document that ends before its root: libyaml and PyYAML never send one
            raise ComposerError(None, None, "unexpected end of the document", event.start_mark)
        if scalar:
            if top.is_map and top.key is _NO_KEY:
                if tag == _STR and text not in top.kids:
                    top.key = text
                    top.key_pos = pos
                else:
                    _odd_key(top, stack, problems, tag, text, pos)
                continue
            if tag in _TEXT_TAGS:
                value = text
            else:
                value, trouble = _scalar(scalars, tag, text)
                if trouble is not None:
                    _problem(problems, pos, _path(stack), trouble)

        # A value is complete: hand it to the collection that holds it.
        if top.is_map:
            key = top.key
            if type(key) is str:
                top.value[key] = value
                top.kids[key] = (pos, top.key_pos, node_kids)
            elif key is _MERGE:
                if top.merges is None:
                    top.merges = []
                top.merges.append((value, (pos, None, node_kids), bad))
            elif key is _KEY_NODE:
                top.key = _SKIP
                continue
            top.key = _NO_KEY
            top.key_text = None
        else:
            top.value.append(value)
            top.kids.append((pos, None, node_kids))
            if top is document:
                break
        if height > top.height:
            top.height = height

    get_event()  # DocumentEndEvent
    event = get_event()
    if type(event) is not StreamEndEvent:
        raise ComposerError(
            "expected a single document in the stream",
            _mark(document.kids[0][0]),
            "but found another document",
            event.start_mark,
        )
    if problems:
        raise YAMLReadError(problems)
    return document.value[0], PositionMap(document.kids[0])


def _duplicate_anchor(anchor: str, anchors: dict[str, _Anchor | _Frame], mark: yaml.Mark) -> None:
    first = anchors[anchor]
    pos = first.vpos if isinstance(first, _Frame) else first.node[0]
    raise ComposerError(
        f"found duplicate anchor {anchor!r}; first occurrence",
        _mark(pos),
        "second occurrence",
        mark,
    )


def _merged(frame: _Frame, problems: list[YAMLProblem], path: Path) -> tuple[Any, Any]:
    """The mapping with its ``<<`` sources merged under the keys written in it.

    Earlier sources win over later ones, explicit keys over all of them; a later ``<<``
    key over an earlier one.
    """
    value: dict[str, Any] = {}
    kids: dict[str, _PosNode] = {}
    for merge_value, merge_node, bad in frame.merges or ():
        if bad:
            continue  # its unsupported tag is reported
        if type(merge_value) is list:
            sources = list(zip(merge_value, merge_node[2], strict=True))
        else:
            sources = [(merge_value, merge_node)]
        for source, node in reversed(sources):
            if type(source) is dict:
                value.update(source)
                kids.update(node[2])
            else:
                _problem(problems, node[0], path, "'<<' merges only mappings")
    value.update(frame.value)
    kids.update(frame.kids)
    return value, kids
