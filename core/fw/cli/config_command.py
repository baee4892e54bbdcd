"""A click command whose options are derived from a config bundle.

``config_command(ServeConfig, ...)`` turns every field of every option group of the
bundle into a flag, adds ``--config FILE.yaml`` and the ``--help=`` forms, and calls the
command's function with the validated bundle. Bad values exit with status 2 and a
message naming the flag, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource

from fw.cli import help as helptext
from fw.cli.argv import fold_json_options, split_multi_values
from fw.cli.types import JSON, SIZE
from fw.config.options import (ConfigError, OptionSpec, UnsupportedOptionError, build_bundle, group_fields,
                               option_specs)

_KIND_TYPES = {"int": click.INT, "float": click.FLOAT, "str": click.STRING, "size": SIZE, "json": JSON}


class _ChoiceKeepingType(click.Choice):
    """A Choice that returns the original choice object (16, not "16")."""

    def __init__(self, choices: tuple[Any, ...]):
        self._originals = {str(c): c for c in choices}
        super().__init__(list(self._originals))

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            value = str(value)
        return self._originals[super().convert(value, param, ctx)]


class _ListItemType(click.ParamType):
    """One value of a list option; a JSON list (``'["a","b"]'``) counts as several."""

    name = "list"

    def __init__(self, item: click.ParamType):
        self.item = item

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.lstrip().startswith("["):
            parsed = JSON.convert(value, param, ctx)
            if not isinstance(parsed, list):
                self.fail(f"expected a JSON list, got {value!r}", param, ctx)
            return [self._item(v, param, ctx) for v in parsed]
        if isinstance(value, list):
            return [self._item(v, param, ctx) for v in value]
        return [self._item(value, param, ctx)]

    def _item(self, value, param, ctx):
        # A JSON object in a list of strings (--lora-modules '[{"name": ...}]', or one
        # from YAML) stays JSON text for the config model to parse, not a Python repr.
        if self.item is click.STRING and isinstance(value, (dict, list)):
            return json.dumps(value)
        return self.item.convert(value, param, ctx)


def _click_param(spec: OptionSpec) -> click.Option:
    common: dict[str, Any] = {"envvar": spec.env, "show_envvar": bool(spec.env)}
    if spec.kind == "bool":
        return click.Option([f"{spec.flag}/--no-{spec.flag[2:]}", spec.name],
                            default=spec.default, **common)
    names = [spec.flag, spec.name] + ([spec.short] if spec.short else [])
    if spec.kind == "choice":
        return click.Option(names, type=_ChoiceKeepingType(spec.choices), default=spec.default, **common)
    if spec.kind == "list":
        item = _KIND_TYPES.get(spec.item_kind, click.STRING)
        return click.Option(names, type=_ListItemType(item), multiple=True, **common)
    return click.Option(names, type=_KIND_TYPES[spec.kind], default=spec.default, **common)


#: the options every config command has beside its bundle's (flag, names, help)
_GENERAL = (
    ("--help", "-h, --help [=all|=GROUP|=TEXT]",
     "Show this overview; =all every option; =GROUP one option group; =TEXT every option "
     "whose name contains TEXT."),
    ("--config", "--config CONFIG",
     "Read options from a YAML file whose keys are long option names; the command line wins "
     "over the file."),
)


class ConfigCommand(click.Command):
    def __init__(
        self,
        name: str,
        bundle: type,
        run: Callable[[Any], Any],
        *,
        help: str,
        positional: str | None = None,
        positional_help: str = "",
    ):
        self.bundle = bundle
        self.specs = option_specs(bundle)
        self.spec_by_name = {s.name: s for s in self.specs}
        self.name_by_key = {s.flag[2:].replace("-", "_"): s.name for s in self.specs}
        self.positional = positional
        self.positional_help = positional_help
        self.run = run
        params: list[click.Parameter] = [_click_param(s) for s in self.specs]
        if positional:
            params.insert(0, click.Argument([f"{positional}_tag"], required=False))
        super().__init__(name, params=params, help=help, add_help_option=False)

    # -- parsing ---------------------------------------------------------------------

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        query = self._help_query(args)
        if query is not None:
            click.echo(self.render_help(ctx, query), color=ctx.color)
            ctx.exit(0)
        args, config_path = self._pop_config_path(args)
        if config_path is not None:
            ctx.default_map = {**(ctx.default_map or {}), **self._load_yaml(config_path)}
        json_flags = {s.flag for s in self.specs if s.kind == "json"}
        list_flags = {s.flag for s in self.specs if s.kind == "list"}
        args = split_multi_values(fold_json_options(args, json_flags), list_flags)
        return super().parse_args(ctx, args)

    def _help_query(self, args: list[str]) -> str | None:
        for i, token in enumerate(args):
            if token == "--":
                return None
            if token in ("-h", "--help"):
                nxt = args[i + 1] if i + 1 < len(args) else None
                return nxt if nxt and not nxt.startswith("-") and token == "--help" else ""
            if token.startswith("--help="):
                return token.partition("=")[2]
        return None

    @staticmethod
    def _pop_config_path(args: list[str]) -> tuple[list[str], str | None]:
        for i, token in enumerate(args):
            if token == "--config":
                if i + 1 >= len(args):
                    raise click.UsageError("option --config requires a YAML file path")
                return args[:i] + args[i + 2:], args[i + 1]
            if token.startswith("--config="):
                return args[:i] + args[i + 1:], token.partition("=")[2]
        return args, None

    def _load_yaml(self, path: str) -> dict[str, Any]:
        import yaml

        file = Path(path)
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="'--config'")
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"{path} is not valid YAML: {exc}", param_hint="'--config'")
        if not isinstance(data, dict):
            raise click.BadParameter(f"{path} must hold a mapping of option names to values",
                                     param_hint="'--config'")
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            name = self.name_by_key.get(name, name)
            if self.positional and name == self.positional and name not in self.spec_by_name:
                name = f"{self.positional}_tag"
            elif name not in self.spec_by_name:
                raise click.BadParameter(
                    f"unknown key {key!r} in {path}; keys are long option names "
                    f"such as {self.specs[0].flag[2:]!r}",
                    param_hint="'--config'",
                )
            spec = self.spec_by_name.get(name)
            if spec is not None and spec.kind == "list" and not isinstance(value, list):
                value = [value]
            values[name] = value
        return values

    # -- running ---------------------------------------------------------------------

    def invoke(self, ctx: click.Context) -> Any:
        given: dict[str, Any] = {}
        for name, value in ctx.params.items():
            if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
                continue
            spec = self.spec_by_name.get(name)
            if spec is not None and spec.kind == "list":
                value = [v for chunk in value for v in chunk]
            given[name] = value
        if self.positional:
            tag = given.pop(f"{self.positional}_tag", None)
            if tag is not None:
                if given.get(self.positional) not in (None, tag):
                    raise click.UsageError(
                        f"the positional {self.positional} ({tag!r}) and --{self.positional} "
                        f"({given[self.positional]!r}) disagree; give one"
                    )
                given[self.positional] = tag
        try:
            config = build_bundle(self.bundle, given)
        except UnsupportedOptionError as exc:
            raise click.UsageError(f"{exc.option}: {exc.message}", ctx) from None
        except ConfigError as exc:
            raise click.BadParameter(exc.message, param_hint=f"'{exc.option}'" if exc.option else None)
        return ctx.invoke(self.run, config)

    # -- help --------------------------------------------------------------------------

    def _groups(self) -> list[tuple[str, str]]:
        return [(g.title(), g.group_help) for _, g in group_fields(self.bundle)]

    def _usage(self, ctx: click.Context) -> str:
        positional = f" [{self.positional}_tag]" if self.positional else ""
        return f"usage: {ctx.command_path}{positional} [options]"

    def render_help(self, ctx: click.Context, query: str) -> str:
        usage = self._usage(ctx)
        if query == "":
            return self._overview(ctx)
        if query.lower() == "all":
            body = [self._general_section()]
            for title, description in self._groups():
                body.append(helptext.format_group(
                    title, description, [s for s in self.specs if s.group.title() == title]))
            return "\n\n".join([usage, *body])
        group = helptext.find_group(query, self._groups())
        if group is not None:
            description = dict(self._groups())[group]
            specs = [s for s in self.specs if s.group.title() == group]
            return "\n\n".join([usage, helptext.format_group(group, description, specs)])
        general = [helptext.format_entry(names, text) for flag, names, text in _GENERAL
                   if helptext.normalize(query) in helptext.normalize(flag)]
        matches = helptext.matching_options(query, self.specs)
        if not matches and not general:
            raise click.UsageError(
                f"no option group or option matches {query!r}; "
                f"`{ctx.command_path} --help` lists the groups", ctx
            )
        return "\n".join([f"Arguments matching '{query}':", *general,
                          *(helptext.format_option(s) for s in matches)])

    def _general_section(self) -> str:
        return "options:\n" + "\n".join(helptext.format_entry(names, text) for _, names, text in _GENERAL)

    def _overview(self, ctx: click.Context) -> str:
        parts = [self._usage(ctx), helptext.format_paragraph(self.help or "")]
        if self.positional:
            parts.append("positional arguments:\n" + helptext.format_entry(
                f"{self.positional}_tag", self.positional_help))
        parts.append(self._general_section())
        groups = self._groups()
        if len(groups) <= 1:
            # One group (or none) leaves nothing to choose between: show its options now.
            for title, description in groups:
                parts.append(helptext.format_group(title, description, self.specs))
            return "\n\n".join(p for p in parts if p)
        listing = "\n".join(helptext.format_entry(t, d) for t, d in groups)
        parts.append("Config groups (--help=<group> lists a group's options):\n" + listing)
        parts.append("Use --help=all to show every option, or --help=<text> to search option names.")
        return "\n\n".join(p for p in parts if p)


def config_command(bundle: type, *, name: str, help: str, positional: str | None = None,
                   positional_help: str = "") -> Callable[[Callable[[Any], Any]], ConfigCommand]:
    """Decorator: ``@config_command(ServeConfig, name="serve", help=...)`` over
    ``def serve(config): ...``."""

    def wrap(run: Callable[[Any], Any]) -> ConfigCommand:
        return ConfigCommand(name, bundle, run, help=help, positional=positional,
                             positional_help=positional_help)

    return wrap
