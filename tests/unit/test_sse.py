"""The SSE parser (runtime.sse): linear in its input, bounded, and the WHATWG details."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest

from runtime import sse
from runtime.errors import ResponseTooLargeError
from runtime.sse import SSEEvent, SSELimits, SSEParser, iter_sse

MiB = 1024 * 1024


def parse(chunks: Iterable[bytes], **kwargs: Any) -> list[SSEEvent]:
    parser = SSEParser(**kwargs)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + list(parser.finish())


class _Source:
    """An async byte source that counts how many bytes the parser pulled from it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            self.pulled += len(chunk)
            yield chunk


async def test_an_8_mib_line_without_newline_fails_fast_with_the_typed_error() -> None:
    piece = b"x" * (64 * 1024)
    source = _Source(piece for _ in range(128))  # 8 MiB, no line end anywhere
    with pytest.raises(ResponseTooLargeError) as info:
        async for _ in iter_sse(source.__aiter__()):
            pass
    assert "http.max_sse_line_bytes = 4194304 bytes" in str(info.value)
    assert "settings.http" in str(info.value)
    # It stopped as soon as the line passed the bound, not at the end of the 8 MiB.
    assert source.pulled == 4 * MiB + len(piece)


class _CountingPattern:
    """Stands in for the parser's line-end pattern and counts the bytes it is asked to scan."""

    def __init__(self, real: re.Pattern[bytes]) -> None:
        self.real = real
        self.scanned = 0

    def finditer(self, data: bytes, pos: int = 0) -> Iterator[re.Match[bytes]]:
        self.scanned += len(data) - pos
        return self.real.finditer(data, pos)


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param([b"x" * 1024] * 2048 + [b"\n\n"], id="2-mib-line-in-1-kib-chunks"),
        pytest.param([b"data: ab\r\n\r\n" * 100] * 100, id="many-small-events"),
        pytest.param([b"data: a", b"\r", b"\n", b"\r", b"\n"] * 1000, id="crlf-split"),
    ],
)
def test_each_byte_is_searched_for_a_line_end_once(
    stream: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = _CountingPattern(sse._LINE_END)
    monkeypatch.setattr(sse, "_LINE_END", counting)
    parse(stream, limits=SSELimits(max_line=4 * MiB))
    # Re-splitting the buffered start of a line on every chunk (the old parser) scans
    # about n^2 / 2 bytes for a long line; here the work is the input's length, at most.
    assert counting.scanned <= sum(len(c) for c in stream)


def test_an_event_past_its_bound_raises_before_its_end() -> None:
    line = b"data: " + b"y" * 1000 + b"\n"
    parser = SSEParser(SSELimits(max_line=2000, max_event=10_000))
    for _ in range(9):  # 9 kB of one event, no blank line: within the bound
        assert list(parser.feed(line)) == []
    with pytest.raises(ResponseTooLargeError) as info:
        list(parser.feed(line))
    assert "http.max_sse_event_bytes = 10000 bytes" in str(info.value)


def test_many_small_events_are_within_the_event_bound() -> None:
    events = parse([b"data: " + b"y" * 1000 + b"\n\n"] * 20, limits=SSELimits(max_event=2000))
    assert len(events) == 20


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"\xef\xbb\xbfdata: first\n\ndata: second\n\n"], id="bom"),
        pytest.param([b"\xef", b"\xbb", b"\xbfdata: fir", b"st\n\ndata: second\n\n"], id="split"),
        pytest.param([b"\xef\xbb\xbf\n\ndata: first\n\ndata: second\n\n"], id="bom-blank-line"),
    ],
)
def test_a_leading_bom_is_ignored(chunks: list[bytes]) -> None:
    assert [e.data for e in parse(chunks)] == ["first", "second"]


def test_only_a_leading_bom_is_ignored() -> None:
    # A BOM later in the stream is part of the line: its field name is then not "data".
    assert parse([b"data: a\n\n\xef\xbb\xbfdata: b\n\n"]) == [SSEEvent("message", "a")]


def test_line_ends_in_any_split_give_the_same_events() -> None:
    text = b"\xef\xbb\xbfdata: a\r\n\r\nevent: x\rdata: b\r\rdata: c\n\nid: 7\ndata: d\n"
    expected = parse([text])
    assert expected == [
        SSEEvent("message", "a"),
        SSEEvent("x", "b"),
        SSEEvent("message", "c"),
        SSEEvent("message", "d", "7", at_eof=True),
    ]
    rng = random.Random(8)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 10)))
        parts = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert parse(parts) == expected, parts


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param(
            [b"data: [DONE]\n"], [SSEEvent("message", "[DONE]", at_eof=True)], id="no-blank-line"
        ),
        pytest.param(
            [b"data: [DONE]"], [SSEEvent("message", "[DONE]", at_eof=True)], id="no-line-end"
        ),
        pytest.param(
            [b"data: a\n", b"data: b\r"],
            [SSEEvent("message", "a\nb", at_eof=True)],
            id="multi-line",
        ),
        pytest.param([b"event: x\n"], [], id="no-data-no-event"),
        pytest.param([b"data: a\n\n"], [SSEEvent("message", "a")], id="complete"),
    ],
)
def test_an_event_the_end_of_the_stream_cuts_off_is_dispatched_marked(
    chunks: list[bytes], expected: list[SSEEvent]
) -> None:
    # As the official SDKs: the last line counts without its line end; unlike them, the
    # event is handed over (marked at_eof) so "data: [DONE]" then EOF completes a stream.
    assert parse(chunks) == expected


GOOGLE_ERROR = b"""data: {"candidates": []}

{
  "error": {
    "code": 429,
    "message": "Resource has been exhausted (e.g. check quota).",
    "status": "RESOURCE_EXHAUSTED"
  }
}
"""


def test_unframed_text_after_the_last_event_is_handed_over_when_asked() -> None:
    events = parse([GOOGLE_ERROR], unframed=True)
    assert events[0] == SSEEvent("message", '{"candidates": []}')
    assert events[1].unframed
    assert events[1].at_eof
    assert '"status": "RESOURCE_EXHAUSTED"' in events[1].data
    assert events[1].data.startswith("{\n")
    assert events[1].data.endswith("}")
    # Without asking, the algorithm's rule: lines that are no field are ignored.
    assert parse([GOOGLE_ERROR]) == [SSEEvent("message", '{"candidates": []}')]


def test_unframed_text_before_a_later_event_is_dropped() -> None:
    events = parse([b"stray line\ndata: a\n\n"], unframed=True)
    assert events == [SSEEvent("message", "a")]


def test_unframed_text_is_bounded() -> None:
    parser = SSEParser(SSELimits(max_unframed=1000), unframed=True)
    for _ in range(10_000):  # 1 MB of stray lines
        list(parser.feed(b"x" * 99 + b"\n"))
    [trailer] = parser.finish()
    assert trailer.unframed
    assert 900 <= len(trailer.data) <= 1000
