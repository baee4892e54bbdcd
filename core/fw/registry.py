"""Name -> lazy target tables, one per kind of pluggable thing.

A plugin registers ``"package.module:Attribute"`` strings, so building a table imports
nothing heavy; the target is imported the first time its name is used.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("fw.registry")


class UnknownNameError(ValueError):
    """A name that no plugin registered; the message lists the available names."""

    def __init__(self, label: str, name: str, available: list[str]):
        self.label, self.name, self.available = label, name, available
        listing = ", ".join(available) if available else "none registered"
        super().__init__(f"unknown {label} {name!r}; available: {listing}")


class TargetImportError(ImportError):
    """A registered target that cannot be imported; names the plugin that registered it."""


def import_target(target: str) -> Any:
    """Import ``"package.module:Attribute.sub"`` and return the attribute."""
    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"target {target!r} is not of the form 'package.module:Attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry:
    """One registered name."""

    name: str
    target: Any
    plugin: str
    aliases: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        if not isinstance(self.target, str):
            return self.target
        try:
            return import_target(self.target)
        except (ImportError, AttributeError) as exc:
            raise TargetImportError(
                f"{self.name!r} (registered by plugin {self.plugin!r}) cannot be loaded "
                f"from {self.target!r}: {exc}"
            ) from exc


class Registry:
    """The table of one kind, e.g. every tool parser."""

    def __init__(self, kind: str, label: str):
        self.kind = kind
        self.label = label
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}

    def add(self, name: str, target: Any, *, plugin: str, aliases=(), **extra: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"plugin {plugin!r} registered a {self.label} without a name")
        previous = self._entries.get(name)
        if previous is not None and previous.plugin != plugin:
            logger.warning(
                "%s %r is registered by both %r and %r; using %r's",
                self.label, name, previous.plugin, plugin, plugin,
            )
        self._entries[name] = Entry(name, target, plugin, tuple(aliases), extra)
        self._loaded.pop(name, None)
        for alias in aliases:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise UnknownNameError(self.label, name, self.names())

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def entry(self, name: str) -> Entry:
        return self._entries[self.canonical(name)]

    def load(self, name: str) -> Any:
        """Import (once) and return the target registered under ``name``."""
        canonical = self.canonical(name)
        if canonical not in self._loaded:
            self._loaded[canonical] = self._entries[canonical].load()
        return self._loaded[canonical]
