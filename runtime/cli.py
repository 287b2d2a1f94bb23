"""The ``llm-runtime`` command line: validate, models, providers, explain, complete, schema.

Exit codes: 0 success, 1 invalid configuration or a failed call, 2 usage error,
130 interrupted. A user error prints one clear message, never a Python traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NoReturn, TextIO

from .errors import LLMRuntimeError

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 and a one-line hint on usage errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--providers", metavar="FILE", help="providers.yaml to use")
    p.add_argument("--models", metavar="FILE", help="models.yaml to use")


#: Call arguments the command itself sets (-m, the prompt, --system, --stream).
_OWN_ARGS = frozenset({"model", "prompt", "messages", "stream"})


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if key in _OWN_ARGS:
        raise argparse.ArgumentTypeError(
            f"{key!r} is set by the command (-m, the prompt, --system, --stream), not by -p"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llm-runtime",
        description="Call large language models configured in providers.yaml and models.yaml.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("validate", help="check the configuration; exit 1 if invalid")
    _add_config_args(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="also import every provider class and check that every API key variable is set",
    )

    for name, what in (("models", "the configured models"), ("providers", "the providers")):
        p = sub.add_parser(name, help=f"list {what}")
        _add_config_args(p)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    for name, what in (
        ("explain", "print the exact request the provider would receive; sends nothing"),
        ("complete", "run a completion and print it (streamed when the model can)"),
    ):
        p = sub.add_parser(name, help=what)
        _add_config_args(p)
        p.add_argument("-m", "--model", required=True, help="model id from models.yaml")
        p.add_argument("prompt", help="the prompt text ('-' reads standard input)")
        p.add_argument("--system", help="a system message to send first")
        p.add_argument("--temperature", type=float)
        p.add_argument("--max-tokens", type=int)
        p.add_argument(
            "-p",
            "--param",
            action="append",
            type=_param,
            default=[],
            metavar="KEY=VALUE",
            help="an extra parameter (VALUE is parsed as JSON when it can be)",
        )
        if name == "complete":
            p.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
            p.add_argument(
                "--json", action="store_true", help="print the result with usage as JSON"
            )
        else:
            p.add_argument("--stream", action="store_true", help="explain the streaming call")

    p = sub.add_parser("schema", help="print the JSON Schemas of providers.yaml and models.yaml")
    p.add_argument("which", nargs="?", choices=("providers", "models"), help="only this one")
    p.add_argument("--write", metavar="DIR", help="write both schema files into DIR")
    return parser


def _load(args: argparse.Namespace, *, strict: bool = False) -> Any:
    from . import load_runtime

    return load_runtime(args.providers, args.models, strict=strict)


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    rt = _load(args, strict=args.strict)
    sources = ", ".join(rt.catalog.sources)
    out.write(
        f"OK: {len(rt.catalog.providers)} providers, {len(rt.catalog.models)} models "
        f"({sources}){' [strict]' if args.strict else ''}\n"
    )
    return EXIT_OK


def _key_state(env_var: str | None) -> str:
    if not env_var:
        return "-"
    return f"{env_var} ({'set' if os.environ.get(env_var) else 'unset'})"


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    rt = _load(args)
    if args.json:
        data = [m.model_dump(mode="json", exclude_defaults=True) for m in rt.models.values()]
        out.write(json.dumps(data, indent=2) + "\n")
        return EXIT_OK
    rows = [["MODEL", "PROVIDER", "PROVIDER MODEL", "STREAM", "LABEL"]]
    for m in rt.models.values():
        stream = "yes" if m.supports_streaming else "no"
        rows.append([m.id, m.provider, m.provider_model, stream, m.label])
    _table(rows, out)
    return EXIT_OK


def _cmd_providers(args: argparse.Namespace, out: TextIO) -> int:
    rt = _load(args)
    if args.json:
        data = [
            p.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for p in rt.providers.values()
        ]
        out.write(json.dumps(data, indent=2) + "\n")
        return EXIT_OK
    rows = [["PROVIDER", "CLASS", "BASE URL", "API KEY"]]
    for p in rt.providers.values():
        rows.append([p.name, p.class_path, p.base_url or "-", _key_state(p.api_key_env)])
    _table(rows, out)
    return EXIT_OK


def _call_args(args: argparse.Namespace) -> dict[str, Any]:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    call: dict[str, Any] = dict(args.param)
    if args.temperature is not None:
        call["temperature"] = args.temperature
    if args.max_tokens is not None:
        call["max_tokens"] = args.max_tokens
    if args.system:
        call["messages"] = [
            {"role": "system", "content": args.system},
            {"role": "user", "content": prompt},
        ]
    else:
        call["prompt"] = prompt
    return call


def _cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    rt = _load(args)
    described = asyncio.run(rt.explain(model=args.model, stream=args.stream, **_call_args(args)))
    out.write(json.dumps(described, indent=2, default=str) + "\n")
    return EXIT_OK


async def _complete(rt: Any, args: argparse.Namespace, out: TextIO) -> int:
    async with rt:
        call = _call_args(args)
        cfg = rt.model(args.model)
        if args.json or args.no_stream or not cfg.supports_streaming:
            result = await rt.generate(model=args.model, **call)
            if args.json:
                data = {
                    "text": result.text,
                    "finish_reason": result.finish_reason,
                    "model": result.model,
                    "provider": result.provider,
                    "attempts": result.attempts,
                    "latency": round(result.latency, 3),
                    "usage": {k: v for k, v in asdict(result.usage).items() if v is not None},
                }
                out.write(json.dumps(data, indent=2) + "\n")
            else:
                out.write(result.text + "\n")
            return EXIT_OK
        stream = rt.stream(model=args.model, **call)
        async with stream:
            async for delta in stream:
                out.write(delta)
                out.flush()
        out.write("\n")
        return EXIT_OK


def _cmd_complete(args: argparse.Namespace, out: TextIO) -> int:
    rt = _load(args)
    return asyncio.run(_complete(rt, args, out))


def _cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    from .loader import file_schema, schema_text, write_schemas

    if args.write:
        for path in write_schemas(args.write):
            out.write(f"wrote {path}\n")
    elif args.which:
        out.write(schema_text(args.which))
    else:
        both = {kind: file_schema(kind) for kind in ("providers", "models")}
        out.write(json.dumps(both, indent=2) + "\n")
    return EXIT_OK


_COMMANDS = {
    "validate": _cmd_validate,
    "models": _cmd_models,
    "providers": _cmd_providers,
    "explain": _cmd_explain,
    "complete": _cmd_complete,
    "schema": _cmd_schema,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    out = out or sys.stdout
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and usage errors (2)
        return int(exc.code or 0)
    try:
        return _COMMANDS[args.command](args, out)
    except LLMRuntimeError as exc:
        sys.stderr.write(f"llm-runtime {args.command}: {exc}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # e.g. schema --write into a place that is not writable
        sys.stderr.write(f"llm-runtime {args.command}: {exc}\n")
        return EXIT_FAIL
