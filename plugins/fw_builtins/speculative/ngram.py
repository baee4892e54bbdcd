"""N-gram prompt lookup (``method: ngram``): when the last few tokens of a request occurred
before in its prompt or output, guess that what followed them then follows now.

Answers that copy or edit a passage they were given (code edits, RAG, summaries,
extraction) repeat long spans of their prompt, and a step that checks several guessed
tokens costs about as much as one that makes one (at a few rows a CPU step is bound by
reading the weights). The longest n-gram first (``prompt_lookup_max`` down to
``prompt_lookup_min``), its latest earlier occurrence.
"""

from __future__ import annotations

import numpy as np
from fw.speculative.proposer import Proposer
from numpy.lib.stride_tricks import sliding_window_view


def lookup(tokens: np.ndarray, longest: int, shortest: int, count: int) -> list[int]:
    """Up to ``count`` tokens that followed the latest earlier occurrence of the longest
    n-gram (``longest`` .. ``shortest`` tokens) that ends ``tokens``."""
    for n in range(min(longest, len(tokens) - 1), shortest - 1, -1):
        windows = sliding_window_view(tokens[:-1], n)  # every n-gram with a token after it
        found = np.flatnonzero((windows == tokens[-n:]).all(axis=1))
        if found.size:
            start = int(found[-1]) + n
            return tokens[start:start + count].tolist()
    return []


class NgramProposer(Proposer):
    name = "ngram"

    def propose(self, requests, lengths):
        settings = self.settings
        return [lookup(np.asarray(r.all_token_ids), settings.prompt_lookup_max, settings.prompt_lookup_min, k)
                for r, k in zip(requests, lengths)]
