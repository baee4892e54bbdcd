"""The plain `--help` of a command with a single option group shows its options at once."""

from __future__ import annotations

from click.testing import CliRunner
from pydantic import BaseModel, Field

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, option


class SmallOptions(ConfigGroup):
    group_title = "Small options"
    group_help = "The only group."

    url: str = option("http://x", "Where to go.")
    quick: str | None = option(None, "Say it once.", short="-q", metavar="MESSAGE")


class SmallConfig(BaseModel):
    options: SmallOptions = Field(default_factory=SmallOptions)


class NoOptions(BaseModel):
    """A command without options."""


@config_command(SmallConfig, name="small", help="A command with one group.")
def small(config: SmallConfig) -> None:
    pass


@config_command(NoOptions, name="bare", help="A command without options.")
def bare(config: NoOptions) -> None:
    pass


def test_single_group_overview_lists_its_options():
    result = CliRunner().invoke(small, ["--help"], prog_name="fw small")
    assert result.exit_code == 0
    assert "Small options:\n  The only group." in result.output
    assert "--url URL" in result.output and "--quick MESSAGE, -q MESSAGE" in result.output
    assert "Config groups" not in result.output


def test_command_without_options_lists_no_groups():
    result = CliRunner().invoke(bare, ["--help"], prog_name="fw bare")
    assert result.exit_code == 0
    assert "A command without options." in result.output and "Config groups" not in result.output
