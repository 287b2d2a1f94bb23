"""In CI, a skipped test fails the session unless its reason is allowed in the repository.

A test that skips because an optional package failed to import (``pytest.importorskip``)
leaves a green run that tested less than it says. With ``LLM_RUNTIME_CI=1`` (set by
``.ci/run``), ``SkipGuard`` collects every skip (of a test, a fixture or a whole module) and,
when one's reason is not listed in ``tests/allowed-skips.txt``, lists them in the summary and
turns a passing session into a failing one. Expected failures (xfail) are not skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

__all__ = ["ALLOWED_FILE", "ENV_VAR", "SkipGuard", "read_allowed"]

#: Set to "1" to turn the guard on (CI does).
ENV_VAR = "LLM_RUNTIME_CI"
#: Skip reasons that may appear in CI, one a line, exactly as pytest reports them.
ALLOWED_FILE = Path(__file__).with_name("allowed-skips.txt")


def read_allowed(path: Path = ALLOWED_FILE) -> frozenset[str]:
    """The allowed reasons in ``path``: one a line; blank lines and ``#`` comments ignored."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the guard is on: ``LLM_RUNTIME_CI=1``."""
    return environ.get(ENV_VAR) == "1"


class SkipGuard:
    """A pytest plugin: fails the session on a skip whose reason is not allowed."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)
        self.unexpected: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = _reason(report)
        if reason not in self.allowed:
            self.unexpected.append((report.nodeid, reason))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unexpected:
            return
        terminalreporter.section(f"unexpected skips ({ENV_VAR}=1)", sep="=", red=True)
        for nodeid, reason in self.unexpected:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(
            f"{len(self.unexpected)} test(s) skipped for a reason not listed in "
            f"{ALLOWED_FILE.name}: make them run (install what they need) or allow the reason "
            "there; the session fails",
            red=True,
        )


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The skip's reason as ``-rs`` shows it (without pytest's "Skipped: " prefix)."""
    longrepr = report.longrepr
    located = isinstance(longrepr, tuple) and len(longrepr) == 3  # (path, line, message)
    text = str(longrepr[2]) if located else str(longrepr)  # type: ignore[index]
    return text.removeprefix("Skipped: ")
