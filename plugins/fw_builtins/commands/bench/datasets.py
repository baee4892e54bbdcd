"""The prompts `fw bench serve` sends: random tokens, ShareGPT first turns, a JSONL file, or
random prompts behind a few shared prefixes (as vLLM's prefix_repetition dataset).

Every dataset gives the same thing, a list of ``Prompt``s, each with the reply length to
ask for. Sampling is seeded, so two runs with the same ``--seed`` send the same prompts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

#: ShareGPT conversations outside these bounds (in tokens) are skipped, as is usual for
#: this benchmark: very short ones measure nothing, very long ones overflow small models
SHAREGPT_MIN_LEN = 4
SHAREGPT_MAX_PROMPT_LEN = 1024
SHAREGPT_MAX_TOTAL_LEN = 2048


@dataclass(frozen=True)
class Prompt:
    text: str
    #: the reply length to ask for (max_tokens)
    output_len: int


def load_prompts(options: Any, tokenizer: Any) -> list[Prompt]:
    """The prompts for ``options`` (a DatasetOptions); ``tokenizer`` is None for custom."""
    rng = random.Random(options.seed)
    if options.dataset_name == "random":
        return random_prompts(options, tokenizer, rng)
    if options.dataset_name == "sharegpt":
        return sharegpt_prompts(options, tokenizer, rng)
    if options.dataset_name == "prefix_repetition":
        return prefix_repetition_prompts(options, tokenizer, rng)
    return custom_prompts(options, rng)


def length_range(length: int, ratio: float) -> tuple[int, int]:
    """The lowest and highest length within ``ratio`` of ``length`` (never below 1)."""
    return max(1, int(length * (1 - ratio))), max(1, int(length * (1 + ratio)))


def draw_length(rng: random.Random, length: int, ratio: float) -> int:
    """A length drawn uniformly from ``length_range``."""
    return rng.randint(*length_range(length, ratio))


def ordinary_token_ids(tokenizer: Any) -> list[int]:
    """Every token id that is not a special token: what random prompts are drawn from
    (the offline benchmarks use the ids as they are, the serving benchmark decodes them)."""
    special = set(tokenizer.all_special_ids)
    return [i for i in range(len(tokenizer)) if i not in special]


def random_prompts(options: Any, tokenizer: Any, rng: random.Random) -> list[Prompt]:
    """Prompts of random ordinary (non-special) tokens, decoded to text."""
    vocabulary = ordinary_token_ids(tokenizer)
    prompts = []
    for _ in range(options.num_prompts):
        input_len = draw_length(rng, options.random_input_len, options.random_range_ratio)
        output_len = draw_length(rng, options.random_output_len, options.random_range_ratio)
        ids = [rng.choice(vocabulary) for _ in range(input_len)]
        prompts.append(Prompt(tokenizer.decode(ids), output_len))
    return prompts


def prefix_repetition_prompts(options: Any, tokenizer: Any, rng: random.Random) -> list[Prompt]:
    """Each prompt is one of ``--prefix-repetition-num-prefixes`` shared random prefixes
    (think system prompts) followed by its own random suffix; requests cycle through the
    prefixes in a shuffled order, so each prefix recurs throughout the run."""
    vocabulary = ordinary_token_ids(tokenizer)
    prefixes = [[rng.choice(vocabulary) for _ in range(options.prefix_repetition_prefix_len)]
                for _ in range(options.prefix_repetition_num_prefixes)]
    prompts = []
    for index in range(options.num_prompts):
        prefix = prefixes[index % len(prefixes)]
        suffix = [rng.choice(vocabulary) for _ in range(options.prefix_repetition_suffix_len)]
        prompts.append(Prompt(tokenizer.decode(prefix + suffix), options.prefix_repetition_output_len))
    rng.shuffle(prompts)
    return prompts


def _read_json(path: str, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="'--dataset-path'")
    try:
        if what == "jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{path} is not valid {what.upper()}: {exc}", param_hint="'--dataset-path'")


def _too_few(found: int, options: Any) -> click.BadParameter:
    return click.BadParameter(
        f"{options.dataset_path} has {found} usable prompts but --num-prompts is "
        f"{options.num_prompts}", param_hint="'--dataset-path'")


def sharegpt_prompts(options: Any, tokenizer: Any, rng: random.Random) -> list[Prompt]:
    """First human turns of ShareGPT conversations; the reply length is the recorded
    reply's, in tokens, unless --sharegpt-output-len sets it."""
    data = _read_json(options.dataset_path, "json")
    conversations = [c.get("conversations") or c.get("conversation") or []
                     for c in data if isinstance(c, dict)] if isinstance(data, list) else []
    pairs = [(c[0]["value"], c[1]["value"]) for c in conversations
             if len(c) >= 2 and isinstance(c[0], dict) and isinstance(c[1], dict)]
    rng.shuffle(pairs)
    prompts = []
    for question, answer in pairs:
        if len(prompts) == options.num_prompts:
            break
        prompt_len = len(tokenizer.encode(question))
        output_len = options.sharegpt_output_len or len(tokenizer.encode(answer))
        if prompt_len < SHAREGPT_MIN_LEN or output_len < SHAREGPT_MIN_LEN:
            continue
        if prompt_len > SHAREGPT_MAX_PROMPT_LEN or prompt_len + output_len > SHAREGPT_MAX_TOTAL_LEN:
            continue
        prompts.append(Prompt(question, output_len))
    if len(prompts) < options.num_prompts:
        raise _too_few(len(prompts), options)
    return prompts


def custom_prompts(options: Any, rng: random.Random) -> list[Prompt]:
    """Prompts from a JSONL file whose lines are ``{"prompt": "..."}``, shuffled."""
    lines = _read_json(options.dataset_path, "jsonl")
    texts = [line["prompt"] for line in lines
             if isinstance(line, dict) and isinstance(line.get("prompt"), str)]
    if len(texts) < len(lines):
        raise click.BadParameter(
            f"{options.dataset_path}: every line must be a JSON object with a \"prompt\" string",
            param_hint="'--dataset-path'")
    rng.shuffle(texts)
    if len(texts) < options.num_prompts:
        raise _too_few(len(texts), options)
    return [Prompt(text, options.custom_output_len) for text in texts[:options.num_prompts]]
