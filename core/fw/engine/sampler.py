"""Batched sampling over one step's logits, in vLLM's order: logits processors (allowed
tokens, bad words, logit bias, min_tokens), penalties, then temperature, min-p, top-k and
top-p, then a draw. Every row is a sequence; per-row settings are tensors, and only the
rows that use a feature pay for it. Seeded rows draw from their own generator, so a
seed gives the same text whatever shares the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fw.engine.outputs import Logprob
from fw.engine.request import Request
from fw_kernels import cpu

_NEG_INF = float("-inf")


@dataclass
class SampleResult:
    token_ids: list[int]
    #: per row: {token: Logprob} (sampled token first) or None when not asked for
    logprobs: list[dict[int, Logprob] | None]
    #: per row: log-probability of the sampled token (for cumulative_logprob; 0.0 when
    #: no request of the step asked for logprobs)
    sampled_logprobs: list[float]
    #: rows whose constraints left no token (every logit -inf): their token is meaningless
    #: and the engine ends their requests with an error (``fw.engine.constraints``)
    no_token: list[int] = field(default_factory=list)


def _rows(requests: list[Request], predicate) -> list[int]:
    return [i for i, r in enumerate(requests) if predicate(r.params)]


def apply_logits_processors(logits: torch.Tensor, requests: list[Request]) -> torch.Tensor:
    """Masks and biases that do not depend on temperature."""
    for i, request in enumerate(requests):
        params = request.params
        if params.allowed_token_ids is not None:
            allowed = torch.tensor(params.allowed_token_ids, dtype=torch.long)
            keep = logits[i, allowed].clone()
            logits[i].fill_(_NEG_INF)
            logits[i, allowed] = keep
        if params._bad_words_token_ids:
            _ban_bad_words(logits[i], params._bad_words_token_ids, request.output_token_ids)
        if params.logit_bias:
            ids = torch.tensor(list(params.logit_bias), dtype=torch.long)
            logits[i, ids] += torch.tensor(list(params.logit_bias.values()), dtype=logits.dtype)
        if request.num_output_tokens < params.min_tokens:
            banned = [t for t in (*request.eos_token_ids, *params.stop_token_ids) if t < logits.shape[1]]
            if banned:
                logits[i, banned] = _NEG_INF
    return logits


def _ban_bad_words(row: torch.Tensor, bad_words: list[list[int]], output: list[int]) -> None:
    for word in bad_words:
        prefix = word[:-1]
        if not prefix or output[len(output) - len(prefix):] == prefix:
            row[word[-1]] = _NEG_INF


def apply_penalties(logits: torch.Tensor, requests: list[Request]) -> torch.Tensor:
    rows = _rows(requests, lambda p: p.presence_penalty or p.frequency_penalty or p.repetition_penalty != 1.0)
    if not rows:
        return logits
    vocab = logits.shape[1]
    for i in rows:
        request = requests[i]
        params = request.params
        output = torch.tensor(request.output_token_ids, dtype=torch.long)
        if params.repetition_penalty != 1.0:
            seen = torch.zeros(vocab, dtype=torch.bool)
            seen[torch.tensor(request.all_token_ids, dtype=torch.long)] = True
            row = logits[i]
            penalised = torch.where(row > 0, row / params.repetition_penalty, row * params.repetition_penalty)
            logits[i] = torch.where(seen, penalised, row)
        if (params.presence_penalty or params.frequency_penalty) and output.numel():
            counts = torch.zeros(vocab, dtype=logits.dtype).scatter_add_(0, output, torch.ones_like(output, dtype=logits.dtype))
            logits[i] -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).to(logits.dtype)
    return logits


def _filter(logits: torch.Tensor, requests: list[Request]) -> torch.Tensor:
    """Temperature, min-p, top-k, top-p for the rows that sample randomly."""
    temperatures = [r.params.temperature for r in requests]
    if any(t != 1.0 for t in temperatures):
        logits = logits / torch.tensor(temperatures, dtype=logits.dtype)[:, None]
    min_p = [r.params.min_p for r in requests]
    if any(min_p):
        probs = logits.softmax(-1)
        threshold = probs.amax(-1, keepdim=True) * torch.tensor(min_p, dtype=logits.dtype)[:, None]
        logits = logits.masked_fill(probs < threshold, _NEG_INF)
    top_k = [r.params.top_k for r in requests]
    if any(top_k):
        vocab = logits.shape[1]
        k = torch.tensor([t if t > 0 else vocab for t in top_k], dtype=torch.long).clamp(max=vocab)
        kth = logits.topk(int(k.max()), dim=-1).values.gather(1, (k - 1)[:, None])
        logits = logits.masked_fill(logits < kth, _NEG_INF)
    top_p = [r.params.top_p for r in requests]
    if any(p < 1.0 for p in top_p):
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(-1)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly before each token
        drop_sorted = before > torch.tensor(top_p, dtype=logits.dtype)[:, None]
        drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
        logits = logits.masked_fill(drop, _NEG_INF)
    return logits


def _weights(logits: torch.Tensor) -> torch.Tensor:
    """Unnormalised probabilities: sampling by CDF needs no division by the total."""
    return (logits - logits.amax(dim=-1, keepdim=True)).exp_()


def _draw(probs: torch.Tensor, requests: list[Request]) -> torch.Tensor:
    """One token per row by inverse-CDF sampling: a single uniform number per row, so a
    seeded row's draws depend on nothing but its own generator, and no per-token random
    numbers are made (their generation dominated the step on a CPU)."""
    uniform = torch.empty(len(requests), 1, dtype=probs.dtype)
    unseeded = [i for i, r in enumerate(requests) if r.generator is None]
    if unseeded:
        uniform[unseeded] = torch.rand(len(unseeded), 1, dtype=probs.dtype)
    for i, request in enumerate(requests):
        if request.generator is not None:
            uniform[i] = torch.rand(1, dtype=probs.dtype, generator=request.generator)
    cdf = probs.cumsum(-1)
    # 1 - u is in (0, 1]: the target is above zero, so zero-probability tokens are never hit
    target = (1.0 - uniform) * cdf[:, -1:]
    return torch.searchsorted(cdf, target).squeeze(1).clamp_(max=probs.shape[1] - 1)


def _logprob_entries(raw_logprobs: torch.Tensor, row: int, token: int, count: int) -> dict[int, Logprob]:
    values = raw_logprobs[row]
    sampled = float(values[token])
    rank = int((values > sampled).sum()) + 1
    entries = {token: Logprob(sampled, rank)}
    if count:
        top = values.topk(min(count, values.shape[0]))
        for r, (lp, tok) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
            entries.setdefault(tok, Logprob(lp, r))
    return entries


def _rows_without_a_token(logits: torch.Tensor, requests: list[Request]) -> list[int]:
    """Rows of constrained requests (allowed tokens, a grammar, bad words, min_tokens)
    where nothing is left to sample; unconstrained rows are not looked at."""
    rows = [i for i, r in enumerate(requests)
            if r.params.allowed_token_ids is not None or r.grammar is not None or r.params._bad_words_token_ids
            or r.num_output_tokens < r.params.min_tokens]
    if not rows:
        return []
    alive = (logits.index_select(0, torch.tensor(rows, dtype=torch.long)) > _NEG_INF).any(dim=1).tolist()
    return [row for row, ok in zip(rows, alive) if not ok]


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    """Greedy picks; fw's CPU kernel is ~10x torch's argmax on a 49k vocabulary."""
    if logits.dtype == torch.float32 and logits.is_contiguous() and cpu.supports(logits):
        return cpu.argmax(logits)
    return logits.argmax(dim=-1)


def sample(logits: torch.Tensor, requests: list[Request]) -> SampleResult:
    """``logits`` [rows, vocab] in float32, one row per request in ``requests``; they are
    modified in place."""
    wants_logprobs = any(r.params.logprobs is not None for r in requests)
    # Logprobs are of the model's own distribution, before any processing.
    raw_logprobs = logits.log_softmax(-1) if wants_logprobs else None
    logits = apply_penalties(apply_logits_processors(logits, requests), requests)
    no_token = _rows_without_a_token(logits, requests)
    random_rows = [i for i, r in enumerate(requests) if not r.params.greedy]
    if not random_rows:
        tokens = _argmax(logits)
    elif len(random_rows) == len(requests):
        tokens = _draw(_weights(_filter(logits, requests)), requests)
    else:
        tokens = torch.empty(len(requests), dtype=torch.long)
        greedy_rows = torch.tensor([i for i, r in enumerate(requests) if r.params.greedy], dtype=torch.long)
        tokens[greedy_rows] = _argmax(logits[greedy_rows])
        index = torch.tensor(random_rows, dtype=torch.long)
        subset = [requests[i] for i in random_rows]
        tokens[index] = _draw(_weights(_filter(logits[index], subset)), subset)
    token_list = tokens.tolist()
    if raw_logprobs is None:
        return SampleResult(token_list, [None] * len(requests), [0.0] * len(requests), no_token)
    sampled_lp = raw_logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
    logprobs: list[dict[int, Logprob] | None] = []
    vocab = logits.shape[1]
    for i, request in enumerate(requests):
        wanted = request.params.logprobs
        if wanted is None:
            logprobs.append(None)
        else:
            logprobs.append(_logprob_entries(raw_logprobs, i, token_list[i], vocab if wanted == -1 else wanted))
    return SampleResult(token_list, logprobs, sampled_lp, no_token)


def prompt_logprob_entries(logits: torch.Tensor, next_tokens: list[int], count: int) -> list[dict[int, Logprob]]:
    """Logprobs of each prompt token given the tokens before it (rows of ``logits``
    predict ``next_tokens``)."""
    raw = logits.float().log_softmax(-1)
    vocab = raw.shape[1]
    return [_logprob_entries(raw, i, tok, vocab if count == -1 else count) for i, tok in enumerate(next_tokens)]
