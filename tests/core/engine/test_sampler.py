"""The sampler on tensors alone: penalties and truncation agree with transformers' logits
processors on the same logits, and the per-request state (``SamplingBatch``) follows
requests as they join, sample and leave."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, SequenceBiasLogitsProcessor, TemperatureLogitsWarper,
    TopKLogitsWarper, TopPLogitsWarper,
)

from fw.engine.sampler import (
    apply_custom_processors, apply_logits_processors, apply_penalties, apply_top_k_top_p_min_p,
    prompt_logprob_entries, sample,
)
from fw.engine.sampling_batch import ProcessorRows, SamplingBatch, SamplingMetadata
from fw.engine.sampling_params import GREEDY_EPSILON, SamplingParams

VOCAB = 50


def logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def batch_of(*requests: tuple[SamplingParams, list[int], list[int]], generators=None) -> SamplingBatch:
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    for i, (params, prompt, output) in enumerate(requests):
        batch.add(str(i), params, prompt, output, (generators or {}).get(i), eos_token_ids=(0,))
    return batch


def kept(values: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(row > float("-inf")).flatten().tolist()) for row in values]


def test_repetition_penalty_is_transformers_over_prompt_and_output():
    prompt, output = [3, 4, 5, 5], [7, 3, 9]
    batch = batch_of((SamplingParams(repetition_penalty=1.7), prompt, output),
                     (SamplingParams(), [3, 4], []))
    raw = logits(2)
    ours = apply_penalties(raw.clone(), batch.metadata(["0", "1"]).penalties)
    theirs = RepetitionPenaltyLogitsProcessor(1.7)(torch.tensor([prompt + output]), raw[:1].clone())
    assert torch.equal(ours[0], theirs[0])
    assert torch.equal(ours[1], raw[1])  # a row without penalties is untouched


def test_presence_and_frequency_penalties_count_the_output_only():
    prompt, output = [3, 4], [7, 7, 9, 3]
    batch = batch_of((SamplingParams(presence_penalty=0.5, frequency_penalty=0.25), prompt, output))
    raw = logits(1)
    ours = apply_penalties(raw.clone(), batch.metadata(["0"]).penalties)
    expected = raw.clone()
    for token, count in {7: 2, 9: 1, 3: 1}.items():  # OpenAI's definition
        expected[0, token] -= 0.25 * count + 0.5
    torch.testing.assert_close(ours, expected)
    batch.append("0", 9)
    again = apply_penalties(raw.clone(), batch.metadata(["0"]).penalties)
    torch.testing.assert_close(again[0, 9], raw[0, 9] - 0.25 * 2 - 0.5)


@pytest.mark.parametrize("settings,warpers", [
    ({"temperature": 0.7, "top_k": 5}, [TemperatureLogitsWarper(0.7), TopKLogitsWarper(5)]),
    ({"temperature": 1.3, "top_p": 0.6}, [TemperatureLogitsWarper(1.3), TopPLogitsWarper(0.6)]),
    ({"temperature": 1.0, "min_p": 0.2}, [MinPLogitsWarper(0.2)]),
    ({"temperature": 0.9, "min_p": 0.05, "top_k": 9, "top_p": 0.8},
     [TemperatureLogitsWarper(0.9), MinPLogitsWarper(0.05), TopKLogitsWarper(9), TopPLogitsWarper(0.8)]),
])
def test_truncation_keeps_the_tokens_transformers_keeps(settings, warpers):
    raw = logits(4, seed=3)
    batch = batch_of(*[(SamplingParams(**settings), [1], []) for _ in range(4)])
    ours = apply_top_k_top_p_min_p(raw.clone(), batch.metadata(["0", "1", "2", "3"]))
    theirs = raw.clone()
    for warper in warpers:
        theirs = warper(None, theirs)
    assert kept(ours) == kept(theirs)


def test_greedy_rows_take_the_argmax_beside_random_rows():
    raw = logits(3, seed=4)
    batch = batch_of((SamplingParams(temperature=0.0), [1], []), (SamplingParams(temperature=1.0), [1], []),
                     (SamplingParams(temperature=0.0), [1], []))
    result = sample(raw.clone(), batch.metadata(["0", "1", "2"]))
    assert [result.token_ids[0], result.token_ids[2]] == raw[[0, 2]].argmax(-1).tolist()


def test_a_seeded_row_draws_the_same_whatever_its_neighbours():
    raw = logits(3, seed=5)

    def draw(position: int, rows: int) -> int:
        requests = [(SamplingParams(temperature=1.0), [1], []) for _ in range(rows)]
        requests[position] = (SamplingParams(temperature=1.0, seed=7), [1], [])
        generator = torch.Generator().manual_seed(7)
        batch = batch_of(*requests, generators={position: generator})
        row_logits = raw[[2] * rows].clone()
        return sample(row_logits, batch.metadata([str(i) for i in range(rows)])).token_ids[position]

    assert draw(0, 1) == draw(2, 3) == draw(1, 2)


def test_bias_allowed_tokens_and_eos_before_min_tokens():
    raw = logits(3, seed=6)
    raw[:, 0] = 100.0  # EOS would win everywhere
    batch = batch_of((SamplingParams(temperature=0.0, logit_bias={11: 200.0}), [1], []),
                     (SamplingParams(temperature=0.0, allowed_token_ids=[20, 21]), [1], []),
                     (SamplingParams(temperature=0.0, min_tokens=2), [1], [5]))
    meta = batch.metadata(["0", "1", "2"])
    tokens = sample(raw.clone(), meta).token_ids
    assert tokens[0] == 11 and tokens[1] in (20, 21) and tokens[2] != 0
    batch.append("2", 6)  # two output tokens: EOS allowed again
    assert sample(raw[2:].clone(), batch.metadata(["2"])).token_ids == [0]


def test_bad_words_ban_their_last_token_after_their_prefix():
    raw = torch.zeros(1, VOCAB)
    raw[0, 9] = 10.0
    params = SamplingParams(temperature=0.0)
    params._bad_words_token_ids = [[4, 9]]
    batch = batch_of((params, [1], [3]))
    assert sample(raw.clone(), batch.metadata(["0"])).token_ids == [9]  # the output does not end with 4
    batch.append("0", 4)
    assert sample(raw.clone(), batch.metadata(["0"])).token_ids != [9]


def test_logprobs_are_of_the_raw_distribution_with_ranks():
    raw = logits(1, seed=8)
    batch = batch_of((SamplingParams(temperature=0.0, logprobs=2, logit_bias={13: 50.0}), [1], []))
    result = sample(raw.clone(), batch.metadata(["0"]))
    expected = raw[0].log_softmax(-1)
    entries = result.logprobs[0]
    assert result.token_ids == [13] and entries[13].logprob == pytest.approx(float(expected[13]))
    assert entries[13].rank == int((expected > expected[13]).sum()) + 1
    top = expected.topk(2).indices.tolist()
    assert [entries[t].rank for t in top] == [1, 2]


def test_state_follows_requests_and_features_cost_only_where_used():
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    batch.add("plain", SamplingParams(temperature=0.0), [1, 2], [])
    meta = batch.metadata(["plain"])
    assert meta.top_p is None and meta.top_k is None and meta.penalties is None and meta.generators is None
    batch.add("penalised", SamplingParams(frequency_penalty=1.0, top_p=0.5), [1], [])
    batch.add("third", SamplingParams(), [1], [])  # beyond the first capacity: the batch grows
    meta = batch.metadata(["penalised", "plain"])
    assert meta.top_p.tolist() == [0.5, 1.0] and meta.penalties.rows.tolist() == [0]
    batch.remove("penalised")
    assert "penalised" not in batch and len(batch) == 2
    batch.add("reused", SamplingParams(top_k=3), [1], [])
    assert batch.metadata(["reused"]).penalties is None  # a freed slot keeps nothing of its last request
    batch.remove("unknown")  # ignored


def test_random_draws_follow_the_softmax_of_the_logits():
    """Each token is drawn as often as its probability says (inverse-CDF draws, one
    uniform number per row): no token is favoured, the last one included."""
    probs = torch.tensor([0.1, 0.25, 0.05, 0.2, 0.4])
    rows = 20000
    meta = SamplingMetadata(temperature=torch.ones(rows), num_logprobs=[None] * rows)
    torch.manual_seed(0)
    tokens = sample(probs.log().expand(rows, 5).clone(), meta).token_ids
    observed = torch.bincount(torch.tensor(tokens), minlength=5).float() / rows
    torch.testing.assert_close(observed, probs, atol=0.015, rtol=0)


def test_a_logit_bias_of_100_forces_its_token_on_a_random_row():
    """OpenAI's logit_bias of 100 makes the token certain, also when sampling randomly
    (the logits become large: their weights must not overflow)."""
    raw = logits(2, seed=9)
    batch = batch_of((SamplingParams(temperature=1.0, logit_bias={17: 100.0}), [1], []),
                     (SamplingParams(temperature=1.0, logit_bias={17: 100.0}), [1], []))
    assert sample(raw.clone(), batch.metadata(["0", "1"])).token_ids == [17, 17]


def test_unseeded_rows_beside_a_seeded_row_draw_from_the_global_generator():
    """A request without a seed draws from torch's global generator whether or not a
    seeded request shares its step: after the same ``torch.manual_seed`` it draws alike."""
    raw = torch.zeros(1, VOCAB)  # uniform: every draw decides the token

    def unseeded_token(with_seeded_neighbour: bool) -> int:
        requests = [(SamplingParams(temperature=1.0), [1], [])]
        generators = {}
        if with_seeded_neighbour:
            requests.append((SamplingParams(temperature=1.0, seed=3), [1], []))
            generators = {1: torch.Generator().manual_seed(3)}
        batch = batch_of(*requests, generators=generators)
        ids = [str(i) for i in range(len(requests))]
        torch.manual_seed(123)
        return sample(raw.expand(len(ids), VOCAB).clone(), batch.metadata(ids)).token_ids[0]

    assert unseeded_token(True) == unseeded_token(False)


def test_truncation_and_seeds_of_random_rows_hold_beside_greedy_rows():
    """A step mixing greedy and random rows samples the random ones with their own
    top_k / top_p / min_p and seed."""
    raw = logits(5, seed=10)
    top = raw.argmax(-1).tolist()
    truncations = [dict(top_k=1), dict(top_p=1e-6), dict(min_p=1.0)]
    requests = [(SamplingParams(temperature=0.0), [1], [])]
    requests += [(SamplingParams(temperature=50.0, **t), [1], []) for t in truncations]
    requests.append((SamplingParams(temperature=1.0, seed=5), [1], []))
    batch = batch_of(*requests, generators={4: torch.Generator().manual_seed(5)})
    tokens = sample(raw.clone(), batch.metadata([str(i) for i in range(5)])).token_ids
    assert tokens[:4] == top[:4]  # truncated to the top token, whatever the temperature
    alone = batch_of((SamplingParams(temperature=1.0, seed=5), [1], []),
                     generators={0: torch.Generator().manual_seed(5)})
    assert tokens[4] == sample(raw[4:].clone(), alone.metadata(["0"])).token_ids[0]


@pytest.mark.parametrize("settings,warpers", [
    ({"top_k": VOCAB + 10}, [TopKLogitsWarper(VOCAB + 10)]),
    ({"min_p": 1.0}, [MinPLogitsWarper(1.0)]),
    ({"top_k": 1}, [TopKLogitsWarper(1)]),
])
def test_truncation_at_its_extremes_keeps_what_transformers_keeps(settings, warpers):
    """top_k beyond the vocabulary keeps every token; min_p 1 and top_k 1 keep the top one,
    also beside a row that truncates nothing."""
    raw = logits(2, seed=11)
    batch = batch_of((SamplingParams(**settings), [1], []), (SamplingParams(), [1], []))
    ours = apply_top_k_top_p_min_p(raw.clone(), batch.metadata(["0", "1"]))
    theirs = raw[:1].clone()
    for warper in warpers:
        theirs = warper(None, theirs)
    assert kept(ours) == kept(theirs) + [set(range(VOCAB))]


def test_top_p_drops_a_token_once_the_mass_above_it_reaches_top_p():
    """With probabilities 1/2, 1/4, 1/8, 1/8 and top_p 1/2 the top token alone reaches the
    mass: transformers keeps it only; top_p 3/4 keeps the top two."""
    raw = torch.full((2, VOCAB), float("-inf"))
    raw[:, :4] = torch.tensor([0.5, 0.25, 0.125, 0.125]).log()
    batch = batch_of((SamplingParams(top_p=0.5), [1], []), (SamplingParams(top_p=0.75), [1], []))
    ours = apply_top_k_top_p_min_p(raw.clone(), batch.metadata(["0", "1"]))
    theirs = [kept(TopPLogitsWarper(p)(None, raw[:1].clone()))[0] for p in (0.5, 0.75)]
    assert kept(ours) == theirs == [{0}, {0, 1}]


@pytest.mark.parametrize("logprobs", [None, 2])
def test_rows_left_without_a_token_are_reported_and_get_a_token_id_in_the_vocabulary(logprobs):
    """A row whose constraints ban every allowed token is reported (the runner ends it with
    an error), greedy or random, also in a step that asks for logprobs (the sampler's other
    way out); a NaN logit does not hide the tokens left beside it."""
    raw = logits(4, seed=12)
    raw[2, 5] = float("nan")
    raw[3, 0] = float("nan")
    everything_banned = dict(allowed_token_ids=[0, 1], min_tokens=3)  # EOS 0 banned too
    params = [SamplingParams(temperature=0.0, logprobs=logprobs, **everything_banned),
              SamplingParams(temperature=1.0, logprobs=logprobs, **everything_banned),
              SamplingParams(temperature=0.0, logprobs=logprobs, allowed_token_ids=[5, 6]),
              SamplingParams(temperature=0.0, logprobs=logprobs)]
    params[0]._bad_words_token_ids = params[1]._bad_words_token_ids = [[1]]
    batch = SamplingBatch(capacity=4, vocab_size=VOCAB)
    for i, p in enumerate(params):
        batch.add(str(i), p, [1], [], eos_token_ids=(0,))
    result = sample(raw.clone(), batch.metadata(["0", "1", "2", "3"]))
    assert result.no_token == [0, 1]
    assert all(0 <= t < VOCAB for t in result.token_ids)
    nan_rows = raw[2:].clone()
    nan_rows[0, 6] = float("-inf")
    assert sample(nan_rows, batch.metadata(["2", "3"]), masked_rows={1}).no_token == [0]


def test_logprobs_return_the_asked_number_of_top_tokens_and_the_sampled_one():
    """logprobs=n gives the sampled token and the n most likely (n + 1 entries when it is
    not among them), -1 the whole vocabulary, 0 the sampled token alone; a step where no
    request asks returns none and a 0.0 sampled logprob."""
    raw = logits(3, seed=13)
    raw[:, 30] = raw.max() + 20  # sampled below: not among the raw top tokens
    bias = {30: -1000.0, 31: 1000.0}
    batch = SamplingBatch(capacity=3, vocab_size=VOCAB)
    for rid, n in (("two", 2), ("all", -1), ("zero", 0)):
        batch.add(rid, SamplingParams(temperature=0.0, logprobs=n, logit_bias=bias), [1], [])
    result = sample(raw.clone(), batch.metadata(["two", "all", "zero"]))
    expected = raw.log_softmax(-1)
    two, everything, zero = result.logprobs
    assert list(two) == [31, 30, *expected[0].topk(2).indices.tolist()[1:]]
    assert len(everything) == VOCAB and list(zero) == [31]
    assert everything[30].rank == 1 and everything[30].logprob == pytest.approx(float(expected[1, 30]))
    assert result.sampled_logprobs == pytest.approx(expected[:, 31].tolist())
    plain = batch_of((SamplingParams(temperature=0.0), [1], []))
    assert sample(raw[:1].clone(), plain.metadata(["0"])).sampled_logprobs == [0.0]


def test_prompt_logprobs_give_each_prompt_token_its_logprob_rank_and_the_top_ones():
    """Row i of the logits predicts prompt token i+1: its log-softmax entry, its rank, and
    the ``count`` most likely tokens (-1: all of them)."""
    raw = logits(2, seed=14)
    expected = raw.log_softmax(-1)
    entries = prompt_logprob_entries(raw, [4, 9], 1)
    for i, (token, row) in enumerate(zip([4, 9], entries)):
        best = int(expected[i].argmax())
        assert list(row) == [token] + ([best] if best != token else [])
        assert row[token].logprob == pytest.approx(float(expected[i, token]))
        assert row[token].rank == int((expected[i] > expected[i, token]).sum()) + 1
        assert row[best].rank == 1
    assert [len(row) for row in prompt_logprob_entries(raw, [4, 9], -1)] == [VOCAB, VOCAB]


def test_repetition_penalty_divides_small_positive_logits_and_multiplies_negative_ones():
    """Seen tokens whose logits lie either side of zero and of one are penalised as
    transformers penalises them (divided above zero, multiplied below)."""
    raw = torch.zeros(1, VOCAB)
    seen = [3, 4, 5, 6, 7]
    raw[0, seen] = torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.5])
    batch = batch_of((SamplingParams(repetition_penalty=2.0), seen, []))
    ours = apply_penalties(raw.clone(), batch.metadata(["0"]).penalties)
    theirs = RepetitionPenaltyLogitsProcessor(2.0)(torch.tensor([seen]), raw.clone())
    assert torch.equal(ours, theirs)


def test_a_plugin_processor_sees_each_speculative_row_with_the_proposals_before_it():
    """In a speculative step a request's later rows are decoded as if the proposals before
    them were emitted: the plugin sees output + those proposals, row by row."""
    seen = []

    class Recorder:
        def apply(self, logits, rows, states, outputs):
            seen.append((list(rows), [list(o) for o in outputs]))

    meta = SamplingMetadata(temperature=torch.zeros(4), num_logprobs=[None] * 4,
                            custom=[ProcessorRows(Recorder(), [0, 1, 2, 3], [None] * 4, [[5], [5], [5], [9]])])
    apply_custom_processors(torch.zeros(4, VOCAB), meta, {1: [7], 2: [7, 8]})
    assert seen == [([0, 1, 2, 3], [[5], [5, 7], [5, 7, 8], [9]])]


def test_greedy_rows_of_a_strided_logits_view_take_the_argmax_of_the_view():
    """Logits sliced from a wider tensor (a padded vocabulary cut back to the model's) are
    not contiguous: greedy picks are still the argmax of what the view shows."""
    padded = torch.randn(3, VOCAB + 14, generator=torch.Generator().manual_seed(15))
    padded[:, VOCAB:] = 100.0  # padding: never a token
    view = padded[:, :VOCAB]
    batch = batch_of(*[(SamplingParams(temperature=0.0), [1], []) for _ in range(3)])
    expected = view.argmax(-1).tolist()
    assert sample(view, batch.metadata(["0", "1", "2"])).token_ids == expected


def test_a_row_emptied_by_bans_alone_or_by_the_callers_mask_is_reported():
    """EOS banned before min_tokens where EOS is all the model allows, and a row the
    caller (a grammar) masked to nothing, are both rows without a token."""
    raw = torch.full((2, VOCAB), float("-inf"))
    raw[0, 0] = 1.0
    batch = batch_of((SamplingParams(temperature=0.0, min_tokens=2), [1], []), (SamplingParams(temperature=0.0), [1], []))
    assert sample(raw, batch.metadata(["0", "1"]), masked_rows={1}).no_token == [0, 1]


# ---- mutation testing, second pass: bias values, plugin masks, bf16 prompt logprobs,
# the greedy threshold


def test_a_logit_bias_is_added_to_its_tokens_logit_as_transformers_sequence_bias_adds_it():
    """OpenAI's logit_bias adds its value to the token's logit (a small or negative bias
    shifts it, it does not replace it): the same logits as transformers'
    SequenceBiasLogitsProcessor with one-token sequences."""
    raw = logits(1, seed=16)
    bias = {11: 2.5, 20: -1.25}
    batch = batch_of((SamplingParams(temperature=0.0, logit_bias=bias), [1], []))
    ours = apply_logits_processors(raw.clone(), batch.metadata(["0"]))
    theirs = SequenceBiasLogitsProcessor([[[token], value] for token, value in bias.items()])(
        torch.tensor([[1]]), raw.clone())
    torch.testing.assert_close(ours, theirs)


def test_a_plugin_processors_mask_decides_the_token_and_a_row_it_empties_is_reported():
    """A logits processor (plugin) changes the logits the sampler picks from, at its own
    rows only; a row it masks to nothing is reported as a row without a token."""

    class AllowOnly:
        def apply(self, logits, rows, states, outputs):
            for row, allowed in zip(rows, states):
                keep = logits[row, allowed].clone()
                logits[row] = float("-inf")
                logits[row, allowed] = keep

    raw = logits(3, seed=17)
    meta = SamplingMetadata(temperature=torch.zeros(3), num_logprobs=[None] * 3,
                            custom=[ProcessorRows(AllowOnly(), [0, 1], [[7], []], [[], []])])
    result = sample(raw.clone(), meta)
    assert result.token_ids[0] == 7 and result.token_ids[2] == int(raw[2].argmax())
    assert result.no_token == [1]


def test_prompt_logprobs_of_bfloat16_logits_are_computed_in_float32():
    """A bf16 model's prompt logprobs are its distribution computed in float32 (a bf16
    log-softmax would be off in the third digit)."""
    raw = logits(2, seed=18).to(torch.bfloat16)
    expected = raw.float().log_softmax(-1)
    entries = prompt_logprob_entries(raw, [4, 9], 0)
    assert [row[token].logprob for row, token in zip(entries, [4, 9])] == pytest.approx(
        [float(expected[0, 4]), float(expected[1, 9])], rel=1e-6)


def test_a_temperature_at_the_greedy_threshold_samples_and_below_it_takes_the_argmax():
    """As vLLM's sampler: a temperature below GREEDY_EPSILON takes the argmax (the first of
    two tied top tokens), one equal to it samples (either tied token, about half the
    time each) -- whether the step's greedy flags come from the batch or the temperature."""
    rows = 64
    raw = torch.zeros(rows, VOCAB)
    raw[:, [3, 8]] = 5.0
    for temperature, expected in ((GREEDY_EPSILON, {3, 8}), (GREEDY_EPSILON / 2, {3})):
        batch = SamplingBatch(capacity=rows, vocab_size=VOCAB)
        for i in range(rows):
            batch.add(str(i), SamplingParams(temperature=temperature), [1], [])
        torch.manual_seed(0)
        from_batch = sample(raw.clone(), batch.metadata([str(i) for i in range(rows)])).token_ids
        torch.manual_seed(0)
        bare = SamplingMetadata(temperature=torch.full((rows,), temperature), num_logprobs=[None] * rows)
        from_temperature = sample(raw.clone(), bare).token_ids
        assert set(from_batch) == set(from_temperature) == expected, temperature


def test_rows_left_without_a_token_are_found_on_the_logits_device():
    """The check for rows left without a token makes its tensors on the logits' device (run
    with the default device set to ``meta``: an index made elsewhere reads nothing real,
    and on an accelerator fails): the emptied row is still reported, the other is not."""
    raw = logits(2, seed=19)
    batch = batch_of((SamplingParams(temperature=0.0, allowed_token_ids=[0], min_tokens=1), [1], []),
                     (SamplingParams(temperature=0.0, allowed_token_ids=[3]), [1], []))
    meta = batch.metadata(["0", "1"])
    with torch.device("meta"):
        result = sample(raw.clone(), meta)
    assert result.no_token == [0] and result.token_ids[1] == 3


def test_a_step_mixing_rows_with_and_without_logprobs_returns_them_where_asked():
    """Only the request that asks for logprobs gets them (of the raw distribution); its
    neighbour gets None, both get their sampled token's logprob."""
    raw = logits(2, seed=20)
    batch = batch_of((SamplingParams(temperature=0.0, logprobs=1), [1], []), (SamplingParams(temperature=0.0), [1], []))
    result = sample(raw.clone(), batch.metadata(["0", "1"]))
    expected = raw.log_softmax(-1)
    top = int(raw[0].argmax())
    assert result.logprobs[1] is None and list(result.logprobs[0]) == [top]
    assert result.logprobs[0][top].logprob == pytest.approx(float(expected[0, top]))
    assert result.sampled_logprobs == pytest.approx([float(expected[i].max()) for i in range(2)])


def test_two_penalised_rows_are_each_penalised_by_their_own_history():
    """Rows with different prompts, outputs and penalties in one step: each row's logits are
    transformers' repetition penalty over its own sequence, then OpenAI's presence and
    frequency over its own output."""
    histories = [([3, 4], [7, 7]), ([9, 10, 11], [4])]
    settings = [dict(repetition_penalty=1.5, frequency_penalty=0.5), dict(repetition_penalty=1.8, presence_penalty=1.0)]
    batch = batch_of(*[(SamplingParams(**s), prompt, output) for s, (prompt, output) in zip(settings, histories)])
    raw = logits(2, seed=21)
    ours = apply_penalties(raw.clone(), batch.metadata(["0", "1"]).penalties)
    for row, (s, (prompt, output)) in enumerate(zip(settings, histories)):
        expected = RepetitionPenaltyLogitsProcessor(s["repetition_penalty"])(
            torch.tensor([prompt + output]), raw[row:row + 1].clone())[0]
        for token in set(output):
            expected[token] -= s.get("frequency_penalty", 0.0) * output.count(token) + s.get("presence_penalty", 0.0)
        torch.testing.assert_close(ours[row], expected)


# ---- mutation testing, third pass: draws across rows


def test_unseeded_rows_beside_a_seeded_one_draw_independently():
    """With a seeded request in the step, each unseeded row still gets its own random
    number: eight unseeded rows over the same flat distribution do not all pick the same
    token (one shared number would make them, every step)."""
    rows = 9
    batch = SamplingBatch(capacity=rows, vocab_size=VOCAB)
    batch.add("seeded", SamplingParams(temperature=1.0, seed=1), [1], [], torch.Generator().manual_seed(1))
    for i in range(1, rows):
        batch.add(str(i), SamplingParams(temperature=1.0), [1], [])
    meta = batch.metadata(["seeded", *map(str, range(1, rows))])
    for _ in range(3):
        picks = sample(torch.zeros(rows, VOCAB), meta).token_ids[1:]
        assert len(set(picks)) > 1, picks


def test_a_row_far_below_another_in_scale_samples_from_its_own_distribution():
    """Each row's weights are taken relative to its own maximum: a row at temperature
    0.01 (logits in the thousands) does not push a neighbour's weights to zero, which
    would turn that neighbour's pick into token 0 whatever its logits."""
    raw = torch.zeros(2, VOCAB)
    raw[0, 3] = 30.0
    raw[1, 7] = 30.0
    batch = batch_of((SamplingParams(temperature=0.01), [1], []), (SamplingParams(temperature=1.0), [1], []))
    assert sample(raw, batch.metadata(["0", "1"])).token_ids == [3, 7]
