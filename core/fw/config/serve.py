"""ServeConfig: everything `fw serve` reads, the server's groups followed by the engine's.

It extends ``EngineConfig``, so an engine group added later is a serve option too, and
the engine part is handed to the engine unchanged (``engine_config()``): the server and
the offline API (`fw.LLM`) can never disagree about what an engine option means.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from fw.config.engine import EngineConfig
from fw.config.frontend import FrontendConfig, ServeOptions


class ServeConfig(EngineConfig):
    """The `fw serve` bundle."""

    #: the server's groups, listed before the engine's in help and docs (vLLM's order)
    leading_groups: ClassVar[tuple[str, ...]] = ("options", "frontend")

    options: ServeOptions = Field(default_factory=ServeOptions)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)

    def engine_config(self) -> EngineConfig:
        """The engine's part of this configuration, for ``AsyncEngine.from_config``."""
        return EngineConfig(**{name: getattr(self, name) for name in EngineConfig.model_fields})
