"""Adapters over an engine's life: start-up registration (--lora-modules), the prefix cache
kept apart per adapter, unloading while requests are in flight, the async engine's
adapter API, and clear errors when LoRA is off."""

from __future__ import annotations

import asyncio

import pytest

from fw import LLM, LoRARequest, SamplingParams
from fw.config import EngineConfig
from fw.engine.async_engine import AsyncEngine
from fw.engine.llm_engine import LLMEngine
from fw.errors import ModelNotFoundError, NotSupportedError
from fw.errors import LoRAAdapterError
from tests.core.engine.conftest import PROMPTS
from tests.core.lora.adapters import make_peft_adapter, make_test_adapters, peft_greedy

MAX_TOKENS = 12
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)
LONG = PROMPTS[2]  # several full KV blocks


@pytest.fixture(scope="module")
def paths(tiny_llama, tmp_path_factory):
    return make_test_adapters(tiny_llama, tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="module")
def expected(tiny_llama, paths):
    return {name: peft_greedy(tiny_llama, path, LONG, MAX_TOKENS) for name, path in paths.items()}


def engine_for(tiny_llama, **options) -> LLMEngine:
    config = EngineConfig.from_options(model=str(tiny_llama), dtype="float32", enable_lora=True, **options)
    return LLMEngine.from_config(config)


def run(engine: LLMEngine, request_id: str, lora: LoRARequest | None, prompt: str = LONG):
    engine.add_request(request_id, prompt, GREEDY, lora_request=lora)
    final = None
    while engine.has_unfinished_requests():
        final = next((o for o in engine.step() if o.request_id == request_id and o.finished), final)
    return final


def test_lora_modules_are_registered_at_start_up(tiny_llama, paths, expected):
    llm = LLM(str(tiny_llama), dtype="float32", enable_lora=True, max_loras=2, lora_modules=[
        f"sql={paths['sql']}", {"name": "chat", "path": str(paths["chat"]), "base_model_name": "tiny"}])
    assert llm.engine.list_loras() == [LoRARequest("sql", 1, str(paths["sql"])),
                                       LoRARequest("chat", 2, str(paths["chat"]), "tiny")]
    output = llm.generate(LONG, GREEDY, lora_request=LoRARequest("chat", 2, str(paths["chat"])), use_tqdm=False)
    assert output[0].outputs[0].token_ids == expected["chat"]


def test_a_bad_start_up_adapter_stops_the_engine_with_its_reason(tiny_llama, tmp_path):
    big = make_peft_adapter(tiny_llama, tmp_path / "big", r=32)
    with pytest.raises(LoRAAdapterError, match="rank 32 exceeds --max-lora-rank 16"):
        LLM(str(tiny_llama), dtype="float32", enable_lora=True, lora_modules=[f"big={big}"])


def test_prefix_cache_is_never_shared_across_adapters(tiny_llama, paths, expected):
    engine = engine_for(tiny_llama, max_loras=2)
    sql, chat = LoRARequest("sql", 1, str(paths["sql"])), LoRARequest("chat", 2, str(paths["chat"]))
    engine.add_lora(sql)
    engine.add_lora(chat)
    assert run(engine, "base", None).num_cached_tokens == 0
    first = run(engine, "sql-1", sql)
    assert first.num_cached_tokens == 0 and first.outputs[0].token_ids == expected["sql"]
    again = run(engine, "sql-2", sql)
    assert again.num_cached_tokens > 0 and again.outputs[0].token_ids == expected["sql"]
    assert run(engine, "chat-1", chat).num_cached_tokens == 0
    # The name "sql" reloaded from another folder is another adapter: no stale blocks.
    assert engine.remove_lora("sql")
    engine.add_lora(LoRARequest("sql", 1, str(paths["chat"])))
    reloaded = run(engine, "sql-3", LoRARequest("sql", 1, str(paths["chat"])))
    assert reloaded.outputs[0].token_ids == expected["chat"]
    assert reloaded.num_cached_tokens == 0


def test_unloading_an_adapter_in_use_finishes_its_requests_first(tiny_llama, paths, expected):
    engine = engine_for(tiny_llama)
    sql = LoRARequest("sql", 1, str(paths["sql"]))
    engine.add_lora(sql)
    engine.add_request("busy", LONG, GREEDY, lora_request=sql)
    engine.step()
    assert engine.remove_lora("sql") is True
    assert engine.list_loras() == [] and engine.remove_lora("sql") is False
    with pytest.raises(ModelNotFoundError, match="LoRA adapter 'sql' is not loaded"):
        engine.add_request("late", LONG, GREEDY, lora_request=sql)
    final = None
    while engine.has_unfinished_requests():
        final = next((o for o in engine.step() if o.finished), final)
    assert final.request_id == "busy" and final.outputs[0].token_ids == expected["sql"]
    assert engine.loras.manager.retiring and engine.loras.manager.loaded  # released on the next engine call
    engine.step()
    assert not engine.loras.manager.retiring and not engine.loras.manager.loaded and not engine.loras.manager.slots


def test_async_engine_adapter_api(tiny_llama, paths, expected):
    engine = AsyncEngine(engine_for(tiny_llama, lora_modules=[f"sql={paths['sql']}"]))
    chat = LoRARequest("chat", 2, str(paths["chat"]))

    async def main():
        assert [r.lora_name for r in engine.list_loras()] == ["sql"]
        assert await engine.add_lora(chat) is True
        assert await engine.add_lora(chat) is False
        assert [r.lora_name for r in engine.list_loras()] == ["sql", "chat"]
        with pytest.raises(LoRAAdapterError, match="the folder does not exist"):
            await engine.add_lora(LoRARequest("gone", 3, "/nowhere/adapter"))
        last = None
        async for last in engine.generate(LONG, GREEDY, "r1", lora_request=chat):
            pass
        assert last.lora_name == "chat" and last.outputs[0].token_ids == expected["chat"]
        assert await engine.remove_lora("chat") is True and await engine.remove_lora("chat") is False
        assert [r.lora_name for r in engine.list_loras()] == ["sql"]
        await engine.shutdown()

    asyncio.run(main())


def test_lora_requests_need_enable_lora(tiny_llama, paths, llm_factory):
    llm = llm_factory(tiny_llama)
    with pytest.raises(NotSupportedError, match="LoRA is not enabled; start the engine with --enable-lora"):
        llm.generate("Hi", GREEDY, lora_request=LoRARequest("sql", 1, str(paths["sql"])), use_tqdm=False)
    assert llm.engine.list_loras() == []
    assert not llm.engine.has_unfinished_requests()
