"""Per-call overhead of the runtime over a bare HTTP client, on loopback.

The same N chat-completion calls go to one loopback server three ways, in the same run:
bare ``httpx2.AsyncClient.post`` + ``json.loads`` (the baseline), ``OpenAIProvider.chat``
(our wire provider), and ``LLMRuntime.generate`` (lookup, merge, policy, retries and
limits on top). Printed as calls per second and as a ratio of time against the baseline,
because this machine is shared and noisy. Asserts nothing.

Run: ``python benchmarks/call_overhead.py [--calls N] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx2

from runtime.config import Catalog, ModelConfig, ProviderConfig
from runtime.providers.openai_provider import OpenAIProvider
from runtime.service import LLMRuntime
from runtime.types import ChatRequest, Message

REPLY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "bench",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 keep-alive server answering every POST with REPLY."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(REPLY)).encode() + b"\r\n\r\n" + REPLY
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _timed(n: int, concurrency: int, call: Callable[[], Awaitable[object]]) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start


async def main(calls: int, concurrency: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}

    raw = httpx2.AsyncClient(base_url=base, headers={"authorization": "Bearer k"})

    async def bare() -> object:
        response = await raw.post("/chat/completions", json=body)
        return json.loads(response.content)

    provider = OpenAIProvider(api_key="k", base_url=base)
    request = ChatRequest(model="bench", messages=(Message("user", "hi"),))

    async def wire() -> object:
        return await provider.chat(request)

    catalog = Catalog(
        providers={
            "p": ProviderConfig.model_validate(
                {
                    "name": "p",
                    "class": "runtime.providers.openai_provider.OpenAIProvider",
                    "base_url": base,
                }
            )
        },
        models={"m": ModelConfig(id="m", provider="p", provider_model="bench")},
    )
    rt = LLMRuntime(catalog)

    async def service() -> object:
        return await rt.generate(model="m", prompt="hi")

    cases = {
        "bare httpx2 (baseline)": bare,
        "OpenAIProvider.chat": wire,
        "LLMRuntime.generate": service,
    }
    for call in cases.values():  # warm up pools and caches
        await _timed(min(200, calls), concurrency, call)
    results: dict[str, float] = {}
    for _ in range(3):  # interleaved rounds; keep the best of each
        for name, call in cases.items():
            elapsed = await _timed(calls, concurrency, call)
            results[name] = min(results.get(name, elapsed), elapsed)
    baseline = results["bare httpx2 (baseline)"]
    print(f"{calls} calls, concurrency {concurrency}, best of 3 rounds")
    print(f"{'path':28} {'calls/s':>9} {'time x baseline':>16}")
    for name, elapsed in results.items():
        print(f"{name:28} {calls / elapsed:9.0f} {elapsed / baseline:16.2f}")
    await raw.aclose()
    await provider.aclose()
    await rt.aclose()
    await asyncio.sleep(0.2)  # let the server's handlers see the clients' EOF and end
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency))
