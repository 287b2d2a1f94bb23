"""YAML text -> positions -> schema check -> config objects; every error has file:line:column.

``load_catalog`` reads providers.yaml and models.yaml (found by argument, environment
variable, current directory or the bundled copy, in that order), checks them against the
schemas of ``runtime.config``, builds the pydantic objects and checks the references between
them. Every problem of both files is collected and raised at once as one ``ConfigError``;
nothing is returned half-loaded.

The check is done twice over only when it fails. A file is first validated by the pydantic
models themselves, strictly (no coercion, keys by their YAML names): when that passes, the
JSON Schemas generated from the same models pass too, and the objects are the ones built.
When it fails, jsonschema (imported only then) explains the file against the JSON Schemas,
exactly as a config author's editor does (``runtime.schemas`` words it), and pydantic adds
what a schema cannot say.
"""

from __future__ import annotations

import gc
import os
import pathlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from . import resources
from .config import (
    _NAME,
    Catalog,
    ModelConfig,
    ProviderConfig,
    RuntimeSettings,
    TemplateConfig,
)
from .errors import ConfigError, ConfigProblem, UnknownModelError
from .options import option_problems
from .providers import registry
from .request import RESERVED
from .schemas import (
    Kind,
    describe,
    explain,
    file_schema,
    hint,
    schema_text,
    validator,
    write_schemas,
)
from .suggest import did_you_mean
from .templates import template_problem
from .yamlpos import Limits, Path, PositionMap, YAMLReadError, format_path, load_yaml_file

__all__ = [
    "ENV_VARS",
    "Kind",
    "file_schema",
    "load_catalog",
    "resolve_path",
    "schema_text",
    "write_schemas",
]

#: Environment variables that name the files when no path is passed.
ENV_VARS: dict[Kind, str] = {
    "providers": "LLM_RUNTIME_PROVIDERS",
    "models": "LLM_RUNTIME_MODELS",
}
_FILE_NAMES: dict[Kind, str] = {"providers": "providers.yaml", "models": "models.yaml"}
_ENTRY_MODELS: dict[Kind, tuple[type[BaseModel], str]] = {
    "providers": (ProviderConfig, "name"),
    "models": (ModelConfig, "id"),
}
_TOP_KEYS: dict[Kind, frozenset[str]] = {
    "providers": frozenset({"extends", "providers", "settings"}),
    "models": frozenset({"extends", "models", "templates"}),
}
_ENTRY_NAME = re.compile(_NAME)  # searched, as jsonschema does with a "pattern"


def _strict(cls: type[BaseModel], data: Any) -> Any:
    return cls.model_validate(data, strict=True, by_alias=True, by_name=False)


def _prevalidated(kind: Kind, data: dict[str, Any]) -> dict[str, BaseModel] | None:
    """The file's entries, built, when it passes the strict check; None when anything is off.

    Strict pydantic refuses whatever the JSON Schema refuses (no coercion, no field names
    for aliases, the same patterns, bounds, enums and unknown keys) and a little more (a
    float for an integer, which the schema allows): so None says "explain", never "wrong".
    tests/unit/test_loader.py proves the two agree over the corpus and random entries.
    """
    if not data.keys() <= _TOP_KEYS[kind] or data.get("extends", "bundled") != "bundled":
        return None
    entries = data.get(kind)
    if type(entries) is not dict:
        return None
    cls, key_field = _ENTRY_MODELS[kind]
    built: dict[str, BaseModel] = {}
    try:
        if "settings" in data:
            _strict(RuntimeSettings, data["settings"])
        templates = data.get("templates", {})
        if type(templates) is not dict:
            return None
        for name, entry in templates.items():
            if type(entry) is not dict or "name" in entry or not _ENTRY_NAME.search(name):
                return None
            _strict(TemplateConfig, {**entry, "name": name})
        for name, entry in entries.items():
            if type(entry) is not dict or key_field in entry or not _ENTRY_NAME.search(name):
                return None
            built[name] = _strict(cls, {**entry, key_field: name})
    except ValidationError:
        return None
    return built


# --------------------------------------------------------------------------- one file


@dataclass
class _Source:
    """One file as read: its top-level mapping, positions, and the problems found in it."""

    file: str
    kind: Kind
    data: dict[str, Any] | None = None
    positions: PositionMap = field(default_factory=PositionMap)
    problems: list[ConfigProblem] = field(default_factory=list)
    bad: set[str] = field(default_factory=set)  # names of entries with problems
    bad_templates: set[str] = field(default_factory=set)
    bad_settings: bool = False
    prebuilt: dict[str, BaseModel] | None = None  # the entries, when the strict check passed

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> None:
        line, column = self.positions.key(path) if at_key else self.positions.value(path)
        self.problems.append(ConfigProblem(self.file, line, column, format_path(path), message))
        if len(path) >= 2 and path[0] == self.kind:
            self.bad.add(str(path[1]))
        elif len(path) >= 2 and path[0] == "templates":
            self.bad_templates.add(str(path[1]))
        elif path and path[0] == "settings":
            self.bad_settings = True

    def entries(self, name: str | None = None) -> dict[str, Any] | None:
        """The ``providers:`` / ``models:`` (or ``name``) mapping; None when the file has none."""
        section = self.data.get(name or self.kind) if self.data is not None else None
        return section if isinstance(section, dict) else None


def _read(path: str | os.PathLike[str], kind: Kind, limits: Limits) -> _Source:
    """Read and schema-check one file; problems are kept on the returned source."""
    source = _Source(str(path), kind)
    try:
        data, source.positions = load_yaml_file(path, limits)
    except YAMLReadError as exc:
        for p in exc.problems:
            source.problems.append(
                ConfigProblem(source.file, p.line, p.column, format_path(p.path), p.message)
            )
        return source
    if data is None:
        source.problem((), f"the file is empty: it should be a mapping with a '{kind}:' key")
        return source
    if not isinstance(data, dict):
        source.problem(
            (), f"the top level must be a mapping with a '{kind}:' key, got {describe(data)}"
        )
        return source
    source.data = data
    source.prebuilt = _prevalidated(kind, data)
    if source.prebuilt is None:
        for error in validator(kind).iter_errors(data):
            for error_path, message, at_key in explain(error):
                source.problem(error_path, message, at_key=at_key)
    return source


def _same_file(a: str | os.PathLike[str], b: pathlib.Path) -> bool:
    try:
        return pathlib.Path(a).resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def _read_chain(path: str | os.PathLike[str], kind: Kind, limits: Limits) -> list[_Source]:
    """The file at ``path``, preceded by the bundled file when it says ``extends: bundled``."""
    source = _read(path, kind, limits)
    if source.data is None or "extends" not in source.data:
        return [source]
    extends = source.data.pop("extends")
    bundled = resources.bundled_path(_FILE_NAMES[kind])
    if extends != "bundled":
        return [source]  # the schema check has reported the value
    if _same_file(path, bundled):
        source.problem(("extends",), "the bundled file cannot extend itself", at_key=True)
        return [source]
    base = _read(bundled, kind, limits)
    if base.data is not None and base.data.pop("extends", None) is not None:
        base.problem(("extends",), "the bundled file cannot extend itself", at_key=True)
    return [base, source]


# --------------------------------------------------------------------------- merged entries


@dataclass
class _Section:
    """Entries of one kind merged over a chain of files; each remembers its file."""

    raw: dict[str, tuple[Any, _Source]] = field(default_factory=dict)
    built: dict[str, tuple[Any, _Source]] = field(default_factory=dict)
    complete: bool = True  # False when a file gave no readable entries: names are unknown


def _merge(chain: list[_Source], kind: Kind) -> _Section:
    section = _Section()
    for source in chain:
        entries = source.entries()
        if entries is None:
            section.complete = False
            continue
        for name, entry in entries.items():
            section.raw[name] = (entry, source)  # a later file replaces the entry whole
    return section


def _templates(chain: list[_Source]) -> dict[str, TemplateConfig]:
    """The ``templates:`` of the models files (a later file's entry replaces one whole),
    built and checked: each compiles and renders with its declared variables."""
    from .prompts import template_problems

    raw: dict[str, tuple[Any, _Source]] = {}
    for source in chain:
        for name, entry in (source.entries("templates") or {}).items():
            raw[name] = (entry, source)
    built: dict[str, TemplateConfig] = {}
    for name, (entry, source) in raw.items():
        if name in source.bad_templates or not isinstance(entry, dict):
            continue
        try:
            template = TemplateConfig.model_validate({**entry, "name": name})
        except ValidationError as exc:
            _pydantic_problems(source, ("templates", name), exc)
            continue
        found = list(template_problems(template))
        for field_name, message in found:
            source.problem(("templates", name, field_name), message)
        if not found:
            built[name] = template
    return built


def _pydantic_problems(source: _Source, base: Path, exc: ValidationError) -> None:
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        source.problem((*base, *err["loc"]), message)


def _build(section: _Section, kind: Kind, cls: type[BaseModel], key_field: str) -> None:
    for name, (entry, source) in section.raw.items():
        if name in source.bad or not isinstance(entry, dict):
            continue
        if source.prebuilt is not None:
            section.built[name] = (source.prebuilt[name], source)
            continue
        try:
            section.built[name] = (cls.model_validate({**entry, key_field: name}), source)
        except ValidationError as exc:
            _pydantic_problems(source, (kind, name), exc)


def _settings(chain: list[_Source]) -> RuntimeSettings | None:
    merged: dict[str, Any] = {}
    origin: dict[str, _Source] = {}
    for source in chain:
        value = source.data.get("settings") if source.data is not None else None
        if not isinstance(value, dict) or source.bad_settings:
            continue
        for key, item in value.items():  # merged key by key: a later file's key wins
            merged[key] = item
            origin[key] = source
    try:
        return RuntimeSettings.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            loc = err["loc"]
            where = (origin.get(str(loc[0])) if loc else None) or chain[-1]
            where.problem(("settings", *loc), str(err["msg"]).removeprefix("Value error, "))
        return None


# --------------------------------------------------------------------------- references


def _strings(value: Any) -> list[tuple[int, str]]:
    """The string items of a list, with their index (other values: the schema reported)."""
    return (
        [(i, v) for i, v in enumerate(value) if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )


def _check_references(providers: _Section, models: _Section) -> None:
    """Check names that point elsewhere; raw entries, so a broken entry is checked too."""
    provider_names = sorted(set(providers.raw) | set(registry.registered_providers()))
    model_ids = list(models.raw)
    for mid, (entry, source) in models.raw.items():
        if not isinstance(entry, dict):
            continue
        base: Path = ("models", mid)
        provider = entry.get("provider")
        if isinstance(provider, str) and providers.complete and provider not in provider_names:
            near = hint(did_you_mean(provider, provider_names))
            source.problem((*base, "provider"), f"unknown provider {provider!r}{near}")
        for i, fallback in _strings(entry.get("fallbacks")):
            if fallback == mid:
                source.problem((*base, "fallbacks", i), "a model cannot be its own fallback")
            elif models.complete and fallback not in models.raw:
                near = hint(did_you_mean(fallback, model_ids))
                source.problem((*base, "fallbacks", i), f"unknown model {fallback!r}{near}")
        unsupported = _strings(entry.get("unsupported_params"))
        for kind in ("fixed_params", "extra_params"):
            params = entry.get(kind)
            if not isinstance(params, dict):
                continue
            for param in sorted(RESERVED.intersection(params)):
                source.problem(
                    (*base, kind, param),
                    f"{param!r} is set by the runtime for every call, not a model parameter",
                    at_key=True,
                )
            for i, param in unsupported:
                if param in params:
                    source.problem(
                        (*base, "unsupported_params", i),
                        f"{param!r} is both in {kind} and in unsupported_params",
                    )
    _check_cycles(models)


def _check_cycles(models: _Section) -> None:
    """Report each fallback cycle once, at the fallback entry that closes it."""
    graph = {
        mid: [
            (i, fb) for i, fb in _strings(entry.get("fallbacks")) if fb != mid and fb in models.raw
        ]
        for mid, (entry, _) in models.raw.items()
        if isinstance(entry, dict)
    }
    state: dict[str, int] = {}  # 1: on the current chain, 2: finished
    for start in graph:
        if start in state:
            continue
        chain = [start]
        state[start] = 1
        stack: list[tuple[str, Iterator[tuple[int, str]]]] = [(start, iter(graph[start]))]
        while stack:  # iterative: a long fallback chain must not hit the recursion limit
            node, edges = stack[-1]
            for i, nxt in edges:
                if nxt not in graph:
                    continue
                if state.get(nxt) == 1:
                    cycle = " -> ".join([*chain[chain.index(nxt) :], nxt])
                    models.raw[node][1].problem(
                        ("models", node, "fallbacks", i), f"fallback cycle: {cycle}"
                    )
                elif nxt not in state:
                    state[nxt] = 1
                    chain.append(nxt)
                    stack.append((nxt, iter(graph[nxt])))
                    break
            else:
                state[node] = 2
                chain.pop()
                stack.pop()


def _key_checked(models: _Section, key_models: Iterable[str] | None) -> set[str]:
    """The models whose key variables --strict checks: those named (``key_models``), else
    those the user's own files define; with the fallbacks they lead to, in both cases."""
    bundled = resources.bundled_path("models.yaml")
    if key_models is not None:
        todo = [m for m in key_models if m in models.built]
    else:
        todo = [
            mid for mid, (_, source) in models.built.items() if not _same_file(source.file, bundled)
        ]
    chosen: set[str] = set()
    while todo:
        mid = todo.pop()
        if mid in chosen or mid not in models.built:
            continue
        chosen.add(mid)
        todo.extend(models.built[mid][0].fallbacks)
    return chosen


def _check_strict(
    providers: _Section,
    models: _Section,
    environ: Mapping[str, str],
    key_models: Iterable[str] | None = None,
) -> None:
    """Import each used provider class, test-render chat templates, check the key variables."""
    registered = registry.registered_providers()
    used = {model.provider for model, _ in models.built.values()}
    for name in sorted(used):
        if name in registered or name not in providers.built:
            continue  # a class registered in code wins over the YAML `class:`
        config, source = providers.built[name]
        try:
            registry.import_provider_class(config.class_path, near=[source.file])
        except registry.ProviderImportError as exc:
            source.problem(("providers", name, "class"), str(exc))
    checked = _key_checked(models, key_models)
    for mid, (model, source) in models.built.items():
        if model.chat_template is not None:
            problem = template_problem(model.chat_template)
            if problem:
                source.problem(("models", mid, "chat_template"), problem)
        if mid not in checked:
            continue
        variable = model.requires_api_key_env
        if variable is None and model.provider in providers.built:
            variable = providers.built[model.provider][0].api_key_env
        if variable is None:
            continue
        value = environ.get(variable)
        if value is None:
            source.problem(
                ("models", mid), f"environment variable {variable} is not set", at_key=True
            )
        elif not value.strip():
            source.problem(
                ("models", mid), f"environment variable {variable} is empty", at_key=True
            )


def _class_of(config: ProviderConfig, source: _Source, strict: bool) -> type[Any] | None:
    """The provider class to check options against: registered, ours, or any under strict."""
    registered = registry.registered_providers().get(config.name)
    if registered is not None:
        return registered
    if not (strict or config.class_path.startswith("runtime.")):
        return None  # a user's class is imported when first used (or by --strict)
    try:
        return registry.import_provider_class(config.class_path, near=[source.file])
    except registry.ProviderImportError:
        return None  # reported by --strict's import check, or at the first call


#: Stands for "one of our classes, named by an entry of the bundled file": not imported to
#: check options, since the bundled files' options are checked by the test suite
#: (tests/unit/test_lean.py); imported only for a user's model entry that names it.
_SHIPPED = object()


def _check_options(providers: _Section, models: _Section, *, strict: bool) -> None:
    """Provider and model ``options`` against the class's ``Options`` / ``ModelOptions``.

    Every entry of the user's own files is checked. Entries of the bundled files, as
    shipped, are not checked again at every load (that would import every provider module
    of the catalog): the test suite checks them, unless a class registered in code or
    ``strict`` takes the name.
    """
    shipped: dict[str, bool] = {}

    def as_shipped(source: _Source) -> bool:
        if source.file not in shipped:
            bundled = resources.bundled_path(_FILE_NAMES[source.kind])
            shipped[source.file] = _same_file(source.file, bundled)
        return shipped[source.file]

    classes: dict[str, Any] = {}
    for name, (config, source) in providers.built.items():
        if (
            not strict
            and as_shipped(source)
            and registry.registered_provider(name) is None
            and config.class_path.startswith("runtime.")
        ):
            classes[name] = _SHIPPED
            continue
        cls = classes[name] = _class_of(config, source, strict)
        engines = getattr(cls, "http_engines", None)
        if cls is not None and engines is not None and config.http_engine not in (None, *engines):
            source.problem(
                ("providers", name, "http_engine"),
                f"{cls.__name__} sends through {' or '.join(sorted(engines))} only, not "
                f"{config.http_engine!r} (its SDK needs that client): remove http_engine "
                "here, or use a provider class that speaks HTTP itself",
            )
        if cls is None or not hasattr(cls, "Options"):
            continue
        owner = f"provider {name!r} ({cls.__name__})"
        for path, message, at_key in option_problems(cls.Options, config.options, owner=owner):
            source.problem(("providers", name, "options", *path), message, at_key=at_key)
    for mid, (model, source) in models.built.items():
        cls = classes.get(model.provider)
        if cls is _SHIPPED:
            if as_shipped(source) or not model.options:
                continue
            config, provider_source = providers.built[model.provider]
            cls = classes[model.provider] = _class_of(config, provider_source, strict)
        if cls is None or not hasattr(cls, "ModelOptions") or not model.options:
            continue
        owner = f"provider {model.provider!r} ({cls.__name__})"
        problems = option_problems(cls.ModelOptions, model.options, owner=owner)
        for path, message, at_key in problems:
            source.problem(("models", mid, "options", *path), message, at_key=at_key)


# --------------------------------------------------------------------------- the entry point


def resolve_path(
    kind: Kind, explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> str | os.PathLike[str]:
    """Which file to read: the argument, else $LLM_RUNTIME_<KIND>, else ./<kind>.yaml, else
    the bundled file."""
    if explicit is not None:
        return explicit
    from_env = environ.get(ENV_VARS[kind])
    if from_env:
        return from_env
    local = pathlib.Path(_FILE_NAMES[kind])
    if local.is_file():
        return local
    return resources.bundled_path(_FILE_NAMES[kind])


def load_catalog(
    providers: str | os.PathLike[str] | None = None,
    models: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
    key_models: Iterable[str] | None = None,
    limits: Limits | None = None,
) -> Catalog:
    """Load, check and build the catalog; raise ConfigError listing every problem at once.

    ``strict`` also imports each used provider class, compiles chat templates, and checks
    that the API key variables are set in ``environ`` (default ``os.environ``, which also
    serves discovery) for the models of ``key_models`` (and their fallbacks), by default
    for the models your own files define (not the bundled ones).

    ``limits`` bounds each file (bytes, values read; see ``runtime.yamlpos``); by default
    the built-in bounds, or ``$LLM_RUNTIME_MAX_YAML_BYTES`` / ``$LLM_RUNTIME_MAX_YAML_NODES``.
    """
    # A load allocates many small containers and frees none of them: CPython's cyclic GC
    # would walk all of them again and again (a 10,000-model file spent about half its time
    # there), so it pauses for the load and resumes after, whatever happens.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load_catalog(providers, models, strict, environ, key_models, limits)
    finally:
        if paused:
            gc.enable()


def _load_catalog(
    providers: str | os.PathLike[str] | None,
    models: str | os.PathLike[str] | None,
    strict: bool,
    environ: Mapping[str, str] | None,
    key_models: Iterable[str] | None,
    limits: Limits | None,
) -> Catalog:
    env = os.environ if environ is None else environ
    if limits is None:
        try:
            limits = Limits.from_environ(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    provider_chain = _read_chain(resolve_path("providers", providers, env), "providers", limits)
    model_chain = _read_chain(resolve_path("models", models, env), "models", limits)
    provider_section = _merge(provider_chain, "providers")
    model_section = _merge(model_chain, "models")
    _build(provider_section, "providers", ProviderConfig, "name")
    _build(model_section, "models", ModelConfig, "id")
    settings = _settings(provider_chain)
    templates = _templates(model_chain)
    _check_references(provider_section, model_section)
    if key_models is not None:
        known = list(model_section.raw)
        for mid in key_models:
            if mid not in model_section.raw:
                raise UnknownModelError(mid, did_you_mean(mid, known))
    _check_options(provider_section, model_section, strict=strict)
    if strict:
        _check_strict(provider_section, model_section, env, key_models)

    chain = [*provider_chain, *model_chain]
    order = {source.file: i for i, source in reversed(list(enumerate(chain)))}
    problems = sorted(
        dict.fromkeys(p for source in chain for p in source.problems),
        key=lambda p: (order.get(p.file, 0), p.line, p.column),
    )
    if problems or settings is None:
        raise ConfigError(problems)
    return Catalog(
        providers={name: config for name, (config, _) in provider_section.built.items()},
        models={mid: config for mid, (config, _) in model_section.built.items()},
        templates=templates,
        settings=settings,
        sources=tuple(dict.fromkeys(source.file for source in chain)),
    )
