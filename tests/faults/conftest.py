"""Fixtures of the fault suite: loopback fault servers and runtimes wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from runtime.service import LLMRuntime
from tests.engines import ENGINE_PARAMS, use_engine
from tests.faults.fault_server import FaultServer
from tests.unit.helpers import FakeClock, catalog, runtime_for

OPENAI = "runtime.providers.openai_provider.OpenAIProvider"
KEY_ENV = "FAULT_API_KEY"
KEY = "sk-fault-canary-0123"

MakeRuntime = Callable[..., LLMRuntime]


@pytest.fixture(autouse=True, params=ENGINE_PARAMS)
def http_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The engine under every provider the test builds: the suite runs once per engine."""
    yield from use_engine(monkeypatch, request.param)


def _server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv
        assert srv.pending == 0, "a scripted reply was not used"
        # Runtimes are closed before this teardown (make_runtime depends on the servers):
        # every connection they opened must be gone.
        assert srv.wait_for(lambda s: s.open_connections == 0), (
            f"{srv.open_connections} connection(s) left open after aclose()"
        )


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """The primary provider's server."""
    yield from _server()


@pytest.fixture
def other_server() -> Iterator[FaultServer]:
    """A second server, for a fallback model on another provider."""
    yield from _server()


@pytest.fixture
async def make_runtime(
    server: FaultServer, other_server: FaultServer
) -> AsyncIterator[MakeRuntime]:
    """Build an LLMRuntime over OpenAIProvider: provider "p" -> server, "q" -> other_server.

    ``make(models, providers=None, clock=None)``: ``models`` as ModelConfig fields by id;
    ``providers`` adds fields (retry, timeouts, limits...) to "p"/"q". The clock is a
    FakeClock (nothing really sleeps between attempts) and ``rand()`` is 0.5.
    """
    made: list[LLMRuntime] = []

    def make(
        models: dict[str, dict[str, Any]],
        providers: dict[str, dict[str, Any]] | None = None,
        clock: FakeClock | None = None,
    ) -> LLMRuntime:
        fields = {"p": {"base_url": server.url}, "q": {"base_url": other_server.url}}
        for name, extra in (providers or {}).items():
            fields[name] = {**fields[name], **extra}
        cat = catalog(
            models,
            {
                name: {"class": OPENAI, "api_key_env": KEY_ENV, **extra}
                for name, extra in fields.items()
            },
        )
        rt = runtime_for(cat, clock or FakeClock(), environ={KEY_ENV: KEY})
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.aclose()
