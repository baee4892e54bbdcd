"""The scheduler's side of speculation, with a fake runner: proposals are scheduled behind
a decoding request's last token within the budget, a rejected proposal's KV does not count
as computed, tokens after a stop are dropped, a guess never preempts another request, and
no block leaks over 1,000 random steps with random acceptance."""

from __future__ import annotations

import random

import pytest
from fw.config import SchedulerConfig
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import SamplingParams
from fw.engine.scheduler import Scheduler, SchedulerOutput
from fw.engine.step_output import StepOutput


def make_scheduler(num_blocks=64, block_size=4, budget=32, max_seqs=8):
    kv = KVCacheManager(num_blocks, block_size, True)
    config = SchedulerConfig(max_num_batched_tokens=budget, max_num_seqs=max_seqs)
    return Scheduler(config, kv, max_model_len=256, max_loras=0)


def make_request(request_id, prompt_len, max_tokens=8, stop_token_ids=None):
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, stop_token_ids=stop_token_ids)
    return Request(request_id, [random.randrange(100) for _ in range(prompt_len)], params)


def fake_step(scheduler: Scheduler, rng: random.Random, token: int = 7):
    """Run one step: a speculating request accepts a random number of its proposals and
    gets one more token of the 'model'; others get ``token`` when their chunk ends."""
    out = scheduler.schedule()
    step = StepOutput()
    for request_id, n in out.num_scheduled_tokens.items():
        request = scheduler.requests[request_id]
        proposals = out.spec_tokens.get(request_id, [])
        if request.num_computed_tokens + n - len(proposals) != request.num_tokens:
            continue
        accepted = rng.randint(0, len(proposals))
        step.sampled[request_id] = proposals[:accepted] + [token]
        if proposals:
            step.speculated[request_id] = (len(proposals), accepted)
    scheduler.update_from_output(out, step)
    return out, step


def decode(scheduler, request, rng):
    scheduler.add_request(request)
    while request.num_computed_tokens < request.num_prompt_tokens:
        fake_step(scheduler, rng)


def test_proposals_ride_behind_the_last_token_and_rejected_ones_are_not_computed():
    rng = random.Random(0)
    scheduler = make_scheduler()
    request = make_request("a", 6, max_tokens=20)
    decode(scheduler, request, rng)
    request.spec_tokens = [11, 12, 13]
    out = scheduler.schedule()
    assert out.num_scheduled_tokens == {"a": 4} and out.spec_tokens == {"a": [11, 12, 13]}
    before = request.num_computed_tokens
    scheduler.update_from_output(out, StepOutput(sampled={"a": [11, 5]}, speculated={"a": (3, 1)}))
    # the last token and the accepted proposal have KV; the rejected two do not
    assert request.num_computed_tokens == before + 2
    assert request.output_token_ids[-2:] == [11, 5]
    assert request.num_computed_tokens == request.num_tokens - 1


def test_proposals_are_cut_to_the_budget():
    rng = random.Random(0)
    scheduler = make_scheduler(budget=3)
    request = make_request("a", 2)
    decode(scheduler, request, rng)
    request.spec_tokens = [1, 2, 3, 4]
    out = scheduler.schedule()
    assert out.num_scheduled_tokens == {"a": 3} and out.spec_tokens == {"a": [1, 2]}


def test_tokens_after_a_stop_are_dropped():
    rng = random.Random(0)
    scheduler = make_scheduler()
    request = make_request("a", 3, max_tokens=20, stop_token_ids=[12])
    decode(scheduler, request, rng)
    request.spec_tokens = [11, 12, 13]
    out = scheduler.schedule()
    step = StepOutput(sampled={"a": [11, 12, 13, 9]}, speculated={"a": (3, 3)})
    scheduler.update_from_output(out, step)
    assert request.status == RequestStatus.FINISHED_STOPPED and request.stop_reason == 12
    assert request.output_token_ids[-2:] == [11, 12] and step.sampled["a"] == [11, 12]


def test_max_tokens_is_never_exceeded():
    rng = random.Random(0)
    scheduler = make_scheduler()
    request = make_request("a", 3, max_tokens=3)
    decode(scheduler, request, rng)
    request.spec_tokens = [11, 12, 13]
    out = scheduler.schedule()
    scheduler.update_from_output(out, StepOutput(sampled={"a": [11, 12, 13, 9]}, speculated={"a": (3, 3)}))
    assert request.status == RequestStatus.FINISHED_LENGTH and request.num_output_tokens == 3


def test_a_guess_never_preempts_another_request():
    """With the pool nearly full, the speculating request decodes its one token instead
    of taking blocks that another running request holds."""
    rng = random.Random(0)
    scheduler = make_scheduler(num_blocks=5, block_size=4, budget=32)  # one block free after two steps
    first, second = make_request("a", 7, max_tokens=20), make_request("b", 5, max_tokens=20)
    scheduler.add_request(first)
    scheduler.add_request(second)
    for _ in range(2):
        fake_step(scheduler, rng)
    first.spec_tokens = [1, 2, 3, 4, 5, 6]
    out = scheduler.schedule()
    assert out.preempted == [] and "a" not in out.spec_tokens and out.num_scheduled_tokens["a"] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_speculative_steps_leak_no_block(seed):
    rng = random.Random(seed)
    random.seed(seed)
    scheduler = make_scheduler(num_blocks=24, block_size=4, budget=24, max_seqs=6)
    live: list[Request] = []
    for op in range(1000):
        choice = rng.random()
        if choice < 0.25:
            request = make_request(f"r{op}", rng.randint(1, 20), max_tokens=rng.randint(1, 16),
                                   stop_token_ids=[rng.randrange(100)])
            scheduler.add_request(request)
            live.append(request)
        elif choice < 0.32 and live:
            scheduler.finish(live.pop(rng.randrange(len(live))), RequestStatus.FINISHED_ABORTED)
        elif choice < 0.36 and scheduler.running:
            scheduler._preempt(rng.choice(scheduler.running), SchedulerOutput())
        else:
            for request in scheduler.running:  # what a proposer would guess, at random
                decoding = request.num_computed_tokens == request.num_tokens - 1
                request.spec_tokens = [rng.randrange(100) for _ in range(rng.randint(0, 5))] if decoding else []
            fake_step(scheduler, rng, token=rng.randrange(100))
            for request in scheduler.running:
                assert request.num_computed_tokens <= request.num_tokens
        live = [r for r in live if not r.status.finished]
        in_use = sum(len(b) for b in scheduler.kv.req_blocks.values())
        refs = sum(b.ref_count for b in scheduler.kv.pool.blocks)
        assert refs == in_use
        assert scheduler.kv.pool.num_free_blocks == sum(1 for b in scheduler.kv.pool.blocks if b.ref_count == 0)
        for request in live:
            assert request.num_output_tokens <= request.max_tokens
    for request in list(live):
        scheduler.finish(request, RequestStatus.FINISHED_ABORTED)
    while scheduler.has_unfinished_requests():
        fake_step(scheduler, rng)
    assert scheduler.kv.pool.num_free_blocks == 24
    assert not scheduler.kv.req_blocks
