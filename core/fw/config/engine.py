"""EngineConfig: the option groups the engine reads (what `fw serve`, the offline
benchmarks, `fw run-batch` and `fw.LLM(...)` share)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fw.config.cache import CacheConfig
from fw.config.load import LoadConfig
from fw.config.lora import LoRAConfig
from fw.config.model import ModelConfig
from fw.config.multimodal import MultiModalConfig
from fw.config.observability import ObservabilityConfig
from fw.config.options import build_bundle
from fw.config.parallel import ParallelConfig
from fw.config.scheduler import SchedulerConfig
from fw.config.speculative import SpeculativeConfig
from fw.config.structured import StructuredOutputsConfig
from fw.config.vllm_engine import VllmEngineConfig


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelConfig = Field(default_factory=ModelConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    speculative: SpeculativeConfig = Field(default_factory=SpeculativeConfig)
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    structured_outputs: StructuredOutputsConfig = Field(default_factory=StructuredOutputsConfig)
    multimodal: MultiModalConfig = Field(default_factory=MultiModalConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    vllm: VllmEngineConfig = Field(default_factory=VllmEngineConfig)

    @classmethod
    def from_options(cls, **options: Any) -> "EngineConfig":
        """Build from flat option names, as `LLM(model, max_model_len=...)` takes them."""
        return build_bundle(cls, {k: v for k, v in options.items() if v is not None})
