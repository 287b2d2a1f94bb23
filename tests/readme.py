"""The README's code examples, by the heading they stand under, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(section: str, subsection: str) -> list[str]:
    """The python blocks under ``## section`` / ``### subsection``, in order."""
    text = README.read_text("utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    part = text[start : end if end != -1 else len(text)]
    head = part.index(f"\n### {subsection}\n")
    tail = part.find("\n### ", head + 1)
    blocks = _FENCE.findall(part[head : tail if tail != -1 else len(part)])
    assert blocks, f"README: no python example under {section} / {subsection}"
    return blocks


def run_example(code: str) -> None:
    """Run an example as a script would (its ``asyncio.run(main())`` included)."""
    exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
