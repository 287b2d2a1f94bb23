"""Config load time at scale: ``load_catalog`` vs a bare libyaml parse of the same file.

Generates model catalogs (1,000 and 10,000 models by default, like the bundled rows: label,
provider, token parameter, defaults, context window, extra parameters, fallbacks) into temp
files, then measures in one run, in interleaved rounds, for each size:

- ``bare``: ``yaml.load(text, Loader=yaml.CSafeLoader)`` of the file's text (no positions,
  no checks): the floor any YAML-configured loader stands on;
- ``loader``: ``runtime.loader.load_catalog`` of the bundled providers.yaml and the file
  (read, positions of every key and value, schema checks, pydantic objects, references).

Printed as the median of each and their ratio (loader / bare), and the ratio's range over
the rounds, because this machine is shared and noisy; then how the loader scales (time per
model at the largest size over time per model at the smallest). Asserts nothing.

Run: ``python benchmarks/config_load.py [--models 1000 10000] [--rounds N]``;
``--smoke`` runs tiny catalogs once (a few seconds), for CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from runtime import loader, resources


def catalog(count: int) -> str:
    """models.yaml with ``count`` models, each a chain to the next by fallbacks."""
    lines = ["models:"]
    for i in range(count):
        lines += [
            f"  model-{i}:",
            f"    label: Model number {i} (generated)",
            "    provider: openai",
            "    max_tokens_param: max_completion_tokens",
            "    default_temperature: 0.7",
            f"    default_max_tokens: {1000 + i % 4000}",
            "    context_window: 128000",
            "    requires_api_key_env: OPENAI_API_KEY",
            "    extra_params: {top_p: 0.9, stop: [END]}",
            f"    fallbacks: [model-{i + 1}]" if i + 1 < count else "    fallbacks: []",
        ]
    return "\n".join(lines) + "\n"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(sizes: list[int], rounds: int) -> dict[str, Any]:
    """Both sides at each size, in ``rounds`` interleaved rounds; medians and ratios.

    A size the loader refuses (a size or node cap) is reported with its message, not timed.
    """
    from runtime.errors import ConfigError

    providers = resources.bundled_path("providers.yaml")
    # Without libyaml the baseline is the pure-Python SafeLoader (a different comparison).
    bare_loader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    results: dict[str, Any] = {
        "pyyaml": yaml.__version__,
        "libyaml": bool(yaml.__with_libyaml__),
        "rounds": rounds,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as directory:
        files = {}
        for size in sorted(sizes):
            path = Path(directory) / f"models-{size}.yaml"
            path.write_text(catalog(size), encoding="utf-8")
            entry: dict[str, Any] = {"mib": path.stat().st_size / (1024 * 1024)}
            results["sizes"][str(size)] = entry
            # One load first: imports, caches, and a check that the catalog is valid.
            try:
                loaded = loader.load_catalog(providers, path, environ={})
            except ConfigError as exc:
                entry["refused"] = str(exc).splitlines()[0][:200]
                continue
            assert len(loaded.models) == size, (size, len(loaded.models))
            files[size] = path
        bare: dict[int, list[float]] = {size: [] for size in files}
        ours: dict[int, list[float]] = {size: [] for size in files}
        for _ in range(rounds):  # interleaved: each round measures every size both ways
            for size, path in files.items():
                text = path.read_text(encoding="utf-8")
                bare[size].append(timed(lambda: yaml.load(text, Loader=bare_loader)))  # noqa: B023
                ours[size].append(timed(lambda: loader.load_catalog(providers, path, environ={})))  # noqa: B023
    for size in files:
        ratios = [o / b for o, b in zip(ours[size], bare[size], strict=True)]
        results["sizes"][str(size)].update(
            bare_s=statistics.median(bare[size]),
            loader_s=statistics.median(ours[size]),
            ratio=statistics.median(ratios),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
        )
    timed_sizes = sorted(files)
    if len(timed_sizes) > 1:
        small, large = timed_sizes[0], timed_sizes[-1]
        per_model = [statistics.median(ours[s]) / s for s in (small, large)]
        results["scaling"] = per_model[1] / per_model[0]
        # The same for the bare parse: how much of any growth is Python's heap, not ours.
        bare_per_model = [statistics.median(bare[s]) / s for s in (small, large)]
        results["bare_scaling"] = bare_per_model[1] / bare_per_model[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, one round (CI)")
    args = parser.parse_args(argv)
    sizes: list[int] = [20, 200] if args.smoke else sorted(args.models)
    rounds: int = 1 if args.smoke else args.rounds
    results = measure(sizes, rounds)
    print(f"python {sys.version.split()[0]}, PyYAML {yaml.__version__}, ", end="")
    print(f"libyaml {'yes' if yaml.__with_libyaml__ else 'NO: both sides parse in pure Python'}")
    print(f"{rounds} interleaved round(s); medians; ratio = loader / bare parse")
    print(f"{'models':>8} {'file':>9} {'bare ms':>9} {'loader ms':>10} {'ratio':>6}  range")
    for size in sizes:
        r = results["sizes"][str(size)]
        if "refused" in r:
            print(f"{size:>8,} {r['mib']:>5.1f} MiB  refused: {r['refused']}")
            continue
        print(
            f"{size:>8,} {r['mib']:>5.1f} MiB "
            f"{r['bare_s'] * 1e3:>9.1f} "
            f"{r['loader_s'] * 1e3:>10.1f} "
            f"{r['ratio']:>6.2f}  {r['ratio_min']:.2f}-{r['ratio_max']:.2f}"
        )
    if "scaling" in results:
        small, large = sizes[0], sizes[-1]
        print(
            f"scaling: time per model at {large:,} / at {small:,} = "
            f"{results['scaling']:.2f} (1.00 is linear; the bare parse: "
            f"{results['bare_scaling']:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
