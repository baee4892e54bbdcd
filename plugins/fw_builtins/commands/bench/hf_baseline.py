"""The transformers baseline of `fw bench throughput --hf-baseline`: the same prompts
through Hugging Face ``generate``, in the same process, so the ratio compares the two on
the same machine at the same moment.

transformers loads the file fw loaded, in the data type fw resolved (``--dtype``), as a
dense model: a GGUF checkpoint is dequantized, because the figure this stands for is
"transformers' bf16 generate". Prompts go in batches of ``--hf-max-batch-size`` in
dataset order, left-padded (what ``generate`` needs for decoder-only models), and every
row generates the batch's longest output length: ``min_new_tokens`` plays the part of
``ignore_eos``. Only the requested tokens are counted, so padding and the overshoot of
shorter rows are costs the baseline pays, as static batching does.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import click

from fw_builtins.commands.bench.offline import BenchRequest, throughput_figures


def load_model(engine: Any, trust_remote_code: bool = False) -> Any:
    """The transformers model for the checkpoint ``engine`` runs, on its device and dtype."""
    import transformers

    loaded = engine.loaded
    path = loaded.path
    kwargs: dict[str, Any] = {"dtype": loaded.dtype, "trust_remote_code": trust_remote_code}
    if path.is_file():
        kwargs["gguf_file"] = path.name
        if hasattr(transformers, "GgufConfig"):
            kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
        path = path.parent
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise click.ClickException(
            f"--hf-baseline: transformers cannot load {loaded.path}: {str(exc).splitlines()[0]}") from None
    return model.to(loaded.device).eval()


def _pad_id(engine: Any) -> int:
    tokenizer = engine.tokenizer
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return engine.eos_token_ids[0] if engine.eos_token_ids else 0


def _generate(model: Any, batch: Sequence[BenchRequest], pad_id: int, n: int) -> None:
    import torch

    width = max(len(r.prompt_token_ids) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, request in enumerate(batch):
        start = width - len(request.prompt_token_ids)
        ids[row, start:] = torch.tensor(request.prompt_token_ids)
        mask[row, start:] = 1
    new_tokens = max(r.output_len for r in batch)
    with torch.inference_mode():
        model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       do_sample=True, temperature=1.0, top_p=1.0, top_k=0, num_return_sequences=n,
                       max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad_id)


def measure(model: Any, engine: Any, requests: Sequence[BenchRequest], n: int, batch_size: int) -> dict[str, Any]:
    """Time ``generate`` over ``requests`` (after one tiny untimed call); the same figures
    as fw's, plus the settings that shaped them."""
    import torch

    pad_id = _pad_id(engine)
    _generate(model, [BenchRequest(requests[0].prompt_token_ids[:8], 2)], pad_id, 1)
    start = time.perf_counter()
    for first in range(0, len(requests), batch_size):
        _generate(model, requests[first:first + batch_size], pad_id, n)
    if model.device.type == "cuda":
        torch.cuda.synchronize()  # the clock must not stop before the device does
    elapsed = time.perf_counter() - start
    figures = throughput_figures(elapsed, len(requests), sum(len(r.prompt_token_ids) for r in requests),
                                 n * sum(r.output_len for r in requests))
    return {**figures, "dtype": str(model.dtype).removeprefix("torch."), "batch_size": batch_size}
