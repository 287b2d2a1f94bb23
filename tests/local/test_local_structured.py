"""Structured output and capabilities of the in-process local model (issue 10).

The bundled ``local-gemma`` (Gemma 3 270M, a base model that does not follow instructions)
runs as a user would run it, from the bundled catalog; only its cache directory points at the
session's assembled file and it gets one thread. llama.cpp's JSON-schema-constrained decoding
must make its reply JSON valid for the schema; without the constraint it writes prose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from runtime.errors import CapabilityError, InvalidRequestError, StructuredOutputError
from runtime.loader import load_catalog
from runtime.providers.local_provider import LocalProvider
from runtime.resources import bundled_path
from runtime.service import LLMRuntime
from runtime.types import ChatRequest, Message, OutputSchema
from tests.local.conftest import PACKAGE
from tests.unit.helpers import catalog

MODEL = "local-gemma"
PROMPT = "Paris, as JSON."


class City(BaseModel):
    name: str = Field(max_length=24)
    country: str = Field(max_length=24)
    is_capital: bool


class Landmark(BaseModel):
    name: str = Field(max_length=24)


class CityWithLandmarks(BaseModel):
    name: str = Field(max_length=24)
    landmarks: list[Landmark] = Field(max_length=2)


#: A plain JSON Schema (no pydantic class): an enum and a bounded integer.
WEATHER = {
    "type": "object",
    "properties": {
        "sky": {"enum": ["sunny", "cloudy", "rainy"]},
        "celsius": {"type": "integer", "minimum": -40, "maximum": 50},
    },
    "required": ["sky", "celsius"],
}


#: llguidance's option for compact JSON (no free whitespace between tokens).
COMPACT = {"whitespace_flexible": False}


def bundled_runtime(cache_dir: Path | None = None) -> LLMRuntime:
    """The bundled catalog as shipped; optionally with the local cache moved, one thread."""
    cat = load_catalog(bundled_path("providers.yaml"), bundled_path("models.yaml"), environ={})
    if cache_dir is not None:
        local = cat.providers["local"]
        options = {**local.options, "cache_dir": str(cache_dir), "n_threads": 1}
        providers = {**cat.providers, "local": local.model_copy(update={"options": options})}
        cat = cat.model_copy(update={"providers": providers})
    return LLMRuntime(cat)


@pytest.fixture(scope="module")
def rt(gguf_path: Path) -> Iterator[LLMRuntime]:
    """``local-gemma`` from the bundled catalog, its file taken from the session cache."""
    runtime = bundled_runtime(gguf_path.parent.parent)
    local = runtime.provider_for(MODEL)
    assert isinstance(local, LocalProvider)
    local.progress = None
    yield runtime
    asyncio.run(runtime.aclose())


# --------------------------------------------------------------------- constrained replies


async def test_local_gemma_returns_a_parsed_pydantic_model(rt: LLMRuntime) -> None:
    result = await rt.generate(model=MODEL, prompt=PROMPT, response_format=City, temperature=0)
    assert isinstance(result.parsed, City)
    assert result.parsed == City.model_validate_json(result.text)
    assert result.finish_reason == "stop"


async def test_a_streamed_reply_is_parsed_too(rt: LLMRuntime) -> None:
    messages = [{"role": "user", "content": "Tell me about Paris and two of its landmarks."}]
    stream = rt.stream(
        model=MODEL, messages=messages, response_format=CityWithLandmarks, temperature=0
    )
    deltas = [delta async for delta in stream]
    assert len(deltas) > 1  # token by token, not one burst
    done = stream.completion
    assert done is not None
    assert done.text == "".join(deltas)
    assert isinstance(done.parsed, CityWithLandmarks)
    assert len(done.parsed.landmarks) <= 2
    # Closed objects: only the declared keys, at every level ($defs included).
    raw = json.loads(done.text)
    assert set(raw) <= {"name", "landmarks"}
    assert all(set(item) <= {"name"} for item in raw.get("landmarks", []))


async def test_a_json_schema_dict_gives_the_validated_dict(rt: LLMRuntime) -> None:
    result = await rt.generate(
        model=MODEL, prompt="The weather in Paris today:", response_format=WEATHER, temperature=0
    )
    assert isinstance(result.parsed, dict)
    assert set(result.parsed) == {"sky", "celsius"}
    assert result.parsed["sky"] in ("sunny", "cloudy", "rainy")
    assert -40 <= result.parsed["celsius"] <= 50
    assert result.parsed == json.loads(result.text)


async def test_a_reply_cut_by_max_tokens_is_a_structured_output_error(rt: LLMRuntime) -> None:
    with pytest.raises(StructuredOutputError) as caught:
        await rt.generate(
            model=MODEL, prompt=PROMPT, response_format=City, temperature=0, max_tokens=3
        )
    assert caught.value.raw_text
    assert caught.value.raw_text.lstrip().startswith("{")  # constrained, only cut short
    assert "not JSON" in str(caught.value)


# --------------------------------------------------------------------- what is sent


def local_provider(tmp_path: Path) -> LocalProvider:
    instance = LocalProvider(n_threads=1, n_ctx=512, cache_dir=str(tmp_path))
    instance.provider_name = "local"
    return instance


def schema_request(schema: OutputSchema, **params: Any) -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=(Message("user", "x"),),
        prompt="x",
        max_tokens=8,
        options={"gguf": "/m.gguf"},
        response_format=schema,
        params=params,
    )


def test_a_strict_schema_is_sent_as_json_schema_with_every_object_closed(
    tmp_path: Path,
) -> None:
    schema = CityWithLandmarks.model_json_schema()
    body = local_provider(tmp_path).describe_request(
        schema_request(OutputSchema("CityWithLandmarks", schema, True, CityWithLandmarks))
    )["json"]
    assert body == {
        "prompt": "x",
        "stream": True,
        "max_tokens": 8,
        "json_schema": {
            "$defs": {
                "Landmark": {
                    "properties": {
                        "name": {"maxLength": 24, "title": "Name", "type": "string"},
                    },
                    "required": ["name"],
                    "title": "Landmark",
                    "type": "object",
                    "additionalProperties": False,
                }
            },
            "properties": {
                "name": {"maxLength": 24, "title": "Name", "type": "string"},
                "landmarks": {
                    "items": {"$ref": "#/$defs/Landmark"},
                    "maxItems": 2,
                    "title": "Landmarks",
                    "type": "array",
                },
            },
            "required": ["name", "landmarks"],
            "title": "CityWithLandmarks",
            "type": "object",
            "additionalProperties": False,
            "x-guidance": COMPACT,
        },
    }
    assert "additionalProperties" not in schema  # the caller's schema is not modified
    assert "x-guidance" not in schema


def test_what_a_schema_says_itself_is_kept_and_a_non_strict_one_stays_open(
    tmp_path: Path,
) -> None:
    local = local_provider(tmp_path)
    open_map = {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "x-guidance": {"whitespace_flexible": True},
    }
    sent = local.describe_request(schema_request(OutputSchema("m", open_map)))["json"]
    assert sent["json_schema"] == open_map
    loose = local.describe_request(schema_request(OutputSchema("w", WEATHER, strict=False)))
    assert loose["json"]["json_schema"] == {**WEATHER, "x-guidance": COMPACT}


@pytest.mark.parametrize("key", ["grammar", "json_schema"])
def test_a_second_constraint_beside_response_format_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        local_provider(tmp_path).describe_request(
            schema_request(OutputSchema("w", WEATHER), **{key: "root ::= x"})
        )
    assert str(caught.value) == (
        f"parameter {key!r} and response_format both constrain the output; pass only one of them"
    )


async def test_explain_shows_the_schema_local_gemma_is_constrained_by() -> None:
    pytest.importorskip(PACKAGE, reason="the 'local' extra is not installed")
    rt = bundled_runtime()
    explained = await rt.explain(model=MODEL, prompt=PROMPT, response_format=City)
    assert explained["request"]["json"]["json_schema"] == {
        **City.model_json_schema(),
        "additionalProperties": False,
        "x-guidance": COMPACT,
    }
    await rt.aclose()


# --------------------------------------------------------------------- what it cannot do

TOOL = {"name": "get_weather", "description": "Current weather", "parameters": WEATHER}


IMAGE_TURN = [{"role": "user", "content": [{"type": "image", "url": "https://example.com/a.png"}]}]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            {"prompt": PROMPT, "tools": [TOOL]},
            "model 'local-gemma' does not support tools (capabilities in models.yaml)",
            id="tools",
        ),
        pytest.param(
            {"prompt": PROMPT, "reasoning": {"effort": "high"}},
            "model 'local-gemma' does not support reasoning (capabilities in models.yaml)",
            id="reasoning",
        ),
        pytest.param(
            {"messages": IMAGE_TURN},
            "model 'local-gemma' does not take images (capabilities.images: false in models.yaml)",
            id="images",
        ),
    ],
)
async def test_local_gemma_declares_what_it_cannot_do(call: dict[str, Any], message: str) -> None:
    rt = bundled_runtime()
    with pytest.raises(CapabilityError) as caught:
        await rt.generate(model=MODEL, **call)
    assert str(caught.value) == message  # the catalog's declaration, not the class's refusal
    await rt.aclose()


def test_local_gemma_capabilities_in_the_bundled_catalog() -> None:
    cat = load_catalog(bundled_path("providers.yaml"), bundled_path("models.yaml"), environ={})
    assert cat.models[MODEL].capabilities.model_dump() == {
        "tools": False,
        "parallel_tool_calls": False,
        "images": False,
        "structured_output": "native",
        "reasoning": "none",
    }


async def drain(rt: LLMRuntime, kind: str, **call: Any) -> None:
    """Run one call to its end: ``generate``, or ``stream`` read to its last delta."""
    if kind == "generate":
        await rt.generate(**call)
    else:
        async for _ in rt.stream(**call):
            pass


@pytest.mark.parametrize("kind", ["generate", "stream"])
async def test_tools_on_a_local_model_without_declared_capabilities_are_refused(
    tmp_path: Path, kind: str
) -> None:
    # No capabilities in the YAML: the provider class's features decide, before any load.
    cat = catalog(
        {"mine": {"provider": "local", "options": {"gguf": str(tmp_path / "absent.gguf")}}},
        providers={"local": {"class": "runtime.providers.local_provider.LocalProvider"}},
    )
    rt = LLMRuntime(cat)
    with pytest.raises(CapabilityError) as caught:
        await drain(rt, kind, model="mine", prompt="x", tools=[TOOL])
    assert str(caught.value) == "model 'mine': its provider class LocalProvider cannot send tools"
    assert caught.value.capability == "tools"
    await rt.aclose()
