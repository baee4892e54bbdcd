"""From names to logits-processor classes, and which ones a request may name.

A name is one a plugin registered (``fw_register_logits_processors``), or an import path,
``package.module:Class`` or vLLM's fully qualified ``package.module.Class``. Processors
installed under the ``fw.logits_processors`` entry-point group are enabled without being
named, as vLLM enables its ``vllm.logits_processors`` group. A request may name processors
of its own (``logits_processors``, vLLM's older per-request form) only when
``--logits-processor-pattern`` is set and matches each name, as vLLM allows them.

Nothing here imports torch: the server checks ``--logits-processors`` before it loads the
engine (a processor's own module may import what it likes).
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from fw import plugins
from fw.errors import InvalidParameterError
from fw.logits_processors.interface import LogitsProcessor
from fw.registry import import_target

#: the entry-point group of installed processors (``name = "package.module:Class"``)
ENTRY_POINT_GROUP = "fw.logits_processors"
KIND = "logits_processor"


def import_class(path: str) -> Any:
    """``package.module:Class`` or vLLM's ``package.module.Class`` (ImportError or
    AttributeError when it is not there)."""
    if ":" not in path:
        module, _, attr = path.rpartition(".")
        path = f"{module}:{attr}"
    try:
        return import_target(path)
    except ValueError as exc:  # no module or no attribute named
        raise ImportError(f"{path!r} is not an import path like 'package.module:Class'") from exc


def _checked(cls: Any, name: str) -> type[LogitsProcessor]:
    if not (isinstance(cls, type) and issubclass(cls, LogitsProcessor)):
        raise TypeError(f"{name!r} is not a logits processor (a subclass of fw.logits_processors.LogitsProcessor)")
    return cls


def resolve(name: str) -> type[LogitsProcessor]:
    """The class ``name`` stands for: a registered name first, else an import path.
    ValueError with the reason (listing the registered names) when it is neither."""
    registry = plugins.registry(KIND)
    if name in registry:
        return _checked(registry.load(name), name)
    if "." in name or ":" in name:
        try:
            return _checked(import_class(name), name)
        except (ImportError, AttributeError, TypeError) as exc:
            raise ValueError(f"logits processor {name!r} cannot be loaded: {exc}") from None
    available = ", ".join(registry.names()) or "none registered"
    raise ValueError(f"unknown logits processor {name!r}; available: {available}, or an import path "
                     "'package.module:Class'")


def installed() -> dict[str, str]:
    """The processors of the ``fw.logits_processors`` entry-point group: name -> target."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def server_classes(names: list[str] | None) -> list[tuple[str, type[LogitsProcessor]]]:
    """Every processor the engine enables: the installed ones, then ``--logits-processors``'
    (each once). ValueError naming the flag for a name that resolves to nothing."""
    chosen: dict[str, type[LogitsProcessor]] = {}
    for name, target in installed().items():
        try:
            chosen.setdefault(target, _checked(import_class(target), target))
        except (ImportError, AttributeError, TypeError) as exc:
            raise ValueError(f"logits processor {name!r} of the {ENTRY_POINT_GROUP} entry points cannot be "
                             f"loaded: {exc}") from None
    for name in names or ():
        try:
            cls = resolve(name)
        except ValueError as exc:
            raise ValueError(f"--logits-processors: {exc}") from None
        chosen.setdefault(f"{cls.__module__}:{cls.__qualname__}", cls)
    return [(key, cls) for key, cls in chosen.items()]


def check_request_names(names: list[str], pattern: str | None) -> None:
    """vLLM's rule for a request's own ``logits_processors``: refused without
    ``--logits-processor-pattern``, and each name must match it (``re.match``)."""
    if not names:
        return
    if pattern is None:
        raise InvalidParameterError(
            "logits_processors", "this server takes no per-request logits processors (start it with "
                                 "--logits-processor-pattern to allow some)")
    for name in names:
        if not re.match(pattern, name):
            raise InvalidParameterError(
                "logits_processors", f"logits processor {name!r} is not allowed by this server "
                                     "(see --logits-processor-pattern)")
