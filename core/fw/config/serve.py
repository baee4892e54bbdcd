"""ServeConfig: everything `fw serve` reads, the server's groups followed by the engine's.

The engine part is handed to the engine unchanged (``engine_config()``), so the server
and the offline API (`fw.LLM`) can never disagree about what an engine option means.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fw.config.cache import CacheConfig
from fw.config.engine import EngineConfig
from fw.config.frontend import FrontendConfig, ServeOptions
from fw.config.load import LoadConfig
from fw.config.lora import LoRAConfig
from fw.config.model import ModelConfig
from fw.config.multimodal import MultiModalConfig
from fw.config.observability import ObservabilityConfig
from fw.config.scheduler import SchedulerConfig
from fw.config.structured import StructuredOutputsConfig
from fw.config.vllm_engine import VllmEngineConfig


class ServeConfig(BaseModel):
    """The `fw serve` bundle. Every field of ``EngineConfig`` must appear here too (a
    test checks it), so an engine group added later is also a serve option."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    options: ServeOptions = Field(default_factory=ServeOptions)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    structured_outputs: StructuredOutputsConfig = Field(default_factory=StructuredOutputsConfig)
    multimodal: MultiModalConfig = Field(default_factory=MultiModalConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    vllm: VllmEngineConfig = Field(default_factory=VllmEngineConfig)

    def engine_config(self) -> EngineConfig:
        """The engine's part of this configuration, for ``AsyncEngine.from_config``."""
        return EngineConfig(**{name: getattr(self, name) for name in EngineConfig.model_fields})
