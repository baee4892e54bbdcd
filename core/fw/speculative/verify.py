"""Checking proposed tokens against the model, on the logits of one step.

A request that speculated ``k`` tokens has ``k + 1`` rows of logits: row ``j`` is the
model's distribution for the token after the ``j``-th proposal. Verification walks them:

* greedy: the model's argmax of each row is emitted while it equals the proposal (so the
  proposal was right and the next row is valid); the first disagreement emits the
  model's token and stops; when all agree, the last row adds one more. The output is
  exactly what the model alone produces.
* sampled: a proposal is a single token (probability 1 under the proposer), so it is kept
  with probability ``p(d)`` under the model's (processed, temperature-scaled, truncated)
  distribution ``p``; when rejected, a token is drawn from ``p`` with ``d`` removed and
  renormalised. This is rejection sampling with a point-mass draft distribution: every
  emitted token has exactly the model's distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fw.engine.outputs import Logprob
from fw.engine.sampler import (
    apply_custom_processors,
    apply_logits_processors,
    apply_penalties,
    apply_top_k_top_p_min_p,
    argmax,
    constrained_rows,
    draw,
    logprob_entries,
    rows_without_a_token,
    select_rows,
)
from fw.engine.sampling_batch import SamplingMetadata


@dataclass
class Verified:
    #: the tokens the request gets this step: accepted proposals, then one of the model's
    tokens: list[int]
    #: proposals accepted (of those it made)
    accepted: int
    #: its constraints left no token to sample (the request ends with their error)
    no_token: bool = False
    logprobs: list[dict[int, Logprob]] | None = None
    sampled_logprobs: list[float] | None = None


def _uniform(generator: torch.Generator | None) -> float:
    return float(torch.rand(1, generator=generator, device="cpu")) if generator is not None else float(torch.rand(1, device="cpu"))


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    return int(draw(probs[None], [generator])[0])


def verify(logits: torch.Tensor, meta: SamplingMetadata, groups: list[tuple[int, list[int]]],
           masked_rows: set[int] = frozenset()) -> list[Verified]:
    """``logits`` [rows, vocab] float32 (modified in place); ``meta`` has one row per logits
    row; ``groups`` gives each request's first row and its proposals (its rows are that
    row and the ``len(proposals)`` after it); ``masked_rows`` as in ``sample``. Runs on the
    logits' device, as ``sample`` does."""
    wants_logprobs = any(n is not None for n in meta.num_logprobs)
    raw = logits.log_softmax(-1) if wants_logprobs else None
    # Penalties only ever concern one-row groups: a penalised request does not speculate.
    # The plugins' processors see each row's output as if the proposals before it were
    # already emitted, so speculation cannot change what they do.
    proposed = {start + j: proposals[:j] for start, proposals in groups for j in range(1, len(proposals) + 1)}
    logits = apply_logits_processors(logits, meta)
    logits = apply_penalties(apply_custom_processors(logits, meta, proposed), meta.penalties)
    no_token = set(rows_without_a_token(logits, constrained_rows(meta, masked_rows)))
    greedy = meta.greedy_rows
    targets = argmax(logits).tolist() if any(greedy) else None
    random_rows = [row for row, g in enumerate(greedy) if not g]
    probs = None
    if random_rows:
        index = torch.tensor(random_rows, dtype=torch.int64, device=logits.device)
        scaled = apply_top_k_top_p_min_p(logits.index_select(0, index), select_rows(meta, random_rows)).softmax(-1)
        probs = dict(zip(random_rows, scaled))
    results = []
    for start, proposals in groups:
        if start in no_token:  # its first row has no token: nothing can be emitted
            results.append(Verified([], 0, no_token=True))
            continue
        generator = meta.generators[start] if meta.generators is not None else None
        emitted: list[int] = []
        for j, proposal in enumerate(proposals):
            row = start + j
            if row in no_token:  # a processor leaves nothing after the proposals so far: stop there
                break
            if greedy[row]:
                emitted.append(targets[row])
                if targets[row] != proposal:
                    break
            else:
                if _uniform(generator) < float(probs[row][proposal]):
                    emitted.append(proposal)
                else:
                    rest = probs[row].clone()
                    rest[proposal] = 0.0
                    emitted.append(_draw(rest, generator))
                    break
        else:  # every proposal accepted: the last row adds the model's own next token
            row = start + len(proposals)
            if row not in no_token:
                emitted.append(targets[row] if greedy[row] else _draw(probs[row], generator))
        accepted = len(emitted) - 1
        verified = Verified(emitted, accepted)
        count = meta.num_logprobs[start]
        if raw is not None and count is not None:
            vocab = raw.shape[1]
            verified.logprobs = [logprob_entries(raw, start + j, token, vocab if count == -1 else count)
                                 for j, token in enumerate(emitted)]
            verified.sampled_logprobs = [float(raw[start + j, token]) for j, token in enumerate(emitted)]
        results.append(verified)
    return results
