"""The CLI's portable features: --schema, -a/--attach, --reasoning (scripted provider)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runtime.cli import main

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def config(tmp_path: Path, reply: str | None = None) -> list[str]:
    replies = f"\n    options: {{replies: [{json.dumps(reply)}]}}" if reply is not None else ""
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        f"providers:\n  s:\n    class: runtime.testing.ScriptedProvider{replies}\n", "utf-8"
    )
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  m: {provider: s}\n", "utf-8")
    return ["--providers", str(providers), "--models", str(models), "-m", "m"]


def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "answer.schema.json"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path.write_text(json.dumps(schema), "utf-8")
    return str(path)


def test_schema_prints_the_validated_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    argv = ["complete", *config(tmp_path, '{"city": "Paris"}'), "--schema", schema_file(tmp_path)]
    assert main([*argv, "capital of France?"], out=out) == 0
    assert json.loads(out.getvalue()) == {"city": "Paris"}


def test_a_reply_that_breaks_the_schema_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["complete", *config(tmp_path, '{"town": 1}'), "--schema", schema_file(tmp_path), "x"]
    assert main(argv, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "llm-runtime complete: model 'm': the reply does not follow the response_format schema: "
        "the value: 'city' is a required property"
    )
    assert "Traceback" not in err


def test_attach_and_reasoning_reach_the_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    argv = [
        "explain",
        *config(tmp_path),
        "-a",
        str(image),
        "-a",
        "https://example.com/d.jpg",
        "--reasoning",
        "high",
        "what is this?",
    ]
    out = io.StringIO()
    assert main(argv, out=out) == 0
    [message] = json.loads(out.getvalue())["messages"]
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image", "image"]
    assert message["content"][1]["media_type"] == "image/png"
    assert message["content"][2] == {"type": "image", "url": "https://example.com/d.jpg"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(["-a", "notes.txt"], "give a .png, .jpg, .gif or .webp file", id="not-image"),
        pytest.param(["-a", "missing.png"], "cannot read 'missing.png'", id="missing"),
        pytest.param(["--schema", "nope.json"], "--schema: cannot read 'nope.json'", id="schema"),
    ],
)
def test_bad_attachments_and_schemas_are_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["complete", *config(tmp_path), *extra, "x"], out=io.StringIO()) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- models: capabilities

CAPABLE_PROVIDERS = """\
providers:
  s: {class: runtime.testing.ScriptedProvider}
  local: {class: runtime.providers.local_provider.LocalProvider}
  openai:
    class: runtime.providers.openai_provider.OpenAIProvider
    base_url: https://api.openai.com/v1
  mine: {class: mycompany.llm.NotImported}
"""
CAPABLE_MODELS = """\
models:
  declared:
    provider: s
    capabilities: {tools: true, parallel_tool_calls: false, images: true,
                   structured_output: tool, reasoning: budget}
    pricing: {input: 0.5, output: 1.5, as_of: "2026-11-30"}
  no-tools: {provider: s, capabilities: {tools: false}}
  local-tools:
    provider: local
    options: {gguf: /models/m.gguf}
    capabilities: {tools: true}
  gpt-4o-mini: {provider: openai}
  unknown-model: {provider: openai, provider_model: not-a-model-anyone-prices}
  user-class: {provider: mine}
"""


def capable_files(tmp_path: Path) -> list[str]:
    providers, models = tmp_path / "providers.yaml", tmp_path / "models.yaml"
    providers.write_text(CAPABLE_PROVIDERS, "utf-8")
    models.write_text(CAPABLE_MODELS, "utf-8")
    return ["--providers", str(providers), "--models", str(models)]


def models_table(argv: list[str]) -> dict[str, dict[str, str]]:
    out = io.StringIO()
    assert main(["models", *argv], out=out) == 0
    head, *rows = [line.split() for line in out.getvalue().splitlines()]
    assert head == ["MODEL", "PROVIDER", "PROVIDER", "MODEL", "STREAM", "TOOLS", "PARALLEL",
                    "IMAGES", "SCHEMA", "REASONING", "PRICE", "LABEL"]  # fmt: skip
    names = ("tools", "parallel", "images", "schema", "reasoning", "price")
    return {row[0]: dict(zip(names, row[4:10], strict=True)) for row in rows}


def test_models_shows_capabilities_declared_or_implied_by_the_provider_class(
    tmp_path: Path,
) -> None:
    table = models_table(capable_files(tmp_path))
    assert table["declared"] == {
        "tools": "yes",
        "parallel": "no",
        "images": "yes",
        "schema": "tool",
        "reasoning": "budget",
        "price": "yaml",
    }
    # tools: false makes parallel calls impossible too; the rest is left undeclared (?).
    assert table["no-tools"] == {
        "tools": "no",
        "parallel": "no",
        "images": "?",
        "schema": "?",
        "reasoning": "?",
        "price": "none",
    }
    # The in-process provider sends no tools, no images and no reasoning, whatever the YAML
    # says; it does structured output (llama.cpp's constrained decoding).
    assert table["local-tools"] == {
        "tools": "no",
        "parallel": "no",
        "images": "no",
        "schema": "?",
        "reasoning": "none",
        "price": "none",
    }
    # A user's class is not imported to list it: nothing is implied.
    assert table["user-class"] == {
        "tools": "?",
        "parallel": "?",
        "images": "?",
        "schema": "?",
        "reasoning": "?",
        "price": "none",
    }


def test_models_names_the_price_source(tmp_path: Path) -> None:
    table = models_table(capable_files(tmp_path))
    assert table["declared"]["price"] == "yaml"  # models.yaml pricing: wins
    assert table["gpt-4o-mini"]["price"] == "genai-prices"  # in the table of the prices extra
    assert table["unknown-model"]["price"] == "none"  # the table does not know it


def test_without_the_prices_extra_only_yaml_prices_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime import listing

    monkeypatch.setattr(listing, "genai_prices_installed", lambda: False)
    table = models_table(capable_files(tmp_path))
    assert {model: row["price"] for model, row in table.items()} == {
        "declared": "yaml",
        "no-tools": "none",
        "local-tools": "none",
        "gpt-4o-mini": "none",
        "unknown-model": "none",
        "user-class": "none",
    }


def test_models_json_carries_supports_and_the_price(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["models", "--json", *capable_files(tmp_path)], out=out) == 0
    data = {entry["id"]: entry for entry in json.loads(out.getvalue())}
    declared = data["declared"]
    assert declared["supports"] == {
        "tools": True,
        "parallel_tool_calls": False,
        "images": True,
        "structured_output": "tool",
        "reasoning": "budget",
    }
    assert declared["price_source"] == "yaml"
    assert declared["price"] == {
        "source": "yaml",
        "as_of": "2026-11-30",
        "input": 0.5,
        "output": 1.5,
        "cached_input": None,
        "cache_write": None,
    }
    priced = data["gpt-4o-mini"]
    assert priced["price_source"] == "genai-prices"
    assert priced["price"]["source"] == "genai-prices"
    assert priced["price"]["input"] > 0
    assert priced["price"]["output"] > priced["price"]["input"]
    assert data["local-tools"]["supports"]["tools"] is False
    assert data["user-class"]["supports"] == dict.fromkeys(declared["supports"])
    assert (data["unknown-model"]["price_source"], data["unknown-model"]["price"]) == ("none", None)
