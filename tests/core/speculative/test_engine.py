"""Speculative decoding in the engine, on tiny float32 checkpoints: greedy output is what
the model produces without it (every built-in proposer, several prompts at once, stop
strings, logprobs, structured and penalised requests in the same batch, preemption), a
draft identical to the target has every guess accepted, speculation stops above
``disable_by_batch_size``, and every KV block is free again at the end. Requests guess
their whole ``num_speculative_tokens`` here (no row cost), so that long guesses are
checked and rolled back on every path, except where the guess-length policy is tested."""

from __future__ import annotations

import random
from typing import ClassVar

import pytest
from fw import LLM, SamplingParams, hookimpl
from fw.plugins import register_plugin
from fw.speculative import draft_length
from fw.speculative.proposer import Proposer

# Prompts that repeat themselves (n-gram lookup finds something) and ones that do not.
PROMPTS = [
    "one two three four one two three four one two three",
    "the cat sat on the mat and the cat sat on the",
    "Hello, my name is",
    "a b c d e f g a b c d e f g a b c",
    "Numbers: 1 2 3 4 5 6 7 8 9 10 11 12",
]


@pytest.fixture(scope="module", autouse=True)
def full_length_guesses():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(draft_length, "ROW_COST", 0.0)
        yield


@pytest.fixture(scope="module")
def draft(tiny_checkpoint_factory):
    """Another tiny Llama with the same tokenizer and other weights: it guesses badly."""
    return tiny_checkpoint_factory("LlamaForCausalLM", seed=1)


@pytest.fixture(scope="module")
def engines():
    """``engines(path, **options)`` -> an LLM in float32, built once per module."""
    built: dict[str, LLM] = {}

    def build(path, **options) -> LLM:
        key = repr((str(path), sorted(options.items())))
        if key not in built:
            built[key] = LLM(str(path), dtype="float32", **options)
        return built[key]

    yield build
    for llm in built.values():
        llm.engine.shutdown()


def _spec(method: str, target, draft_path, **extra) -> dict:
    settings = {"method": method, "num_speculative_tokens": 4, **extra}
    if method == "draft_model":
        settings["model"] = str(draft_path)
    return settings


def _generate(llm: LLM, prompts, params) -> list:
    return [o.outputs[0] for o in llm.generate(prompts, params, use_tqdm=False)]


def _drafts(llm: LLM) -> tuple[int, int, int]:
    stats = llm.engine.stats()
    return stats.spec_num_drafts, stats.spec_num_draft_tokens, stats.spec_num_accepted_tokens


METHODS = [("ngram", None), ("suffix", None), ("draft_model", "other"), ("draft_model", "same")]


@pytest.mark.parametrize(("method", "which"), METHODS, ids=["ngram", "suffix", "draft-other", "draft-same"])
def test_greedy_output_is_the_models_own(engines, tiny_llama, draft, method, which):
    draft_path = tiny_llama if which == "same" else draft
    params = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)
    expected = [o.token_ids for o in _generate(engines(tiny_llama), PROMPTS, params)]
    llm = engines(tiny_llama, speculative_config=_spec(method, tiny_llama, draft_path))
    before = _drafts(llm)
    got = _generate(llm, PROMPTS, params)
    assert [o.token_ids for o in got] == expected
    drafts, drafted, accepted = (a - b for a, b in zip(_drafts(llm), before))
    assert drafts > 0 and drafted >= drafts  # it did speculate
    if which == "same":  # the draft is the target: each of its guesses is the model's own token
        assert accepted == drafted
    assert all(len(o.token_ids) == 40 for o in got)
    assert llm.engine.kv.pool.num_free_blocks == llm.engine.kv.num_blocks


def test_stop_strings_end_where_they_end_without_speculation(engines, tiny_llama):
    plain = engines(tiny_llama)
    llm = engines(tiny_llama, speculative_config={"method": "ngram", "num_speculative_tokens": 5})
    free = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)
    texts = [o.text for o in _generate(plain, PROMPTS, free)]
    for prompt, text in zip(PROMPTS, texts):
        stop = text[len(text) // 2: len(text) // 2 + 3]  # met halfway through the answer
        if not stop.strip():
            continue
        for include in (False, True):
            params = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True, stop=[stop],
                                    include_stop_str_in_output=include)
            [expected] = _generate(plain, [prompt], params)
            [got] = _generate(llm, [prompt], params)
            assert (got.text, got.token_ids, got.finish_reason, got.stop_reason) == (
                expected.text, expected.token_ids, expected.finish_reason, expected.stop_reason)


def test_logprobs_are_the_models_own(engines, tiny_llama):
    params = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, logprobs=3)
    expected = _generate(engines(tiny_llama), PROMPTS, params)
    got = _generate(engines(tiny_llama, speculative_config={"method": "ngram"}), PROMPTS, params)
    for e, g in zip(expected, got):
        assert g.token_ids == e.token_ids
        assert g.cumulative_logprob == pytest.approx(e.cumulative_logprob, abs=1e-3)
        for e_pos, g_pos in zip(e.logprobs, g.logprobs):
            assert set(g_pos) == set(e_pos)
            for token in e_pos:
                assert g_pos[token].logprob == pytest.approx(e_pos[token].logprob, abs=1e-4)
                assert g_pos[token].rank == e_pos[token].rank


def test_structured_and_penalised_requests_share_the_batch(engines, tiny_llama):
    """Requests that cannot speculate (a grammar, penalties) decode beside ones that do,
    each with the answer it gets alone without speculation."""
    from fw.structured.params import StructuredOutputsParams

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    params = [
        SamplingParams(max_tokens=30, temperature=0, ignore_eos=True),
        SamplingParams(max_tokens=30, temperature=0, structured_outputs=StructuredOutputsParams(json=schema)),
        SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, presence_penalty=1.5,
                       repetition_penalty=1.3),
        SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, min_tokens=20),
    ]
    prompts = PROMPTS[:4]
    expected = [_generate(engines(tiny_llama), [p], q)[0] for p, q in zip(prompts, params)]
    llm = engines(tiny_llama, speculative_config={"method": "ngram", "num_speculative_tokens": 3})
    got = _generate(llm, prompts, params)
    assert [(o.token_ids, o.text) for o in got] == [(o.token_ids, o.text) for o in expected]


def test_no_speculation_above_disable_by_batch_size(engines, tiny_llama):
    llm = engines(tiny_llama, speculative_config={"method": "ngram", "disable_by_batch_size": 2})
    params = SamplingParams(max_tokens=16, temperature=0, ignore_eos=True)
    before = _drafts(llm)
    _generate(llm, PROMPTS[:3], params)
    assert _drafts(llm) == before  # three running requests all the way
    _generate(llm, PROMPTS[:2], params)
    assert _drafts(llm)[0] > before[0]


@pytest.mark.parametrize("method", ["ngram", "draft_model"])
def test_preemption_and_a_random_workload_keep_the_answers(engines, tiny_llama, draft, method):
    """Twenty requests of random lengths through a KV cache far too small for them all:
    requests are preempted and recomputed, proposals rejected and rolled back, and every
    answer is the model's own; no block is held at the end."""
    rng = random.Random(7)
    prompts = [" ".join(rng.choice(["x", "y", "z", "w", "the", "cat"]) for _ in range(rng.randint(3, 40)))
               for _ in range(20)]
    params = [SamplingParams(max_tokens=rng.randint(5, 60), temperature=0, ignore_eos=True) for _ in prompts]
    small = {"num_gpu_blocks_override": 24, "block_size": 16, "max_num_seqs": 8}
    expected = [o.token_ids for o in _generate(engines(tiny_llama, **small), prompts, params)]
    llm = engines(tiny_llama, speculative_config=_spec(method, tiny_llama, draft), **small)
    preempted = llm.engine.stats().num_preemptions
    got = [o.token_ids for o in _generate(llm, prompts, params)]
    assert got == expected
    assert llm.engine.stats().num_preemptions > preempted
    assert llm.engine.kv.pool.num_free_blocks == llm.engine.kv.num_blocks
    if method == "draft_model":
        _generate(llm, ["x"], SamplingParams(max_tokens=1))  # the next step forgets the finished ones
        assert not llm.engine.speculation.proposer.sequences


def test_sampled_requests_speculate_with_their_seed(engines, tiny_llama):
    """A seeded sampled request gives the same answer twice with speculation (its draws
    come from its own generator), and n > 1 sequences speculate independently."""
    llm = engines(tiny_llama, speculative_config={"method": "ngram"})
    params = SamplingParams(max_tokens=30, temperature=0.8, seed=11, n=3, ignore_eos=True)
    first = llm.generate(PROMPTS[:2], params, use_tqdm=False)
    second = llm.generate(PROMPTS[:2], params, use_tqdm=False)
    assert [[c.token_ids for c in o.outputs] for o in first] == [[c.token_ids for c in o.outputs] for o in second]
    assert all(len(c.token_ids) == 30 for o in first for c in o.outputs)


class _WrongGuesses(Proposer):
    """Guesses every token wrong on purpose, and remembers which requests it saw."""

    name = "wrong"
    seen: ClassVar[set] = set()
    forgotten: ClassVar[set] = set()

    def propose(self, requests, lengths):
        for request in requests:
            _WrongGuesses.seen.add(request.request_id)
        return [[(r.all_token_ids[-1] + 1 + i) % 448 for i in range(k)] for r, k in zip(requests, lengths)]

    def finished(self, request_id):
        _WrongGuesses.forgotten.add(request_id)


def test_fw_register_proposers_a_plugins_proposer_is_used_and_cannot_change_the_answer(engines, tiny_llama):
    """A proposer registered through fw_register_proposers is chosen by method name; its
    guesses are checked like the built-in ones' (a wrong guess never becomes a token),
    and it hears when each request finishes."""

    class Plugin:
        @hookimpl
        def fw_register_proposers(self, register):
            register("wrong", _WrongGuesses)

    unregister = register_plugin(Plugin(), "wrong-guesses")
    try:
        llm = LLM(str(tiny_llama), dtype="float32", speculative_config={"method": "wrong"})
        params = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True)
        outputs = llm.generate(PROMPTS, params, use_tqdm=False)
        got = [o.outputs[0].token_ids for o in outputs]
        llm.generate(PROMPTS[:1], SamplingParams(max_tokens=1), use_tqdm=False)  # the next step forgets them
        stats = llm.engine.stats()
        llm.engine.shutdown()
    finally:
        unregister()
    assert got == [o.token_ids for o in _generate(engines(tiny_llama), PROMPTS, params)]
    assert stats.spec_num_draft_tokens > 0 and stats.spec_num_accepted_tokens < stats.spec_num_draft_tokens
    ids = {o.request_id for o in outputs}
    assert ids <= _WrongGuesses.seen and ids <= _WrongGuesses.forgotten


def test_wrong_guesses_soon_stop_costing_rows(engines, tiny_llama, monkeypatch):
    """With the row cost on, a proposer that is always wrong gets a short guess now and
    then instead of its full length every step; the answers are unchanged."""

    class Plugin:
        @hookimpl
        def fw_register_proposers(self, register):
            register("wrong", _WrongGuesses)

    params = SamplingParams(max_tokens=60, temperature=0, ignore_eos=True)
    expected = [o.token_ids for o in _generate(engines(tiny_llama), PROMPTS[:1], params)]
    drafted = {}
    unregister = register_plugin(Plugin(), "wrong-guesses")
    try:
        for cost in (0.0, 0.1):
            monkeypatch.setattr(draft_length, "ROW_COST", cost)
            llm = LLM(str(tiny_llama), dtype="float32", speculative_config={"method": "wrong",
                                                                            "num_speculative_tokens": 4})
            try:
                got = [o.outputs[0].token_ids for o in llm.generate(PROMPTS[:1], params, use_tqdm=False)]
                drafted[cost] = llm.engine.stats().spec_num_draft_tokens
            finally:
                llm.engine.shutdown()
            assert got == expected
    finally:
        unregister()
    assert 0 < drafted[0.1] < drafted[0.0] / 5
