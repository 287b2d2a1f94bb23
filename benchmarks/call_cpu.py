"""The runtime's own CPU per call, in-process, with the network replaced by a mock transport.

The same chat-completion call is made, one after another, through each layer, in the same
run, and each layer's time per call is printed with what it adds over the layer below:

* ``raw httpx2``: ``httpx2.AsyncClient.post`` + ``json.loads`` over ``httpx2.MockTransport``
  (the floor: what any httpx2-based client pays);
* ``seam``: ``HTTPClient.post_json`` over the same mock transport (``runtime.http``);
* ``provider``: ``OpenAIProvider.chat`` over the seam;
* ``runtime``: ``LLMRuntime.generate`` (lookup, request, policies, retries, limits,
  deadlines, observing) over the provider;
* ``provider stream`` / ``runtime stream``: a stream of ``DELTAS`` text deltas through
  ``OpenAIProvider.stream_chat`` and through ``LLMRuntime.stream`` (what the runtime adds
  per delta: its deadlines, the accumulator, the call loop);
* ``runtime, seam stubbed``: ``LLMRuntime.generate`` with ``post_json`` replaced by a
  coroutine returning the reply parsed already: the runtime and the provider alone, no HTTP
  or JSON code.

Rounds are interleaved and the best round of each layer is kept, because this machine is
shared and noisy; ``--case NAME`` runs one layer only (for ``valgrind --tool=callgrind``:
the instruction count of ``--calls 2N`` minus that of ``--calls N``, over N, is a stable
per-call cost). Asserts nothing.

Run: ``python benchmarks/call_cpu.py [--calls N] [--rounds R] [--case NAME]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from runtime.config import Catalog, ModelConfig, ProviderConfig
from runtime.http import HTTPClient
from runtime.providers.openai_provider import OpenAIProvider
from runtime.service import LLMRuntime
from runtime.types import ChatRequest, Message

BASE = "http://127.0.0.1:9/v1"  # never connected to: the mock transport answers
REPLY_OBJECT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "bench",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
REPLY = json.dumps(REPLY_OBJECT).encode()
DELTAS = 100  # per streamed call
_CHUNK = {"id": "c", "object": "chat.completion.chunk", "model": "bench"}
STREAM = (
    b"".join(
        b"data: "
        + json.dumps({**_CHUNK, "choices": [{"index": 0, "delta": {"content": "x"}}]}).encode()
        + b"\n\n"
        for _ in range(DELTAS)
    )
    + b"data: "
    + json.dumps(
        {**_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    ).encode()
    + b"\n\ndata: [DONE]\n\n"
)


def _answer(request: httpx2.Request) -> httpx2.Response:
    if json.loads(request.content).get("stream"):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=STREAM)
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=REPLY)


def _mocked(provider: Any) -> None:
    """Give a wire provider an HTTP client over the mock transport."""
    provider._client = HTTPClient(
        base_url=provider._base,
        headers=provider._headers,
        provider=provider.provider_name or None,
        error_parser=provider.error_parser,
        secrets=provider.secrets,
        transport=httpx2.MockTransport(_answer),
        http=provider._http_config,
    )


def _runtime() -> LLMRuntime:
    catalog = Catalog(
        providers={
            "p": ProviderConfig.model_validate(
                {
                    "name": "p",
                    "class": "runtime.providers.openai_provider.OpenAIProvider",
                    "base_url": BASE,
                }
            )
        },
        models={"m": ModelConfig(id="m", provider="p", provider_model="bench")},
    )
    return LLMRuntime(catalog, environ={})


def build_cases() -> dict[str, Callable[[], Awaitable[object]]]:
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
    raw = httpx2.AsyncClient(
        base_url=BASE,
        headers={"authorization": "Bearer k"},
        transport=httpx2.MockTransport(_answer),
    )

    async def bare() -> object:
        response = await raw.post("/chat/completions", json=body)
        return json.loads(response.content)

    seam = HTTPClient(base_url=BASE, transport=httpx2.MockTransport(_answer))

    async def seam_call() -> object:
        return await seam.post_json("/chat/completions", body, model="bench")

    provider = OpenAIProvider(api_key="k", base_url=BASE)
    _mocked(provider)
    request = ChatRequest(model="bench", messages=(Message("user", "hi"),))

    async def wire() -> object:
        return await provider.chat(request)

    rt = _runtime()
    _mocked(rt.provider_for("m"))

    async def service() -> object:
        return await rt.generate(model="m", prompt="hi")

    stubbed = _runtime()
    stub_provider = stubbed.provider_for("m")

    class _Stub:
        provider: str | None = None

        async def post_json(self, *args: Any, **kwargs: Any) -> Any:
            return REPLY_OBJECT  # parsed already: no HTTP or JSON work is counted

    stub_provider._client = _Stub()

    async def service_stubbed() -> object:
        return await stubbed.generate(model="m", prompt="hi")

    async def provider_stream() -> object:
        return [e async for e in provider.stream_chat(request)]

    async def service_stream() -> object:
        return [d async for d in rt.stream(model="m", prompt="hi")]

    return {
        "raw httpx2": bare,
        "seam": seam_call,
        "provider": wire,
        "runtime": service,
        "runtime, seam stubbed": service_stubbed,
        f"provider stream ({DELTAS} deltas)": provider_stream,
        f"runtime stream ({DELTAS} deltas)": service_stream,
    }


async def _per_call(n: int, call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n


async def main(calls: int, rounds: int, only: str | None) -> None:
    cases = build_cases()
    if only is not None:
        await _per_call(calls, cases[only])
        return
    for call in cases.values():  # warm up: pools, caches, plans
        await _per_call(min(200, calls), call)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, call in cases.items():
            seconds = await _per_call(calls, call)
            best[name] = min(best.get(name, seconds), seconds)
    below = {"seam": "raw httpx2", "provider": "seam", "runtime": "provider"}
    print(f"{calls} sequential calls per round, best of {rounds} interleaved rounds")
    print(f"{'layer':30} {'us/call':>8} {'adds (us)':>10}")
    for name, seconds in best.items():
        under = below.get(name)
        adds = f"{(seconds - best[under]) * 1e6:10.1f}" if under else f"{'':10}"
        print(f"{name:30} {seconds * 1e6:8.1f} {adds}")
    own = best["runtime"] - best["raw httpx2"]
    print(f"\nruntime over raw httpx2 (service + provider + seam): {own * 1e6:.1f} us/call")
    stubbed = best["runtime, seam stubbed"]
    print(f"runtime with the seam stubbed (service + provider): {stubbed * 1e6:.1f} us/call")
    streamed = best[f"runtime stream ({DELTAS} deltas)"]
    streamed -= best[f"provider stream ({DELTAS} deltas)"]
    print(f"runtime over the provider, streaming: {streamed / DELTAS * 1e6:.2f} us/delta")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--case", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds, args.case))
