"""The `--help`, `--help=all`, `--help=<group>` and `--help=<text>` pages, argparse-style."""

from __future__ import annotations

import shutil
import textwrap
from typing import Iterable

from fw.config.options import OptionSpec

HELP_COLUMN = 24


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def _default_text(spec: OptionSpec) -> str:
    default = spec.default
    if spec.kind == "json" and default in ({}, None):
        return str(default)
    return repr(default) if isinstance(default, str) else str(default)


def format_entry(names: str, help_text: str) -> str:
    """Two-column argparse layout: names, then help wrapped at column 24."""
    width = _width()
    indent = " " * HELP_COLUMN
    lead = "  " + names
    wrapped = textwrap.wrap(help_text, width - HELP_COLUMN) or [""]
    if len(lead) <= HELP_COLUMN - 2:
        first = lead.ljust(HELP_COLUMN) + wrapped[0]
        rest = wrapped[1:]
    else:
        first = lead + "\n" + indent + wrapped[0]
        rest = wrapped[1:]
    return "\n".join([first, *(indent + line for line in rest)])


def format_paragraph(text: str) -> str:
    """Prose (a command's description) wrapped to the terminal."""
    return textwrap.fill(text, _width())


def unsupported_note(spec: OptionSpec) -> str:
    """What fw refuses of an option (vLLM's, not built here), for help and docs."""
    if isinstance(spec.unsupported, str):
        return f" [not supported by fw: {spec.unsupported}]"
    if spec.unsupported:
        refused = "; ".join(f"{value!r}: {reason}" for value, reason in spec.unsupported.items())
        return f" [not supported by fw: {refused}]"
    return ""


def format_option(spec: OptionSpec) -> str:
    metavar = spec.display_metavar()
    names = ", ".join(f"{flag} {metavar}" if metavar and not flag.startswith("--no-") else flag
                      for flag in spec.flags)
    help_text = spec.help + unsupported_note(spec)
    if spec.env:
        help_text += f" [env: {spec.env}]"
    return format_entry(names, f"{help_text} (default: {_default_text(spec)})")


def format_group(title: str, description: str, specs: Iterable[OptionSpec]) -> str:
    lines = [f"{title}:"]
    if description:
        lines.append("  " + description)
        lines.append("")
    lines.extend(format_option(spec) for spec in specs if not spec.hidden)
    return "\n".join(lines)


def normalize(text: str) -> str:
    return text.strip().lower().replace("_", "-").lstrip("-")


def find_group(query: str, groups: list[tuple[str, str]]) -> str | None:
    """The group whose title matches ``query`` case-insensitively (``lora`` = ``LoRAConfig``)."""
    wanted = query.strip().lower()
    for title, _ in groups:
        low = title.lower()
        if wanted in (low, low.removesuffix("config")) or wanted + "config" == low:
            return title
    return None


def matching_options(query: str, specs: Iterable[OptionSpec]) -> list[OptionSpec]:
    wanted = normalize(query)
    return [s for s in specs if not s.hidden and any(wanted in normalize(f) for f in s.flags)]
