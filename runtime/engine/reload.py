"""Hot reload: the snapshot that follows a new catalog, and the file watcher.

``successor`` builds the new ``Snapshot`` and says which provider instances it can keep
(same provider name and instance key); the runtime swaps its one snapshot reference and
retires the rest (``Instances.retire_unless``). ``watch_files`` polls the catalog's files
and calls ``reload`` once a change has been still for ``debounce`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping

from ..config import Catalog
from ..errors import LLMRuntimeError
from .resolve import Snapshot

__all__ = ["successor", "watch_files"]

log = logging.getLogger("runtime")


def successor(
    old: Snapshot, catalog: Catalog, environ: Mapping[str, str] | None
) -> tuple[Snapshot, set[tuple[str, str]]]:
    """The snapshot of ``catalog`` after ``old``, and the (provider, instance key) it keeps."""
    new = Snapshot(catalog, environ=environ, timing=old.timing, previous=old)
    keep = set()
    for model in catalog.models.values():
        try:
            config = new.provider_config(model)
        except LLMRuntimeError:
            continue  # the call will say so; nothing of it to keep
        keep.add((config.name, new.instance_key(config)))
    return new, keep


def _stamps(sources: Iterable[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for source in sources:
        try:
            out[source] = os.stat(source).st_mtime_ns
        except OSError:
            out[source] = None
    return out


async def watch_files(
    sources: Callable[[], Iterable[str]],
    reload: Callable[[], Awaitable[object]],
    interval: float,
    debounce: float,
) -> None:
    """Poll ``sources()`` every ``interval`` s; reload once a change is ``debounce`` s still.

    A reload that fails is logged and the running configuration stays; runs until cancelled.
    """
    seen = _stamps(sources())
    while True:
        await asyncio.sleep(interval)
        now = _stamps(sources())
        if now == seen:
            continue
        await asyncio.sleep(debounce)
        if _stamps(sources()) != now:
            continue  # still being written: look again next round
        seen = now
        try:
            await reload()
        except LLMRuntimeError as exc:
            log.warning("reload after a file change failed; keeping the running config: %s", exc)
            seen = _stamps(sources())
