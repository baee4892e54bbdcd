"""Which structured-output backend compiles a constraint.

``--guided-decoding-backend`` (or ``--structured-outputs-config.backend``) names one for
the server; a request may name another with ``guided_decoding_backend``. ``auto`` tries
xgrammar first and falls back to llguidance ("guidance") for a constraint xgrammar
cannot compile (a Lark grammar, say), unless ``--guided-decoding-disable-fallback``.
Names are checked against the plugin registry, so a typo fails at start-up (or with a
400 naming the request parameter), never on the first guided request.
"""

from __future__ import annotations

from fw import plugins

AUTO = "auto"
#: the backends "auto" tries, in order (those that are registered)
AUTO_ORDER = ("xgrammar", "guidance")


def canonical_backend(name: str) -> str:
    """The registered name for ``name`` (aliases resolved; ``auto`` stays ``auto``);
    ``UnknownNameError`` (a ValueError listing the backends) if no plugin registered it."""
    if name == AUTO:
        return AUTO
    return plugins.registry("structured_output_backend").canonical(name)


def backend_order(name: str, *, fallback: bool = True) -> list[str]:
    """The backends to try for ``name``, in order."""
    name = canonical_backend(name)
    if name != AUTO:
        return [name]
    registry = plugins.registry("structured_output_backend")
    available = [n for n in AUTO_ORDER if n in registry] or registry.names()
    return available if fallback else available[:1]
