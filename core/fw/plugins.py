"""The plugin manager: finds plugins, applies the load/failure policy, builds registries.

Plugins are modules named by entry points of the group ``fw``. fw's own built-ins are
found the same way (the ``fw`` distribution declares them in pyproject.toml).

Environment:

* ``FW_PLUGINS=a,b`` loads only the third-party entry points named ``a`` and ``b``
  (``FW_PLUGINS=`` loads none); fw's own built-ins always load.
* ``FW_STRICT_PLUGINS=1`` turns every plugin problem (import failure, a hook that
  raises, a misspelled hook implementation) from a warning into an error.
* ``FW_TRACE_PLUGINS=1`` logs every hook call with its arguments and results.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from fw import hookspecs
from fw.plugin_trace import TracedPlugin, ensure_visible
from fw.registry import Registry

logger = logging.getLogger("fw.plugins")

ENTRY_POINT_GROUP = "fw"
BUILTIN_DISTRIBUTION = "fw"

#: kind -> (registration hook, label used in messages)
KINDS: dict[str, tuple[str, str]] = {
    "command": ("fw_register_commands", "command"),
    "model": ("fw_register_models", "model architecture"),
    "load_format": ("fw_register_load_formats", "load format"),
    "quantization": ("fw_register_quantization_methods", "quantization method"),
    "attention_backend": ("fw_register_attention_backends", "attention backend"),
    "proposer": ("fw_register_proposers", "speculative proposer"),
    "logits_processor": ("fw_register_logits_processors", "logits processor"),
    "pooler": ("fw_register_poolers", "pooler"),
    "tool_parser": ("fw_register_tool_parsers", "tool parser"),
    "reasoning_parser": ("fw_register_reasoning_parsers", "reasoning parser"),
    "structured_output_backend": (
        "fw_register_structured_output_backends",
        "structured-output backend",
    ),
}


class PluginError(RuntimeError):
    """A plugin problem under FW_STRICT_PLUGINS=1 (a warning otherwise)."""


@dataclass
class PluginInfo:
    """What `fw plugins` shows about one loaded (or failed) plugin."""

    name: str
    distribution: str | None
    version: str | None
    module: str | None
    builtin: bool
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    registers: dict[str, list[str]] = field(default_factory=dict)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def strict() -> bool:
    return _flag("FW_STRICT_PLUGINS")


def report_problem(message: str) -> None:
    """One policy for every plugin problem: a warning, or an error in strict mode."""
    if strict():
        raise PluginError(message)
    logger.warning("%s", message)


class PluginHost:
    """Owns the pluggy manager, the plugin list and the registries of one process."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] = {}
        self._lock = threading.RLock()
        self.tracing = _flag("FW_TRACE_PLUGINS")

    # -- loading ---------------------------------------------------------------------

    def load_entry_points(self) -> None:
        allow = os.environ.get("FW_PLUGINS")
        allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
        # Built-ins first, so a third-party plugin registering the same name wins.
        ordered = sorted(eps, key=lambda ep: (_distribution_name(ep) != BUILTIN_DISTRIBUTION, ep.name))
        seen: set[str] = set()
        for ep in ordered:
            dist = _distribution_name(ep)
            builtin = dist == BUILTIN_DISTRIBUTION
            if ep.name in seen:
                continue
            seen.add(ep.name)
            if not builtin and allowed is not None and ep.name not in allowed:
                continue
            info = PluginInfo(
                name=ep.name, distribution=dist, version=_distribution_version(ep),
                module=ep.value, builtin=builtin,
            )
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is reported
                info.error = f"{type(exc).__name__}: {exc}"
                report_problem(f"plugin {ep.name!r} ({ep.value}) failed to load: {info.error}")
                continue
            self.register_module(module, ep.name, info)
        self.check_pending()

    def register_module(self, module: Any, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object (a module or any object with hook implementations)."""
        with self._lock:
            if info is None:
                info = PluginInfo(name=name, distribution=None, version=None,
                                  module=getattr(module, "__name__", None), builtin=False)
                self.plugins[name] = info
            self.pm.register(TracedPlugin(module, name, hookspecs.PROJECT_NAME) if self.tracing else module,
                             name=name)
            info.hooks = sorted(
                impl_name for impl_name in dir(module)
                if impl_name.startswith("fw_") and self.pm.parse_hookimpl_opts(module, impl_name) is not None
            )
            self._registries.clear()

    def unregister(self, name: str) -> None:
        with self._lock:
            self.pm.unregister(name=name)
            self.plugins.pop(name, None)
            self._registries.clear()

    def check_pending(self) -> list[str]:
        """Report hook implementations that match no hook spec (usually a misspelling)."""
        known = [n for n in dir(hookspecs) if n.startswith("fw_")]
        problems = []
        for hook_name, caller in vars(self.pm.hook).items():
            if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(hook_name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(
                    f"plugin {impl.plugin_name!r} implements unknown hook {hook_name!r}{hint}"
                )
        for message in problems:
            report_problem(message)
        return problems

    # -- registries ------------------------------------------------------------------

    def registry(self, kind: str) -> Registry:
        with self._lock:
            if kind not in self._registries:
                self._registries[kind] = self._build_registry(kind)
            return self._registries[kind]

    def _build_registry(self, kind: str) -> Registry:
        hook_name, label = KINDS[kind]
        registry = Registry(kind, label)
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        # Called per implementation, so each name is attributed to its plugin and one
        # plugin's failure does not hide the others' names.
        for impl in caller.get_hookimpls():  # registration order: built-ins first
            plugin = impl.plugin_name

            def register(name, target, *, aliases=(), _plugin=plugin, **extra):
                registry.add(name, target, plugin=_plugin, aliases=aliases, **extra)
                info = self.plugins.get(_plugin)
                if info is not None:
                    info.registers.setdefault(kind, []).append(name)

            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break fw
                report_problem(f"plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}")
        return registry

    def build_all_registries(self) -> None:
        for kind in KINDS:
            self.registry(kind)

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a non-registration hook on every plugin; returns their results."""
        return getattr(self.pm.hook, hook_name)(**kwargs)


def _distribution_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _distribution_version(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else None


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first use."""
    global _host
    with _host_lock:
        if _host is None:
            host = PluginHost()
            if host.tracing:
                ensure_visible()
            host.load_entry_points()
            _host = host
        return _host


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (one of KINDS), built from every loaded plugin."""
    return get_host().registry(kind)


def load(kind: str, name: str) -> Any:
    """Resolve ``name`` (or an alias) of ``kind`` and import its target."""
    return registry(kind).load(name)


def register_plugin(obj: Any, name: str) -> Callable[[], None]:
    """Register an in-process plugin object (tests, ``--tool-parser-plugin``).

    Returns a function that unregisters it again.
    """
    host = get_host()
    host.register_module(obj, name)
    host.check_pending()
    return lambda: host.unregister(name)
