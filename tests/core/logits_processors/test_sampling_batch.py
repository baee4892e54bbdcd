"""Logits processors in the sampling batch and the sampler, on made-up logits: a step's
rows are grouped per processor and each processor runs once, on its rows, in the engine's
order; requests that use none leave the step as it was without processors (no groups,
the metadata reused from step to step)."""

from __future__ import annotations

from typing import ClassVar

import torch
from fw.engine.sampler import sample
from fw.engine.sampling_batch import SamplingBatch
from fw.engine.sampling_params import SamplingParams
from fw.logits_processors import LogitsProcessor, LogitsProcessorContext
from fw.logits_processors.engine import EngineLogitsProcessors

VOCAB = 6


class AddOne(LogitsProcessor):
    """Token 0 gains 1 on the rows that ask (``add``)."""

    xargs = ("add",)
    calls: ClassVar[list] = []

    def new_request(self, params, prompt_ids):
        return True if (params.extra_args or {}).get("add") else None

    def apply(self, logits, rows, states, output_ids):
        AddOne.calls.append(list(rows))
        logits[rows, 0] += 1.0


class Double(AddOne):
    """Token 0 doubles on the rows that ask (``double``): after AddOne, 2 * (x + 1)."""

    xargs = ("double",)

    def new_request(self, params, prompt_ids):
        return True if (params.extra_args or {}).get("double") else None

    def apply(self, logits, rows, states, output_ids):
        logits[rows, 0] *= 2.0


def _batch() -> SamplingBatch:
    context = LogitsProcessorContext(VOCAB, torch.device("cpu"))
    processors = EngineLogitsProcessors(context, [AddOne(context), Double(context)])
    return SamplingBatch(4, VOCAB, processors)


def test_rows_are_grouped_per_processor_in_the_engines_order():
    batch = _batch()
    batch.add("double-only", SamplingParams(temperature=0, extra_args={"double": 1}), [1], [])
    batch.add("plain", SamplingParams(temperature=0), [1], [])
    batch.add("both", SamplingParams(temperature=0, extra_args={"add": 1, "double": 1}), [1], [])
    meta = batch.metadata(["double-only", "plain", "both"])
    assert [(type(g.processor), g.rows) for g in meta.custom] == [(AddOne, [2]), (Double, [0, 2])]
    logits = torch.zeros(3, VOCAB)
    logits[:, 1] = 1.5
    AddOne.calls.clear()
    result = sample(logits, meta)
    assert AddOne.calls == [[2]]  # once per step, on its rows only
    assert logits[:, 0].tolist() == [0.0, 0.0, 2.0]  # (0 + 1) * 2 where both apply
    assert result.token_ids == [1, 1, 0]


def test_requests_without_arguments_pay_nothing():
    batch = _batch()
    batch.add("a", SamplingParams(temperature=0), [1], [])
    batch.add("b", SamplingParams(temperature=0.5, top_k=3), [1], [])
    meta = batch.metadata(["a", "b"])
    assert meta.custom == []
    assert batch.metadata(["a", "b"]) is meta  # reused, as without processors
