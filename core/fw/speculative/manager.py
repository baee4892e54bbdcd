"""The engine's side of speculative decoding: which requests speculate in the next step,
asking the proposer, and counting what the model accepted.

A request speculates when it is decoding and nothing about it depends on the tokens
before each position other than the model itself: no repetition, presence or frequency
penalty (their counts would have to include each proposal), no bad words, no
structured-output grammar, no ``min_tokens`` still to reach. The others decode one token
a step as before, in the same steps. No request speculates in a step with more running
requests than ``disable_by_batch_size``: at large batches a step is bound by arithmetic,
and checking guesses costs as much as making tokens. Below it, each request proposes as
many tokens as its guesses' record says pay for their rows (``fw.speculative.draft_length``),
up to ``num_speculative_tokens``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fw import plugins
from fw.speculative.draft_length import DraftLengths
from fw.speculative.proposer import Proposer, ProposerContext

if TYPE_CHECKING:
    from fw.config.speculative import SpeculativeSettings
    from fw.engine.kv_cache_manager import KVCacheManager
    from fw.engine.kv_sizing import KVPlan
    from fw.engine.request import Request


def can_speculate(request: Request) -> bool:
    params = request.params
    return (request.grammar is None and not params.bad_words and params.presence_penalty == 0
            and params.frequency_penalty == 0 and params.repetition_penalty == 1
            and request.num_output_tokens >= params.min_tokens)


class Speculation:
    def __init__(self, settings: SpeculativeSettings, context: ProposerContext):
        self.settings = settings
        self.max_model_len = 0  # set by bind, once the KV cache has fixed it
        self.proposer: Proposer = plugins.load("proposer", settings.method)(context)
        self.lengths = DraftLengths()
        #: counters in vLLM's terms: proposals made, tokens proposed, tokens accepted, and
        #: accepted tokens by their position in the proposal
        self.num_drafts = 0
        self.num_draft_tokens = 0
        self.num_accepted_tokens = 0
        self.accepted_per_position = [0] * settings.num_speculative_tokens

    def bind(self, kv: KVCacheManager, plan: KVPlan, max_model_len: int) -> None:
        """The engine's KV cache, once allocated, and the context length it serves."""
        self.max_model_len = max_model_len
        self.proposer.bind_kv_cache(kv, plan)

    def propose(self, running: list[Request]) -> None:
        """Set ``spec_tokens`` of the running requests that speculate in the next step."""
        for request in running:
            request.spec_tokens = []
        limit = self.settings.disable_by_batch_size
        if limit is not None and len(running) > limit:
            return
        candidates, rooms = [], []
        for request in running:
            if request.status.finished or request.num_computed_tokens != request.num_tokens - 1:
                continue  # still in its prompt (or finished)
            room = min(self.settings.num_speculative_tokens,
                       request.max_tokens - request.num_output_tokens - 1,
                       self.max_model_len - request.num_tokens - 1)
            if room > 0 and can_speculate(request):
                candidates.append(request)
                rooms.append(room)
        if not candidates:
            return
        chosen = self.lengths.choose([r.request_id for r in candidates], rooms, len(running))
        lengths = [k for k in chosen if k > 0]
        candidates = [r for r, k in zip(candidates, chosen) if k > 0]
        if not candidates:
            return
        for request, length, proposal in zip(candidates, lengths, self.proposer.propose(candidates, lengths)):
            request.spec_tokens = list(proposal[:length])

    def record(self, request_id: str, proposed: int, accepted: int) -> None:
        """One request's proposal of ``proposed`` tokens, of which ``accepted`` were kept."""
        self.lengths.observe(request_id, proposed, accepted)
        self.num_drafts += 1
        self.num_draft_tokens += proposed
        self.num_accepted_tokens += accepted
        for position in range(accepted):
            self.accepted_per_position[position] += 1

    def forget(self, finished: list[str], preempted: list[str]) -> None:
        """Requests that finished or were preempted since the last step."""
        for request_id in finished:
            self.proposer.finished(request_id)
            self.lengths.forget(request_id)
        for request_id in preempted:
            self.proposer.preempted(request_id)
