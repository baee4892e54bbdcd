"""LoRA in the engine: transformers+peft parity, adapters and the base model in one batch,
refused adapters, --max-cpu-loras eviction and --max-loras serialization."""

from __future__ import annotations

import pytest

from fw import LoRARequest, SamplingParams
from fw.errors import LoRAAdapterError
from tests.core.engine.conftest import PROMPTS
from tests.core.lora.adapters import make_peft_adapter, make_test_adapters, peft_greedy

MAX_TOKENS = 16
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)


@pytest.fixture(scope="module")
def adapters(tiny_llama, tmp_path_factory):
    paths = make_test_adapters(tiny_llama, tmp_path_factory.mktemp("adapters"))
    return {name: LoRARequest(name, i + 1, str(path)) for i, (name, path) in enumerate(paths.items())}


@pytest.fixture(scope="module")
def expected(tiny_llama, adapters):
    """transformers+peft's greedy tokens per adapter and prompt."""
    return {name: [peft_greedy(tiny_llama, request.lora_path, p, MAX_TOKENS) for p in PROMPTS]
            for name, request in adapters.items()}


def tokens(outputs):
    return [o.outputs[0].token_ids for o in outputs]


@pytest.mark.parametrize("name", ["sql", "chat"])
def test_adapter_tokens_match_transformers_peft(name, tiny_llama, adapters, expected, llm_factory):
    llm = llm_factory(tiny_llama, enable_lora=True, max_loras=2)
    outputs = llm.generate(PROMPTS, GREEDY, lora_request=adapters[name], use_tqdm=False)
    assert tokens(outputs) == expected[name]
    assert all(o.lora_name == name for o in outputs)
    base = tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False))
    assert base != expected[name]  # the adapter really changes the model


def test_adapters_and_the_base_model_share_a_batch(tiny_llama, adapters, llm_factory):
    llm = llm_factory(tiny_llama, enable_lora=True, max_loras=2)
    choices = [adapters["sql"], None, adapters["chat"]]
    loras = [choices[i % 3] for i in range(len(PROMPTS) * 2)]
    prompts = PROMPTS * 2
    mixed = llm.generate(prompts, GREEDY, lora_request=loras, use_tqdm=False)
    for prompt, lora, output in zip(prompts, loras, mixed):
        alone = llm.generate(prompt, GREEDY, lora_request=lora, use_tqdm=False)[0]
        assert output.outputs[0].token_ids == alone.outputs[0].token_ids
        assert output.lora_name == (lora.lora_name if lora else None)


def test_n_above_one_runs_every_sample_with_the_adapter(tiny_llama, adapters, expected, llm_factory):
    llm = llm_factory(tiny_llama, enable_lora=True, max_loras=2)
    params = SamplingParams(n=2, max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)
    output = llm.generate(PROMPTS[0], params, lora_request=adapters["chat"], use_tqdm=False)[0]
    assert [c.token_ids for c in output.outputs] == [expected["chat"][0]] * 2


def test_refused_adapters_name_the_reason(tiny_llama, tmp_path, llm_factory):
    llm = llm_factory(tiny_llama, enable_lora=True, max_loras=2)
    big = make_peft_adapter(tiny_llama, tmp_path / "big", r=32, lora_alpha=32)
    with pytest.raises(LoRAAdapterError, match=r"LoRA adapter 'big' \(.*\): rank 32 exceeds --max-lora-rank 16"):
        llm.generate("Hi", GREEDY, lora_request=LoRARequest("big", 7, str(big)), use_tqdm=False)
    head = make_peft_adapter(tiny_llama, tmp_path / "head", r=4, target_modules=("q_proj", "lm_head"))
    with pytest.raises(LoRAAdapterError, match="LoRA adapter 'head' .* targets 'lm_head', which this model lacks"):
        llm.generate("Hi", GREEDY, lora_request=LoRARequest("head", 8, str(head)), use_tqdm=False)
    assert {r.lora_name for r in llm.engine.list_loras()}.isdisjoint({"big", "head"})
    assert not llm.engine.has_unfinished_requests()


def test_one_loaded_adapter_at_a_time_stays_correct(tiny_llama, adapters, expected, llm_factory):
    llm = llm_factory(tiny_llama, enable_lora=True, max_loras=1, max_cpu_loras=1)
    for name in ("sql", "chat", "sql", "chat"):
        outputs = llm.generate(PROMPTS[:2], GREEDY, lora_request=adapters[name], use_tqdm=False)
        assert tokens(outputs) == expected[name][:2]
        assert list(llm.engine.loras.manager.loaded) == [llm.engine.loras.manager.adapters[name].uid]


def test_max_loras_one_serializes_two_adapters(tiny_llama, adapters, expected, llm_factory):
    llm = llm_factory(tiny_llama, enable_lora=True, max_loras=1, max_cpu_loras=2)
    engine = llm.engine
    for lora in adapters.values():
        engine.add_lora(lora)
    order = ["sql", "chat", None, "sql", "chat"]
    for i, name in enumerate(order):
        engine.add_request(f"r{i}", PROMPTS[i], GREEDY, lora_request=adapters[name] if name else None)
    finals, adapters_per_step, first_step = {}, [], None
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.finished:
                finals[output.request_id] = output
        adapters_per_step.append({r.lora for r in engine.scheduler.running if r.lora is not None})
        first_step = first_step or [r.request_id for r in engine.scheduler.running]
    # The "chat" requests wait without holding up the second "sql" one or the base model's.
    assert first_step == ["r0", "r2", "r3"]
    assert max(len(s) for s in adapters_per_step) == 1
    assert len({frozenset(s) for s in adapters_per_step if s}) == 2  # both adapters ran, one at a time
    for i, name in enumerate(order):
        want = expected[name][i] if name else None
        got = finals[f"r{i}"].outputs[0].token_ids
        assert got == want if name else len(got) == MAX_TOKENS
