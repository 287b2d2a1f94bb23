"""A transient one-line progress message on stderr, written only when stderr is a terminal.

Slow first-use steps (the local provider assembling and loading a model) report what they are
doing through a ``Progress`` hook. The default, ``StatusLine``, draws the message on one
terminal line (cut to the terminal's width: a wrapped line could not be erased) and erases it
when the step is over; when the stream is not a TTY (a pipe, a file, CI's log) it writes
nothing at all, so piped output and logs never see it.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Protocol, TextIO

__all__ = ["Progress", "StatusLine"]

#: Carriage return + "erase to end of line": redraws the current terminal line.
_REDRAW = "\r\x1b[K"


class Progress(Protocol):
    """Where a slow step reports itself: ``progress(message)`` while it runs, then ``clear()``."""

    def __call__(self, message: str) -> None: ...

    def clear(self) -> None: ...


class StatusLine:
    """A ``Progress`` drawn on one line of ``stream`` (``sys.stderr`` by default), TTY only.

    With no stream given, ``sys.stderr`` is looked up at every write, so a swapped stderr (as
    the CLI or a test does) is honoured. Safe to call from worker threads.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._drawn: TextIO | None = None

    def __call__(self, message: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        if not _is_terminal(stream):
            return
        with self._lock:
            self._write(stream, f"{_REDRAW}{_fit(stream, message)}")
            self._drawn = stream

    def clear(self) -> None:
        with self._lock:
            if self._drawn is not None:
                self._write(self._drawn, _REDRAW)
                self._drawn = None

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken terminal: progress is best effort
            return


def _fit(stream: TextIO, message: str) -> str:
    """``message`` cut to one line of the terminal (unchanged when its width is unknown)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return message
    limit = max(columns - 1, 10)  # the last column would wrap on some terminals
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):
        return False
