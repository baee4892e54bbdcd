"""fw's configuration: option groups (pydantic models) and the bundles commands use."""

from fw.config.base import ConfigGroup, option
from fw.config.cache import CacheConfig
from fw.config.engine import EngineConfig
from fw.config.load import LoadConfig
from fw.config.lora import LoRAConfig
from fw.config.model import ModelConfig
from fw.config.options import ConfigError, OptionSpec, build_bundle, option_specs
from fw.config.scheduler import SchedulerConfig

__all__ = [
    "CacheConfig", "ConfigError", "ConfigGroup", "EngineConfig", "LoadConfig", "LoRAConfig", "ModelConfig",
    "OptionSpec", "SchedulerConfig", "build_bundle", "option", "option_specs",
]
