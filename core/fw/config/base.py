"""The building blocks of fw's configuration: option groups and their fields.

Every command-line option of fw is a field of a ``ConfigGroup``. The field's help text,
default, type and flag spelling live here and nowhere else; the CLI, ``--help=``,
YAML ``--config`` keys and docs/cli.md are all derived from these models.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fw.config.sizes import parse_size


def option(
    default: Any = None,
    help: str = "",
    *,
    short: str | None = None,
    size: bool = False,
    json: bool = False,
    metavar: str | None = None,
    env: str | None = None,
    hidden: bool = False,
    flag: str | None = None,
    unsupported: str | dict[Any, str] | None = None,
    **field_kwargs: Any,
) -> Any:
    """A config field that is also a command-line option.

    :param help: the option's help text, shown by ``--help``.
    :param short: an extra short spelling, e.g. ``"-q"``.
    :param size: an integer that accepts human-readable sizes (``1k``=1000, ``1K``=1024).
    :param json: a JSON value: a JSON string, or dotted keys (``--opt.key value``).
    :param env: an environment variable read when the option is not given.
    :param hidden: accepted, but not listed in help (deprecated spellings).
    :param flag: the long flag when it cannot be the field name (``--json``).
    :param unsupported: a vLLM option fw knows but does not build: the one-line reason
        (why, and what to use instead) it is refused with when given a value other than
        ``default``; or ``{value: reason}`` when only some values are refused. The option
        still parses and shows in ``--help``, so a vLLM command line fails with that
        reason instead of "No such option", and is never accepted and ignored.
    """
    cli = {"flag": flag, "short": short, "size": size, "json": json, "metavar": metavar, "env": env, "hidden": hidden,
           "unsupported": unsupported}
    return Field(default, description=help, json_schema_extra={"cli": cli}, **field_kwargs)


class ConfigGroup(BaseModel):
    """One option group (``--help=<group>`` shows it); subclasses set the title and help."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    #: the name shown in ``--help`` and matched by ``--help=<group>`` (case-insensitive)
    group_title: ClassVar[str] = ""
    #: one line describing the group
    group_help: ClassVar[str] = ""

    @classmethod
    def title(cls) -> str:
        return cls.group_title or cls.__name__

    @model_validator(mode="before")
    @classmethod
    def _parse_sizes(cls, values: Any) -> Any:
        """Size options take "512M" or "25.6k" wherever they are set, not only on the CLI."""
        if not isinstance(values, dict):
            return values
        for name, info in cls.model_fields.items():
            if isinstance(values.get(name), str) and ((info.json_schema_extra or {}).get("cli") or {}).get("size"):
                values = {**values, name: parse_size(values[name])}
        return values
