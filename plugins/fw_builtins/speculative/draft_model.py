"""A draft model (``method: draft_model``): a small model of the same family, with the
same tokenizer, guesses ``k`` tokens greedily; the target checks them in one step.

The draft keeps its own KV cache over the target's block ids: the engine sizes its
cache for both models' layers, and before drafting the target's blocks are extended to
hold the ``k`` proposals (which the next step needs anyway). Per request the draft
remembers how far its cache holds the request's real tokens; proposals the target
rejected are recomputed, so a drafting step is one forward pass over what the draft has
not seen (the last accepted tokens; the whole prompt the first time) and ``k - 1``
single-token passes, each batched over every drafting request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from fw.config.model import ModelConfig
from fw.config.parallel import ParallelConfig
from fw.engine.kv_sizing import allocate_kv_caches, attention_layers
from fw.engine.model_builder import load_model
from fw.engine.model_runner import ModelRunner
from fw.engine.sampling_params import SamplingParams
from fw.errors import ConfigurationError
from fw.speculative.proposer import Proposer

logger = logging.getLogger("fw.speculative")

_PARAMS = SamplingParams()  # a draft sequence asks for no prompt logprobs


@dataclass
class _Sequence:
    """What the draft's KV cache holds of one request: its real tokens up to ``base``,
    then ``tail`` (its own guesses beyond them, valid as far as the target agreed)."""

    request_id: str
    base: int = 0
    tail: list[int] = field(default_factory=list)
    # the view the runner reads while drafting
    all_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    # class attributes the runner reads: no prompt logprobs, no pooling, no token types
    params = _PARAMS
    pooling = None
    token_type_ids = None

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.all_token_ids)

    def computed(self, tokens: list[int]) -> int:
        """How many of ``tokens`` (the request's now) the draft's cache holds."""
        matched = 0
        for guess, token in zip(self.tail, tokens[self.base:]):
            if guess != token:
                break
            matched += 1
        return min(self.base + matched, len(tokens) - 1)


class DraftModelProposer(Proposer):
    name = "draft_model"

    def __init__(self, context):
        super().__init__(context)
        target = context.loaded
        engine = context.engine_config
        draft_model = ModelConfig(
            model=self.settings.model, dtype=str(target.dtype).removeprefix("torch."),
            quantization=self.settings.quantization, max_model_len=self.settings.max_model_len,
            trust_remote_code=engine.model.trust_remote_code, attention_backend=engine.model.attention_backend,
            seed=engine.model.seed)
        config = engine.model_copy(update={"model": draft_model, "parallel": ParallelConfig()})
        self.draft = load_model(config, target.device)
        _check_vocabulary(self.draft, target, context.tokenizer)
        self.target_vocab = target.hf_config.vocab_size
        self.sequences: dict[str, _Sequence] = {}
        self.kv = None
        self.runner: ModelRunner | None = None

    def kv_layers(self):
        return attention_layers(self.draft.model)

    def bind_kv_cache(self, kv, plan):
        self.kv = kv
        caches = allocate_kv_caches(self.draft.model, plan, self.draft.dtype, self.draft.device)
        self.runner = ModelRunner(self.draft.model, caches, plan.block_size, self.draft.device,
                                  vocab_size=self.draft.hf_config.vocab_size, max_num_seqs=1)

    def propose(self, requests, lengths):
        proposals: list[list[int]] = [[] for _ in requests]
        lengths = list(lengths)
        active: dict[str, tuple[int, _Sequence]] = {}
        scheduled: dict[str, int] = {}
        for i, (request, count) in enumerate(zip(requests, lengths)):
            count = min(count, self.draft.max_model_len - request.num_tokens)
            # the target's blocks must hold the proposals' KV before the draft writes its own
            if count <= 0 or not self.kv.allocate_slots(request, 1 + count):
                continue
            tokens = request.all_token_ids
            sequence = self.sequences.setdefault(request.request_id, _Sequence(request.request_id))
            sequence.num_computed_tokens = sequence.computed(tokens)
            sequence.all_token_ids = list(tokens)
            sequence.base, sequence.tail = len(tokens), []
            active[request.request_id] = (i, sequence)
            scheduled[request.request_id] = len(tokens) - sequence.num_computed_tokens
            lengths[i] = count
        with torch.inference_mode():
            while scheduled:
                views = {rid: active[rid][1] for rid in scheduled}
                guesses = self._step(scheduled, views)
                following = {}
                for (rid, n), token in zip(scheduled.items(), guesses):
                    i, sequence = active[rid]
                    sequence.num_computed_tokens += n
                    proposals[i].append(token)
                    if len(proposals[i]) < lengths[i]:
                        sequence.all_token_ids.append(token)
                        sequence.tail.append(token)
                        following[rid] = 1
                scheduled = following
        return proposals

    def _step(self, scheduled: dict[str, int], sequences: dict[str, _Sequence]) -> list[int]:
        """One draft forward pass; each sequence's greedy next token."""
        batch = self.runner.prepare(scheduled, sequences, {rid: self.kv.block_ids(rid) for rid in scheduled})
        hidden = self.runner.run_model(batch)
        rows = torch.tensor(batch.sample_rows, dtype=torch.long, device=hidden.device)
        logits = self.draft.model.compute_logits(hidden.index_select(0, rows))
        return logits[:, : self.target_vocab].argmax(-1).tolist()

    def preempted(self, request_id):
        self.sequences.pop(request_id, None)

    def finished(self, request_id):
        self.sequences.pop(request_id, None)


def _check_vocabulary(draft, target, tokenizer) -> None:
    """Proposals are token ids: the draft must number tokens as the target does."""
    if tokenizer is not None and draft.tokenizer is not None:
        if draft.tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ConfigurationError(
                f"--speculative-config model {draft.path.name}: its tokenizer differs from the target's; "
                "a draft model must share the target's vocabulary")
    elif draft.hf_config.vocab_size != target.hf_config.vocab_size:
        raise ConfigurationError(
            f"--speculative-config model {draft.path.name}: vocabulary of {draft.hf_config.vocab_size} tokens, "
            f"the target's has {target.hf_config.vocab_size}")
    logger.info("speculative decoding with draft model %s", draft.path.name)
