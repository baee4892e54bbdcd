"""--enable-embeddings on the embedded SmolLM2: one server answers chat and embeddings at
once, the embeddings being the model's own (transformers, reading the same GGUF file, is
the oracle) and the same whether asked alone or beside a chat."""

from __future__ import annotations

import asyncio

import numpy as np
import openai
import pytest
import torch

from fw.model_loader.default_model import DefaultModelMissing, default_model_path
from tests.core.server.conftest import real_engine_server

pytestmark = pytest.mark.slow

MODEL = "SmolLM2-135M-Instruct"
#: the first is longer than 8 tokens: the file's 4-bit weights run other kernels in steps of up
#: to 8 rows (fw_builtins.quantization.int4), so a shorter text alone would not be bit-equal
TEXTS = ["The capital of France is Paris, a city on the river Seine.", "A man is eating food.", "hello world"]


@pytest.fixture(scope="module")
def smollm2():
    try:
        return default_model_path()
    except DefaultModelMissing as exc:
        pytest.skip(str(exc))


@torch.no_grad()
def transformers_embeddings(path, texts) -> np.ndarray:
    """The final hidden state (after the last norm) of each text's last token, normalised."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    rows = [model.model(tokenizer(t, return_tensors="pt").input_ids).last_hidden_state[0, -1] for t in texts]
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1).numpy()


def test_chat_and_embeddings_from_one_generative_model_at_once(smollm2):
    want = transformers_embeddings(smollm2, TEXTS)
    with real_engine_server(enable_embeddings=True, max_model_len=1024) as live:
        async def both():
            client = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0)
            chat = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Name the capital city of France."}],
                max_tokens=24, temperature=0)
            embeddings = [client.embeddings.create(model=MODEL, input=TEXTS) for _ in range(3)]
            return await asyncio.gather(chat, *embeddings)

        chat, *batches = asyncio.run(both())
        alone = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0).embeddings.create(
            model=MODEL, input=TEXTS[0])
    assert "Paris" in chat.choices[0].message.content
    for batch in batches:
        got = np.array([d.embedding for d in batch.data])
        assert got.shape == (3, 576) and np.allclose(np.linalg.norm(got, axis=-1), 1, atol=1e-5)
        cosine = (got * want).sum(-1)
        assert cosine.min() >= 0.99, cosine  # fw runs the file's 4-bit weights with 8-bit activations
        assert float(np.dot(got[0], alone.data[0].embedding)) >= 0.99999
