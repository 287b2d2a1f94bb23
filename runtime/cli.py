"""The ``llm-runtime`` command line: validate, models, providers, explain, complete, schema.

Exit codes: 0 success, 1 invalid configuration or a failed call, 2 usage error,
130 interrupted. A user error prints one clear message, never a Python traceback. The
runtime's warnings (dropped parameters, fallbacks) go to stderr; ``-v`` adds its log of
retries and timings, ``-vv`` the debug details.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show the runtime's log on stderr (-v: retries and fallbacks, -vv: debug)",
    )


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
    except RecursionError:
        raise argparse.ArgumentTypeError(f"the value of {key!r} is nested too deeply") from None
    return key, value


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="llm-runtime",
        description="Call large language models configured in providers.yaml and models.yaml.",
    )
    parser.add_argument("--version", action="version", version=f"llm-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("validate", help="check the configuration; exit 1 if invalid")
    _add_config_args(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="also import the provider classes, test-render templates and check that the API "
        "key variables of your own models (or of --model) are set",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID",
        help="with --strict: check the keys of this model (and its fallbacks); repeatable",
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
        p.add_argument(
            "prompt",
            nargs="?",
            help="the prompt text ('-' reads standard input; text piped in without '-' comes "
            "first, then the prompt)",
        )
        p.add_argument("--system", help="a system message to send first")
        p.add_argument(
            "--template", metavar="NAME", help="a named prompt template (models.yaml templates:)"
        )
        p.add_argument(
            "--var",
            action="append",
            type=_variable,
            default=[],
            metavar="NAME=VALUE",
            help="a template variable (VALUE @FILE reads the file)",
        )
        p.add_argument(
            "--schema",
            metavar="FILE",
            help="a JSON Schema file the answer must follow (prints the validated JSON)",
        )
        p.add_argument(
            "-a",
            "--attach",
            action="append",
            default=[],
            metavar="FILE_OR_URL",
            help="attach an image (a file, or an http(s) URL); repeatable",
        )
        p.add_argument(
            "--reasoning",
            metavar="EFFORT",
            choices=("low", "medium", "high"),
            help="reasoning effort",
        )
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
                "-u", "--usage", action="store_true", help="print usage and cost on stderr"
            )
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

    if not strict:
        return load_runtime(args.providers, args.models)
    from .loader import load_catalog
    from .service import LLMRuntime

    catalog = load_catalog(args.providers, args.models, strict=True, key_models=args.model or None)
    return LLMRuntime(catalog)


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


def _redacted(rt: Any, data: Any) -> Any:
    """Config data with credentials replaced: by field name, and the values of key variables."""
    from .redact import redact

    variables = {p.api_key_env for p in rt.providers.values()}
    variables |= {m.requires_api_key_env for m in rt.models.values()}
    keys = [os.environ.get(v, "").strip() for v in variables if v]
    return redact(data, secrets=[k for k in keys if k])


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    from . import listing
    from .pricing import PriceBook

    rt = _load(args)
    book = PriceBook() if listing.genai_prices_installed() else None
    near = tuple(rt.catalog.sources)
    rows = [["MODEL", "PROVIDER", "PROVIDER MODEL", "STREAM", *_FEATURE_HEADS, "PRICE", "LABEL"]]
    data = []
    for m in rt.models.values():
        provider = rt.providers[m.provider]
        cls = listing.provider_class(provider, near)
        supports = listing.supports(m, cls)
        card = listing.price_card(m, provider, cls, book)
        source = listing.price_source(card)
        if args.json:
            entry = m.model_dump(mode="json", exclude_defaults=True)
            entry |= {"supports": supports, "price_source": source}
            entry["price"] = listing.price_data(card)
            data.append(entry)
            continue
        stream = "yes" if m.supports_streaming else "no"
        cells = [_cell(supports[name]) for name in _FEATURES]
        rows.append([m.id, m.provider, m.provider_model, stream, *cells, source, m.label])
    if args.json:
        out.write(json.dumps(_redacted(rt, data), indent=2) + "\n")
    else:
        _table(rows, out)
    return EXIT_OK


#: ``supports`` keys shown by ``models`` and their column heads.
_FEATURES = ("tools", "parallel_tool_calls", "images", "structured_output", "reasoning")
_FEATURE_HEADS = ("TOOLS", "PARALLEL", "IMAGES", "SCHEMA", "REASONING")


def _cell(value: bool | str | None) -> str:
    """A capability as a table cell: yes/no, a mode, or ? when the model declares none."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def _cmd_providers(args: argparse.Namespace, out: TextIO) -> int:
    rt = _load(args)
    if args.json:
        data = [
            p.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for p in rt.providers.values()
        ]
        out.write(json.dumps(_redacted(rt, data), indent=2) + "\n")
        return EXIT_OK
    rows = [["PROVIDER", "CLASS", "BASE URL", "API KEY"]]
    for p in rt.providers.values():
        rows.append([p.name, p.class_path, p.base_url or "-", _key_state(p.api_key_env)])
    _table(rows, out)
    return EXIT_OK


def _stdin_text() -> str | None:
    """Text piped or redirected into the command (a pipe or a file), else None.

    A terminal, /dev/null and other devices are not read: a command run from a script
    without input must not wait for it.
    """
    stdin = sys.stdin
    try:
        if stdin is None or stdin.isatty():
            return None
        fileno = stdin.fileno()
    except (OSError, ValueError, AttributeError):  # replaced by a test runner, or closed
        return stdin.read() if isinstance(stdin, io.StringIO) else None
    mode = os.fstat(fileno).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None
    return stdin.read()


def _prompt(args: argparse.Namespace) -> str:
    if args.prompt == "-":
        prompt = sys.stdin.read()
    else:
        piped = _stdin_text()
        parts = [p for p in (piped, args.prompt) if p is not None and p.strip()]
        prompt = "\n\n".join(p.strip("\n") for p in parts)
    if not prompt.strip():
        raise _UsageError("the prompt is empty: give it as an argument or on standard input")
    return prompt


class _UsageError(Exception):
    """A usage problem found after parsing: exit 2 with one line."""


def _schema_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            schema = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"--schema: cannot read {path!r}: {exc}") from None
    except (ValueError, RecursionError):
        raise _UsageError(f"--schema: {path!r} is not a JSON file") from None
    if not isinstance(schema, dict):
        raise _UsageError(f"--schema: {path!r} does not hold a JSON Schema object")
    return schema


#: Image types by file ending, for --attach.
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def _attachment(item: str) -> dict[str, Any]:
    if item.startswith(("http://", "https://")):
        return {"type": "image", "url": item}
    media = _IMAGE_TYPES.get(os.path.splitext(item)[1].lower())
    if media is None:
        raise _UsageError(
            f"--attach: {item!r}: give a .png, .jpg, .gif or .webp file, or an http(s) URL"
        )
    try:
        with open(item, "rb") as handle:
            data = handle.read(20 * 1024 * 1024 + 1)
    except OSError as exc:
        raise _UsageError(f"--attach: cannot read {item!r}: {exc.strerror or exc}") from None
    if len(data) > 20 * 1024 * 1024:
        raise _UsageError(f"--attach: {item!r} is larger than 20 MiB")
    return {"type": "image", "data": data, "media_type": media}


def _variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as handle:
                value = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"{name}: cannot read {value[1:]!r}: {exc}") from None
    return name, value


def _call_args(args: argparse.Namespace) -> dict[str, Any]:
    call: dict[str, Any] = dict(args.param)
    if args.temperature is not None:
        call["temperature"] = args.temperature
    if args.max_tokens is not None:
        call["max_tokens"] = args.max_tokens
    if args.template is not None:
        if args.prompt is not None or args.system:
            raise _UsageError("--template makes the messages: give no prompt and no --system")
        call["template"] = args.template
        call["variables"] = dict(args.var)
        return call
    if args.var:
        raise _UsageError("--var goes with --template")
    if args.schema:
        call["response_format"] = _schema_file(args.schema)
    if args.reasoning:
        call["reasoning"] = {"effort": args.reasoning}
    prompt = _prompt(args)
    if args.attach:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        content += [_attachment(item) for item in args.attach]
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if args.system:
            messages.insert(0, {"role": "system", "content": args.system})
        call["messages"] = messages
        return call
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


def _say_fallbacks(result: Any) -> None:
    """Never silent: when another model answered, say which and why on stderr."""
    if result is None or not result.failures:
        return
    failed = "; ".join(f"{model!r} failed: {error}" for model, error in result.failures)
    sys.stderr.write(f"llm-runtime: answered by fallback model {result.model!r} ({failed})\n")


async def _complete(rt: Any, args: argparse.Namespace, out: TextIO) -> int:
    async with rt:
        call = _call_args(args)
        cfg = rt.model(args.model)
        structured = call.get("response_format") is not None
        if args.json or args.no_stream or structured or not cfg.supports_streaming:
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
                    "fallbacks": [{"model": m, "error": str(e)} for m, e in result.failures],
                    "tool_calls": [
                        {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                        for c in result.tool_calls
                    ],
                    "reasoning": result.reasoning,
                    "parsed": result.parsed,
                    "cost": _cost_json(result.cost),
                }
                out.write(json.dumps(data, indent=2) + "\n")
            elif call.get("response_format") is not None:
                out.write(json.dumps(result.parsed, indent=2) + "\n")
            else:
                out.write(result.text + "\n")
            _say_fallbacks(result)
            _say_usage(result, args.usage)
            return EXIT_OK
        stream = rt.stream(model=args.model, **call)
        async with stream:
            async for delta in stream:
                out.write(delta)
                out.flush()
        out.write("\n")
        _say_fallbacks(stream.completion)
        _say_usage(stream.completion, args.usage)
        return EXIT_OK


def _cost_json(cost: Any) -> Any:
    if cost is None:
        return None
    return {
        "amount": str(cost.amount),
        "currency": cost.currency,
        "source": cost.source,
        "as_of": cost.as_of,
    }


def _say_usage(result: Any, wanted: bool) -> None:
    if not wanted or result is None:
        return
    u = result.usage
    counts = [f"prompt {u.prompt_tokens}", f"completion {u.completion_tokens}"]
    for name in ("cached_tokens", "cache_write_tokens", "reasoning_tokens"):
        if getattr(u, name) is not None:
            counts.append(f"{name.removesuffix('_tokens').replace('_', ' ')} {getattr(u, name)}")
    cost = result.cost
    shown = str(cost) if cost is not None else "unknown (no price for this model)"
    sys.stderr.write(f"llm-runtime: usage: {', '.join(counts)} tokens; cost {shown}\n")


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


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        return f"llm-runtime: {level}: {record.getMessage()}"


@contextmanager
def _runtime_log(verbosity: int) -> Iterator[None]:
    """The runtime's log on stderr for the command's duration (warnings unless -v)."""
    logger = logging.getLogger("runtime")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler.setLevel(level)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, previous) if previous else level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    out = out or sys.stdout
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and usage errors (2)
        return int(exc.code or 0)
    verbosity = getattr(args, "verbose", 0)
    try:
        with _runtime_log(verbosity):
            return _COMMANDS[args.command](args, out)
    except _UsageError as exc:
        sys.stderr.write(f"llm-runtime {args.command}: error: {exc}\n")
        return EXIT_USAGE
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
    except (RecursionError, MemoryError) as exc:
        sys.stderr.write(
            f"llm-runtime {args.command}: the input is too large or nested too deeply "
            f"({type(exc).__name__})\n"
        )
        return EXIT_FAIL
    except Exception as exc:  # a bug of ours: still one readable line, no traceback
        if verbosity >= 2:
            raise
        sys.stderr.write(
            f"llm-runtime {args.command}: internal error {type(exc).__name__}; this is a bug "
            "in llm-runtime, please report it (run with -vv for the traceback)\n"
        )
        return EXIT_FAIL
