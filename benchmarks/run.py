"""Every benchmark of issue 11 in one command: one markdown table per section, targets checked.

Starts its own loopback fake of OpenAI's Chat Completions API (``fake_openai.py``) in a
separate process, pinned to one core with ``taskset`` where it exists, and runs every
contender in its own process (``contenders.py``) pinned to another core. Contenders take
turns in interleaved rounds (A B C A B C ...), and every ratio is taken within a round,
then the median over rounds is shown: this machine may be shared and noisy, so absolute
numbers drift while ratios of neighbours hold. Sections:

1. calls/s at concurrency 1/16/64/256: raw aiohttp, raw httpx2, llm-runtime on its httpx2
   and aiohttp engines (``settings: {http_engine: ...}``), the openai SDK, litellm (only
   when importable; never a dependency);
2. in-process CPU per call with the HTTP stubbed out (an httpx2 ``MockTransport``): the
   runtime's own cost over raw httpx2 on the same transport;
3. streaming a 1,000-delta answer: time to the first delta, deltas/s;
4. ready time (import + load the bundled YAML + first provider built) and peak RSS, vs
   ``import openai`` and vs a bare ``import pydantic, yaml, httpx2`` process;
5. config load at 1,000 and 10,000 models vs a bare libyaml parse (``config_load.py``).

Run: ``python benchmarks/run.py [--json FILE] [--rounds N]``; ``--smoke`` runs tiny counts
(CI: it must keep running; its numbers mean nothing). Asserts nothing about speed; exits 1
only when a contender fails (an error, not "not installed").
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CONTENDERS = {
    "raw-aiohttp": "raw aiohttp",
    "raw-httpx2": "raw httpx2",
    "runtime-httpx2": "llm-runtime, httpx2 engine",
    "runtime-aiohttp": "llm-runtime, aiohttp engine",
    "openai-sdk": "openai SDK (AsyncOpenAI)",
    "litellm": "litellm",
}
#: What each contender's calls/s is divided by (within each round).
BASELINES = ("raw-aiohttp", "raw-httpx2", "openai-sdk", "litellm")
#: Streaming compares the same contenders but litellm (its stream path is not the point).
STREAMERS = [name for name in CONTENDERS if name != "litellm"]

READY_CASES = {
    "bare interpreter": "pass",
    "import pydantic, yaml, httpx2": "import pydantic, yaml, httpx2",
    "llm-runtime ready": (
        "import runtime\n"
        "rt = runtime.load_runtime(environ={'OPENAI_API_KEY': 'sk-bench-not-a-secret'})\n"
        "rt.provider_for('gpt-4o-mini')"
    ),
    "import openai": "import openai",
}
PROBE = """
import json, resource, sys, time
t0 = time.perf_counter()
try:
{code}
except ImportError as exc:
    print(json.dumps({{"unavailable": f"{{exc.name}} is not installed"}}))
    raise SystemExit(0) from None
elapsed = time.perf_counter() - t0
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "rss_kib": rss_kib, "modules": len(sys.modules)}}))
"""


@dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    rounds: int
    levels: tuple[int, ...] = (1, 16, 64, 256)
    seconds: float = 1.0
    streams: int = 5
    deltas: int = 1000
    mock_calls: int = 2000
    mock_rounds: int = 7
    ready_rounds: int = 7
    config_sizes: tuple[int, ...] = (1000, 10_000)
    config_rounds: int = 5


FULL = Plan(rounds=5, seconds=0.8)
SMOKE = Plan(
    rounds=1,
    seconds=0.05,
    streams=1,
    deltas=20,
    mock_calls=50,
    mock_rounds=1,
    ready_rounds=1,
    config_sizes=(20, 200),
    config_rounds=1,
)


# --------------------------------------------------------------------------- processes


@dataclass
class Pinning:
    """Which core the server runs on and which the clients run on (taskset), if any."""

    server: list[str] = field(default_factory=list)
    client: list[str] = field(default_factory=list)
    note: str = "not pinned"

    @classmethod
    def detect(cls) -> Pinning:
        taskset = shutil.which("taskset")
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if taskset is None:
            return cls(note="not pinned (no taskset)")
        if len(cores) < 2:
            return cls(note="not pinned (one core)")
        server, client = cores[0], cores[1]
        return cls(
            server=[taskset, "-c", str(server)],
            client=[taskset, "-c", str(client)],
            note=f"server on core {server}, clients on core {client} (taskset)",
        )


def child_env() -> dict[str, str]:
    """This tree's ``runtime`` first; no catalog paths, keys or proxies from the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY")
        and not k.startswith("LLM_RUNTIME_")
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "openai_base_url"}
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Runner:
    """Starts workers with a timeout each, from a scratch directory, pinned."""

    def __init__(self, pinning: Pinning, scratch: Path) -> None:
        self.pinning = pinning
        self.scratch = scratch
        self.env = child_env()
        self.failures: list[str] = []

    def run(self, argv: Sequence[str], timeout: float, what: str) -> dict[str, Any]:
        """Run a Python script or ``-c`` code; its last stdout line is JSON."""
        command = [*self.pinning.client, sys.executable, *argv]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
                cwd=self.scratch,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return self._failed(what, f"timed out after {timeout:.0f} s")
        lines = done.stdout.strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError):
            tail = done.stderr.strip().splitlines()[-3:]
            return self._failed(what, f"exit {done.returncode}: {' | '.join(tail)[:300]}")
        if "error" in result:
            self._failed(what, str(result["error"]))
        return result

    def _failed(self, what: str, message: str) -> dict[str, Any]:
        self.failures.append(f"{what}: {message}")
        print(f"  ! {what}: {message}", file=sys.stderr)
        return {"error": message}

    def worker(self, args: Sequence[str], timeout: float, what: str) -> dict[str, Any]:
        return self.run([str(HERE / "contenders.py"), *args], timeout, what)


@contextmanager
def fake_server(pinning: Pinning, scratch: Path, deltas: int) -> Iterator[str]:
    """The fake API in its own process; yields its base URL; killed on the way out."""
    port_file = scratch / "port"
    port_file.unlink(missing_ok=True)
    command = [
        *pinning.server,
        sys.executable,
        str(HERE / "fake_openai.py"),
        "--port-file",
        str(port_file),
        "--deltas",
        str(deltas),
    ]
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env()
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if server.poll() is not None:
                err = server.stderr.read().decode(errors="replace") if server.stderr else ""
                raise RuntimeError(f"the fake server exited at start: {err[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start within 20 s")
            time.sleep(0.02)
        port = int(port_file.read_text(encoding="utf-8"))
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        if server.stderr is not None:
            server.stderr.close()


# --------------------------------------------------------------------------- sections


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio_medians(rounds: list[dict[str, Any]], mine: str, base: str, pick: Any) -> float | None:
    """The median over rounds of (mine / base), each taken within one round."""
    ratios = []
    for row in rounds:
        a, b = pick(row.get(mine)), pick(row.get(base))
        if a is not None and b:
            ratios.append(a / b)
    return median_or_none(ratios)


def _level(level: int) -> Any:
    def pick(result: dict[str, Any] | None) -> float | None:
        if not result or "calls_per_s" not in result:
            return None
        value = result["calls_per_s"].get(str(level))
        return float(value) if value is not None else None

    return pick


def _status(rounds: list[dict[str, Any]], name: str) -> str | None:
    """Why a contender has no numbers ("n/a (...)", "error: ..."), or None if it has."""
    results = [row[name] for row in rounds if name in row]
    if any("calls_per_s" in r or "deltas_per_s" in r for r in results):
        return None
    for r in results:
        if "unavailable" in r:
            return f"n/a ({r['unavailable']})"
    for r in results:
        if "error" in r:
            return f"error: {r['error']}"
    return "n/a"


def interleaved(
    runner: Runner, names: list[str], rounds: int, job: list[str], timeout: float, section: str
) -> list[dict[str, Any]]:
    """``rounds`` rounds of every contender in turn; a contender unavailable in round one
    is not started again."""
    out: list[dict[str, Any]] = []
    active = list(names)
    for index in range(rounds):
        row: dict[str, Any] = {}
        for name in active:
            print(f"  {section}: round {index + 1}/{rounds}: {name}", file=sys.stderr)
            row[name] = runner.worker(
                [job[0], "--contender", name, *job[1:]], timeout, f"{section} {name}"
            )
        out.append(row)
        active = [n for n in active if "unavailable" not in row[n]]
    return out


def throughput_section(runner: Runner, plan: Plan, base: str) -> dict[str, Any]:
    levels = [str(level) for level in plan.levels]
    job = ["throughput", "--base", base, "--levels", *levels, "--seconds", str(plan.seconds)]
    budget = 60 + len(levels) * (plan.seconds + 0.2) * 10
    rounds = interleaved(runner, list(CONTENDERS), plan.rounds, job, budget, "calls/s")
    table: dict[str, Any] = {}
    for name in CONTENDERS:
        entry: dict[str, Any] = {"status": _status(rounds, name)}
        for level in plan.levels:
            pick = _level(level)
            values = [v for row in rounds if (v := pick(row.get(name))) is not None]
            entry[str(level)] = {
                "calls_per_s": median_or_none(values),
                **{f"x_{b}": ratio_medians(rounds, name, b, pick) for b in BASELINES},
            }
        table[name] = entry
    return {"rounds": rounds, "table": table}


def stream_section(runner: Runner, plan: Plan, base: str) -> dict[str, Any]:
    job = ["stream", "--base", base, "--streams", str(plan.streams), "--deltas", str(plan.deltas)]
    budget = 60 + plan.streams * plan.deltas * 0.002
    rounds = interleaved(runner, STREAMERS, plan.rounds, job, budget, "streaming")

    def rate(result: dict[str, Any] | None) -> float | None:
        return float(result["deltas_per_s"]) if result and "deltas_per_s" in result else None

    def first(result: dict[str, Any] | None) -> float | None:
        return float(result["first_delta_s"]) if result and "first_delta_s" in result else None

    table: dict[str, Any] = {}
    for name in STREAMERS:
        table[name] = {
            "status": _status(rounds, name),
            "first_delta_s": median_or_none(
                [v for row in rounds if (v := first(row.get(name))) is not None]
            ),
            "deltas_per_s": median_or_none(
                [v for row in rounds if (v := rate(row.get(name))) is not None]
            ),
            "x_raw-aiohttp": ratio_medians(rounds, name, "raw-aiohttp", rate),
            "x_raw-httpx2": ratio_medians(rounds, name, "raw-httpx2", rate),
        }
    return {"rounds": rounds, "table": table}


def mock_section(runner: Runner, plan: Plan) -> dict[str, Any]:
    print("  in-process: mock transport", file=sys.stderr)
    args = ["mock", "--calls", str(plan.mock_calls), "--rounds", str(plan.mock_rounds)]
    result = runner.worker(args, 120 + plan.mock_calls * plan.mock_rounds * 0.01, "mock")
    if "cpu_s_per_call" in result:
        cpu = result["cpu_s_per_call"]
        result["own_s_per_call"] = cpu["LLMRuntime.generate"] - cpu["raw httpx2"]
    return result


def ready_section(runner: Runner, plan: Plan) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in READY_CASES}
    missing: dict[str, str] = {}
    for index in range(plan.ready_rounds):
        print(f"  ready: round {index + 1}/{plan.ready_rounds}", file=sys.stderr)
        for name, code in READY_CASES.items():
            if name in missing:
                continue
            probe = PROBE.format(code=textwrap.indent(code, "    "))
            result = runner.run(["-c", probe], 60, f"ready {name}")
            if "seconds" in result:
                samples[name].append(result)
            elif "unavailable" in result:
                missing[name] = str(result["unavailable"])
    table: dict[str, Any] = {}
    for name, values in samples.items():
        if not values:
            table[name] = {"unavailable": missing[name]} if name in missing else None
            continue
        table[name] = {
            "seconds": statistics.median(v["seconds"] for v in values),
            "rss_mib": statistics.median(v["rss_kib"] for v in values) / 1024,
            "modules": statistics.median(v["modules"] for v in values),
        }

    def within(mine: str, base: str, key: str) -> float | None:
        pairs = zip(samples[mine], samples[base], strict=False)  # one pair per round
        key_of = "rss_kib" if key == "rss" else "seconds"
        return median_or_none([a[key_of] / b[key_of] for a, b in pairs if b[key_of]])

    return {
        "table": table,
        "ready_x_openai": within("llm-runtime ready", "import openai", "seconds"),
        "rss_x_bare": within("llm-runtime ready", "import pydantic, yaml, httpx2", "rss"),
        "rss_x_openai": within("llm-runtime ready", "import openai", "rss"),
    }


def config_section(runner: Runner, plan: Plan) -> dict[str, Any]:
    print("  config load", file=sys.stderr)
    sizes = [str(size) for size in plan.config_sizes]
    args = ["config", "--sizes", *sizes, "--rounds", str(plan.config_rounds)]
    return runner.worker(args, 600, "config")


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in ("httpx2", "aiohttp", "openai", "litellm", "pydantic", "PyYAML"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "cpu_count": os.cpu_count(),
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def target(value: float | None, limit: float, at_least: bool) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= limit if at_least else value <= limit) else "not met"


def markdown(report: dict[str, Any], plan: Plan) -> str:
    m = report["machine"]
    out = [
        "### Machine",
        "",
        f"{m['cpu_count']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}; "
        f"{report['pinning']}; load average at start {m['load_average']}; {m['date_utc']} UTC.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
        "",
    ]
    levels = [str(level) for level in plan.levels]
    t = report["throughput"]["table"]
    out += [
        f"### Calls/s on loopback (median of {plan.rounds} interleaved rounds; "
        "in brackets: x raw aiohttp in the same round)",
        "",
        "| contender | " + " | ".join(f"c={level}" for level in levels) + " |",
        "|---" * (len(levels) + 1) + "|",
    ]
    for name, label in CONTENDERS.items():
        entry = t[name]
        if entry["status"]:
            cells = [entry["status"]] + [""] * (len(levels) - 1)
        else:
            cells = [
                f"{num(entry[lv]['calls_per_s'])} ({ratio(entry[lv]['x_raw-aiohttp'])})"
                for lv in levels
            ]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    mid = "64" if "64" in levels else levels[-1]
    out += [
        "",
        f"At c={mid}, each ratio taken within a round (median over rounds):",
        "",
        "| contender | " + " | ".join(f"x {CONTENDERS[b]}" for b in BASELINES) + " |",
        "|---" * (len(BASELINES) + 1) + "|",
    ]
    for name, label in CONTENDERS.items():
        if t[name]["status"]:
            continue
        cells = [ratio(t[name][mid][f"x_{b}"]) for b in BASELINES]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")

    mock = report["mock"]
    out += [
        f"### CPU per call in-process, HTTP stubbed out (httpx2 MockTransport, "
        f"{plan.mock_calls} calls x {plan.mock_rounds} rounds, median)",
        "",
        "| path | CPU µs per call | over raw httpx2 | x raw httpx2 |",
        "|---|---|---|---|",
    ]
    if "cpu_s_per_call" in mock:
        cpu = mock["cpu_s_per_call"]
        raw = cpu["raw httpx2"]
        for name, seconds in cpu.items():
            over = "-" if name == "raw httpx2" else f"+{(seconds - raw) * 1e6:.1f} µs"
            out.append(f"| {name} | {seconds * 1e6:.1f} | {over} | {ratio(seconds / raw)} |")
    else:
        out.append(f"| {mock.get('error') or mock.get('unavailable')} | | | |")
    out.append("")

    s = report["stream"]["table"]
    out += [
        f"### Streaming a {plan.deltas:,}-delta answer "
        f"(median of {plan.streams} streams x {plan.rounds} rounds)",
        "",
        "| contender | first delta ms | deltas/s | x raw aiohttp | x raw httpx2 |",
        "|---|---|---|---|---|",
    ]
    for name in STREAMERS:
        entry = s[name]
        if entry["status"]:
            out.append(f"| {CONTENDERS[name]} | {entry['status']} | | | |")
            continue
        first = entry["first_delta_s"]
        out.append(
            f"| {CONTENDERS[name]} | {num(first * 1e3 if first is not None else None, 2)} | "
            f"{num(entry['deltas_per_s'])} | {ratio(entry['x_raw-aiohttp'])} | "
            f"{ratio(entry['x_raw-httpx2'])} |"
        )
    out.append("")

    r = report["ready"]
    out += [
        f"### Ready time and peak RSS (fresh process each, median of {plan.ready_rounds})",
        "",
        "| process | seconds | peak RSS MiB | modules |",
        "|---|---|---|---|",
    ]
    for name, entry in r["table"].items():
        if entry is None or "unavailable" in entry:
            shown = f"n/a ({entry['unavailable']})" if entry else "failed"
            out.append(f"| {name} | {shown} | | |")
            continue
        out.append(
            f"| {name} | {entry['seconds']:.3f} | {entry['rss_mib']:.1f} | {entry['modules']:.0f} |"
        )
    out += [
        "",
        "Ready = `import runtime` + `load_runtime()` of the bundled YAML + "
        "`provider_for('gpt-4o-mini')`; seconds from the first import, interpreter start "
        "excluded.",
        "",
    ]

    c = report["config"]
    out += [
        f"### Config load vs a bare libyaml parse (`yaml.load(..., CSafeLoader)`), "
        f"median of {plan.config_rounds}",
        "",
        "| models | file MiB | bare parse ms | loader ms | loader / bare |",
        "|---|---|---|---|---|",
    ]
    for size, entry in c.get("sizes", {}).items():
        if "refused" in entry:
            out.append(f"| {int(size):,} | {entry['mib']:.1f} | | refused: {entry['refused']} | |")
            continue
        out.append(
            f"| {int(size):,} | {entry['mib']:.1f} | {entry['bare_s'] * 1e3:.1f} | "
            f"{entry['loader_s'] * 1e3:.1f} | {entry['ratio']:.2f}x |"
        )
    if "error" in c:
        out.append(f"| error: {c['error']} | | | | |")
    if "scaling" in c:
        out += [
            "",
            f"Time per model at {max(plan.config_sizes):,} / at {min(plan.config_sizes):,}: "
            f"loader {c['scaling']:.2f}, bare parse {c['bare_scaling']:.2f} (1.00 is linear).",
        ]
    out.append("")

    out += ["### Targets (issue 11)", "", "| target | measured | |", "|---|---|---|"]
    for label, value, limit, at_least, shown in targets(report, plan):
        out.append(f"| {label} | {shown(value)} | {target(value, limit, at_least)} |")
    out.append("")
    return "\n".join(out)


def targets(report: dict[str, Any], plan: Plan) -> list[tuple[str, float | None, float, bool, Any]]:
    t = report["throughput"]["table"]
    s = report["stream"]["table"]
    mid = "64" if 64 in plan.levels else str(plan.levels[-1])
    own = report["mock"].get("own_s_per_call")
    sizes = report["config"].get("sizes", {})
    small = str(min(plan.config_sizes))
    return [
        (
            f"aiohttp engine at c={mid} >= 0.75x raw aiohttp",
            t["runtime-aiohttp"][mid]["x_raw-aiohttp"],
            0.75,
            True,
            ratio,
        ),
        (
            f"httpx2 engine at c={mid} >= 0.95x raw httpx2",
            t["runtime-httpx2"][mid]["x_raw-httpx2"],
            0.95,
            True,
            ratio,
        ),
        (
            "runtime's own CPU per call <= 20 µs",
            own * 1e6 if own is not None else None,
            20.0,
            False,
            lambda v: "-" if v is None else f"{v:.1f} µs",
        ),
        (
            "streaming, aiohttp engine >= 0.9x raw aiohttp deltas/s",
            s["runtime-aiohttp"]["x_raw-aiohttp"],
            0.9,
            True,
            ratio,
        ),
        (
            "ready <= 0.35x `import openai`",
            report["ready"]["ready_x_openai"],
            0.35,
            False,
            ratio,
        ),
        (
            "peak RSS <= 1.2x bare `import pydantic, yaml, httpx2`",
            report["ready"]["rss_x_bare"],
            1.2,
            False,
            ratio,
        ),
        (
            f"config at {int(small):,} models <= 2x bare parse",
            sizes.get(small, {}).get("ratio"),
            2.0,
            False,
            ratio,
        ),
        (
            "config linear to the largest size (time per model within 1.25x)",
            report["config"].get("scaling"),
            1.25,
            False,
            lambda v: "-" if v is None else f"{v:.2f}",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, one round (CI)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if args.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
    pinning = Pinning.detect()
    report: dict[str, Any] = {"machine": machine(), "pinning": pinning.note, "smoke": args.smoke}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llm-runtime-bench-") as directory:
        scratch = Path(directory)
        runner = Runner(pinning, scratch)
        with fake_server(pinning, scratch, plan.deltas) as base:
            report["throughput"] = throughput_section(runner, plan, base)
            report["stream"] = stream_section(runner, plan, base)
        report["mock"] = mock_section(runner, plan)
        report["ready"] = ready_section(runner, plan)
        report["config"] = config_section(runner, plan)
    report["elapsed_s"] = time.monotonic() - started
    report["failures"] = runner.failures
    print(markdown(report, plan))
    print(f"({report['elapsed_s']:.0f} s{'; smoke mode: tiny counts' if args.smoke else ''})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if runner.failures:
        print("failures:\n  " + "\n  ".join(runner.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
