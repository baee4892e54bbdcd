"""Where run-time LoRA loads may read from: --lora-path-roots.

Loading an adapter by path reads the server's file system on a client's behalf. When
every kind of path got its own answer ("does not exist", "not a folder",
"adapter_config.json is missing", a PermissionError as a 500, ``~user`` expanded), the
loader was a map of the file system for anyone who could call it. Now a path must be
absolute (``~`` is not expanded), lie inside one of the roots once symbolic links are
resolved, and be a folder holding ``adapter_config.json``; any other path (outside,
missing, a file, unreadable) gets the same error, which says nothing about the path
beyond echoing it. What is inside the roots is the operator's to expose: there, errors
name what is wrong with the adapter (without echoing the files' contents).
"""

from __future__ import annotations

import os

from fw.errors import InvalidParameterError

#: the file that makes a folder a PEFT adapter (here, not in fw.lora.peft: this module is
#: imported by the server and must not import torch)
CONFIG_FILE = "adapter_config.json"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _allowed(path: str, roots: list[str]) -> bool:
    if not os.path.isabs(path):
        return False
    real = os.path.realpath(path)
    if not any(_inside(real, os.path.realpath(root)) for root in roots):
        return False
    return os.path.isdir(real) and os.path.isfile(os.path.join(real, CONFIG_FILE))


def check_adapter_path(path: str, roots: list[str]) -> None:
    """Raise the one ``lora_path`` error unless ``path`` is an adapter folder inside
    ``roots`` (absolute paths)."""
    try:
        allowed = _allowed(path, roots)
    except (OSError, ValueError):  # unreadable, or a NUL in the path
        allowed = False
    if not allowed:
        raise InvalidParameterError(
            "lora_path", f"no LoRA adapter this server may load at {path!r}: run-time loads read only "
                         "adapter folders inside --lora-path-roots (or the folders of --lora-modules)")
