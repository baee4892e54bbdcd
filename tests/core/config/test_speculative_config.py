"""--speculative-config (vLLM's JSON, or dotted keys) and vLLM's older single flags fill
one set of settings; what fw does not build is refused with its reason."""

from __future__ import annotations

import pytest
from fw.config import ConfigError, EngineConfig
from fw.config.options import UnsupportedOptionError

from tests.conftest import run_fw


def settings(**options):
    return EngineConfig.from_options(**options).speculative.settings()


def test_no_options_no_speculation():
    assert settings() is None


def test_json_keys_and_their_defaults():
    got = settings(speculative_config={"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4})
    assert (got.method, got.num_speculative_tokens, got.prompt_lookup_max, got.prompt_lookup_min) == ("ngram", 3, 4, 1)
    assert settings(speculative_config={"model": "/m"}).method == "draft_model"  # a model alone means a draft


def test_older_flags_fill_the_same_settings():
    got = settings(speculative_model="[ngram]", num_speculative_tokens=5, ngram_prompt_lookup_max=6,
                   ngram_prompt_lookup_min=2, speculative_disable_by_batch_size=8)
    assert (got.method, got.num_speculative_tokens, got.prompt_lookup_max, got.prompt_lookup_min,
            got.disable_by_batch_size) == ("ngram", 5, 6, 2, 8)
    draft = settings(speculative_model="/draft", speculative_max_model_len=512, speculative_model_quantization="int4")
    assert (draft.method, draft.model, draft.max_model_len, draft.quantization) == ("draft_model", "/draft", 512, "int4")


@pytest.mark.parametrize("options, message", [
    ({"speculative_config": {"method": "eagle", "model": "x"}}, "no eagle heads"),
    ({"speculative_config": {"method": "draft_model"}}, "needs model"),
    ({"speculative_config": {"method": "lookup"}}, "not a proposer; known: .*ngram"),
    ({"speculative_config": {"method": "ngram", "prompt_lookup_min": 5, "prompt_lookup_max": 2}}, "exceeds"),
    ({"speculative_config": {"method": "ngram", "k": 2}}, "unknown key.s. k; known: method"),
    ({"speculative_config": {"method": "ngram", "num_speculative_tokens": 0}}, "num_speculative_tokens: .*1"),
    ({"speculative_config": {"model": "/d", "draft_tensor_parallel_size": 2}}, "one rank"),
    ({"speculative_config": {"method": "ngram", "num_speculative_tokens": 3}, "num_speculative_tokens": 4},
     "disagrees"),
])
def test_what_fw_does_not_build_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig.from_options(**options)


@pytest.mark.parametrize("options", [{"spec_decoding_acceptance_method": "typical_acceptance_sampler"},
                                     {"disable_logprobs_during_spec_decoding": True},
                                     {"num_lookahead_slots": 2}])
def test_vllm_switches_fw_has_no_use_for_are_refused(options):
    with pytest.raises((ConfigError, UnsupportedOptionError)):
        EngineConfig.from_options(**options)


def test_the_command_line_names_the_flag():
    result = run_fw("serve", "--speculative-config.method", "eagle", "--speculative-config.model", "x")
    assert result.returncode != 0
    assert "eagle" in result.stderr and "Traceback" not in result.stderr
    result = run_fw("serve", "--spec-decoding-acceptance-method", "typical_acceptance_sampler")
    assert result.returncode == 2 and "--spec-decoding-acceptance-method" in result.stderr
