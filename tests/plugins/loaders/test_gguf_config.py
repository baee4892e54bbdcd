"""GGUFConfig: what fw's models and engine read from it equals what they would read
from transformers' config of the same values, without importing transformers' config
classes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fw.engine.model_builder import resolve_max_model_len
from fw.layers.rotary import rope_parameters
from fw_builtins.loaders.gguf_config import DEFAULTS, GGUFConfig
from tests.conftest import REPO

BASE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 5000.0,
        "vocab_size": 448, "tie_word_embeddings": True, "head_dim": 16, "bos_token_id": 1, "eos_token_id": 2}
SCALINGS = {"none": None, "linear": {"rope_type": "linear", "factor": 2.0},
            "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}}
#: what fw's model plugins use when a config lacks these (their getattr defaults)
PLUGIN_DEFAULTS = {"attention_bias": False, "mlp_bias": False, "partial_rotary_factor": 1.0,
                   "use_sliding_window": False, "sliding_window": None, "hidden_act": "silu"}


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_what_fw_reads_equals_transformers(arch, scaling):
    values = {"architectures": ["X"], "model_type": arch, **BASE}
    if SCALINGS[scaling]:
        values["rope_scaling"] = dict(SCALINGS[scaling])
    ours = GGUFConfig(values)
    theirs = ours.transformers_config()
    for name in [*values, *DEFAULTS, "rope_parameters", "rope_scaling"]:
        mine = getattr(ours, name)
        try:
            expected = getattr(theirs, name)
        except AttributeError:
            expected = PLUGIN_DEFAULTS.get(name, values.get(name))
        assert mine == expected, name
    assert rope_parameters(ours) == rope_parameters(theirs)
    assert resolve_max_model_len(None, ours) == resolve_max_model_len(None, theirs)
    assert ours.to_dict() == theirs.to_dict()


def test_building_it_does_not_import_transformers_configs():
    code = ("import sys\n"
            "from fw_builtins.loaders.gguf_config import GGUFConfig\n"
            f"c = GGUFConfig({{'model_type': 'llama', **{BASE!r}}})\n"
            "assert c.hidden_act == 'silu' and c.rope_parameters['rope_theta'] == 5000.0\n"
            "print(sorted(m for m in sys.modules if m.startswith('transformers')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
