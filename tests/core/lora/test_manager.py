"""The LoRA manager: fitting adapters to a model (with clear refusals), the loaded-weights
LRU (--max-cpu-loras), slot placement (--max-loras), and unloading after in-flight use."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from fw.config import LoRAConfig
from fw.errors import InvalidParameterError, ModelNotFoundError
from fw.lora.manager import LoRAManager
from fw.errors import LoRAAdapterError
from fw.lora.request import LoRARequest
from tests.core.lora.toy import ToyModel, layer0_shapes, write_adapter

QKV = "model.layers.0.self_attn.qkv_proj"


def manager(**options) -> LoRAManager:
    config = LoRAConfig(enable_lora=True, max_lora_rank=4, **options)
    return LoRAManager(config, ToyModel(), torch.float32, torch.device("cpu"))


@pytest.fixture
def adapters(tmp_path):
    """Two adapters of the toy over q/v/down, with different random weights."""
    shapes = layer0_shapes("q_proj", "v_proj", "down_proj")
    return {name: LoRARequest(name, i + 1, str(write_adapter(tmp_path / name, shapes, seed=i)))
            for i, name in enumerate(("a", "b"))}


def slot_delta(m: LoRAManager, slot: int) -> torch.Tensor:
    """What slot ``slot`` adds to the q/k/v layer's output for a fixed input."""
    layer = m.layers[QKV]
    x, rank = torch.ones(1, layer.in_features), layer.max_rank
    return torch.cat([x @ layer.lora_a[slot, i * rank:(i + 1) * rank].T @ layer.lora_b[slot, sl].T
                      for i, sl in enumerate(layer.shard_slices)], dim=-1)


def refusal(m: LoRAManager, request: LoRARequest) -> str:
    with pytest.raises(LoRAAdapterError) as info:
        m.add(request)
    assert str(info.value).startswith(f"LoRA adapter {request.lora_name!r} (")
    return str(info.value)


def test_refusals_name_the_adapter_and_the_reason(tmp_path):
    m = manager()
    big = write_adapter(tmp_path / "big", layer0_shapes("q_proj"), r=8)
    assert "rank 8 exceeds --max-lora-rank 4" in refusal(m, LoRARequest("big", 1, str(big)))
    head = write_adapter(tmp_path / "head", layer0_shapes("q_proj"), target_modules=["q_proj", "lm_head"])
    message = refusal(m, LoRARequest("head", 2, str(head)))
    assert "targets 'lm_head', which this model lacks" in message and "adaptable: down_proj, gate_proj" in message
    deep = write_adapter(tmp_path / "deep", {"model.layers.7.self_attn.q_proj": (8, 8)})
    assert "targets module 'model.layers.7.self_attn.q_proj'" in refusal(m, LoRARequest("deep", 3, str(deep)))
    wide = write_adapter(tmp_path / "wide", {"model.layers.0.self_attn.q_proj": (8, 16)})
    assert "trained for another base model" in refusal(m, LoRARequest("wide", 4, str(wide)))
    assert "the folder does not exist" in refusal(m, LoRARequest("gone", 5, str(tmp_path / "gone")))
    embed = write_adapter(tmp_path / "embed", layer0_shapes("q_proj"))
    tensors = load_file(str(embed / "adapter_model.safetensors"))
    save_file({**tensors, "base_model.model.model.embed_tokens.lora_embedding_A": torch.zeros(4, 8)},
              str(embed / "adapter_model.safetensors"))
    message = refusal(m, LoRARequest("embed", 6, str(embed)))
    assert "unexpected tensor 'base_model.model.model.embed_tokens.lora_embedding_A'" in message
    assert m.registered() == []


def test_registry_by_name(adapters, tmp_path):
    m = manager()
    assert m.add(adapters["a"]) is True
    assert m.add(LoRARequest("a", 9, adapters["a"].lora_path)) is False  # same folder: already there
    message = refusal(m, LoRARequest("a", 1, adapters["b"].lora_path))
    assert "already loaded from" in message and "unload it first" in message
    assert m.resolve(LoRARequest("a", 1, "")) is m.adapters["a"]
    with pytest.raises(ModelNotFoundError, match=r"LoRA adapter 'b' is not loaded \(loaded: a\)"):
        m.resolve(adapters["b"])
    with pytest.raises(InvalidParameterError, match="is loaded from"):
        m.resolve(LoRARequest("a", 1, adapters["b"].lora_path))
    assert m.registered() == [adapters["a"]]


def test_cpu_lru_drops_and_reloads(adapters):
    m = manager(max_loras=1, max_cpu_loras=1)
    m.add(adapters["a"])
    m.add(adapters["b"])
    a, b = m.adapters["a"], m.adapters["b"]
    assert list(m.loaded) == [b.uid]  # a was dropped
    m.prepare_step([(a, 2), (None, 1)])
    assert list(m.loaded) == [a.uid]  # read from disk again
    delta_a = slot_delta(m, 0)
    m.prepare_step([(b, 1)])
    m.prepare_step([(a, 1)])
    assert torch.equal(slot_delta(m, 0), delta_a)


def test_slots_are_reused_least_recently_used_first(adapters, tmp_path):
    m = manager(max_loras=2, max_cpu_loras=3)
    c = LoRARequest("c", 3, str(write_adapter(tmp_path / "c", layer0_shapes("q_proj"), seed=5)))
    for request in (*adapters.values(), c):
        m.add(request)
    a, b, c = (m.adapters[n] for n in "abc")
    m.prepare_step([(a, 1), (b, 1)])
    m.prepare_step([(a, 1)])
    m.prepare_step([(c, 1)])  # evicts b, the least recently used
    assert dict(m.slots) == {0: a, 1: c}
    assert m.step.batch.groups[0][0] == 1
    with pytest.raises(RuntimeError, match="a step has 3 adapters but --max-loras is 2"):
        m.prepare_step([(a, 1), (b, 1), (c, 1)])
    m.prepare_step([(None, 4)])
    assert m.step.batch.groups == []


def test_remove_waits_for_in_flight_requests(adapters):
    m = manager(max_loras=2)
    m.add(adapters["a"])
    a = m.adapters["a"]
    m.prepare_step([(a, 1)])
    assert m.remove("a", in_use=[a]) is True
    assert m.registered() == [] and m.retiring == [a]
    assert m.slots and a.uid in m.loaded  # still serving its in-flight request
    with pytest.raises(ModelNotFoundError):
        m.resolve(adapters["a"])
    m.reap(in_use=[])
    assert m.retiring == [] and not m.slots and a.uid not in m.loaded
    assert all(not layer.filled for layer in m.layers.values())
    assert m.remove("a", in_use=[]) is False


def test_a_re_registered_name_is_a_new_adapter(adapters):
    m = manager()
    m.add(adapters["a"])
    first = m.adapters["a"]
    m.remove("a", in_use=[])
    m.add(LoRARequest("a", 1, adapters["b"].lora_path))
    assert m.adapters["a"] is not first and m.adapters["a"].uid != first.uid
