"""benchmarks/gguf_models.py on a tiny GGUF: the Q4_1 copy holds the same model in Q4_1
layers (the embedding and norms as they were), weight bytes count a tied head's shared
blocks once, and decode rates come back for each batch size."""

from __future__ import annotations

import pytest

from fw_kernels import cpu

from tests.benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("gguf_models")


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_requantized_copy_weights_and_rates(script, tiny_checkpoint_factory, tmp_path):
    from fw import LLM
    from fw_builtins.loaders.gguf_reader import GGUFFile
    from gguf import GGMLQuantizationType as T

    from tests.tiny_gguf import make_tiny_gguf

    wide = {"hidden_size": 256, "head_dim": 64, "intermediate_size": 512, "tie_word_embeddings": True}
    source = make_tiny_gguf(tmp_path / "q4_k.gguf", tiny_checkpoint_factory("LlamaForCausalLM", **wide),
                            tensor_type="Q4_K", tensor_types={"token_embd.weight": "Q8_0"})
    copy = script.requantize(source, tmp_path / "q4_1.gguf")
    before, after = ({t.name: t for t in GGUFFile(path).tensors} for path in (source, copy))
    assert after.keys() == before.keys()
    for name, tensor in after.items():
        expected = T.Q4_1 if name.startswith("blk.") and len(tensor.shape) == 2 else before[name].type
        assert tensor.type == expected, name
    assert GGUFFile(copy).metadata["tokenizer.ggml.tokens"] == GGUFFile(source).metadata["tokenizer.ggml.tokens"]
    llm = LLM(str(copy), dtype="bfloat16", kv_cache_memory_bytes=8 * 1024**2)
    model = llm.engine.loaded.model
    held = script.weight_bytes(model)
    embedding = model.model.embed_tokens.packed.layouts[0].packed
    assert model.lm_head.packed is model.model.embed_tokens.packed
    assert held < sum(p.nbytes for p in (m.packed for m in model.modules() if getattr(m, "packed", None)))
    assert held > embedding.nbytes
    assert script.decode_rate(llm, 2, steps=3) > 0
    assert not llm.engine.has_unfinished_requests()
