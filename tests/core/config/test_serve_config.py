"""ServeConfig: the server's option groups plus every engine group."""

from __future__ import annotations

from fw.config import EngineConfig, build_bundle
from fw.config.frontend import FrontendConfig
from fw.config.options import group_fields
from fw.config.serve import ServeConfig


def test_help_lists_the_server_groups_then_every_engine_group():
    names = [name for name, _ in group_fields(ServeConfig)]
    assert names == ["options", "frontend", *(name for name, _ in group_fields(EngineConfig))]


def test_engine_config_is_the_engine_part():
    config = build_bundle(ServeConfig, {"max_model_len": 512, "block_size": 32, "port": 9000})
    engine = config.engine_config()
    assert isinstance(engine, EngineConfig)
    assert engine.model.max_model_len == 512 and engine.cache.block_size == 32
    assert engine == EngineConfig.from_options(max_model_len=512, block_size=32)


def test_frontend_defaults():
    frontend = FrontendConfig()
    assert frontend.host == "127.0.0.1"  # loopback, unlike vLLM
    assert frontend.port == 8000 and frontend.allowed_origins == ["*"]
    assert frontend.h11_max_incomplete_event_size == 4 * 1024 * 1024 and frontend.h11_max_header_count == 256
    assert frontend.api_key is None and frontend.middleware == []
