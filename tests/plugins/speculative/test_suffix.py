"""Suffix decoding: a request's own repetitions and recent requests' answers are both
sources, a guess follows the most frequent continuation while it stays likely, and the
shared index forgets the oldest answers."""

from __future__ import annotations

from types import SimpleNamespace

from fw.config.speculative import SpeculativeSettings
from fw.speculative.proposer import ProposerContext
from fw_builtins.speculative.suffix import SuffixIndex, SuffixProposer


def _request(request_id, prompt, output=()):
    tokens = list(prompt) + list(output)
    return SimpleNamespace(request_id=request_id, all_token_ids=tokens, output_token_ids=list(output))


def _proposer(**settings):
    values = SpeculativeSettings(method="suffix", **settings)
    return SuffixProposer(ProposerContext(values, None, None, None))


def test_the_most_frequent_continuation_is_followed():
    index = SuffixIndex(depth=4)
    index.add([1, 2, 3, 1, 2, 3, 1, 2, 4, 1, 2])
    length, _ = index.longest_match([9, 1, 2])
    assert length == 2
    assert index.continue_from([9, 1, 2], length, 4, min_prob=0.1) == [3, 1, 2, 3]


def test_an_unlikely_continuation_stops_the_guess():
    index = SuffixIndex(depth=4)
    index.add([1, 2, 3, 1, 2, 4, 1, 2, 5])
    assert index.continue_from([1, 2], 2, 4, min_prob=0.5) == []  # 3, 4 and 5 each a third


def test_the_request_itself_is_a_source_and_a_guess_is_at_most_factor_times_the_match():
    request = _request("a", [7, 8, 9, 10, 7, 8])
    assert _proposer(suffix_decoding_max_spec_factor=2).propose([request], [3]) == [[9, 10, 7]]
    assert _proposer(suffix_decoding_max_spec_factor=1).propose([request], [3]) == [[9, 10]]  # matched 2


def test_finished_answers_are_shared_and_the_oldest_forgotten():
    proposer = _proposer(suffix_decoding_max_cached_requests=1)
    first = _request("a", [1], [20, 21, 22, 23, 24])
    proposer.propose([first], [2])
    proposer.finished("a")
    later = _request("b", [5, 20, 21])
    assert proposer.propose([later], [3]) == [[22, 23]]
    second = _request("c", [2], [30, 31, 32])
    proposer.propose([second], [1])
    proposer.finished("c")  # the first answer leaves the shared index
    assert proposer.propose([_request("d", [6, 20, 21])], [3]) == [[]]
    assert proposer.propose([_request("e", [6, 30, 31])], [1]) == [[32]]
