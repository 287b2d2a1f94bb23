"""Shared fixtures: no API keys from the environment, no network beyond loopback; CI skip guard."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runtime.testing import no_network
from tests.skip_guard import SkipGuard, enabled, read_allowed


def pytest_configure(config: pytest.Config) -> None:
    """In CI (LLM_RUNTIME_CI=1), a skip whose reason is not allowed fails the session."""
    if enabled():
        config.pluginmanager.register(SkipGuard(read_allowed()), "llm-runtime-skip-guard")


@pytest.fixture(autouse=True)
def _no_keys_no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.endswith("_API_KEY") or name.startswith("LLM_RUNTIME_"):
            monkeypatch.delenv(name, raising=False)
    with no_network():
        yield
