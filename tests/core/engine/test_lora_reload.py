"""An adapter dropped from memory (--max-cpu-loras) whose files vanished before it was
needed again: only its requests fail, with the reason; the rest of the batch, the engine
loop and the prefix cache stay sound."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from fw import LoRARequest, SamplingParams
from fw.config import EngineConfig
from fw.engine.async_engine import AsyncEngine
from fw.engine.llm_engine import LLMEngine
from fw.errors import LoRAAdapterError
from tests.core.engine.conftest import PROMPTS, hf_greedy
from tests.core.lora.adapters import make_test_adapters, peft_greedy

MAX_TOKENS = 8
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)
LONG = PROMPTS[2]  # several full KV blocks: a retry would hit them in the prefix cache
REASON = (r"LoRA adapter 'chat' \(.*\): the folder does not exist; the adapter had been dropped from "
          r"memory \(--max-cpu-loras 1\) and reading it again failed")


@pytest.fixture(scope="module")
def originals(tiny_llama, tmp_path_factory):
    return make_test_adapters(tiny_llama, tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="module")
def expected(tiny_llama, originals):
    tokens = {name: peft_greedy(tiny_llama, path, LONG, MAX_TOKENS) for name, path in originals.items()}
    return {**tokens, "base": hf_greedy(tiny_llama, LONG, MAX_TOKENS)}


@pytest.fixture
def adapters(originals, tmp_path):
    """Copies of the adapters this test may delete: name -> LoRARequest."""
    return {name: LoRARequest(name, i + 1, str(shutil.copytree(path, tmp_path / name)))
            for i, (name, path) in enumerate(originals.items())}


def engine_with(tiny_llama, adapters) -> LLMEngine:
    """One adapter in memory at a time; ``chat`` is registered last, then evicted by a
    request for ``sql``."""
    config = EngineConfig.from_options(model=str(tiny_llama), dtype="float32", enable_lora=True,
                                       max_loras=1, max_cpu_loras=1)
    engine = LLMEngine.from_config(config)
    engine.add_lora(adapters["sql"])
    engine.add_lora(adapters["chat"])
    engine.add_request("warm-sql", LONG, GREEDY, lora_request=adapters["sql"])
    drain(engine)
    assert list(engine.loras.manager.loaded) == [engine.loras.manager.adapters["sql"].uid]
    return engine


def drain(engine: LLMEngine) -> dict:
    finals = {}
    while engine.has_unfinished_requests():
        finals.update((o.request_id, o) for o in engine.step() if o.finished)
    return finals


def test_only_the_requests_of_the_unreadable_adapter_fail(tiny_llama, adapters, expected):
    engine = engine_with(tiny_llama, adapters)
    shutil.rmtree(adapters["chat"].lora_path)
    engine.add_request("chat", LONG, SamplingParams(n=2, max_tokens=MAX_TOKENS, temperature=0.0),
                       lora_request=adapters["chat"])
    engine.add_request("base", LONG, GREEDY)
    engine.add_request("sql", LONG, GREEDY, lora_request=adapters["sql"])
    finals = drain(engine)
    failed = finals["chat"]
    assert isinstance(failed.error, LoRAAdapterError)
    assert failed.error.param == "lora_path"
    with pytest.raises(LoRAAdapterError, match=REASON):
        raise failed.error
    assert [c.finish_reason for c in failed.outputs] == ["abort", "abort"]
    assert finals["base"].error is None and finals["base"].outputs[0].token_ids == expected["base"]
    assert finals["sql"].outputs[0].token_ids == expected["sql"]
    assert engine.kv.pool.num_free_blocks == engine.kv.num_blocks
    assert [r.lora_name for r in engine.list_loras()] == ["sql", "chat"]  # still registered


def test_the_adapter_works_again_once_its_files_are_back(tiny_llama, adapters, originals, expected):
    engine = engine_with(tiny_llama, adapters)
    shutil.rmtree(adapters["chat"].lora_path)
    engine.add_request("lost", LONG, GREEDY, lora_request=adapters["chat"])
    assert drain(engine)["lost"].error is not None
    shutil.copytree(originals["chat"], adapters["chat"].lora_path)
    engine.add_request("back", LONG, GREEDY, lora_request=adapters["chat"])
    # the failed request's blocks were registered but never computed: no prefix hit on them
    back = drain(engine)["back"]
    assert back.error is None and back.outputs[0].token_ids == expected["chat"]


def test_the_async_engine_raises_to_the_caller_and_keeps_serving(tiny_llama, adapters, expected):
    engine = AsyncEngine(engine_with(tiny_llama, adapters))
    shutil.rmtree(adapters["chat"].lora_path)

    async def last(request_id, lora):
        final = None
        async for final in engine.generate(LONG, GREEDY, request_id, lora_request=lora):
            pass
        return final

    async def main():
        with pytest.raises(LoRAAdapterError, match=REASON):
            await last("lost", adapters["chat"])
        engine.check_health()
        assert (await last("sql", adapters["sql"])).outputs[0].token_ids == expected["sql"]
        await engine.shutdown()

    asyncio.run(main())
