"""Run a suite on each HTTP engine: a fixture that sets the seam's default engine per test.

Every provider a test builds without naming an ``http_engine`` (directly or through a
runtime) gets its client on the engine of the current parameter, so the wire and fault
suites run on httpx2 and on aiohttp and neither can drift. Clients given an httpx2
``transport=`` stay on httpx2, and so does ``OpenAISDKProvider`` (its SDK needs httpx2).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.config import HTTP_ENGINES
from runtime.http import engine as engine_module

ENGINE_PARAMS = [pytest.param(name, id=name) for name in HTTP_ENGINES]


def use_engine(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[str]:
    monkeypatch.setattr(engine_module, "DEFAULT_ENGINE", name)
    yield name
