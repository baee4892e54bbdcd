"""The config-derived command line: --help forms, YAML config, JSON options, sizes, errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fw.cli.config_command import config_command
from fw.config.sizes import parse_size
from fw.config import EngineConfig

captured: list[EngineConfig] = []


@config_command(EngineConfig, name="engine", help="A test command over the engine options.",
                positional="model", positional_help="The model path.")
def engine_command(config: EngineConfig) -> None:
    captured.append(config)


def invoke(*args: str):
    captured.clear()
    result = CliRunner().invoke(engine_command, list(args), prog_name="fw engine")
    return result, (captured[0] if captured else None)


def test_plain_help_lists_groups_not_options():
    result, _ = invoke("--help")
    assert result.exit_code == 0
    assert "usage: fw engine [model_tag] [options]" in result.output
    for group in ("ModelConfig", "LoadConfig", "CacheConfig", "SchedulerConfig"):
        assert group in result.output
    assert "--block-size" not in result.output


def test_help_all_lists_every_option():
    result, _ = invoke("--help=all")
    assert result.exit_code == 0
    for flag in ("--max-model-len", "--block-size", "--load-format", "--scheduling-policy",
                 "--enable-prefix-caching, --no-enable-prefix-caching", "--quantization QUANTIZATION, -q"):
        assert flag in result.output


@pytest.mark.parametrize("query", ["cacheconfig", "CacheConfig", "cache", "CACHE"])
def test_help_group_is_case_insensitive(query):
    result, _ = invoke(f"--help={query}")
    assert result.exit_code == 0
    assert "CacheConfig:" in result.output
    assert "--block-size" in result.output
    assert "--max-model-len" not in result.output


@pytest.mark.parametrize("query", ["prefix-caching", "PREFIX_CACHING", "Prefix_Caching"])
def test_help_option_search(query):
    result, _ = invoke(f"--help={query}")
    assert result.exit_code == 0
    assert result.output.startswith(f"Arguments matching '{query}':")
    assert "--enable-prefix-caching, --no-enable-prefix-caching" in result.output
    assert "--block-size" not in result.output


def test_help_with_space_separated_query():
    result, _ = invoke("--help", "all")
    assert result.exit_code == 0 and "--block-size" in result.output


def test_help_without_match_is_an_error():
    result, _ = invoke("--help=nothing-like-this")
    assert result.exit_code == 2
    assert "no option group or option matches 'nothing-like-this'" in result.output


def test_defaults_come_from_the_config_models():
    result, config = invoke()
    assert result.exit_code == 0, result.output
    assert config == EngineConfig()


def test_positional_model_and_flag():
    _, config = invoke("/models/a")
    assert config.model.model == "/models/a"
    _, config = invoke("--model", "/models/b")
    assert config.model.model == "/models/b"
    result, _ = invoke("/models/a", "--model", "/models/b")
    assert result.exit_code == 2 and "disagree" in result.output


def test_booleans_take_no_prefix():
    _, config = invoke("--no-enable-prefix-caching", "--trust-remote-code")
    assert config.cache.enable_prefix_caching is False
    assert config.model.trust_remote_code is True


@pytest.mark.parametrize("text,value", [
    ("4096", 4096), ("1k", 1000), ("1K", 1024), ("25.6k", 25600), ("2M", 2 * 1024**2),
    ("1.5m", 1_500_000), ("3g", 3_000_000_000),
])
def test_sizes(text, value):
    assert parse_size(text) == value
    _, config = invoke("--max-model-len", text)
    assert config.model.max_model_len == value


@pytest.mark.parametrize("text", ["1.5K", "abc", "1.0001k", "-3"])
def test_bad_sizes_name_the_flag(text):
    result, _ = invoke("--max-model-len", text)
    assert result.exit_code == 2
    assert "--max-model-len" in result.output
    assert "Traceback" not in result.output


def test_bad_choice_names_the_flag():
    result, _ = invoke("--block-size", "7")
    assert result.exit_code == 2
    assert "--block-size" in result.output and "Traceback" not in result.output
    result, _ = invoke("--dtype", "int3")
    assert result.exit_code == 2 and "--dtype" in result.output


def test_pydantic_validation_names_the_flag():
    result, _ = invoke("--max-num-seqs", "many")
    assert result.exit_code == 2 and "--max-num-seqs" in result.output


def test_json_option_as_string_and_dotted_keys():
    _, config = invoke("--rope-scaling", '{"rope_type": "dynamic", "factor": 2.0}')
    assert config.model.rope_scaling == {"rope_type": "dynamic", "factor": 2.0}
    _, config = invoke("--rope-scaling.rope_type", "linear", "--rope-scaling.factor=4")
    assert config.model.rope_scaling == {"rope_type": "linear", "factor": 4}
    _, config = invoke("--hf-overrides", '{"a": {"b": 1}}', "--hf-overrides.a.c", "x")
    assert config.model.hf_overrides == {"a": {"b": 1, "c": "x"}}


def test_json_append_with_plus():
    _, config = invoke("--hf-overrides.items+", "1", "--hf-overrides.items+=2,3")
    assert config.model.hf_overrides == {"items": [1, 2, 3]}


def test_bad_json_names_the_flag():
    result, _ = invoke("--rope-scaling", "{not json")
    assert result.exit_code == 2
    assert "--rope-scaling" in result.output and "not valid JSON" in result.output


def test_list_option_takes_several_values_or_repeats():
    _, config = invoke("--served-model-name", "a", "b")
    assert config.model.served_model_name == ["a", "b"]
    _, config = invoke("--served-model-name", "a", "--served-model-name", "b")
    assert config.model.served_model_name == ["a", "b"]
    _, config = invoke("--served-model-name", '["x", "y"]')
    assert config.model.served_model_name == ["x", "y"]


def test_yaml_config_precedence(tmp_path):
    file = tmp_path / "config.yaml"
    file.write_text(
        "model: /from/file\nmax-model-len: 2k\nblock_size: 32\n"
        "enable-prefix-caching: false\nserved-model-name: [a, b]\n"
        "rope-scaling: {rope_type: linear, factor: 2}\n"
    )
    _, config = invoke("--config", str(file), "--block-size", "64")
    assert config.model.model == "/from/file"
    assert config.model.max_model_len == 2000
    assert config.cache.block_size == 64  # command line beats the file
    assert config.cache.enable_prefix_caching is False
    assert config.model.served_model_name == ["a", "b"]
    assert config.model.rope_scaling == {"rope_type": "linear", "factor": 2}
    assert config.scheduler.max_num_seqs == EngineConfig().scheduler.max_num_seqs  # default


def test_yaml_unknown_key_is_named(tmp_path):
    file = tmp_path / "config.yaml"
    file.write_text("max-model-len: 128\nblok-size: 16\n")
    result, _ = invoke("--config", str(file))
    assert result.exit_code == 2
    assert "unknown key 'blok-size'" in result.output and "--config" in result.output


def test_yaml_bad_value_names_the_flag(tmp_path):
    file = tmp_path / "config.yaml"
    file.write_text("block-size: 7\n")
    result, _ = invoke("--config", str(file))
    assert result.exit_code == 2 and "--block-size" in result.output


def test_missing_config_file(tmp_path):
    result, _ = invoke("--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "cannot read" in result.output


def test_engine_config_from_options_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown option 'max_model_length'"):
        EngineConfig.from_options(max_model_length=5)
    assert EngineConfig.from_options(max_model_len=64).model.max_model_len == 64


def test_help_all_lists_each_option_once():
    result, _ = invoke("--help=all")
    flags = [line.split()[0].rstrip(",") for line in result.output.splitlines() if line.startswith("  --")]
    assert len(flags) == len(set(flags)) > 10
