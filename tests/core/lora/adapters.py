"""Random PEFT adapters for tests, and transformers+peft as their oracle.

``make_peft_adapter`` builds a real adapter with the ``peft`` package on a tiny
checkpoint (``tests/checkpoints.py``) and saves it exactly as ``save_pretrained`` does.
``init_lora_weights=False`` gives B random values too (peft's default starts B at zero,
an adapter that changes nothing), so an adapter visibly changes the model's tokens.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

ALL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_peft_adapter(base: Path, folder: Path, *, r: int = 8, lora_alpha: int = 16,
                      target_modules=ALL_TARGETS, seed: int = 0, **config) -> Path:
    """Save a random LoRA adapter of ``base`` into ``folder``; ``config`` goes to LoraConfig."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    torch.manual_seed(seed)
    lora = LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=list(target_modules),
                      init_lora_weights=False, **config)
    get_peft_model(model, lora).save_pretrained(str(folder))
    return Path(folder)


def edit_adapter_config(folder: Path, **changes) -> None:
    file = Path(folder) / "adapter_config.json"
    config = json.loads(file.read_text())
    config.update(changes)
    file.write_text(json.dumps(config))


@functools.lru_cache(maxsize=8)
def _peft_model(base: str, adapter: str):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, adapter).eval()


def peft_greedy(base: Path, adapter: Path, prompt: str, max_new_tokens: int) -> list[int]:
    """transformers+peft's greedy continuation of ``prompt`` with ``adapter`` (EOS ignored)."""
    from tests.core.engine.conftest import _tokenizer

    model = _peft_model(str(base), str(adapter))
    ids = _tokenizer(str(base))(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def make_test_adapters(base: Path, root: Path) -> dict[str, Path]:
    """The two adapters the engine tests serve: ``sql`` adapts every projection (rank 8);
    ``chat`` adapts three with rsLoRA, a smaller rank for down_proj and another alpha
    for v_proj, so per-module rank and scale are exercised too."""
    return {
        "sql": make_peft_adapter(base, root / "sql", r=8, lora_alpha=16, seed=1),
        "chat": make_peft_adapter(base, root / "chat", r=4, lora_alpha=8, seed=2,
                                  target_modules=("q_proj", "v_proj", "down_proj"), use_rslora=True,
                                  rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 4}),
    }
