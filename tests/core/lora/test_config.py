"""The LoRA option group: --lora-modules in all its spellings, limits, and LoRARequest."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fw.cli.config_command import config_command
from fw.config import EngineConfig, LoRAConfig
from fw.config.lora import LoRAModulePath
from fw.lora.request import LoRARequest

captured: list[EngineConfig] = []


@config_command(EngineConfig, name="engine", help="A test command over the engine options.")
def engine_command(config: EngineConfig) -> None:
    captured.append(config)


def invoke(*args: str):
    captured.clear()
    result = CliRunner().invoke(engine_command, list(args), prog_name="fw engine")
    return result, (captured[0].lora if captured else None)


def modules(*triples):
    return [LoRAModulePath(name=n, path=p, base_model_name=b) for n, p, b in triples]


def test_defaults_follow_vllm():
    config = LoRAConfig()
    assert not config.enable_lora and config.max_loras == 1 and config.max_lora_rank == 16
    assert config.lora_dtype == "auto" and config.max_cpu_loras is None and config.cpu_capacity == 1
    assert not config.fully_sharded_loras and config.lora_modules == []


@pytest.mark.parametrize("args", [
    ["--lora-modules", "a=/x", "b=/y"],
    ["--lora-modules", "a=/x", "--lora-modules", "b=/y"],
    ["--lora-modules", '{"name": "a", "path": "/x"}', "b=/y"],
    ["--lora-modules", '[{"name": "a", "path": "/x"}, {"name": "b", "path": "/y"}]'],
])
def test_lora_modules_spellings(args):
    result, lora = invoke("--enable-lora", *args)
    assert result.exit_code == 0, result.output
    assert lora.lora_modules == modules(("a", "/x", None), ("b", "/y", None))


def test_json_form_carries_the_base_model_name():
    result, lora = invoke("--enable-lora", "--lora-modules",
                          '{"name": "sql", "path": "/adapters/sql", "base_model_name": "base"}')
    assert result.exit_code == 0, result.output
    assert lora.lora_modules == modules(("sql", "/adapters/sql", "base"))


def test_yaml_config_takes_a_list_of_mappings(tmp_path):
    file = tmp_path / "fw.yaml"
    file.write_text("enable-lora: true\nmax-loras: 2\nlora-modules:\n  - {name: a, path: /x}\n  - b=/y\n")
    result, lora = invoke("--config", str(file))
    assert result.exit_code == 0, result.output
    assert lora.max_loras == 2 and lora.lora_modules == modules(("a", "/x", None), ("b", "/y", None))


def test_numeric_options_and_choices():
    result, lora = invoke("--enable-lora", "--max-loras", "2", "--max-lora-rank", "64", "--max-cpu-loras", "4",
                          "--lora-dtype", "bfloat16", "--no-fully-sharded-loras")
    assert result.exit_code == 0, result.output
    assert (lora.max_loras, lora.max_lora_rank, lora.max_cpu_loras, lora.lora_dtype) == (2, 64, 4, "bfloat16")
    assert not lora.fully_sharded_loras and lora.cpu_capacity == 4


@pytest.mark.parametrize("args, message", [
    (["--enable-lora", "--lora-modules", "nopath"], "neither 'name=path' nor JSON"),
    (["--enable-lora", "--lora-modules", '{"name": "a"'], "not valid JSON"),
    (["--enable-lora", "--lora-modules", '{"name": "a"}'], "neither 'name=path' nor JSON"),
    (["--enable-lora", "--lora-modules", '{"name": "a", "path": "/x", "base": "m"}'], "unknown key(s) base"),
    (["--lora-modules", "a=/x"], "--lora-modules needs --enable-lora"),
    (["--enable-lora", "--lora-modules", "a=/x", "a=/y"], "repeated: a"),
    (["--max-loras", "3", "--max-cpu-loras", "2"], "--max-cpu-loras (2) must be >= --max-loras (3)"),
    (["--max-loras", "0"], "--max-loras"),
    (["--lora-dtype", "int8"], "--lora-dtype"),
])
def test_bad_values_name_the_problem(args, message):
    result, _ = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_help_group_lists_the_lora_options():
    result, _ = invoke("--help=lora")
    assert result.exit_code == 0
    for flag in ("--enable-lora", "--max-loras", "--max-lora-rank", "--lora-dtype", "--max-cpu-loras",
                 "--fully-sharded-loras", "--lora-modules"):
        assert flag in result.output


def test_offline_options_take_the_same_values():
    config = EngineConfig.from_options(enable_lora=True, lora_modules=["a=/x", {"name": "b", "path": "/y"}])
    assert config.lora.lora_modules == modules(("a", "/x", None), ("b", "/y", None))


def test_lora_request_is_vllm_shaped_and_checked():
    request = LoRARequest("sql", 3, "/adapters/sql")
    assert (request.name, request.adapter_id, request.path) == ("sql", 3, "/adapters/sql")
    assert request.base_model_name is None
    with pytest.raises(ValueError, match="lora_int_id must be an integer >= 1"):
        LoRARequest("sql", 0, "/x")
    with pytest.raises(ValueError, match="lora_name must not be empty"):
        LoRARequest("", 1, "/x")
