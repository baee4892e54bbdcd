"""`fw`: the command group. Subcommands come from the `fw_register_commands` hook and are
imported only when run, so `fw --help` never imports torch."""

from __future__ import annotations

import logging
import sys

import click

from fw.version import __version__


class PluginCommandGroup(click.Group):
    """Lists commands from the command registry; imports one only when it is used."""

    def _registry(self):
        from fw.plugins import registry

        return registry("command")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._registry().names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        registry = self._registry()
        if name not in registry:
            return None
        command = registry.load(name)
        if not isinstance(command, click.Command):
            raise click.ClickException(
                f"command {name!r} from plugin {registry.entry(name).plugin!r} is not a click.Command"
            )
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(e.name, e.extra.get("help", "")) for e in self._registry().entries()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=PluginCommandGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-v", "--version", prog_name="fw", message="%(version)s")
def cli() -> None:
    """fw: LLM inference and serving, OpenAI-compatible, with plugins."""


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S", stream=sys.stderr,
    )
    from fw.plugins import PluginError

    try:
        cli.main(args=argv, prog_name="fw")
    except PluginError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
