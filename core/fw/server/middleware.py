"""Middleware from outside fw: ``--middleware`` import paths, and the
``fw_asgi_middleware`` plugin hook.

``--middleware`` entries are added to the FastAPI app (outside fw's own middleware, so
they see every request and response, 401s included). Hook wrappers come last and wrap
the whole application, in plugin registration order (the first plugin's wrapper is
innermost).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from fastapi import FastAPI

from fw.config.serve import ServeConfig


def import_path(path: str) -> Any:
    """``package.module:name`` or ``package.module.name``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"--middleware {path!r} is not an import path like 'package.module:name'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--middleware {path!r} cannot be imported: {exc}") from None
    return obj


def add_user_middleware(app: FastAPI, paths: list[str]) -> None:
    for path in paths:
        target = import_path(path)
        if inspect.isclass(target):
            app.add_middleware(target)
        elif inspect.iscoroutinefunction(target):
            app.middleware("http")(target)
        else:
            raise ValueError(
                f"--middleware {path!r} is neither an ASGI middleware class nor an async "
                "function(request, call_next)"
            )


def apply_asgi_hooks(app: Any, config: ServeConfig) -> Any:
    """Let every plugin implementing ``fw_asgi_middleware`` wrap the app in turn."""
    from fw.plugins import get_host, report_problem

    host = get_host()
    for impl in host.pm.hook.fw_asgi_middleware.get_hookimpls():  # registration order
        try:
            wrapped = impl.function(app=app, config=config)
        except Exception as exc:  # noqa: BLE001 - the plugin policy decides: warn or fail
            report_problem(f"plugin {impl.plugin_name!r} failed in fw_asgi_middleware: "
                           f"{type(exc).__name__}: {exc}")
            continue
        if wrapped is not None:
            app = wrapped
    return app
