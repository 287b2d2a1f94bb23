"""The README's structured-output example, run as written, offline, on ``local-gemma``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.readme import python_blocks, run_example


def test_the_structured_output_example_runs_offline(
    gguf_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The session's assembled model file, found where a user's cache would hold it.
    monkeypatch.setenv("LLM_RUNTIME_CACHE", str(gguf_path.parent.parent))
    monkeypatch.chdir(tmp_path)  # the bundled catalog, as a user has it
    [code] = python_blocks("Features", "Structured output")
    run_example(code)
    out = capsys.readouterr().out
    # A City, whatever the 270M base model says: the constrained decoding fixes the shape.
    assert re.fullmatch(r"City\(name='[^']*', country='[^']*', is_capital=(True|False)\)\n", out)
