"""Import time and memory of ``import runtime`` + loading the bundled catalog.

Each figure is a ratio against a baseline measured in the same run (a bare interpreter),
because this machine is shared and noisy. For scale it also measures ``import openai``
(the official SDK, if installed), which the incumbents pull in at import time.

Run: ``python benchmarks/import_cost.py [--runs N]``. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, resource, sys, time
t0 = time.perf_counter()
{code}
elapsed = time.perf_counter() - t0
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "rss_kib": rss_kib, "modules": len(sys.modules)}}))
"""

CASES = {
    "baseline (bare interpreter)": "pass",
    "import runtime": "import runtime",
    "import runtime + load_runtime()": "import runtime\nruntime.load_runtime()",
    "import openai (for scale)": "import openai",
}


def measure(code: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(code=code)],
            check=True,
            capture_output=True,
            text=True,
        )
        samples.append(json.loads(out.stdout))
    return {
        "seconds": statistics.median(s["seconds"] for s in samples),
        "rss_mib": statistics.median(s["rss_kib"] for s in samples) / 1024,
        "modules": statistics.median(s["modules"] for s in samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for name, code in CASES.items():
        try:
            results[name] = measure(code, args.runs)
        except subprocess.CalledProcessError:
            print(f"{name}: not available here")
    base = results["baseline (bare interpreter)"]
    print(f"{'case':36} {'import s':>9} {'RSS MiB':>8} {'RSS x base':>10} {'modules':>8}")
    for name, r in results.items():
        print(
            f"{name:36} {r['seconds']:9.3f} {r['rss_mib']:8.1f} "
            f"{r['rss_mib'] / base['rss_mib']:10.2f} {r['modules']:8.0f}"
        )
    if "import openai (for scale)" in results:
        ours = results["import runtime + load_runtime()"]["seconds"]
        theirs = results["import openai (for scale)"]["seconds"]
        print(f"\nruntime+catalog import time / openai SDK import time = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
