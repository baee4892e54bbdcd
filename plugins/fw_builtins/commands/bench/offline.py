"""What `fw bench latency` and `fw bench throughput` share: loading the engine with
one-line errors, random token prompts, running a set of requests to the end, and the
JSON file.

Both benchmarks drive ``LLMEngine`` directly (``add_request`` / ``step``) rather than
``fw.LLM``: the engine comes from the command's own options. Prompts are token ids, so a prompt has exactly the length asked for.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import click

from fw.config import EngineConfig

#: request ids stay unique across the runs of one process (warm-up, iterations, baselines)
_request_ids = itertools.count()


@dataclass(frozen=True)
class BenchRequest:
    prompt_token_ids: list[int]
    #: the number of tokens to generate (ignore_eos makes it exact)
    output_len: int


def engine_config(config: EngineConfig) -> EngineConfig:
    """The engine's part of a bench bundle (which subclasses ``EngineConfig``)."""
    return EngineConfig(**{name: getattr(config, name) for name in EngineConfig.model_fields})


@contextmanager
def user_errors() -> Iterator[None]:
    """A model that will not load or a request the engine refuses ends the command with
    one line (exit status 1), not a traceback."""
    from fw.errors import FwError
    from fw.model_loader.default_model import DefaultModelMissing

    try:
        yield
    except (FwError, ValueError, DefaultModelMissing) as exc:
        raise click.ClickException(str(exc)) from None


def load_engine(config: EngineConfig) -> Any:
    from fw.engine.llm_engine import LLMEngine

    with user_errors():
        return LLMEngine.from_config(engine_config(config))


def check_fits(engine: Any, input_len: int, output_len: int) -> None:
    """Refuse, before any work, lengths the model's context cannot hold."""
    if input_len + output_len > engine.max_model_len:
        raise click.BadParameter(
            f"--input-len {input_len} plus --output-len {output_len} exceed the model's context "
            f"of {engine.max_model_len} tokens (--max-model-len)", param_hint="'--input-len'")


def vocabulary(engine: Any) -> list[int]:
    """Token ids random prompts are drawn from: ordinary tokens the model can embed."""
    from fw_builtins.commands.bench.datasets import ordinary_token_ids

    size = engine.loaded.hf_config.vocab_size
    return [i for i in ordinary_token_ids(engine.tokenizer) if i < size]


def random_ids(rng: random.Random, vocab: Sequence[int], length: int) -> list[int]:
    return [rng.choice(vocab) for _ in range(length)]


def sampling_params(output_len: int, n: int, detokenize: bool) -> Any:
    """Sampling as the benchmarks use it: plain temperature 1, every reply its full length."""
    from fw.engine.sampling_params import SamplingParams

    return SamplingParams(n=n, temperature=1.0, top_p=1.0, ignore_eos=True, max_tokens=output_len,
                          detokenize=detokenize)


def run_requests(engine: Any, requests: Sequence[BenchRequest], n: int = 1, detokenize: bool = True,
                 progress: bool = False) -> tuple[list[Any], float]:
    """Run every request to its end; returns the final outputs (in order) and the wall time
    from the first request added to the last finished."""
    from tqdm import tqdm

    order = []
    finals: dict[str, Any] = {}
    bar = tqdm(total=len(requests), desc="Processed prompts", disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    with user_errors():
        for request in requests:
            request_id = f"bench-{next(_request_ids)}"
            engine.add_request(request_id, {"prompt_token_ids": request.prompt_token_ids},
                               sampling_params(request.output_len, n, detokenize))
            order.append(request_id)
        while engine.has_unfinished_requests():
            for output in engine.step():
                if output.finished:
                    finals[output.request_id] = output
                    bar.update(1)
    elapsed = time.perf_counter() - start
    bar.close()
    return [finals[request_id] for request_id in order], elapsed


def throughput_figures(elapsed: float, num_requests: int, prompt_tokens: int,
                       output_tokens: int) -> dict[str, Any]:
    """Requests and tokens per second, with the totals they come from."""
    return {
        "elapsed_time": elapsed,
        "num_requests": num_requests,
        "total_prompt_tokens": prompt_tokens,
        "total_output_tokens": output_tokens,
        "total_num_tokens": prompt_tokens + output_tokens,
        "requests_per_second": num_requests / elapsed,
        "tokens_per_second": (prompt_tokens + output_tokens) / elapsed,
        "output_tokens_per_second": output_tokens / elapsed,
    }


def write_json(path: str | None, document: dict[str, Any]) -> None:
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"Results saved to {target}")
