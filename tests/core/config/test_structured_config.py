"""--structured-outputs-config (vLLM's JSON spelling) folded into the backend flags."""

from __future__ import annotations

import pytest

from fw.config import ConfigError, EngineConfig


def structured(**options):
    return EngineConfig.from_options(**options).structured_outputs


def test_json_keys_set_the_flags():
    config = structured(structured_outputs_config={"backend": "guidance", "disable_fallback": True,
                                                   "disable_any_whitespace": True, "reasoning_parser": "qwen3"})
    assert config.guided_decoding_backend == "guidance" and config.guided_decoding_disable_fallback
    assert config.guided_decoding_disable_any_whitespace and config.reasoning_parser == "qwen3"
    assert structured(structured_outputs_config={"backend": "xgrammar"},
                      guided_decoding_backend="xgrammar").guided_decoding_backend == "xgrammar"


@pytest.mark.parametrize("options, message", [
    ({"structured_outputs_config": {"backend": "guidance"}, "guided_decoding_backend": "xgrammar"}, "disagrees"),
    ({"structured_outputs_config": {"engine": "x"}}, "unknown key.s. engine"),
    ({"structured_outputs_config": {"disable_additional_properties": False}}, "additionalProperties"),
])
def test_contradictions_and_unknown_keys_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig.from_options(**options)


def test_the_dotted_spelling_on_the_command_line():
    from click.testing import CliRunner

    import fw_builtins.commands.serve as serve_module

    captured = []
    original = serve_module.serve.run
    serve_module.serve.run = captured.append
    try:
        result = CliRunner().invoke(serve_module.serve, ["--structured-outputs-config.backend", "guidance"])
    finally:
        serve_module.serve.run = original
    assert result.exit_code == 0, result.output
    assert captured[0].structured_outputs.guided_decoding_backend == "guidance"
