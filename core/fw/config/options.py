"""Derive option descriptions from config models: the one place types become flags.

A config *bundle* (``EngineConfig``, ``ServeConfig``, ...) is a pydantic model whose
fields are option groups. Its options are flat: ``--max-model-len`` belongs to
``ModelConfig`` but is given on the same command line as ``--block-size``. This module
walks a bundle, describes each option (``OptionSpec``) and builds a bundle from flat
``{option_name: value}`` pairs, reporting validation errors by flag name.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from fw.config.base import ConfigGroup


class ConfigError(ValueError):
    """A bad option value; ``option`` is the flag (``--max-model-len``) it concerns."""

    def __init__(self, option: str | None, message: str):
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}" if option else message)


class UnsupportedOptionError(ConfigError):
    """An option fw knows (vLLM has it) but does not build, given a value that asks for
    what fw lacks; the message is the field's one-line reason."""


@dataclass(frozen=True)
class OptionSpec:
    """Everything the CLI and the docs need to know about one option."""

    name: str  # the field name, e.g. "max_model_len"
    group: type[ConfigGroup]
    group_field: str  # the bundle field holding the group, e.g. "model"
    help: str
    default: Any
    kind: str  # bool | int | float | str | choice | list | json | size
    choices: tuple[Any, ...] = ()
    item_kind: str = "str"  # element kind for list options
    short: str | None = None
    env: str | None = None
    metavar: str | None = None
    hidden: bool = False
    long_flag: str | None = None
    #: see ``fw.config.base.option``: a reason for every non-default value, or per value
    unsupported: str | dict[Any, str] | None = None

    def refusal(self, value: Any) -> str | None:
        """Why fw refuses ``value`` for this option, or None if it takes it."""
        if isinstance(self.unsupported, dict):
            return self.unsupported.get(value) if isinstance(value, (str, int, float, bool)) else None
        if self.unsupported and value != self.default:
            return self.unsupported
        return None

    @property
    def flag(self) -> str:
        return self.long_flag or "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> list[str]:
        """Every spelling, for help: ``--x, --no-x`` or ``--quantization, -q``."""
        if self.kind == "bool":
            return [self.flag, "--no-" + self.flag[2:]]
        return [self.flag] + ([self.short] if self.short else [])

    def display_metavar(self) -> str:
        if self.kind == "bool":
            return ""
        if self.kind == "choice":
            return "{" + ",".join(str(c) for c in self.choices) + "}"
        if self.metavar:
            return self.metavar
        name = self.name.upper()
        return f"{name} [{name} ...]" if self.kind == "list" else name


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _kind_of(annotation: Any, cli: dict[str, Any]) -> tuple[str, tuple[Any, ...], str]:
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if cli.get("json") or origin is dict or annotation is dict:
        return "json", (), "str"
    if origin is Literal:
        return "choice", typing.get_args(annotation), "str"
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (str,)
        item_kind, _, _ = _kind_of(item, {})
        return "list", (), item_kind
    if annotation is bool:
        return "bool", (), "str"
    if annotation is int:
        return ("size" if cli.get("size") else "int"), (), "str"
    if annotation is float:
        return "float", (), "str"
    return "str", (), "str"


def group_fields(bundle: type[BaseModel]) -> list[tuple[str, type[ConfigGroup]]]:
    """The (field name, group class) pairs of a bundle, in declaration order, except that
    the groups a bundle names in ``leading_groups`` come first (a bundle that extends
    another, such as `fw serve`'s, lists its own groups before the inherited ones)."""
    pairs = []
    for field_name, info in bundle.model_fields.items():
        group = _strip_optional(info.annotation)
        if isinstance(group, type) and issubclass(group, ConfigGroup):
            pairs.append((field_name, group))
    leading = getattr(bundle, "leading_groups", ())
    return sorted(pairs, key=lambda pair: leading.index(pair[0]) if pair[0] in leading else len(leading))


def option_specs(bundle: type[BaseModel]) -> list[OptionSpec]:
    """Every option of a bundle, groups in order, options in declaration order."""
    specs = []
    for group_field, group in group_fields(bundle):
        for name, info in group.model_fields.items():
            cli = (info.json_schema_extra or {}).get("cli", {})  # type: ignore[union-attr]
            kind, choices, item_kind = _kind_of(info.annotation, cli)
            specs.append(OptionSpec(
                name=name, group=group, group_field=group_field,
                help=info.description or "", default=info.get_default(call_default_factory=True),
                kind=kind, choices=choices, item_kind=item_kind, short=cli.get("short"),
                env=cli.get("env"), metavar=cli.get("metavar"), hidden=cli.get("hidden", False), long_flag=cli.get("flag"),
                unsupported=cli.get("unsupported"),
            ))
    return specs


def build_bundle(bundle: type[BaseModel], values: dict[str, Any]) -> Any:
    """Build ``bundle`` from flat option values; unknown names and bad values raise
    ``ConfigError`` naming the option, values fw does not build ``UnsupportedOptionError``."""
    specs = {spec.name: spec for spec in option_specs(bundle)}
    per_group: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        key = name.replace("-", "_")
        spec = specs.get(key)
        if spec is None:
            raise ConfigError(None, f"unknown option {name!r}")
        reason = spec.refusal(value)
        if reason is not None:
            what = f"{value!r} is not supported" if isinstance(spec.unsupported, dict) else "not supported"
            raise UnsupportedOptionError(spec.flag, f"{what}: {reason}")
        per_group.setdefault(spec.group_field, {})[key] = value
    groups = {}
    for group_field, group in group_fields(bundle):
        try:
            groups[group_field] = group(**per_group.get(group_field, {}))
        except ValidationError as exc:
            raise _config_error(exc, specs) from None
    try:
        return bundle(**groups)
    except ValidationError as exc:
        raise _config_error(exc, specs) from None


def _config_error(exc: ValidationError, specs: dict[str, OptionSpec]) -> ConfigError:
    first = exc.errors()[0]
    loc = [part for part in first["loc"] if isinstance(part, str)]
    spec = specs.get(loc[-1]) if loc else None
    option = spec.flag if spec else None
    message = first["msg"]
    if first.get("type") == "literal_error":
        message = message.replace("Input should be", "must be")
    if "input" in first and first.get("type") != "value_error":
        message = f"{message} (got {first['input']!r})"
    return ConfigError(option, message.removeprefix("Value error, "))
