"""--generation-config auto|vllm|<folder> and --override-generation-config: the sampling
defaults of requests that leave a field unset, and max_new_tokens as a server-wide cap."""

from __future__ import annotations

import json
import shutil

import pytest

from fw import LLM, SamplingParams
from fw.config import ConfigError, EngineConfig
from fw.errors import FwError


@pytest.fixture(scope="module")
def model_with_defaults(tiny_llama, tmp_path_factory):
    folder = tmp_path_factory.mktemp("with-defaults") / "model"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(temperature=0.3, top_k=5, max_new_tokens=4)
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder


def defaults(path, **options):
    return LLM(str(path), dtype="float32", kv_cache_memory_bytes=2**22, **options).engine.generation_defaults


def test_auto_reads_the_models_file_and_caps_max_tokens(model_with_defaults):
    llm = LLM(str(model_with_defaults), dtype="float32", kv_cache_memory_bytes=2**22)
    assert llm.engine.generation_defaults == {"temperature": 0.3, "top_k": 5, "max_tokens": 4}
    out = llm.generate(["a b"], SamplingParams(max_tokens=10, ignore_eos=True, temperature=0), use_tqdm=False)
    assert len(out[0].outputs[0].token_ids) == 4  # max_new_tokens is a server-wide limit
    assert llm.get_default_sampling_params().temperature == 0.3


def test_vllm_uses_none_of_the_models_defaults(model_with_defaults):
    assert defaults(model_with_defaults, generation_config="vllm") == {}
    assert defaults(model_with_defaults, generation_config="vllm",
                    override_generation_config={"temperature": 0.1}) == {"temperature": 0.1}


def test_a_folder_and_an_override_on_top(model_with_defaults, tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.7, "top_p": 0.9}))
    assert defaults(model_with_defaults, generation_config=str(tmp_path),
                    override_generation_config={"top_p": 0.5, "max_new_tokens": 8}) == \
        {"temperature": 0.7, "top_p": 0.5, "max_tokens": 8}
    assert defaults(model_with_defaults, override_generation_config={"temperature": 1.0}) == \
        {"temperature": 1.0, "top_k": 5, "max_tokens": 4}


def test_bad_values(model_with_defaults, tmp_path):
    with pytest.raises(ConfigError, match="--override-generation-config: unknown key.s. typical_p"):
        EngineConfig.from_options(override_generation_config={"typical_p": 0.2})
    with pytest.raises(FwError, match="--generation-config: cannot read .*generation_config.json"):
        defaults(model_with_defaults, generation_config=str(tmp_path / "nowhere"))
