"""The wire suite runs once per HTTP engine (see ``tests.engines``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engines import ENGINE_PARAMS, use_engine


@pytest.fixture(autouse=True, params=ENGINE_PARAMS)
def http_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The engine under every provider the test builds."""
    yield from use_engine(monkeypatch, request.param)
