"""The real Gemma 3 270M (Q4_K_M GGUF: Q5_0, Q4_K, Q6_K and Q8_0 tensors) end to end:
fw's greedy tokens in float32 equal transformers' on the same file; in bfloat16 it is
served from the file's own blocks, fused; ``fw serve`` answers completions, and since the
file has no chat template, chat requests get a clear 400 unless ``--chat-template`` is
given."""

from __future__ import annotations

import openai
import pytest
import torch

from fw import LLM, SamplingParams

pytestmark = pytest.mark.slow

PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):"]
#: Gemma's turn format, for the server started with --chat-template
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
            "{{ m.content }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
#: a small KV cache: zeroing fw's default 2 GiB would dominate these tests
SMALL_KV = str(64 * 1024**2)


@pytest.fixture(scope="module")
def transformers_tokens(gemma3_270m):
    """transformers' float32 greedy continuation of each prompt, loading the same GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = gemma3_270m.parent, gemma3_270m.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    continuations = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=32, min_new_tokens=32, do_sample=False)
        continuations.append((ids[0].tolist(), out[0, ids.shape[1]:].tolist()))
    return continuations


def test_fp32_greedy_tokens_match_transformers_on_the_same_file(gemma3_270m, transformers_tokens):
    llm = LLM(str(gemma3_270m), dtype="float32", quantization="none", max_model_len=1024,
              kv_cache_memory_bytes=int(SMALL_KV))
    outputs = llm.generate(PROMPTS, SamplingParams(max_tokens=32, min_tokens=32, temperature=0.0), use_tqdm=False)
    for output, (prompt_ids, expected) in zip(outputs, transformers_tokens):
        assert output.prompt_token_ids == prompt_ids
        assert output.outputs[0].token_ids == expected


def test_bf16_default_serves_the_files_blocks_fused(gemma3_270m, transformers_tokens):
    from fw.layers.packed import Int4Blocks, Int8Blocks

    llm = LLM(str(gemma3_270m), max_model_len=1024, kv_cache_memory_bytes=int(SMALL_KV))
    assert llm.engine.loaded.hf_config.architectures == ["Gemma3ForCausalLM"]
    model = llm.engine.loaded.model
    layer = model.model.layers[0]
    assert type(layer.self_attn.qkv_proj.packed.layout_for(1)) is Int8Blocks  # Q5_0 q/k, Q8_0 v
    assert type(layer.self_attn.o_proj.packed.layout_for(1)) is Int4Blocks  # Q4_K
    assert model.lm_head.packed is model.model.embed_tokens.packed  # the Q8_0 embedding, once
    assert llm.engine.runner.fused_decode is not None
    outputs = llm.generate(PROMPTS, SamplingParams(max_tokens=8, temperature=0.0), use_tqdm=False)
    # bf16 and the file's rounded K-quant scales may part from float32 later; the first
    # tokens of these prompts are clear choices
    for output, (_, expected) in zip(outputs, transformers_tokens):
        assert output.outputs[0].token_ids[:3] == expected[:3]


@pytest.fixture
def serve(gemma3_270m, tmp_path):
    """Start ``fw serve`` on the file (bfloat16: the file's blocks) with extra options; every
    server started, and every process it started (its engine core), is stopped by its id."""
    from tests.core.engine.core.served import Served

    started: list[Served] = []

    def start(*options: str) -> str:
        served = Served(gemma3_270m, "--dtype", "bfloat16", "--max-model-len", "1024", "--kv-cache-memory-bytes",
                        SMALL_KV, *options, log=tmp_path / f"serve-{len(started)}.log", ready_timeout=540)
        started.append(served)
        return served.url

    yield start
    for served in started:
        served.stop()


def test_served_completions_work_and_chat_needs_a_template(serve, gemma3_270m):
    client = openai.OpenAI(base_url=f"{serve()}/v1", api_key="x", max_retries=0)
    model = client.models.list().data[0].id
    completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8,
                                           temperature=0)
    # its first tokens are clear choices (a margin of 0.4 nats and more); 270M parameters
    # do not know the answer
    assert completion.choices[0].text.startswith(" the capital of")
    assert completion.usage.completion_tokens == 8 and completion.usage.prompt_tokens == 6  # <bos> first
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert "no chat template" in refused.value.body["message"]
    assert "--chat-template" in refused.value.body["message"]


def test_chat_works_with_a_chat_template(serve):
    client = openai.OpenAI(base_url=f"{serve('--chat-template', TEMPLATE)}/v1", api_key="x", max_retries=0)
    model = client.models.list().data[0].id
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=16,
        temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0
