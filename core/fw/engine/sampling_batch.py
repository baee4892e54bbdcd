"""Per-request sampling state, kept while a request runs, and each step's slice of it.

``SamplingBatch`` gives every running request a slot in preallocated tensors when it first
samples, fills it from its ``SamplingParams`` once, updates it as tokens are appended
(penalty counts, the output so far), and frees it when the request finishes or is
preempted (as vLLM's input batch does). Each step, ``metadata(request_ids)`` gathers the
rows being sampled into a ``SamplingMetadata``: tensors and plain values only, which is
all ``fw.engine.sampler.sample`` reads. Features no row of the step uses cost nothing, and
a step that samples the same requests as the last one, none of them with settings that
change as tokens are appended (penalties, bad words, min_tokens), reuses the last step's
metadata: a decode step at concurrency 1 builds none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from fw.engine.sampling_params import GREEDY_EPSILON, SamplingParams

if TYPE_CHECKING:
    from fw.logits_processors.engine import EngineLogitsProcessors
    from fw.logits_processors.interface import LogitsProcessor


@dataclass
class Penalties:
    """Repetition, presence and frequency penalties of the rows that use any of them."""

    #: int64 [n]: which rows of the step
    rows: torch.Tensor
    #: float32 [n] each
    repetition: torch.Tensor
    presence: torch.Tensor
    frequency: torch.Tensor
    #: bool [n, vocab]: tokens of the prompt or the output (what repetition penalises)
    seen: torch.Tensor
    #: float32 [n, vocab]: how often each token was generated (presence and frequency)
    counts: torch.Tensor


@dataclass
class ProcessorRows:
    """The rows of a step one logits processor (a plugin) applies to."""

    processor: LogitsProcessor
    rows: list[int]
    #: per row: the request's state for this processor, and its output tokens so far
    states: list[Any]
    outputs: list[list[int]]


@dataclass
class SamplingMetadata:
    """One step's sampling settings, a row per sequence sampled this step."""

    #: float32 [rows]; a row below ``GREEDY_EPSILON`` takes the argmax
    temperature: torch.Tensor
    #: per row: how many logprobs to return (None: none; -1: the whole vocabulary)
    num_logprobs: list[int | None]
    #: float32 [rows] / int64 [rows] (0 = off), or None when no row of the step uses them
    top_p: torch.Tensor | None = None
    top_k: torch.Tensor | None = None
    min_p: torch.Tensor | None = None
    #: per row: the request's own generator (seeded requests), or None for the global one
    generators: list[torch.Generator | None] | None = None
    penalties: Penalties | None = None
    #: (row, int64 token ids) that alone may be sampled
    allowed: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    #: (row, int64 token ids, float32 values) added to the logits
    bias: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    #: (row, int64 token ids) that may not be sampled this step (bad words, EOS before min_tokens)
    banned: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    #: logits processors (plugins) and the rows each applies to
    custom: list[ProcessorRows] = field(default_factory=list)
    #: per row: whether it takes the argmax, known on the host (so a sampler on a device
    #: need not read ``temperature`` back); None: computed from ``temperature``
    greedy_host: list[bool] | None = None

    @property
    def greedy(self) -> torch.Tensor:
        return self.temperature < GREEDY_EPSILON

    @property
    def greedy_rows(self) -> list[bool]:
        """Per row: whether it takes the argmax."""
        if self.greedy_host is None:
            self.greedy_host = self.greedy.tolist()
        return self.greedy_host

    def to(self, device: torch.device) -> "SamplingMetadata":
        """The same settings with every tensor on ``device`` (itself when they are there)."""
        if self.temperature.device == device:
            return self
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        penalties = None if self.penalties is None else Penalties(
            *(move(getattr(self.penalties, name)) for name in Penalties.__dataclass_fields__))
        return SamplingMetadata(
            temperature=move(self.temperature), num_logprobs=self.num_logprobs, top_p=move(self.top_p),
            top_k=move(self.top_k), min_p=move(self.min_p), generators=self.generators, penalties=penalties,
            allowed=[(row, move(ids)) for row, ids in self.allowed],
            bias=[(row, move(ids), move(values)) for row, ids, values in self.bias],
            banned=[(row, move(ids)) for row, ids in self.banned], custom=self.custom, greedy_host=self.greedy_rows)


#: per-slot feature flags, one column each
_TOP_P, _TOP_K, _MIN_P, _SEEDED, _PENALTY, _ALLOWED, _BIAS, _BAD_WORDS, _MIN_TOKENS, _CUSTOM = range(10)


@dataclass
class _Row:
    """What a slot holds beyond its tensor columns."""

    params: SamplingParams
    output: list[int]
    generator: torch.Generator | None
    #: EOS and stop ids, banned until min_tokens are out
    min_token_bans: torch.Tensor | None = None
    #: (logits processor, the request's state) for each processor it uses
    custom: list[tuple[LogitsProcessor, Any]] = field(default_factory=list)


class SamplingBatch:
    def __init__(self, capacity: int, vocab_size: int, processors: EngineLogitsProcessors | None = None):
        self.vocab_size = vocab_size
        #: the engine's logits processors (plugins), None when it has none
        self.processors = processors
        self.slot_of: dict[str, int] = {}
        self._free = list(range(capacity - 1, -1, -1))
        self._rows: list[_Row | None] = [None] * capacity
        self.temperature = torch.ones(capacity)
        self.top_p = torch.ones(capacity)
        self.top_k = torch.zeros(capacity, dtype=torch.int64)
        self.min_p = torch.zeros(capacity)
        self.repetition = torch.ones(capacity)
        self.presence = torch.zeros(capacity)
        self.frequency = torch.zeros(capacity)
        self.flags = torch.zeros(capacity, 10, dtype=torch.bool)
        #: slot -> bool [vocab] tokens seen and float32 [vocab] output counts (penalised rows only)
        self._seen: dict[int, torch.Tensor] = {}
        self._counts: dict[int, torch.Tensor] = {}
        #: (request ids, their metadata) of the last step, when it does not change per token
        self._last: tuple[tuple[str, ...], SamplingMetadata] | None = None

    def __contains__(self, request_id: str) -> bool:
        return request_id in self.slot_of

    def __len__(self) -> int:
        return len(self.slot_of)

    def add(self, request_id: str, params: SamplingParams, prompt_ids: list[int], output_ids: list[int],
            generator: torch.Generator | None = None, eos_token_ids: tuple[int, ...] = ()) -> None:
        """Give a request a slot (when it first samples, or samples again after preemption)."""
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self._last = None
        self.slot_of[request_id] = slot
        row = _Row(params, list(output_ids), generator)
        self._rows[slot] = row
        self.temperature[slot] = params.temperature
        self.top_p[slot] = params.top_p
        self.top_k[slot] = params.top_k
        self.min_p[slot] = params.min_p
        self.repetition[slot] = params.repetition_penalty
        self.presence[slot] = params.presence_penalty
        self.frequency[slot] = params.frequency_penalty
        bans = [t for t in (*eos_token_ids, *params.stop_token_ids) if t < self.vocab_size]
        if params.min_tokens and bans:
            row.min_token_bans = torch.tensor(bans, dtype=torch.int64)
        if self.processors is not None:
            row.custom = self.processors.states(params, list(prompt_ids))
        penalised = params.presence_penalty != 0 or params.frequency_penalty != 0 or params.repetition_penalty != 1
        flags = self.flags[slot]  # every column set: a reused slot keeps no flag of its last request
        flags[_TOP_P] = params.top_p < 1.0
        flags[_TOP_K] = params.top_k > 0
        flags[_MIN_P] = params.min_p > 0
        flags[_SEEDED] = generator is not None
        flags[_PENALTY] = penalised
        flags[_ALLOWED] = params.allowed_token_ids is not None
        flags[_BIAS] = bool(params.logit_bias)
        flags[_BAD_WORDS] = bool(params._bad_words_token_ids)
        flags[_MIN_TOKENS] = row.min_token_bans is not None
        flags[_CUSTOM] = bool(row.custom)
        if penalised:
            seen = torch.zeros(self.vocab_size, dtype=torch.bool)
            seen[torch.tensor(list(prompt_ids) + list(output_ids), dtype=torch.int64)] = True
            counts = torch.zeros(self.vocab_size)
            if output_ids:
                counts.index_add_(0, torch.tensor(output_ids, dtype=torch.int64), torch.ones(len(output_ids)))
            self._seen[slot], self._counts[slot] = seen, counts

    def remove(self, request_id: str) -> None:
        """Free a request's slot (finished, aborted or preempted); unknown ids are ignored."""
        slot = self.slot_of.pop(request_id, None)
        if slot is None:
            return
        self._last = None
        self._rows[slot] = None
        self._seen.pop(slot, None)
        self._counts.pop(slot, None)
        self._free.append(slot)

    def append(self, request_id: str, token: int) -> None:
        """A token was sampled for the request."""
        slot = self.slot_of[request_id]
        self._rows[slot].output.append(token)
        if slot in self._counts:
            self._seen[slot][token] = True
            self._counts[slot][token] += 1

    def metadata(self, request_ids: list[str]) -> SamplingMetadata:
        key = tuple(request_ids)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        slots = [self.slot_of[rid] for rid in request_ids]
        index = torch.tensor(slots, dtype=torch.int64)
        used = self.flags.index_select(0, index).any(0).tolist()
        rows = [self._rows[slot] for slot in slots]
        temperature = self.temperature.index_select(0, index)
        meta = SamplingMetadata(temperature=temperature, num_logprobs=[row.params.logprobs for row in rows],
                                greedy_host=(temperature < GREEDY_EPSILON).tolist())
        if used[_TOP_P]:
            meta.top_p = self.top_p.index_select(0, index)
        if used[_TOP_K]:
            meta.top_k = self.top_k.index_select(0, index)
        if used[_MIN_P]:
            meta.min_p = self.min_p.index_select(0, index)
        if used[_SEEDED]:
            meta.generators = [row.generator for row in rows]
        if used[_PENALTY]:
            meta.penalties = self._penalties(slots)
        if used[_ALLOWED] or used[_BIAS] or used[_BAD_WORDS] or used[_MIN_TOKENS]:
            self._processors(meta, rows)
        if used[_CUSTOM]:
            meta.custom = _processor_rows(rows, self.processors.rank)
        if not (used[_PENALTY] or used[_BAD_WORDS] or used[_MIN_TOKENS] or used[_CUSTOM]):
            self._last = (key, meta)
        return meta

    def _penalties(self, slots: list[int]) -> Penalties:
        rows = [i for i, slot in enumerate(slots) if slot in self._counts]
        chosen = torch.tensor([slots[i] for i in rows], dtype=torch.int64)
        return Penalties(
            rows=torch.tensor(rows, dtype=torch.int64), repetition=self.repetition.index_select(0, chosen),
            presence=self.presence.index_select(0, chosen), frequency=self.frequency.index_select(0, chosen),
            seen=torch.stack([self._seen[slots[i]] for i in rows]),
            counts=torch.stack([self._counts[slots[i]] for i in rows]))

    @staticmethod
    def _processors(meta: SamplingMetadata, rows: list[_Row]) -> None:
        for i, row in enumerate(rows):
            params = row.params
            if params.allowed_token_ids is not None:
                meta.allowed.append((i, torch.tensor(params.allowed_token_ids, dtype=torch.int64)))
            if params.logit_bias:
                meta.bias.append((i, torch.tensor(list(params.logit_bias), dtype=torch.int64),
                                  torch.tensor(list(params.logit_bias.values()), dtype=torch.float32)))
            banned = _bad_word_bans(params._bad_words_token_ids, row.output)
            if row.min_token_bans is not None and len(row.output) < params.min_tokens:
                banned.extend(row.min_token_bans.tolist())
            if banned:
                meta.banned.append((i, torch.tensor(banned, dtype=torch.int64)))

    def _grow(self) -> None:
        capacity = len(self._rows)
        self._free = list(range(2 * capacity - 1, capacity - 1, -1))
        self._rows.extend([None] * capacity)
        for name in ("temperature", "top_p", "top_k", "min_p", "repetition", "presence", "frequency", "flags"):
            tensor = getattr(self, name)
            setattr(self, name, torch.cat([tensor, torch.zeros_like(tensor)]))


def _processor_rows(rows: list[_Row], rank) -> list[ProcessorRows]:
    """The step's rows grouped by the logits processor (plugin) that applies to them, the
    groups in the engine's order of processors (``rank``), whatever the rows."""
    groups: dict[int, ProcessorRows] = {}
    for i, row in enumerate(rows):
        for processor, state in row.custom:
            group = groups.setdefault(id(processor), ProcessorRows(processor, [], [], []))
            group.rows.append(i)
            group.states.append(state)
            group.outputs.append(row.output)
    return sorted(groups.values(), key=lambda group: rank(group.processor))


def _bad_word_bans(bad_words: list[list[int]], output: list[int]) -> list[int]:
    """The last token of every bad word whose other tokens end the output so far."""
    banned = []
    for word in bad_words:
        prefix = word[:-1]
        if not prefix or output[len(output) - len(prefix):] == prefix:
            banned.append(word[-1])
    return banned
