"""Batched sampling over one step's logits: a function of tensors.

``sample(logits, metadata)`` follows vLLM's order: logits processors (allowed tokens,
logit bias, banned tokens: bad words and EOS before ``min_tokens``; then the plugins'
processors, ``fw.logits_processors``, on the rows of the requests that use them), penalties, then for
rows that sample randomly temperature, min-p, top-k and top-p, then a draw. Only the rows
that use a feature pay for it. Seeded rows draw from their own generator, so a seed gives
the same text whatever shares the batch. ``metadata`` comes from
``fw.engine.sampling_batch``; the sampler never sees a request.

Everything runs on the logits' device (the runner does not copy them to the host):
``metadata`` is moved there first (``SamplingMetadata.to``), every tensor made here is
made there, and only the sampled ids, the rows left without a token and requested
logprobs cross back. The uniform numbers of a draw are made on the host, from the global
generator or a seeded request's own, and copied over: one number per row, and a seed gives
the same draws on any device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fw.engine.outputs import Logprob
from fw.engine.sampling_batch import Penalties, SamplingMetadata
from fw_kernels import cpu

_NEG_INF = float("-inf")


@dataclass
class SampleResult:
    token_ids: list[int]
    #: per row: {token: Logprob} (sampled token first) or None when not asked for
    logprobs: list[dict[int, Logprob] | None]
    #: per row: log-probability of the sampled token (for cumulative_logprob; 0.0 when
    #: no row of the step asked for logprobs)
    sampled_logprobs: list[float]
    #: rows whose constraints left no token (every logit -inf): their token means nothing,
    #: and the runner ends their requests with an error (``fw.engine.constraints``)
    no_token: list[int] = field(default_factory=list)


def apply_logits_processors(logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
    """Masks and biases that do not depend on temperature, in place."""
    for row, allowed in meta.allowed:
        keep = logits[row, allowed].clone()
        logits[row].fill_(_NEG_INF)
        logits[row, allowed] = keep
    for row, ids, values in meta.bias:
        logits[row, ids] += values
    for row, ids in meta.banned:
        logits[row, ids] = _NEG_INF
    return logits


def apply_custom_processors(logits: torch.Tensor, meta: SamplingMetadata,
                            proposed: dict[int, list[int]] | None = None) -> torch.Tensor:
    """The plugins' logits processors, each once over the rows that use it, in place.
    ``proposed``: per row of a speculative step, the proposals before that row, which
    the row's output so far includes (so a row sees what decoding one token at a time
    would have shown it)."""
    for group in meta.custom:
        outputs = group.outputs
        if proposed:
            outputs = [out + proposed[row] if row in proposed else out for row, out in zip(group.rows, outputs)]
        group.processor.apply(logits, group.rows, group.states, outputs)
    return logits


def constrained_rows(meta: SamplingMetadata, masked_rows: set[int]) -> set[int]:
    """Rows whose masks could leave no token: the caller's, allowed tokens, bans, plugins'."""
    return {*masked_rows, *(r for r, _ in meta.allowed), *(r for r, _ in meta.banned),
            *(r for group in meta.custom for r in group.rows)}


def apply_penalties(logits: torch.Tensor, penalties: Penalties | None) -> torch.Tensor:
    """Repetition (over prompt and output: positive logits divided, negative multiplied,
    as transformers' RepetitionPenaltyLogitsProcessor), then presence and frequency (over
    the output only, as OpenAI defines them), in place."""
    if penalties is None:
        return logits
    rows = logits.index_select(0, penalties.rows)
    factor = penalties.repetition[:, None]
    penalised = torch.where(rows > 0, rows / factor, rows * factor)
    rows = torch.where(penalties.seen, penalised, rows)
    counts = penalties.counts
    rows -= penalties.frequency[:, None] * counts + penalties.presence[:, None] * (counts > 0).to(rows.dtype)
    logits.index_copy_(0, penalties.rows, rows)
    return logits


def apply_top_k_top_p_min_p(logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
    """Temperature, then min-p, top-k and top-p, each as transformers' logits warper of the
    same name computes it (the rows are all sampled randomly)."""
    logits = logits / meta.temperature[:, None]
    if meta.min_p is not None:
        probs = logits.softmax(-1)
        threshold = probs.amax(-1, keepdim=True) * meta.min_p[:, None]
        logits = logits.masked_fill(probs < threshold, _NEG_INF)
    if meta.top_k is not None:
        vocab = logits.shape[1]
        k = torch.where(meta.top_k > 0, meta.top_k, vocab).clamp(max=vocab)
        kth = logits.topk(int(k.max()), dim=-1).values.gather(1, (k - 1)[:, None])
        logits = logits.masked_fill(logits < kth, _NEG_INF)
    if meta.top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(-1)
        before = sorted_probs.cumsum(-1) - sorted_probs  # the mass ranked strictly above each token
        drop_sorted = before >= meta.top_p[:, None]
        drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
        logits = logits.masked_fill(drop, _NEG_INF)
    return logits


def rows_without_a_token(logits: torch.Tensor, rows: set[int]) -> list[int]:
    """Which of ``rows`` (the constrained ones) have nothing left to sample."""
    if not rows:
        return []
    order = sorted(rows)
    index = torch.tensor(order, dtype=torch.int64, device=logits.device)
    # A row's maximum is one vectorised pass over the logits in place (copying the rows
    # out, comparing every logit and reducing the booleans took ~20x longer at a 49k
    # vocabulary); a NaN maximum hides whether any logit is above -inf, so those rows
    # are checked logit by logit.
    top = logits.amax(dim=1).index_select(0, index)
    alive = top > _NEG_INF
    unsure = top.isnan()
    if bool(unsure.any()):
        alive[unsure] = (logits[index[unsure]] > _NEG_INF).any(dim=1)
    return [row for row, ok in zip(order, alive.tolist()) if not ok]


def _weights(logits: torch.Tensor) -> torch.Tensor:
    """Unnormalised probabilities: sampling by CDF needs no division by the total."""
    return (logits - logits.amax(dim=-1, keepdim=True)).exp_()


def draw(probs: torch.Tensor, generators: list[torch.Generator | None] | None) -> torch.Tensor:
    """One token per row by inverse-CDF sampling: a single uniform number per row, so a
    seeded row's draws depend on nothing but its own generator, and no per-token random
    numbers are made (their generation dominated the step on a CPU)."""
    rows = probs.shape[0]
    if generators is None:
        uniform = torch.rand(rows, 1, dtype=probs.dtype, device="cpu")
    else:
        uniform = torch.empty(rows, 1, dtype=probs.dtype, device="cpu")
        unseeded = [i for i, g in enumerate(generators) if g is None]
        if unseeded:
            uniform[unseeded] = torch.rand(len(unseeded), 1, dtype=probs.dtype, device="cpu")
        for i, generator in enumerate(generators):
            if generator is not None:
                uniform[i] = torch.rand(1, dtype=probs.dtype, generator=generator, device="cpu")
    uniform = uniform.to(probs.device, non_blocking=True)
    cdf = probs.cumsum(-1)
    # 1 - u is in (0, 1]: the target is above zero, so zero-probability tokens are never hit
    target = (1.0 - uniform) * cdf[:, -1:]
    return torch.searchsorted(cdf, target).squeeze(1).clamp_(max=probs.shape[1] - 1)


def argmax(logits: torch.Tensor) -> torch.Tensor:
    """Greedy picks; fw's CPU kernel is ~10x torch's argmax on a 49k vocabulary."""
    if logits.dtype == torch.float32 and logits.is_contiguous() and cpu.supports(logits):
        return cpu.argmax(logits)
    return logits.argmax(dim=-1)


def select_rows(meta: SamplingMetadata, rows: list[int]) -> SamplingMetadata:
    index = torch.tensor(rows, dtype=torch.int64, device=meta.temperature.device)
    pick = (lambda t: None if t is None else t.index_select(0, index))
    greedy = meta.greedy_rows
    return SamplingMetadata(
        temperature=meta.temperature.index_select(0, index), num_logprobs=[meta.num_logprobs[i] for i in rows],
        top_p=pick(meta.top_p), top_k=pick(meta.top_k), min_p=pick(meta.min_p),
        generators=None if meta.generators is None else [meta.generators[i] for i in rows],
        greedy_host=[greedy[i] for i in rows])


def _random(logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
    return draw(_weights(apply_top_k_top_p_min_p(logits, meta)), meta.generators)


def logprob_entries(raw_logprobs: torch.Tensor, row: int, token: int, count: int) -> dict[int, Logprob]:
    """The sampled token's logprob and rank, then the ``count`` most likely tokens."""
    values = raw_logprobs[row]
    sampled = float(values[token])
    rank = int((values > sampled).sum()) + 1
    entries = {token: Logprob(sampled, rank)}
    if count:
        top = values.topk(min(count, values.shape[0]))
        for r, (lp, tok) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
            entries.setdefault(tok, Logprob(lp, r))
    return entries


def sample(logits: torch.Tensor, meta: SamplingMetadata, masked_rows: set[int] = frozenset()) -> SampleResult:
    """``logits`` [rows, vocab] in float32, one row per row of ``meta``; modified in place.
    ``masked_rows``: rows the caller masked already (a grammar), checked with the rows
    this function masks for a token left to sample."""
    rows = logits.shape[0]
    wants_logprobs = any(n is not None for n in meta.num_logprobs)
    # Logprobs are of the model's own distribution, before any processing.
    raw_logprobs = logits.log_softmax(-1) if wants_logprobs else None
    logits = apply_penalties(apply_custom_processors(apply_logits_processors(logits, meta), meta), meta.penalties)
    no_token = rows_without_a_token(logits, constrained_rows(meta, masked_rows))
    greedy = meta.greedy_rows
    if all(greedy):
        tokens = argmax(logits)
    elif not any(greedy):
        tokens = _random(logits, meta)
    else:
        tokens = torch.empty(rows, dtype=torch.int64, device=logits.device)
        greedy_rows = [i for i, g in enumerate(greedy) if g]
        random_rows = [i for i, g in enumerate(greedy) if not g]
        tokens[greedy_rows] = argmax(logits[greedy_rows])
        index = torch.tensor(random_rows, dtype=torch.int64, device=logits.device)
        tokens[index] = _random(logits[index], select_rows(meta, random_rows))
    token_list = tokens.tolist()
    if raw_logprobs is None:
        return SampleResult(token_list, [None] * rows, [0.0] * rows, no_token)
    sampled_lp = raw_logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
    vocab = logits.shape[1]
    logprobs = [None if n is None else logprob_entries(raw_logprobs, i, token_list[i], vocab if n == -1 else n)
                for i, n in enumerate(meta.num_logprobs)]
    return SampleResult(token_list, logprobs, sampled_lp, no_token)


def prompt_logprob_entries(logits: torch.Tensor, next_tokens: list[int], count: int) -> list[dict[int, Logprob]]:
    """Logprobs of each prompt token given the tokens before it (rows of ``logits``
    predict ``next_tokens``)."""
    raw = logits.float().log_softmax(-1)
    vocab = raw.shape[1]
    return [logprob_entries(raw, i, tok, vocab if count == -1 else count) for i, tok in enumerate(next_tokens)]
