"""One benchmark contender in its own process: measure it, print one JSON line (not a test).

``benchmarks/run.py`` starts this script once per contender and round, so no contender
shares an interpreter, an event loop, a connection pool or a heap with another. Jobs:

- ``throughput``: calls/s at each ``--levels`` concurrency against the loopback fake server
  (a warm-up, then ``--seconds`` of calls; every reply parsed and checked);
- ``stream``: ``--streams`` sequential streams of the server's deltas: time to the first
  content delta and deltas/s over the whole stream (every event parsed);
- ``mock``: in-process CPU per call with the HTTP stubbed out by an httpx2 ``MockTransport``
  (no socket): raw httpx2, ``OpenAIProvider.chat`` and ``LLMRuntime.generate`` interleaved;
- ``config``: ``config_load.measure`` (the loader vs a bare libyaml parse).

A contender that cannot run here (a library not installed, an engine the loader rejects)
prints ``{"unavailable": reason}``; one that fails prints ``{"error": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

#: Every contender's connection pool holds at least the highest concurrency measured, so
#: none of them queues for a connection (the runtime's default pool is 100).
POOL = 256
KEY = "sk-bench-not-a-secret"
MODEL = "bench-model"
PROMPT = "hi"


class Unavailable(Exception):
    """This contender cannot run in this environment (reported as n/a, not as a failure)."""


def request_body(stream: bool) -> dict[str, Any]:
    """What the raw clients send: the same JSON the runtime's OpenAI provider sends."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def reply_text(data: bytes) -> str:
    reply = json.loads(data)
    text = reply["choices"][0]["message"]["content"]
    if not text:
        raise AssertionError(f"unexpected reply: {data[:200]!r}")
    return str(text)


def delta_of(data: bytes) -> bool:
    """Whether one ``data:`` payload (not ``[DONE]``) carries content."""
    chunk = json.loads(data)
    choices = chunk["choices"]
    return bool(choices and choices[0]["delta"].get("content"))


Call = Callable[[], Awaitable[object]]
Stream = Callable[[], AsyncIterator[object]]


class Client:
    """A contender: one non-streamed call, one stream of content deltas, and a close."""

    async def call(self) -> object:
        raise NotImplementedError

    def stream(self) -> AsyncIterator[object]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


# --------------------------------------------------------------------------- contenders


class RawAiohttp(Client):
    def __init__(self, base: str) -> None:
        try:
            import aiohttp
        except ImportError as exc:
            raise Unavailable("aiohttp is not installed") from exc
        self._aiohttp = aiohttp
        self._url = f"{base}/chat/completions"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL),
            headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        )

    async def call(self) -> object:
        async with self._session.post(self._url, data=json.dumps(request_body(False))) as r:
            data = await r.read()
            if r.status != 200:
                raise AssertionError(f"HTTP {r.status}")
        return reply_text(data)

    async def stream(self) -> AsyncIterator[object]:
        async with self._session.post(self._url, data=json.dumps(request_body(True))) as r:
            if r.status != 200:
                raise AssertionError(f"HTTP {r.status}")
            async for line in r.content:
                if line.startswith(b"data: "):
                    data = line[6:].rstrip()
                    if data == b"[DONE]":
                        break
                    if delta_of(data):
                        yield data

    async def aclose(self) -> None:
        await self._session.close()


class RawHttpx2(Client):
    def __init__(self, base: str, transport: Any = None) -> None:
        import httpx2

        self._url = f"{base}/chat/completions"
        limits = httpx2.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self._client = httpx2.AsyncClient(
            headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
            limits=limits,
            transport=transport,
            trust_env=False,
        )

    async def call(self) -> object:
        r = await self._client.post(self._url, content=json.dumps(request_body(False)))
        if r.status_code != 200:
            raise AssertionError(f"HTTP {r.status_code}")
        return reply_text(r.content)

    async def stream(self) -> AsyncIterator[object]:
        body = json.dumps(request_body(True))
        async with self._client.stream("POST", self._url, content=body) as r:
            if r.status_code != 200:
                raise AssertionError(f"HTTP {r.status_code}")
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    data = line[6:].rstrip()
                    if data == "[DONE]":
                        break
                    if delta_of(data.encode()):
                        yield data

    async def aclose(self) -> None:
        await self._client.aclose()


def runtime_files(directory: Path, base: str, engine: str | None) -> tuple[Path, Path]:
    """A providers.yaml (one OpenAI provider on ``base``, the engine chosen under
    ``settings:``) and a models.yaml with one model on it."""
    providers = directory / "providers.yaml"
    settings = f"settings:\n  http_engine: {engine}\n" if engine else ""
    providers.write_text(
        settings + "providers:\n"
        "  bench:\n"
        "    class: runtime.providers.openai_provider.OpenAIProvider\n"
        "    api_key_env: BENCH_API_KEY\n"
        f"    base_url: {base}\n"
        f"    options: {{max_connections: {POOL}}}\n",
        encoding="utf-8",
    )
    models = directory / "models.yaml"
    models.write_text(
        f"models:\n  bench:\n    provider: bench\n    provider_model: {MODEL}\n",
        encoding="utf-8",
    )
    return providers, models


class Runtime(Client):
    """llm-runtime through its public API: ``load_runtime`` over temp YAML, ``generate``."""

    def __init__(self, base: str, engine: str | None) -> None:
        from runtime import ConfigError, load_runtime

        self._engine = engine
        with tempfile.TemporaryDirectory() as directory:
            providers, models = runtime_files(Path(directory), base, engine)
            try:
                self._rt = load_runtime(providers, models, environ={"BENCH_API_KEY": KEY})
            except ConfigError as exc:
                if engine and "http_engine" in str(exc):
                    raise Unavailable("engine not available") from exc
                raise

    def check_engine(self) -> None:
        """After a call: the engine asked for is the one that ran (not silently ignored)."""
        if self._engine == "aiohttp" and "aiohttp" not in sys.modules:
            raise Unavailable("engine not available (setting accepted, aiohttp never imported)")

    async def call(self) -> object:
        result = await self._rt.generate(model="bench", prompt=PROMPT)
        if not result.text:
            raise AssertionError(f"empty completion: {result!r}")
        return result.text

    async def stream(self) -> AsyncIterator[object]:
        async for delta in self._rt.stream(model="bench", prompt=PROMPT):
            if delta:
                yield delta

    async def aclose(self) -> None:
        await self._rt.aclose()


class OpenAISDK(Client):
    def __init__(self, base: str) -> None:
        try:
            import httpx2
            import openai
        except ImportError as exc:
            raise Unavailable("openai is not installed") from exc
        limits = httpx2.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self._client = openai.AsyncOpenAI(
            api_key=KEY,
            base_url=base,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits, trust_env=False),
        )

    async def call(self) -> object:
        reply = await self._client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}]
        )
        text = reply.choices[0].message.content
        if not text:
            raise AssertionError(f"unexpected reply: {reply!r}")
        return text

    async def stream(self) -> AsyncIterator[object]:
        stream = await self._client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk

    async def aclose(self) -> None:
        await self._client.close()


class LiteLLM(Client):
    def __init__(self, base: str) -> None:
        try:
            import litellm  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise Unavailable("litellm is not installed") from exc
        self._litellm = litellm
        self._base = base

    async def call(self) -> object:
        reply = await self._litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=self._base,
            api_key=KEY,
            messages=[{"role": "user", "content": PROMPT}],
            max_retries=0,
        )
        return reply.choices[0].message.content

    async def stream(self) -> AsyncIterator[object]:
        stream = await self._litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=self._base,
            api_key=KEY,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk


def make(name: str, base: str) -> Client:
    if name == "raw-aiohttp":
        return RawAiohttp(base)
    if name == "raw-httpx2":
        return RawHttpx2(base)
    if name == "runtime-httpx2":
        return Runtime(base, None)
    if name == "runtime-aiohttp":
        return Runtime(base, "aiohttp")
    if name == "openai-sdk":
        return OpenAISDK(base)
    if name == "litellm":
        return LiteLLM(base)
    raise SystemExit(f"unknown contender {name!r}")


# --------------------------------------------------------------------------- loopback jobs


async def rate(call: Call, concurrency: int, seconds: float) -> float:
    """Calls per second with ``concurrency`` callers looping for about ``seconds``."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while loop.time() < stop:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def throughput(
    factory: Callable[[], Client], levels: list[int], seconds: float
) -> dict[str, Any]:
    """Each level on a fresh client: a pool left at 256 connections by a previous level
    would make every later acquire pay for all of them (httpcore2 checks idle sockets)."""
    out: dict[str, float] = {}
    for level in levels:
        client = factory()
        try:
            await rate(client.call, level, min(0.3, seconds / 2))  # connections, caches
            if isinstance(client, Runtime):
                client.check_engine()
            out[str(level)] = await rate(client.call, level, seconds)
        finally:
            await client.aclose()
    return {"calls_per_s": out}


async def streams(client: Client, count: int, deltas: int) -> dict[str, Any]:
    first: list[float] = []
    per_s: list[float] = []
    for index in range(count + 1):  # the first stream warms up and is not counted
        start = time.perf_counter()
        seen = 0
        first_at = 0.0
        async for _ in client.stream():
            if not seen:
                first_at = time.perf_counter()
            seen += 1
        end = time.perf_counter()
        if seen != deltas:
            raise AssertionError(f"{seen} content deltas, the server sent {deltas}")
        if index:
            first.append(first_at - start)
            per_s.append(seen / (end - start))
    if isinstance(client, Runtime):
        client.check_engine()
    return {"first_delta_s": statistics.median(first), "deltas_per_s": statistics.median(per_s)}


async def loopback_job(args: argparse.Namespace) -> dict[str, Any]:
    if args.job == "throughput":
        return await throughput(lambda: make(args.contender, args.base), args.levels, args.seconds)
    client = make(args.contender, args.base)
    try:
        return await streams(client, args.streams, args.deltas)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- mock transport


def _mock_transport(calls: list[int]) -> Any:
    import httpx2
    from fake_openai import completion

    reply = completion()
    headers = {"content-type": "application/json"}

    def answer(request: httpx2.Request) -> httpx2.Response:
        calls[0] += 1
        return httpx2.Response(200, headers=headers, content=reply)

    return httpx2.MockTransport(answer)


def _stub_seam(transport: Any) -> None:
    """Every ``HTTPClient`` the runtime builds from now on sends through ``transport``."""
    import runtime.http as seam

    original = seam.HTTPClient.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["transport"] = transport
        original(self, *args, **kwargs)

    seam.HTTPClient.__init__ = init  # type: ignore[method-assign]


async def mock_job(args: argparse.Namespace) -> dict[str, Any]:
    """CPU per call with HTTP stubbed out: raw httpx2 vs the provider vs the whole runtime."""
    from runtime.types import ChatRequest, Message

    calls = [0]
    transport = _mock_transport(calls)
    _stub_seam(transport)
    base = "http://127.0.0.1:9/v1"  # never connected to: the mock transport answers
    raw = RawHttpx2(base, transport=transport)
    rt = Runtime(base, None)
    provider: Any = rt._rt.provider_for("bench")
    request = ChatRequest(model=MODEL, messages=(Message("user", PROMPT),))

    async def provider_chat() -> object:
        return await provider.chat(request)

    cases: dict[str, Call] = {
        "raw httpx2": raw.call,
        "OpenAIProvider.chat": provider_chat,
        "LLMRuntime.generate": rt.call,
    }
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for call in cases.values():  # warm up
            for _ in range(min(200, args.calls)):
                await call()
        for _ in range(args.rounds):
            for name, call in cases.items():
                before = calls[0]
                start = time.process_time()
                for _ in range(args.calls):
                    await call()
                cpu[name].append((time.process_time() - start) / args.calls)
                if calls[0] - before != args.calls:
                    raise AssertionError(f"{name}: the mock transport did not answer every call")
    finally:
        await raw.aclose()
        await rt.aclose()
    return {"cpu_s_per_call": {name: statistics.median(v) for name, v in cpu.items()}}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=["throughput", "stream", "mock", "config"])
    parser.add_argument("--contender", default="")
    parser.add_argument("--base", default="")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--deltas", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    args = parser.parse_args()
    try:
        if args.job == "config":
            import config_load

            result: dict[str, Any] = config_load.measure(args.sizes, args.rounds)
        elif args.job == "mock":
            result = asyncio.run(mock_job(args))
        else:
            result = asyncio.run(loopback_job(args))
    except Unavailable as exc:
        result = {"unavailable": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    # This directory holds fake_openai and config_load; the project root holds runtime.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
