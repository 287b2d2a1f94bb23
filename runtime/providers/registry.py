"""Provider name -> provider class; ``register_provider`` and lazy dotted-path import."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterable

from ..errors import UnknownProviderError
from .base import LLMProvider

__all__ = [
    "ProviderImportError",
    "get_provider_class",
    "import_provider_class",
    "register_provider",
    "registered_provider",
    "registered_providers",
    "unregister_provider",
]

_lock = threading.Lock()
_path_lock = threading.RLock()  # not _lock: an imported module may call register_provider
_registry: dict[str, type[LLMProvider]] = {}


class ProviderImportError(Exception):
    """A ``class:`` path that does not import or is not an LLMProvider subclass.

    Internal: the loader turns it into a ConfigError with the file position, the runtime into
    a ConfigError naming the provider.
    """


def register_provider(name: str, cls: type[LLMProvider]) -> None:
    """Register ``cls`` under ``name``; it wins over a ``class:`` of the same name in YAML."""
    if not isinstance(name, str) or not name:
        raise ValueError("register_provider: name must be a non-empty string")
    if not (isinstance(cls, type) and issubclass(cls, LLMProvider)):
        raise TypeError(
            f"register_provider({name!r}, ...): expected an LLMProvider subclass, got {cls!r}"
        )
    with _lock:
        _registry[name] = cls


def unregister_provider(name: str) -> None:
    """Forget a provider registered in code (no error if it was not registered)."""
    with _lock:
        _registry.pop(name, None)


def registered_provider(name: str) -> type[LLMProvider] | None:
    """The class registered in code under ``name``, or None (no copy, no lock: per call)."""
    return _registry.get(name)  # one dict read is atomic; writers hold _lock


def registered_providers() -> dict[str, type[LLMProvider]]:
    """A copy of the providers registered in code."""
    with _lock:
        return dict(_registry)


def get_provider_class(name: str) -> type[LLMProvider]:
    """The class registered in code under ``name``; raises UnknownProviderError."""
    with _lock:
        cls = _registry.get(name)
    if cls is None:
        from ..suggest import did_you_mean

        raise UnknownProviderError(name, did_you_mean(name, list(_registry)))
    return cls


def _search_dirs(near: Iterable[str]) -> list[str]:
    """The folders of the YAML files, then the current directory, not already on sys.path."""
    dirs: list[str] = []
    for source in near:
        folder = os.path.dirname(os.path.abspath(source))
        if folder not in dirs:
            dirs.append(folder)
    cwd = os.getcwd()
    if cwd not in dirs:
        dirs.append(cwd)
    on_path = {os.path.abspath(p or os.curdir) for p in sys.path}
    return [d for d in dirs if d not in on_path]


def _import(module_name: str, near: Iterable[str]) -> object:
    """Import from sys.path; else from the folders of the YAML files and the current one.

    Why: ``python -m runtime`` has the current directory on sys.path, the console script does
    not; a provider module written beside providers.yaml must import in both.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        extra = _search_dirs(near)
        if exc.name != top or not extra:
            raise
        with _path_lock:
            sys.path[:0] = extra
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError as retry:
                if retry.name != top:
                    raise
                raise ModuleNotFoundError(
                    f"{exc}; looked on sys.path and in {', '.join(extra)}: put {top}.py beside "
                    "providers.yaml, install its package, or add its folder to PYTHONPATH",
                    name=top,
                ) from None
            finally:
                for folder in extra:
                    sys.path.remove(folder)


def import_provider_class(path: str, *, near: Iterable[str] = ()) -> type[LLMProvider]:
    """Import ``package.module.Class`` and check that it is an LLMProvider subclass.

    Only ``class:`` fields reach this function; nothing else is imported by name. ``near``
    are the config files: their folders are searched after sys.path (see ``_import``).
    """
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ProviderImportError(f"{path!r} is not a dotted path of the form package.module.Class")
    try:
        module = _import(module_name, near)
    except ImportError as exc:
        raise ProviderImportError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:  # a module that fails while importing is still a config problem
        raise ProviderImportError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError as exc:
        raise ProviderImportError(f"module {module_name!r} has no attribute {attr!r}") from exc
    if not (isinstance(obj, type) and issubclass(obj, LLMProvider)):
        raise ProviderImportError(
            f"{path!r} is not a subclass of runtime.providers.base.LLMProvider"
        )
    return obj
