"""The beam-search algorithm on a toy model whose next-token logprobs the test chooses,
so what each rule must do can be worked out by hand: ranking by score, length_penalty,
early_stopping True / False / "never", stop tokens and min_tokens."""

from __future__ import annotations

import math
import random

import pytest

from fw.engine.outputs import Logprob
from fw.engine.sampling_params import BeamSearchParams
from fw.entrypoints.beam_search_state import BeamSearch, candidate_count
from fw.errors import InvalidParameterError

PROMPT = [100, 101]
EOS, STOP, A, B = 1, 2, 10, 11
FILLER = list(range(20, 40))


def position(logprobs: dict[int, float], count: int) -> dict[int, Logprob]:
    """What the engine returns: the top ``count`` tokens with their ranks (greedy first)."""
    ranked = sorted(logprobs.items(), key=lambda item: -item[1])[:count]
    return {token: Logprob(lp, rank) for rank, (token, lp) in enumerate(ranked, start=1)}


def run(model, params: BeamSearchParams, max_tokens: int) -> BeamSearch:
    search = BeamSearch(PROMPT, params, max_tokens=max_tokens, eos_token_ids=(EOS,), texts=None)
    count = candidate_count(params, (EOS,))
    while not search.done:
        search.advance([position(model(ids[len(PROMPT):]), count) for ids in search.pending()])
    return search


def score(beam, length_penalty: float) -> float:
    """The documented score: cumulative logprob / (prompt + generated, an ending EOS or
    stop token not counted) ** length_penalty."""
    length = len(PROMPT) + len(beam.tokens) - (1 if beam.tokens[-1] in (EOS, STOP) else 0)
    return beam.cum_logprob / length ** length_penalty


def random_model(seed: int):
    def model(generated: list[int]) -> dict[int, float]:
        rng = random.Random(hash((seed, *generated)))
        weights = [rng.random() ** 3 for _ in FILLER]
        total = sum(weights)
        return {token: math.log(w / total) for token, w in zip(FILLER, weights)}
    return model


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, -0.5])
def test_beams_are_distinct_sorted_by_score_and_no_worse_than_greedy(seed, length_penalty):
    model = random_model(seed)
    result = run(model, BeamSearchParams(beam_width=3, max_tokens=5, length_penalty=length_penalty), 5).result()
    assert len(result) == 3 and len({tuple(b.tokens) for b in result}) == 3
    scores = [score(b, length_penalty) for b in result]
    assert scores == sorted(scores, reverse=True)
    for beam in result:  # each cumulative logprob is the sum along its own path
        assert beam.cum_logprob == pytest.approx(sum(model(beam.tokens[:i])[t] for i, t in enumerate(beam.tokens)))
        assert beam.finish_reason == "length"
    greedy, cum = [], 0.0
    for _ in range(5):
        token, lp = max(model(greedy).items(), key=lambda item: item[1])
        greedy.append(token)
        cum += lp
    assert result[0].cum_logprob >= cum - 1e-12


def eos_or_long(generated: list[int]) -> dict[int, float]:
    """Ending now (EOS, -0.9) or going on with A (-0.6) then near-certain tokens (-0.25)."""
    if not generated:
        return {EOS: -0.9, A: -0.6, B: -3.0, **{t: -5.0 for t in FILLER}}
    return {FILLER[0]: -0.25, FILLER[1]: -2.0, EOS: -4.0, B: -4.5, **{t: -6.0 for t in FILLER[2:]}}


def test_length_penalty_ranks_as_defined():
    """Short EOS beam: -0.9 over length 2; long beam: -0.6 - 3 x 0.25 = -1.35 over 6. With
    penalty 0 the short one wins (-0.9 > -1.35), with 2 the long one (-0.225 < -0.0375)."""
    for penalty, best_is_short in ((0.0, True), (2.0, False)):
        search = run(eos_or_long, BeamSearchParams(beam_width=2, max_tokens=4, length_penalty=penalty,
                                                   early_stopping="never"), 4)
        result = search.result()
        assert [score(b, penalty) for b in result] == sorted((score(b, penalty) for b in result), reverse=True)
        (short,) = [b for b in search.finished if b.tokens == [EOS]]
        assert short.finish_reason == "stop" and short.stop_reason is None
        assert (result[0] is short) == best_is_short
        if not best_is_short:
            assert result[0].tokens == [A, FILLER[0], FILLER[0], FILLER[0]] and score(short, penalty) < score(
                result[-1], penalty)


def two_endings_then_a_likely_run(ending: float):
    """Step 1: EOS at -0.5, a stop token at -0.6, A at ``ending``; after A near-certain tokens."""
    def model(generated: list[int]) -> dict[int, float]:
        if not generated:
            return {EOS: -0.5, STOP: -0.6, A: ending, B: -3.0, **{t: -6.0 for t in FILLER}}
        return {FILLER[0]: -0.01, FILLER[1]: -5.0, EOS: -7.0, **{t: -8.0 for t in FILLER[2:]}}
    return model


def test_early_stopping_true_stops_once_width_beams_are_finished():
    params = BeamSearchParams(beam_width=2, max_tokens=10, early_stopping=True, stop_token_ids=[STOP])
    search = run(two_endings_then_a_likely_run(-0.05), params, 10)
    assert search.steps == 1 and search.stopped_early
    assert [b.tokens for b in search.result()] == [[EOS], [STOP]]
    assert search.result()[1].stop_reason == STOP


def test_early_stopping_false_goes_on_while_a_live_beam_scores_better_now():
    """After step 1, A's score now (-0.05 / 3) beats the worst finished (-0.6 / 2): False goes
    on, and A's run (-0.05 - 9 x 0.01 over 12) ends up best."""
    params = BeamSearchParams(beam_width=2, max_tokens=10, early_stopping=False, stop_token_ids=[STOP])
    search = run(two_endings_then_a_likely_run(-0.05), params, 10)
    assert search.steps == 10 and not search.stopped_early
    assert search.result()[0].tokens[0] == A and search.result()[0].finish_reason == "length"


def test_early_stopping_false_stops_where_never_goes_on():
    """A at -1.0: its score now (-1/3) is below the worst finished (-0.3), so False stops
    after one step; but at the longest reachable length (-1.09 / 12) it could beat it,
    so "never" goes on and finds it."""
    model = two_endings_then_a_likely_run(-1.0)
    heuristic = run(model, BeamSearchParams(beam_width=2, max_tokens=10, stop_token_ids=[STOP]), 10)
    assert heuristic.steps == 1 and [b.tokens for b in heuristic.result()] == [[EOS], [STOP]]
    never = run(model, BeamSearchParams(beam_width=2, max_tokens=10, stop_token_ids=[STOP],
                                        early_stopping="never"), 10)
    assert never.steps == 10 and never.result()[0].tokens[0] == A
    assert score(never.result()[0], 1.0) > score(heuristic.result()[-1], 1.0)


def test_never_stops_when_no_live_beam_can_win():
    """With length_penalty 0 a live beam's score only falls: once it is below the worst
    finished one, "never" stops."""
    search = run(two_endings_then_a_likely_run(-1.0), BeamSearchParams(
        beam_width=2, max_tokens=10, stop_token_ids=[STOP], early_stopping="never", length_penalty=0.0), 10)
    assert search.steps == 1 and search.stopped_early


def test_ignore_eos_and_min_tokens_keep_beams_going():
    model = two_endings_then_a_likely_run(-0.05)
    ignoring = run(model, BeamSearchParams(beam_width=2, max_tokens=3, ignore_eos=True), 3).result()
    assert all(b.finish_reason == "length" and len(b.tokens) == 3 for b in ignoring)
    assert any(b.tokens[0] == EOS for b in ignoring)  # EOS is an ordinary token then
    held = run(model, BeamSearchParams(beam_width=2, max_tokens=3, min_tokens=2, stop_token_ids=[STOP]), 3)
    assert all(EOS not in b.tokens[:1] and STOP not in b.tokens[:1] for b in held.result())


def test_parameters_beams_cannot_honour_are_refused():
    with pytest.raises(InvalidParameterError, match="temperature"):
        BeamSearchParams(beam_width=2, max_tokens=4, temperature=0.7)
    with pytest.raises(InvalidParameterError, match="early_stopping"):
        BeamSearchParams(beam_width=2, max_tokens=4, early_stopping="sometimes")
    with pytest.raises(InvalidParameterError, match="beam_width"):
        BeamSearchParams(beam_width=0, max_tokens=4)
