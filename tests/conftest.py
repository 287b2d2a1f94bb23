"""Shared fixtures: no API keys from the environment, no network beyond loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runtime.testing import no_network


@pytest.fixture(autouse=True)
def _no_keys_no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.endswith("_API_KEY") or name.startswith("LLM_RUNTIME_"):
            monkeypatch.delenv(name, raising=False)
    with no_network():
        yield
