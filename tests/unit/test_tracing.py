"""OpenTelemetry tracing by the GenAI semantic conventions, checked with the SDK's in-memory
exporter and metric reader, on real calls to a loopback server speaking Chat Completions."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from runtime.errors import AuthenticationError, BadRequestError, MissingDependencyError
from runtime.service import LLMRuntime
from runtime.tracing import latest_conventions, provider_name
from runtime.types import Tool
from tests.loopback import LoopbackServer, Reply
from tests.unit.helpers import FakeClock, catalog, runtime_for
from tests.wire.openai_fakes import CANARY, completion, error_body, stream_reply, tool_call

OPENAI = "runtime.providers.openai_provider.OpenAIProvider"
PROMPT = "Say hello"
OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST = "gen_ai_latest_experimental"
MODES = [pytest.param(False, id="v1.36-default"), pytest.param(True, id="latest-opt-in")]


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def only(self) -> ReadableSpan:
        spans = self.finished()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def points(self) -> dict[str, list[tuple[dict[str, Any], int, float, str]]]:
        """Histogram points by metric name: (attributes, count, sum, unit)."""
        out: dict[str, list[tuple[dict[str, Any], int, float, str]]] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        assert isinstance(point, HistogramDataPoint), metric.name
                        attrs = dict(point.attributes or {})
                        row = (attrs, point.count, point.sum, metric.unit)
                        out.setdefault(metric.name, []).append(row)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LoopbackServer) -> Iterator[LoopbackServer]:
    shared_server.reset()
    yield shared_server
    assert not shared_server._queue, "a scripted reply was not used"


def make_runtime(
    server: LoopbackServer, clock: FakeClock | None = None, **model_fields: Any
) -> LLMRuntime:
    cat = catalog(
        {
            "gpt": {"provider": "openai", "provider_model": "gpt-4o-mini", **model_fields},
            "backup": {"provider": "openai", "provider_model": "gpt-4.1-nano"},
        },
        {
            "openai": {
                "cls": OPENAI,
                "api_key_env": "OPENAI_API_KEY",
                "base_url": server.url + "/v1",
            }
        },
        {"retry": {"max_attempts": 2, "initial_backoff": 1.0, "max_backoff": 1.0}},
    )
    return runtime_for(cat, clock, environ={"OPENAI_API_KEY": CANARY})


def traced(
    server: LoopbackServer, otel: Otel, *, capture_content: bool = False, **model_fields: Any
) -> LLMRuntime:
    rt = make_runtime(server, **model_fields)
    rt.enable_tracing(otel.tracer_provider, otel.meter_provider, capture_content=capture_content)
    return rt


def port_of(server: LoopbackServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def system_key(latest: bool) -> str:
    return "gen_ai.provider.name" if latest else "gen_ai.system"


def provider_attrs(latest: bool, name: str = "openai") -> dict[str, str]:
    """By default both names (v1.36.0's gen_ai.system and gen_ai.provider.name); opted in,
    only the latest."""
    return (
        {"gen_ai.provider.name": name}
        if latest
        else {"gen_ai.system": name, "gen_ai.provider.name": name}
    )


def every_text(otel: Otel) -> str:
    """All the telemetry as text: attributes, events, status, metric attributes."""
    parts: list[str] = []
    for span in otel.finished():
        parts += [span.name, repr(dict(span.attributes or {})), str(span.status.description)]
        parts += [f"{e.name} {dict(e.attributes or {})!r}" for e in span.events]
    parts.append(repr(otel.points()))
    return "\n".join(parts)


# --------------------------------------------------------------------------- spans


@pytest.mark.parametrize("latest", MODES)
async def test_a_generate_call_is_one_client_span_with_the_conventions_attributes(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch, latest: bool
) -> None:
    if latest:
        monkeypatch.setenv(OPT_IN, f"http,{LATEST}")
    else:
        monkeypatch.delenv(OPT_IN, raising=False)
    server.queue(Reply(body=completion("Hello there.")))
    async with traced(server, otel) as rt:
        result = await rt.generate(model="gpt", prompt=PROMPT, max_tokens=50, temperature=0.2,
                                   top_p=0.9)  # fmt: skip
    assert result.text == "Hello there."
    span = otel.only()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        **provider_attrs(latest),
        "gen_ai.request.model": "gpt-4o-mini",
        "server.address": "127.0.0.1",
        "server.port": port_of(server),
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stream": False,
        "gen_ai.response.id": "chatcmpl-123",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.usage.reasoning.output_tokens": 2,
    }
    assert span.events == ()
    assert span.parent is None


async def test_the_span_is_a_child_of_the_callers_span(server: LoopbackServer, otel: Otel) -> None:
    server.queue(Reply(body=completion()))
    outer = otel.tracer_provider.get_tracer("app")
    async with traced(server, otel) as rt:
        with outer.start_as_current_span("handle request") as parent:
            await rt.generate(model="gpt", prompt=PROMPT)
    spans = {s.name: s for s in otel.finished()}
    child = spans["chat gpt-4o-mini"]
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context is not None
    assert child.context.trace_id == parent.get_span_context().trace_id


def test_the_sync_face_keeps_the_callers_span_as_parent(otel: Otel) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    rt.enable_tracing(otel.tracer_provider, otel.meter_provider)
    face = rt.sync()
    try:
        with otel.tracer_provider.get_tracer("app").start_as_current_span("script") as parent:
            assert face.generate(model="m", prompt=PROMPT).text == PROMPT
    finally:
        face.close()
    spans = {s.name: s for s in otel.finished()}
    child = spans["chat m"]
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id


async def test_a_streamed_call_has_stream_usage_and_time_to_first_chunk(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(stream_reply(texts=("Hel", "lo", "!")))
    async with traced(server, otel) as rt:
        stream = rt.stream(model="gpt", prompt=PROMPT)
        assert "".join([piece async for piece in stream]) == "Hello!"
    span = otel.only()
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert isinstance(attrs["gen_ai.response.time_to_first_chunk"], float)
    points = otel.points()
    (ttfc,) = points["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc[1] == 1
    assert ttfc[3] == "s"
    assert ttfc[2] == attrs["gen_ai.response.time_to_first_chunk"]
    assert ttfc[0]["gen_ai.request.model"] == "gpt-4o-mini"


async def test_no_time_to_first_chunk_for_a_generate_call(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(Reply(body=completion()))
    async with traced(server, otel) as rt:
        await rt.generate(model="gpt", prompt=PROMPT)
    assert "gen_ai.response.time_to_first_chunk" not in (otel.only().attributes or {})
    assert "gen_ai.client.operation.time_to_first_chunk" not in otel.points()


async def test_a_failed_call_sets_error_type_and_status(server: LoopbackServer, otel: Otel) -> None:
    server.queue(Reply(400, error_body(f"Bad value, your key {CANARY} is fine")))
    async with traced(server, otel) as rt:
        with pytest.raises(BadRequestError):
            await rt.generate(model="gpt", prompt=PROMPT)
    span = otel.only()
    assert span.status.status_code is StatusCode.ERROR
    assert "Bad value" in str(span.status.description)
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "BadRequestError"
    assert "gen_ai.response.id" not in attrs
    points = otel.points()
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration[0]["error.type"] == "BadRequestError"
    assert duration[1] == 1
    assert "gen_ai.client.token.usage" not in points
    assert CANARY not in every_text(otel)


async def test_a_streamed_failure_ends_the_span_with_the_error(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(Reply(401, error_body("Incorrect API key provided", code="invalid_api_key")))
    async with traced(server, otel) as rt:
        with pytest.raises(AuthenticationError):
            async for _ in rt.stream(model="gpt", prompt=PROMPT):
                pass
    span = otel.only()
    assert dict(span.attributes or {})["error.type"] == "AuthenticationError"
    assert span.status.status_code is StatusCode.ERROR


async def test_a_stream_closed_early_still_ends_its_span(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(stream_reply(texts=("one", "two", "three")))
    async with traced(server, otel) as rt, rt.stream(model="gpt", prompt=PROMPT) as stream:
        async for _ in stream:
            break
    span = otel.only()
    attrs = dict(span.attributes or {})
    assert attrs["llm_runtime.stream.closed_early"] is True
    assert "error.type" not in attrs
    assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.client.operation.duration" not in otel.points()  # it did not complete


async def test_a_cancelled_call_ends_its_span_with_the_error(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(Reply(body=completion(), stall=2.0))
    async with traced(server, otel) as rt:
        task = asyncio.create_task(rt.generate(model="gpt", prompt=PROMPT))
        for _ in range(2000):  # until the request reached the server (bounded)
            if server.requests:
                break
            await asyncio.sleep(0.005)
        assert server.requests
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    span = otel.only()
    assert dict(span.attributes or {})["error.type"] == "CancelledError"
    assert span.status.status_code is StatusCode.ERROR


async def test_a_retry_is_an_event_with_attempt_error_and_wait(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(
        Reply(500, error_body("overloaded", type="server_error")), Reply(body=completion())
    )
    clock = FakeClock()
    rt = make_runtime(server, clock)
    rt.enable_tracing(otel.tracer_provider, otel.meter_provider)
    async with rt:
        result = await rt.generate(model="gpt", prompt=PROMPT)
    assert result.attempts == 2
    span = otel.only()
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "retry",
            {
                "llm_runtime.model": "gpt",
                "error.type": "ServerError",
                "llm_runtime.attempt": 1,
                "llm_runtime.retry.delay_s": clock.sleeps[0],
            },
        )
    ]
    assert span.status.status_code is StatusCode.UNSET
    (duration,) = otel.points()["gen_ai.client.operation.duration"]
    assert duration[2] == result.latency  # the runtime's own clock, as Completion.latency


async def test_a_fallback_is_an_event_and_the_response_names_the_model_that_answered(
    server: LoopbackServer, otel: Otel
) -> None:
    server.queue(
        Reply(500, error_body("overloaded", type="server_error")),
        Reply(body=completion("From the backup.", model="gpt-4.1-nano")),
    )
    rt = traced(server, otel, fallbacks=["backup"], retry={"max_attempts": 1})
    async with rt:
        result = await rt.generate(model="gpt", prompt=PROMPT)
    assert result.model == "backup"
    span = otel.only()
    assert span.name == "chat gpt-4o-mini"
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "fallback",
            {
                "llm_runtime.model": "gpt",
                "error.type": "ServerError",
                "llm_runtime.fallback.model": "backup",
            },
        )
    ]
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4.1-nano"


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("latest", MODES)
async def test_usage_and_duration_metrics(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch, latest: bool
) -> None:
    monkeypatch.setenv(OPT_IN, LATEST if latest else "")
    server.queue(Reply(body=completion()), Reply(body=completion()))
    async with traced(server, otel) as rt:
        await rt.generate(model="gpt", prompt=PROMPT)
        await rt.generate(model="gpt", prompt=PROMPT)
    points = otel.points()
    common = {
        "gen_ai.operation.name": "chat",
        **provider_attrs(latest),
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "server.address": "127.0.0.1",
        "server.port": port_of(server),
    }
    tokens = sorted(points["gen_ai.client.token.usage"], key=lambda p: p[0]["gen_ai.token.type"])
    assert [(p[0], p[1], p[2], p[3]) for p in tokens] == [
        ({**common, "gen_ai.token.type": "input"}, 2, 24, "{token}"),
        ({**common, "gen_ai.token.type": "output"}, 2, 10, "{token}"),
    ]
    (duration,) = points["gen_ai.client.operation.duration"]
    assert (duration[0], duration[1], duration[3]) == (common, 2, "s")


# --------------------------------------------------------------------------- content


async def test_message_content_is_not_recorded_by_default(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("", LATEST):
        monkeypatch.setenv(OPT_IN, value)
        server.queue(Reply(body=completion("A secret answer")))
        async with traced(server, otel) as rt:
            await rt.generate(model="gpt", prompt="A private question")
    text = every_text(otel)
    assert len(otel.finished()) == 2
    assert "private question" not in text
    assert "secret answer" not in text
    assert all(not span.events for span in otel.finished())


async def test_content_on_opt_in_latest_conventions(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OPT_IN, LATEST)
    server.queue(Reply(body=completion("Hi!")))
    async with traced(server, otel, capture_content=True) as rt:
        await rt.generate(
            model="gpt", messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": PROMPT}]
        )  # fmt: skip
    attrs = dict(otel.only().attributes or {})
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hi!"}],
            "finish_reason": "stop",
        }
    ]
    assert otel.only().events == ()


async def test_tool_calls_are_recorded_as_tool_call_parts(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OPT_IN, LATEST)
    call = tool_call("call_1", "get_weather", '{"city": "Paris"}')
    server.queue(Reply(body=completion(None, finish_reason="tool_calls", tool_calls=[call])))
    weather = Tool("get_weather", "Current weather", {"type": "object", "properties": {}})
    async with traced(server, otel, capture_content=True) as rt:
        result = await rt.generate(model="gpt", prompt="Weather in Paris?", tools=[weather])
    assert result.finish_reason == "tool_calls"
    attrs = dict(otel.only().attributes or {})
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]


async def test_content_on_opt_in_v136_events(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OPT_IN, raising=False)
    server.queue(Reply(body=completion("Hi!")))
    async with traced(server, otel, capture_content=True) as rt:
        await rt.generate(model="gpt", prompt=PROMPT)
    span = otel.only()
    assert "gen_ai.input.messages" not in (span.attributes or {})
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert [(name, a["gen_ai.system"], json.loads(str(a["gen_ai.event.content"])))
            for name, a in events] == [
        ("gen_ai.user.message", "openai", {"content": PROMPT}),
        ("gen_ai.choice", "openai",
         {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi!"}}),
    ]  # fmt: skip


@pytest.mark.parametrize("latest", MODES)
async def test_the_api_key_is_in_no_span_event_or_metric(
    server: LoopbackServer, otel: Otel, monkeypatch: pytest.MonkeyPatch, latest: bool
) -> None:
    monkeypatch.setenv(OPT_IN, LATEST if latest else "")
    server.queue(
        Reply(500, error_body(f"upstream said {CANARY}", type="server_error")),
        Reply(body=completion(f"You pasted {CANARY}")),
        Reply(401, error_body(f"Incorrect API key provided: {CANARY}")),
    )
    async with traced(server, otel, capture_content=True) as rt:
        await rt.generate(model="gpt", prompt=f"my key is {CANARY}", stop=[CANARY])
        with pytest.raises(AuthenticationError):
            await rt.generate(model="gpt", prompt="again")
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {CANARY}"] * 3
    text = every_text(otel)
    assert "my key is ***" in text  # content was recorded, with the key scrubbed
    assert CANARY not in text


# --------------------------------------------------------------------------- robustness


class _BrokenTracer(trace.Tracer):
    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        raise RuntimeError("exporter on fire")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter on fire")


class _BrokenProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _BrokenTracer()


class _SpanThatFails(trace.NonRecordingSpan):
    def set_attributes(self, attributes: Any) -> None:
        raise RuntimeError("attributes refused")

    def end(self, end_time: int | None = None) -> None:
        raise RuntimeError("end refused")


class _FailingSpans(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        class Failing(_BrokenTracer):
            def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
                return _SpanThatFails(trace.INVALID_SPAN_CONTEXT)

        return Failing()


@pytest.mark.parametrize("provider", [_BrokenProvider, _FailingSpans], ids=["start", "end"])
async def test_a_failing_tracer_never_breaks_a_call(
    server: LoopbackServer,
    otel: Otel,
    caplog: pytest.LogCaptureFixture,
    provider: type[trace.TracerProvider],
) -> None:
    caplog.set_level(logging.WARNING, logger="runtime")
    server.queue(Reply(body=completion("Still fine.")), stream_reply(texts=("ok",)))
    rt = make_runtime(server)
    rt.enable_tracing(provider(), otel.meter_provider, capture_content=True)
    async with rt:
        assert (await rt.generate(model="gpt", prompt=PROMPT)).text == "Still fine."
        assert [p async for p in rt.stream(model="gpt", prompt=PROMPT)] == ["ok"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tracing failed" in w for w in warnings), warnings


async def test_disable_tracing_stops_new_spans(server: LoopbackServer, otel: Otel) -> None:
    server.queue(Reply(body=completion()), Reply(body=completion()))
    async with traced(server, otel) as rt:
        await rt.generate(model="gpt", prompt=PROMPT)
        rt.disable_tracing()
        await rt.generate(model="gpt", prompt=PROMPT)
    assert len(otel.finished()) == 1
    assert len(server.requests) == 2


def test_enable_tracing_without_the_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry fails
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    with pytest.raises(MissingDependencyError, match=r"llm-runtime\[otel\]"):
        rt.enable_tracing()


def test_nothing_is_imported_until_tracing_is_enabled() -> None:
    code = (
        "import asyncio, json, sys, runtime\n"
        "from runtime.config import Catalog, ModelConfig, ProviderConfig\n"
        "cat = Catalog(providers={'s': ProviderConfig.model_validate(\n"
        "    {'name': 's', 'class': 'runtime.testing.ScriptedProvider'})},\n"
        "    models={'m': ModelConfig(id='m', provider='s')})\n"
        "rt = runtime.LLMRuntime(cat)\n"
        "async def main():\n"
        "    await rt.generate(model='m', prompt='hi')\n"
        "    async for _ in rt.stream(model='m', prompt='hi'): pass\n"
        "asyncio.run(main())\n"
        "seen = [m for m in ('opentelemetry', 'runtime.tracing') if m in sys.modules]\n"
        "rt.enable_tracing()\n"
        "print(json.dumps([seen, 'opentelemetry' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
    )
    assert json.loads(out.stdout) == [[], True]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("env", "latest"),
    [
        pytest.param({}, False, id="unset"),
        pytest.param({OPT_IN: "http"}, False, id="other-category"),
        pytest.param({OPT_IN: LATEST}, True, id="alone"),
        pytest.param({OPT_IN: f"http/dup, {LATEST} ,database"}, True, id="in-a-list"),
        pytest.param({OPT_IN: "gen_ai_latest"}, False, id="a-prefix-is-not-it"),
    ],
)
def test_the_stability_opt_in_is_read_as_a_comma_separated_list(
    env: dict[str, str], latest: bool
) -> None:
    assert latest_conventions(env) is latest


@pytest.mark.parametrize(
    ("model", "env", "latest", "old"),
    [
        pytest.param("gpt-4o-mini", {}, "openai", "openai", id="openai"),
        pytest.param("claude-sonnet", {}, "anthropic", "anthropic", id="anthropic"),
        pytest.param("gemini-2.5-flash", {}, "gcp.gemini", "gcp.gemini", id="gemini"),
        pytest.param(
            "azure-gpt-4o-mini",
            {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"},
            "azure.ai.openai",
            "az.ai.openai",
            id="azure",
        ),
        pytest.param("grok-3", {}, "x_ai", "xai", id="xai"),
        pytest.param("groq/llama-3.1-8b", {}, "groq", "groq", id="groq"),
        pytest.param("ollama/llama3.2", {}, "ollama", "ollama", id="custom-by-yaml-name"),
    ],
)
def test_bundled_providers_map_to_the_conventions_names(
    model: str, env: dict[str, str], latest: str, old: str
) -> None:
    from runtime import load_runtime

    rt = load_runtime(environ=env)
    if model not in rt.models:
        pytest.fail(f"bundled model {model!r} is gone: pick another for this case")
    instance = rt.provider_for(model, api_key="test-key-not-real")
    name = rt.model(model).provider
    assert provider_name(name, instance, latest=True) == latest
    assert provider_name(name, instance, latest=False) == old
