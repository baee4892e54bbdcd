"""``FW_TRACE_PLUGINS=1``: log every hook call with its arguments and its result.

When tracing is on, the plugin host registers a traced stand-in for each plugin: the
same hook implementations, each wrapped. A call is therefore traced however fw makes
it, through pluggy (``pm.hook.fw_x(...)``) or one implementation at a time (registries,
the chain of ASGI wrappers). Registration hooks return nothing; what they do is call
``register``, so each ``register(...)`` call is logged too, as the hook's result.
"""

from __future__ import annotations

import functools
import inspect
import logging
import reprlib
import sys
from typing import Any, Callable

logger = logging.getLogger("fw.plugins")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 240
_short.maxlist = _short.maxdict = 12


def short_repr(value: Any) -> str:
    """A repr bounded in size: a config or an app object must not flood the log."""
    return _short.repr(value)


def ensure_visible() -> None:
    """Trace lines are INFO: give them a stderr handler when nothing configured logging
    (a plain script), so the switch works outside the ``fw`` CLI too."""
    logging.getLogger("fw").setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


class TracedRegister:
    """A ``register`` callback that logs each registration before passing it on."""

    def __init__(self, register: Callable[..., Any], prefix: str):
        self._register = register
        self._prefix = prefix

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        shown = [short_repr(a) for a in args] + [f"{k}={short_repr(v)}" for k, v in kwargs.items()]
        logger.info("%s register(%s)", self._prefix, ", ".join(shown))
        return self._register(*args, **kwargs)

    def __repr__(self) -> str:
        return "<register callback>"


def traced_function(hook_name: str, plugin_name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a hook implementation) logging its call, its result or its error."""
    signature = inspect.signature(function)
    prefix = f"hook {hook_name} [plugin {plugin_name}]"

    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        if callable(bound.arguments.get("register")):
            bound.arguments["register"] = TracedRegister(bound.arguments["register"], prefix)
        shown = ", ".join(f"{name}={short_repr(value)}" for name, value in bound.arguments.items())
        logger.info("%s called with %s", prefix, shown or "no arguments")
        try:
            result = function(*bound.args, **bound.kwargs)
        except BaseException as exc:
            logger.info("%s raised %s", prefix, short_repr(exc))
            raise
        logger.info("%s returned %s", prefix, short_repr(result))
        return result

    return traced


class TracedPlugin:
    """Stands in for a plugin module: its ``fw_*`` hook implementations, traced.

    ``functools.wraps`` keeps each function's hookimpl marker and (through
    ``__wrapped__``) its signature, so pluggy registers the stand-in exactly as it
    would the module.
    """

    def __init__(self, plugin: Any, plugin_name: str, project_name: str):
        self.__name__ = getattr(plugin, "__name__", plugin_name)
        for attr in dir(plugin):
            value = getattr(plugin, attr, None)
            if attr.startswith("fw_") and hasattr(value, f"{project_name}_impl"):
                setattr(self, attr, traced_function(attr, plugin_name, value))
