"""N-gram prompt lookup: the longest n-gram that ends the context, found at its latest
earlier occurrence, proposes what followed it there."""

from __future__ import annotations

import numpy as np
from fw_builtins.speculative.ngram import lookup


def test_the_longest_match_wins_over_a_later_shorter_one():
    #        0  1  2  3  4  5  6  7  8  9
    tokens = [1, 2, 3, 9, 8, 7, 3, 5, 2, 3]
    # the 2-gram (2, 3) occurred at 1-2, followed by 9 8 7; the 1-gram (3) occurred later at 6
    assert lookup(np.array(tokens), 3, 1, 3) == [9, 8, 7]


def test_the_latest_occurrence_and_at_most_count_tokens():
    tokens = [4, 5, 1, 4, 5, 2, 6, 7, 4, 5]
    assert lookup(np.array(tokens), 2, 1, 2) == [2, 6]
    assert lookup(np.array(tokens), 2, 1, 10) == [2, 6, 7, 4, 5]  # up to the context's end


def test_nothing_below_the_shortest_length():
    tokens = [1, 2, 3, 4, 1, 9]
    assert lookup(np.array(tokens), 3, 2, 4) == []  # only (9) is left, and 1-grams are not tried
    assert lookup(np.array([1, 2, 3, 4, 3]), 3, 1, 2) == [4, 3]
