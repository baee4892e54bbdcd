"""Suffix decoding (``method: suffix``, after SuffixDecoding, Oliaro et al. 2024): guess the
continuation of the longest suffix of the context that was seen before, in this request
or in recent requests' outputs, following the most frequent next token while it stays
likely.

Each source is a suffix index: for every position and every context length up to
``suffix_decoding_max_tree_depth``, how often each token followed that context. Contexts
are keyed by a hash chained backwards from the position, so a lookup of the current
suffix costs one hash per length. A request's own index grows with its prompt and
output; the shared index holds the outputs of the last
``suffix_decoding_max_cached_requests`` finished requests (agents and pipelines repeat
their answers). A guess is at most ``max_spec_factor`` times the matched length, and
stops at a token whose frequency after its context is below ``min_token_prob``.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from fw.speculative.proposer import Proposer


class SuffixIndex:
    def __init__(self, depth: int):
        self.depth = depth
        self.next: dict[int, Counter] = {}

    def _contexts(self, tokens: list[int], end: int):
        """(length, key) of each context ending just before ``end``, shortest first."""
        key = 0
        for length in range(1, min(self.depth, end) + 1):
            key = hash((key, tokens[end - length]))
            yield length, key

    def add(self, tokens: list[int], start: int = 0, sign: int = 1) -> None:
        """Count what follows each context, for the positions from ``start`` (``sign`` -1
        takes a sequence out again)."""
        for end in range(max(start, 1), len(tokens)):
            token = tokens[end]
            for _, key in self._contexts(tokens, end):
                counts = self.next.setdefault(key, Counter())
                counts[token] += sign
                if counts[token] <= 0:
                    del counts[token]
                    if not counts:
                        del self.next[key]

    def longest_match(self, tokens: list[int]) -> tuple[int, int | None]:
        """(length, key) of the longest suffix of ``tokens`` seen with a continuation."""
        best = (0, None)
        for length, key in self._contexts(tokens, len(tokens)):
            if key not in self.next:
                break
            best = (length, key)
        return best

    def continue_from(self, tokens: list[int], length: int, count: int, min_prob: float) -> list[int]:
        """Follow the most frequent next token from the matched suffix of ``length``."""
        context = list(tokens[-length:])
        guessed: list[int] = []
        while len(guessed) < count:
            key = 0
            for token in reversed(context):
                key = hash((key, token))
            counts = self.next.get(key)
            if not counts:
                break
            token, seen = counts.most_common(1)[0]
            if seen / sum(counts.values()) < min_prob:
                break
            guessed.append(token)
            context = (context + [token])[-length:]
        return guessed


@dataclass
class _Own:
    """A request's own index, and how many of its tokens it holds."""

    index: SuffixIndex
    request: Any
    seen: int = 0


class SuffixProposer(Proposer):
    name = "suffix"

    def __init__(self, context):
        super().__init__(context)
        settings = self.settings
        self.depth = settings.suffix_decoding_max_tree_depth
        self.own: dict[str, _Own] = {}
        self.shared = SuffixIndex(self.depth)
        self.cached: deque[list[int]] = deque()

    def propose(self, requests, lengths):
        settings = self.settings
        guesses = []
        for request, count in zip(requests, lengths):
            tokens = request.all_token_ids
            own = self.own.setdefault(request.request_id, _Own(SuffixIndex(self.depth), request))
            own.index.add(tokens, own.seen)
            own.seen = len(tokens)
            best: list[int] = []
            for source in (own.index, self.shared):
                length, _ = source.longest_match(tokens)
                if length:
                    limit = min(count, max(1, int(settings.suffix_decoding_max_spec_factor * length)))
                    guess = source.continue_from(tokens, length, limit, settings.suffix_decoding_min_token_prob)
                    if len(guess) > len(best):
                        best = guess
            guesses.append(best)
        return guesses

    def finished(self, request_id: str) -> None:
        """A finished request's output joins the shared index (the oldest leaves it)."""
        own = self.own.pop(request_id, None)
        limit = self.settings.suffix_decoding_max_cached_requests
        if own is None or limit == 0:
            return
        output = list(own.request.output_token_ids)
        if not output:
            return
        self.shared.add(output)
        self.cached.append(output)
        while len(self.cached) > limit:
            self.shared.add(self.cached.popleft(), sign=-1)
