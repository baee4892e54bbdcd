"""Command-line rewriting done before click parses: the vLLM spellings click lacks.

* JSON options given as dotted keys: ``--rope-scaling.factor 2.0``,
  ``--rope-scaling.rope_type=linear``, ``--opt.items+ a`` / ``--opt.items+=a,b`` (append),
  folded into one ``--rope-scaling '{"factor": 2.0, ...}'``.
* List options given as several values after one flag (``--served-model-name a b``),
  split into one flag per value.
"""

from __future__ import annotations

import json
from typing import Any

import click


def _parse_scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_path(target: dict[str, Any], keys: list[str], value: Any, append: bool, flag: str) -> None:
    node = target
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise click.UsageError(f"{flag}: {key!r} is not an object, cannot set {'.'.join(keys)}")
        node = child
    last = keys[-1]
    if append:
        items = node.setdefault(last, [])
        if not isinstance(items, list):
            raise click.UsageError(f"{flag}: {'.'.join(keys)} is not a list, cannot append with '+'")
        items.extend(_parse_scalar(part) for part in str(value).split(","))
    else:
        node[last] = _parse_scalar(value)


def fold_json_options(args: list[str], json_flags: set[str]) -> list[str]:
    """Fold dotted-key spellings of JSON options into one JSON value per option."""
    out: list[str] = []
    merged: dict[str, Any] = {}
    slot: dict[str, int] = {}  # where each folded option goes in `out`
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        head, has_eq, inline = token.partition("=")
        base, dot, path = head.partition(".")
        if token.startswith("--") and base in json_flags:
            if has_eq:
                value = inline
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                raise click.UsageError(f"option {head} requires a value")
            if base not in slot:
                slot[base] = len(out)
                out.append(base)
                out.append("")  # filled in below
            if dot:
                current = merged.setdefault(base, {})
                if not isinstance(current, dict):
                    raise click.UsageError(f"{base} is not a JSON object; cannot set {head}")
                append = path.endswith("+")
                _set_path(current, path.rstrip("+").split("."), value, append, base)
            else:
                try:
                    merged[base] = json.loads(value)
                except json.JSONDecodeError:
                    merged[base] = value  # left for the option's type to reject, naming it
        else:
            out.append(token)
        i += 1
    for base, index in slot.items():
        value = merged[base]
        out[index + 1] = value if isinstance(value, str) else json.dumps(value)
    return out


def split_multi_values(args: list[str], list_flags: set[str]) -> list[str]:
    """``--flag a b c`` -> ``--flag a --flag b --flag c`` for list options."""
    out: list[str] = []
    current: str | None = None
    for token in args:
        if token == "--":
            current = None
        if token.startswith("-"):
            head = token.partition("=")[0]
            current = head if (head in list_flags and "=" not in token) else None
            out.append(token)
            continue
        if current is not None and out and out[-1] != current:
            out.append(current)
        out.append(token)
    return out
