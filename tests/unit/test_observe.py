"""Cost, the usage ledger, hooks and the log line: the engine's one observation point."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from runtime import errors
from runtime.config import PricingConfig
from runtime.pricing import Cost, PriceBook, cost_of, yaml_card
from runtime.testing import Script, ScriptedProvider
from runtime.types import Usage
from tests.unit.helpers import catalog, runtime_for

PRICES = {
    "input": 1.0,
    "output": 2.0,
    "cached_input": 0.25,
    "cache_write": 1.25,
    "as_of": "2026-11-30",
}


def card(**overrides: Any) -> Any:
    return yaml_card(PricingConfig(**{**PRICES, **overrides}))


def usd(text: str) -> Decimal:
    return Decimal(text)


# --------------------------------------------------------------------------- golden costs


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(Usage(1000, 100), usd("0.0012"), id="plain"),
        # Gemini: cachedContentTokenCount is part of promptTokenCount; priced once, at its rate.
        pytest.param(
            Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400),
            usd("0.0009"),  # 600 x 1 + 400 x 0.25 + 100 x 2, per million
            id="gemini-cached-not-twice",
        ),
        # Anthropic: cache writes and reads are priced differently from input and each other.
        pytest.param(
            Usage(
                prompt_tokens=1000, completion_tokens=0, cached_tokens=200, cache_write_tokens=300
            ),
            usd("0.000925"),  # 500 x 1 + 200 x 0.25 + 300 x 1.25
            id="anthropic-write-vs-read",
        ),
        # Reasoning tokens are part of completion_tokens: billed as output, once.
        pytest.param(
            Usage(prompt_tokens=10, completion_tokens=500, reasoning_tokens=450),
            usd("0.00101"),
            id="reasoning-as-output",
        ),
    ],
)
def test_golden_costs(usage: Usage, expected: Decimal) -> None:
    cost = cost_of(card(), usage)
    assert cost == Cost(expected, "USD", "yaml", "2026-11-30")


@pytest.mark.parametrize(
    ("usage", "overrides"),
    [
        pytest.param(Usage(prompt_tokens=10), {}, id="no-completion-count"),
        pytest.param(Usage(completion_tokens=10), {}, id="no-prompt-count"),
        pytest.param(
            Usage(100, 10, cached_tokens=50), {"cached_input": None}, id="cached-unpriced"
        ),
        pytest.param(
            Usage(100, 10, cache_write_tokens=50), {"cache_write": None}, id="write-unpriced"
        ),
        pytest.param(Usage(10, 10, cached_tokens=50), {}, id="contradicting-counts"),
    ],
)
def test_unknown_costs_are_none_never_zero(usage: Usage, overrides: dict[str, Any]) -> None:
    assert cost_of(card(**overrides), usage) is None


def test_no_rate_card_is_none() -> None:
    assert cost_of(None, Usage(10, 10)) is None


def test_genai_prices_agree_with_its_own_calc_price() -> None:
    import genai_prices

    book = PriceBook()
    found = book.card(None, "gpt-4o-mini", "https://api.openai.com/v1", block=True)
    assert found is not None
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=200)
    ours = cost_of(found, usage)
    theirs = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=200),
        "gpt-4o-mini",
        provider_api_url="https://api.openai.com/v1",
    )
    assert ours is not None
    assert (ours.amount, ours.source) == (theirs.total_price, "genai-prices")
    assert ours.as_of == f"genai-prices {genai_prices.__version__}"


def test_an_unknown_model_has_no_price() -> None:
    assert PriceBook().card(None, "no-such-model-xyz", "http://127.0.0.1:9", block=True) is None


# --------------------------------------------------------------------------- through the runtime


def priced_runtime(**model: Any) -> Any:
    rt = runtime_for(catalog({"m": {"provider": "s", "pricing": PRICES, **model}}))
    provider = rt.provider_for("m")
    assert isinstance(provider, ScriptedProvider)
    return rt, provider


async def test_completion_cost_from_yaml_and_for_streams_at_the_end() -> None:
    rt, provider = priced_runtime()
    provider.queue(
        Script(text="hi", usage=Usage(1000, 100)), Script(chunks=["a"], usage=Usage(10, 5))
    )
    result = await rt.generate(model="m", prompt="x")
    assert result.cost == Cost(usd("0.0012"), "USD", "yaml", "2026-11-30")
    stream = rt.stream(model="m", prompt="x")
    assert [d async for d in stream] == ["a"]
    assert stream.completion is not None
    assert stream.completion.cost == Cost(usd("0.00002"), "USD", "yaml", "2026-11-30")


async def test_a_cost_is_none_when_usage_is_missing() -> None:
    rt, provider = priced_runtime()
    provider.queue(Script(text="hi", usage=Usage(prompt_tokens=3)))
    assert (await rt.generate(model="m", prompt="x")).cost is None


def test_a_yaml_priced_call_never_imports_genai_prices() -> None:
    code = (
        "import asyncio, json, sys\n"
        "from tests.unit.helpers import catalog, runtime_for\n"
        "prices = {'input': 1, 'output': 2}\n"
        "rt = runtime_for(catalog({'m': {'provider': 's', 'pricing': prices}}))\n"
        "r = asyncio.run(rt.generate(model='m', prompt='a b'))\n"
        "print(json.dumps(['genai_prices' in sys.modules, str(r.cost.amount)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == [False, "0.000006"]


async def test_the_ledger_totals_under_a_thousand_concurrent_calls() -> None:
    rt, provider = priced_runtime()
    provider.queue(*[Script(text="ok", usage=Usage(10, 2, cached_tokens=4)) for _ in range(1000)])
    await asyncio.gather(*(rt.generate(model="m", prompt="x") for _ in range(1000)))
    provider.queue(errors.BadRequestError("no"))
    with pytest.raises(errors.BadRequestError):
        await rt.generate(model="m", prompt="x")
    totals = rt.usage.totals()["m"]
    assert (totals.calls, totals.errors, totals.priced_calls) == (1000, 1, 1000)
    assert (totals.prompt_tokens, totals.completion_tokens, totals.cached_tokens) == (
        10_000,
        2_000,
        4_000,
    )
    assert totals.cost == usd("0.011")  # 1000 x (6 x 1 + 4 x 0.25 + 2 x 2) / 1e6
    rt.usage.reset()
    assert rt.usage.totals() == {}


async def test_a_model_without_any_price_counts_tokens_and_no_cost() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "provider_model": "unpriced-model-xyz"}}))
    await rt.generate(model="m", prompt="one two")
    totals = rt.usage.totals()["m"]
    assert (totals.calls, totals.cost, totals.priced_calls) == (1, None, 0)


# --------------------------------------------------------------------------- hooks and the log


async def test_hooks_see_request_retry_fallback_response_and_error() -> None:
    rt = runtime_for(
        catalog(
            {
                "a": {"provider": "s", "fallbacks": ["b"], "retry": {"max_attempts": 2}},
                "b": {"provider": "s"},
            },
            {"s": {"api_key_env": "HOOK_API_KEY"}},
        ),
        environ={"HOOK_API_KEY": "sk-hooks-secret-123456"},
    )
    provider = rt.provider_for("a")
    assert isinstance(provider, ScriptedProvider)
    seen: list[tuple[str, Any]] = []

    def sync_hook(event: Any) -> None:
        seen.append((event.kind, event))

    async def async_hook(event: Any) -> None:
        await asyncio.sleep(0)
        seen.append(("async-" + event.kind, event))

    for kind in ("request", "retry", "fallback", "response", "error"):
        rt.hooks.add(kind, sync_hook)  # type: ignore[arg-type]
    rt.on("response")(async_hook)
    provider.queue(errors.ServerError("1"), errors.ServerError("2"), "from b")
    result = await rt.generate(model="a", prompt="x", extra_note="sk-hooks-secret-123456")
    await rt.hooks.drain()
    kinds = [k for k, _ in seen]
    assert kinds == [
        "request",
        "retry",
        "request",
        "fallback",
        "request",
        "response",
        "async-response",
    ]
    assert seen[3][1].failed == "a"
    assert seen[3][1].next == "b"
    assert seen[5][1].completion is result
    provider.queue(errors.BadRequestError("nope"))
    with pytest.raises(errors.BadRequestError):
        await rt.generate(model="a", prompt="x")
    assert kinds_of(seen)[-1] == "error"
    assert "sk-hooks-secret-123456" not in repr([e for _, e in seen])


def kinds_of(seen: list[tuple[str, Any]]) -> list[str]:
    return [k for k, _ in seen]


async def test_a_failing_hook_is_logged_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))

    def broken(event: Any) -> None:
        raise RuntimeError("hook bug")

    async def broken_async(event: Any) -> None:
        raise ValueError("async hook bug")

    rt.hooks.add("request", broken)
    rt.hooks.add("response", broken_async)
    with caplog.at_level(logging.WARNING, logger="runtime"):
        assert (await rt.generate(model="m", prompt="still fine")).text == "still fine"
        await rt.hooks.drain()
    messages = caplog.messages
    assert any(
        "hook test_a_failing_hook_is_logged_and_never_breaks_the_call.<locals>.broken "
        "failed on 'request': RuntimeError: hook bug" in m
        for m in messages
    )
    assert any("async hook bug" in m for m in messages)


def test_unknown_hook_kind_is_refused() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    with pytest.raises(ValueError, match="unknown hook kind 'respnse'"):
        rt.hooks.add("respnse", print)  # type: ignore[arg-type]


async def test_one_info_line_per_call(caplog: pytest.LogCaptureFixture) -> None:
    rt, provider = priced_runtime()
    provider.queue(Script(text="hi", usage=Usage(7, 3)))
    with caplog.at_level(logging.INFO, logger="runtime"):
        await rt.generate(model="m", prompt="x")
    lines = [r.getMessage() for r in caplog.records if r.name == "runtime"]
    assert len(lines) == 1
    assert lines[0].startswith("call generate model='m' provider='s' latency=")
    assert lines[0].endswith("tokens=7+3 attempts=1 cost=0.000013USD")  # 7 x $1/M + 3 x $2/M


async def test_the_info_line_says_when_the_cost_is_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))  # no pricing, a scripted provider
    provider = rt.provider_for("m")
    assert isinstance(provider, ScriptedProvider)
    provider.queue(Script(text="hi", usage=Usage(7, 3)))
    with caplog.at_level(logging.INFO, logger="runtime"):
        await rt.generate(model="m", prompt="x")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "runtime"]
    assert line.endswith("tokens=7+3 attempts=1 cost=?")
