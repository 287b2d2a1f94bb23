"""Where the bundled files (providers.yaml, models.yaml, schemas/) are, installed or not."""

from __future__ import annotations

import pathlib

__all__ = ["bundled_path"]

_PACKAGE = pathlib.Path(__file__).resolve().parent


def bundled_path(name: str) -> pathlib.Path:
    """Path of a bundled file, e.g. ``providers.yaml`` or ``schemas/models.schema.json``.

    An installed wheel carries it in ``runtime/_data/`` (pyproject force-includes it there);
    a source checkout has it at the repository root. The path may not exist: whoever reads
    it reports that.
    """
    packaged = _PACKAGE / "_data" / name
    if packaged.exists():
        return packaged
    return _PACKAGE.parent / name
