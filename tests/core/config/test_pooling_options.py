"""The pooling options with vLLM's meanings: --runner, --convert, the deprecated --task,
--pooler-config and its deprecated spelling, and fw's --enable-embeddings."""

from __future__ import annotations

import pytest

from fw.config import ConfigError, EngineConfig
from fw.config.options import UnsupportedOptionError
from fw.config.serve import ServeConfig
from fw.cli.config_command import config_command
from tests.conftest import run_fw


@pytest.mark.parametrize("task, expected", [
    ("generate", ("generate", "auto")), ("embed", ("pooling", "embed")), ("embedding", ("pooling", "embed")),
    ("classify", ("pooling", "classify")), ("score", ("pooling", "classify")), ("auto", ("auto", "auto")),
])
def test_task_means_a_runner_and_a_conversion(task, expected):
    assert EngineConfig.from_options(task=task).model.runner_and_convert() == expected


def test_a_conversion_implies_the_pooling_runner():
    assert EngineConfig.from_options(convert="embed").model.runner_and_convert() == ("pooling", "embed")
    assert EngineConfig.from_options(runner="pooling").model.runner_and_convert() == ("pooling", "auto")


@pytest.mark.parametrize("options, reason", [
    (dict(task="embed", runner="generate"), "--task embed means --runner pooling, which contradicts --runner generate"),
    (dict(task="classify", convert="embed"), "contradicts --convert embed"),
    (dict(convert="classify", runner="generate"), "--convert classify makes a pooling model"),
    (dict(pooler_config={"normalize": False}, override_pooler_config={"normalize": True}), "give one"),
    (dict(enable_embeddings=True, runner="pooling"), "the model embeds already"),
    (dict(enable_embeddings=True, task="embed"), "the model embeds already"),
])
def test_contradictions_are_refused_with_the_reason(options, reason):
    with pytest.raises(ConfigError, match=reason):
        EngineConfig.from_options(**options)


@pytest.mark.parametrize("options, reason", [
    (dict(runner="draft"), "no draft-model runner"), (dict(convert="reward"), "no reward models"),
    (dict(task="transcription"), "text-only"), (dict(task="reward"), "no reward models"),
])
def test_what_fw_does_not_build_is_refused(options, reason):
    with pytest.raises(UnsupportedOptionError, match=reason):
        EngineConfig.from_options(**options)


def test_pooler_config_keys_are_checked():
    model = EngineConfig.from_options(pooler_config={"pooling_type": "mean", "normalize": False}).model
    assert model.pooler().pooling_type == "MEAN" and model.pooler().normalize is False
    assert EngineConfig.from_options(override_pooler_config={"dimensions": 8}).model.pooler().dimensions == 8
    with pytest.raises(ConfigError, match="unknown key 'pooling'; --pooler-config keys are pooling_type"):
        EngineConfig.from_options(pooler_config={"pooling": "MEAN"})
    with pytest.raises(ConfigError, match="key 'max_embed_len' is not supported: fw embeds an input"):
        EngineConfig.from_options(pooler_config={"max_embed_len": 8192})
    with pytest.raises(ConfigError, match="key 'dimensions'"):
        EngineConfig.from_options(pooler_config={"dimensions": 0})


def test_the_command_line_takes_dotted_keys_and_prints_refusals():
    captured = []
    command = config_command(ServeConfig, name="probe", help="probe")(captured.append)
    from click.testing import CliRunner

    result = CliRunner().invoke(command, ["--pooler-config.pooling_type", "cls", "--pooler-config.normalize",
                                          "false", "--task", "embed"])
    assert result.exit_code == 0, result.output
    assert captured[0].model.pooler().pooling_type == "CLS" and captured[0].model.pooler().normalize is False
    refused = run_fw("serve", "--pooler-config", '{"step_tag_id": 3}')
    assert refused.returncode == 2
    assert "'--pooler-config': key 'step_tag_id' is not supported: fw has no STEP pooling" in refused.stderr
    assert "Traceback" not in refused.stderr
