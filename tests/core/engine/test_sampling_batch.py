"""The per-request sampling state (``SamplingBatch``) on made-up logits: each request
keeps its own settings while requests join, leave and the batch grows; each feature takes
effect when it is the only one of its step; a step's metadata is reused only while
nothing in it changes per token."""

from __future__ import annotations

import torch

from fw.engine.sampler import apply_penalties, sample
from fw.engine.sampling_batch import SamplingBatch
from fw.engine.sampling_params import SamplingParams

VOCAB = 32


def logits(rows: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def greedy_token(batch: SamplingBatch, request_id: str, raw: torch.Tensor) -> int:
    return sample(raw.clone(), batch.metadata([request_id])).token_ids[0]


def test_every_request_keeps_its_own_settings_as_slots_fill_grow_and_are_reused():
    """Requests beyond the first capacity (twice over), and requests in freed slots, each
    sample with their own settings, never a neighbour's."""
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    temperature = {f"r{i}": 0.1 * (i + 1) for i in range(9)}
    for rid, t in temperature.items():
        batch.add(rid, SamplingParams(temperature=t, top_k=i + 1 if (i := int(rid[1:])) else 0), [1], [])
    ids = list(temperature)
    meta = batch.metadata(ids)
    torch.testing.assert_close(meta.temperature, torch.tensor(list(temperature.values())))
    assert meta.top_k.tolist() == [0, *range(2, 10)]
    for rid in ("r0", "r4", "r8"):
        batch.remove(rid)
    for rid, t in (("a", 1.5), ("b", 1.6), ("c", 1.7), ("d", 1.8)):
        batch.add(rid, SamplingParams(temperature=t), [1], [])
        temperature[rid] = t
    ids = [rid for rid in temperature if rid in batch]
    assert len(batch) == len(ids) == 10
    torch.testing.assert_close(batch.metadata(ids).temperature, torch.tensor([temperature[r] for r in ids]))


def test_each_logits_feature_takes_effect_alone_in_its_step():
    """allowed_token_ids, logit_bias, a one-token bad word and EOS before min_tokens each
    change the greedy token when no other request of the step uses a logits feature."""
    raw = logits(seed=1)
    top = int(raw.argmax())
    other = (top + 1) % VOCAB
    bad_word = SamplingParams(temperature=0.0)
    bad_word._bad_words_token_ids = [[top]]
    cases = {
        "allowed": SamplingParams(temperature=0.0, allowed_token_ids=[other]),
        "bias": SamplingParams(temperature=0.0, logit_bias={other: 100.0}),
        "bad word": bad_word,
        "min_tokens": SamplingParams(temperature=0.0, min_tokens=1),
    }
    for name, params in cases.items():
        batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
        batch.add(name, params, [1], [], eos_token_ids=(top,))
        assert greedy_token(batch, name, raw) != top, name


def test_min_tokens_alone_bans_eos_until_enough_tokens_then_allows_it_again():
    """The same request sampled step after step: EOS (and stop ids) are banned while its
    output is shorter than min_tokens, and allowed from then on."""
    raw = logits(seed=2)
    eos = int(raw.argmax())
    batch = SamplingBatch(capacity=1, vocab_size=VOCAB)
    batch.add("r", SamplingParams(temperature=0.0, min_tokens=2), [1], [], eos_token_ids=(eos,))
    seen = []
    for _ in range(3):
        seen.append(greedy_token(batch, "r", raw))
        batch.append("r", seen[-1])
    assert seen[0] != eos and seen[1] != eos and seen[2] == eos


def test_an_eos_id_outside_the_model_vocabulary_is_not_banned():
    """A tokenizer's EOS id beyond the model's vocabulary (it cannot be sampled anyway) is
    left out of the min_tokens bans instead of indexing past the logits."""
    raw = logits(seed=3)
    top = int(raw.argmax())
    batch = SamplingBatch(capacity=1, vocab_size=VOCAB)
    batch.add("r", SamplingParams(temperature=0.0, min_tokens=3, stop_token_ids=[top]), [1], [],
              eos_token_ids=(VOCAB,))
    assert greedy_token(batch, "r", raw) != top
    batch = SamplingBatch(capacity=1, vocab_size=VOCAB)
    batch.add("r", SamplingParams(temperature=0.0, min_tokens=3), [1], [], eos_token_ids=(VOCAB,))
    assert greedy_token(batch, "r", raw) == top


def test_top_k_of_one_alone_is_greedy_at_any_temperature():
    raw = logits(seed=4)
    batch = SamplingBatch(capacity=1, vocab_size=VOCAB)
    batch.add("r", SamplingParams(temperature=100.0, top_k=1), [1], [])
    assert [greedy_token(batch, "r", raw) for _ in range(5)] == [int(raw.argmax())] * 5


def test_a_request_without_per_token_settings_reuses_its_metadata_even_with_eos_ids():
    """EOS ids alone (no min_tokens) change nothing per token: the decode step builds no
    metadata; min_tokens does, so its metadata is rebuilt."""
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    batch.add("plain", SamplingParams(temperature=0.7, top_p=0.9), [1], [], eos_token_ids=(0, 1))
    first = batch.metadata(["plain"])
    batch.append("plain", 5)
    assert batch.metadata(["plain"]) is first
    assert first.min_p is None and first.top_k is None and first.banned == []  # unused features cost nothing
    batch.add("min", SamplingParams(temperature=0.7, min_tokens=4), [1], [], eos_token_ids=(0,))
    assert batch.metadata(["min"]) is not batch.metadata(["min"])


def test_repetition_penalty_covers_tokens_generated_after_the_request_joined():
    """Tokens appended step by step count as seen, as in transformers'
    RepetitionPenaltyLogitsProcessor over the whole sequence."""
    raw = logits(seed=5)
    raw[0, 7] = 2.0
    batch = SamplingBatch(capacity=1, vocab_size=VOCAB)
    batch.add("r", SamplingParams(repetition_penalty=2.0), [1], [])
    batch.append("r", 7)
    penalised = apply_penalties(raw.clone(), batch.metadata(["r"]).penalties)
    assert float(penalised[0, 7]) == 1.0


def test_metadata_moved_to_another_device_keeps_every_row_setting():
    """Only tensors move: per-row generators, logprob counts, greedy flags and plugin
    groups are the same objects after ``to``."""
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    generator = torch.Generator().manual_seed(3)
    batch.add("seeded", SamplingParams(temperature=0.5, seed=3, logprobs=2), [1], [], generator)
    batch.add("plain", SamplingParams(temperature=0.0, presence_penalty=0.5), [1], [5])
    meta = batch.metadata(["seeded", "plain"])
    moved = meta.to(torch.device("meta"))
    assert moved.generators == [generator, None] and moved.num_logprobs == [2, None]
    assert moved.greedy_rows == [False, True] and moved.custom is meta.custom
    assert moved.penalties.presence.device.type == "meta" and moved.penalties.frequency.device.type == "meta"


def test_metadata_of_a_plain_step_moves_with_its_absent_features_still_absent():
    """A step of plain requests (no penalties, no top-p/k, no min-p) moves to the
    device without failing, and what it does not use stays None there."""
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    batch.add("greedy", SamplingParams(temperature=0.0), [1], [])
    batch.add("warm", SamplingParams(temperature=0.8), [1], [])
    moved = batch.metadata(["greedy", "warm"]).to(torch.device("meta"))
    assert moved.temperature.device.type == "meta"
    assert (moved.penalties, moved.top_p, moved.top_k, moved.min_p) == (None, None, None, None)


def _recording_processors(*keys: str):
    """Logits processors (plugins), one per key, in that order of application: each used by
    the requests whose extra_args hold its key, with the state (that argument, prompt ids);
    each call is recorded as (key, rows, states, output so far)."""
    from fw.logits_processors import LogitsProcessor, LogitsProcessorContext
    from fw.logits_processors.engine import EngineLogitsProcessors

    calls = []

    class Keyed(LogitsProcessor):
        def __init__(self, context, key):
            super().__init__(context)
            self.key = key

        def new_request(self, params, prompt_ids):
            arguments = params.extra_args or {}
            return (arguments[self.key], list(prompt_ids)) if self.key in arguments else None

        def apply(self, logits, rows, states, output_ids):
            calls.append((self.key, list(rows), list(states), [list(o) for o in output_ids]))

    context = LogitsProcessorContext(VOCAB, torch.device("cpu"))
    return EngineLogitsProcessors(context, [Keyed(context, key) for key in keys]), calls


def test_a_plugin_processor_gets_each_rows_own_state_and_output_so_far():
    """A logits processor (plugin) sees, for each of its rows, the state it made for that
    request and the request's output including the tokens appended since it joined."""
    processors, calls = _recording_processors("tag")
    batch = SamplingBatch(2, VOCAB, processors)
    batch.add("a", SamplingParams(temperature=0.0, extra_args={"tag": "A"}), [1], [4])
    batch.add("plain", SamplingParams(temperature=0.0), [1], [])
    batch.add("b", SamplingParams(temperature=0.0, extra_args={"tag": "B"}), [2], [])
    batch.append("a", 6)
    sample(logits(3), batch.metadata(["plain", "b", "a"]))
    assert calls == [("tag", [1, 2], [("B", [2]), ("A", [1])], [[], [4, 6]])]


# ---- mutation testing, second pass: every feature survives ``to``, preallocated slots,
# plugins' states and order


def test_metadata_moved_to_another_device_moves_every_feature_of_the_step():
    """temperature, top_p/top_k/min_p, allowed tokens, logit bias and bans all reach the
    device (same shapes, same rows); none is dropped on the way."""
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    params = SamplingParams(temperature=0.5, top_p=0.9, top_k=5, min_p=0.1, allowed_token_ids=[3, 4],
                            logit_bias={3: 1.0, 6: -2.0}, min_tokens=2, repetition_penalty=1.2)
    batch.add("plain", SamplingParams(temperature=0.7), [1], [])
    batch.add("all", params, [1], [], eos_token_ids=(0, 2))
    meta = batch.metadata(["plain", "all"])
    assert meta.to(torch.device("cpu")) is meta  # already there
    moved = meta.to(torch.device("meta"))
    for name in moved.penalties.__dataclass_fields__:
        assert getattr(moved.penalties, name).device.type == "meta", name
    for name in ("temperature", "top_p", "top_k", "min_p"):
        before, after = getattr(meta, name), getattr(moved, name)
        assert after.device.type == "meta" and after.shape == before.shape and after.dtype == before.dtype, name
    for name in ("allowed", "bias", "banned"):
        before, after = getattr(meta, name), getattr(moved, name)
        assert [entry[0] for entry in after] == [entry[0] for entry in before] == [1], name
        for old, new in zip(before, after):
            assert [(t.device.type, t.shape) for t in new[1:]] == [("meta", t.shape) for t in old[1:]], name


def test_requests_up_to_the_capacity_fit_the_preallocated_tensors_and_the_batch_grows_only_when_full():
    """``capacity`` requests (and as many again after a growth) use the tensors made
    beforehand: a decode step never reallocates them, and each growth doubles the room."""
    batch = SamplingBatch(capacity=4, vocab_size=VOCAB)
    temperature = {}

    def add(i: int) -> None:
        temperature[f"r{i}"] = 0.1 * (i + 1)
        batch.add(f"r{i}", SamplingParams(temperature=temperature[f"r{i}"]), [1], [])

    initial = batch.temperature
    for i in range(4):
        add(i)
    assert batch.temperature is initial
    add(4)
    grown = batch.temperature
    assert grown is not initial
    for i in range(5, 8):
        add(i)
    assert batch.temperature is grown
    add(8)
    assert batch.temperature is not grown
    torch.testing.assert_close(batch.metadata(list(temperature)).temperature, torch.tensor(list(temperature.values())))


def test_a_plugin_processor_makes_each_requests_state_from_its_prompt():
    """``new_request`` gets the request's prompt ids (a processor may steer by them)."""
    processors, calls = _recording_processors("steer")
    batch = SamplingBatch(2, VOCAB, processors)
    batch.add("a", SamplingParams(temperature=0.0, extra_args={"steer": "a"}), [5, 6, 7], [])
    batch.add("b", SamplingParams(temperature=0.0, extra_args={"steer": "b"}), [9], [2])
    sample(logits(2), batch.metadata(["a", "b"]))
    assert [(key, rows, states) for key, rows, states, _ in calls] == [
        ("steer", [0, 1], [("a", [5, 6, 7]), ("b", [9])])]


def test_plugin_processors_apply_in_the_engines_order_whatever_rows_use_them():
    """Two processors apply in the order the engine lists them, also when the step's first
    row uses only the later one (the order a row's processors compose in never depends on
    its neighbours)."""
    processors, calls = _recording_processors("first", "second")
    batch = SamplingBatch(2, VOCAB, processors)
    batch.add("later only", SamplingParams(temperature=0.0, extra_args={"second": 1}), [1], [])
    batch.add("both", SamplingParams(temperature=0.0, extra_args={"first": 1, "second": 1}), [1], [])
    sample(logits(2), batch.metadata(["later only", "both"]))
    assert [(key, rows) for key, rows, _, _ in calls] == [("first", [1]), ("second", [0, 1])]


def test_appending_a_token_leaves_the_callers_output_list_alone():
    """The batch keeps its own copy of the output so far: the request's list (which the
    engine appends to itself) is not appended to a second time."""
    output = [4, 5]
    batch = SamplingBatch(capacity=1, vocab_size=VOCAB)
    batch.add("r", SamplingParams(temperature=0.0), [1], output)
    batch.append("r", 6)
    assert output == [4, 5]
