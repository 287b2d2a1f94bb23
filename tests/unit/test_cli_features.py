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
