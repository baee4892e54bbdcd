"""The scheduler with a fake runner: budgets, chunking, preemption, policies, aborts, and
no leaked block after many random operations."""

from __future__ import annotations

import random

import pytest
import torch

from fw.config import SchedulerConfig
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import SamplingParams
from fw.engine.scheduler import Scheduler, SchedulerOutput
from fw.engine.step_output import StepOutput
from fw.lora.manager import Adapter
from fw.lora.request import LoRARequest
from fw.pooling.params import PoolingParams


def make_scheduler(num_blocks=64, block_size=4, budget=32, max_seqs=8, policy="fcfs", chunked=True, caching=True,
                   max_loras=0, **options):
    """A scheduler over a fresh KV cache; ``options`` are more SchedulerConfig fields."""
    kv = KVCacheManager(num_blocks, block_size, caching)
    config = SchedulerConfig(max_num_batched_tokens=budget, max_num_seqs=max_seqs, scheduling_policy=policy,
                             enable_chunked_prefill=chunked, **options)
    return Scheduler(config, kv, max_model_len=256, max_loras=max_loras)


def adapters():
    """Two adapters, x and y, with engine-unique ids."""
    return (Adapter(LoRARequest(name, uid, "/unused"), uid) for uid, name in ((1, "x"), (2, "y")))


def make_request(request_id, prompt_len, max_tokens=4, priority=0, arrival=0.0):
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    return Request(request_id, [random.randrange(100) for _ in range(prompt_len)], params,
                   priority=priority, arrival_time=arrival)


def run_step(scheduler: Scheduler):
    """One step with a fake runner that samples token 7 wherever a chunk reaches the end."""
    out = scheduler.schedule()
    sampled = {}
    for request_id, n in out.num_scheduled_tokens.items():
        request = scheduler.requests[request_id]
        if request.num_computed_tokens + n == request.num_tokens:
            sampled[request_id] = [7]
    scheduler.update_from_output(out, StepOutput(sampled=sampled))
    return out


def until(condition, max_steps: int = 1000):
    """Iterations of a loop while ``condition()`` holds. A scheduler that never finishes
    its requests fails the test here instead of hanging it (mutation testing breaks the
    scheduler in such ways on purpose)."""
    for _ in range(max_steps):
        if not condition():
            return
        yield
    raise AssertionError(f"still going after {max_steps} steps")


def run_until_finished(scheduler: Scheduler, max_steps: int = 50):
    """run_step until no request is left; a request that never stops fails the test."""
    for _ in until(scheduler.has_unfinished_requests, max_steps):
        run_step(scheduler)


def test_budget_and_max_num_seqs_are_respected():
    scheduler = make_scheduler(budget=10, max_seqs=3)
    for i in range(5):
        scheduler.add_request(make_request(str(i), 6))
    for _ in until(scheduler.has_unfinished_requests):
        out = run_step(scheduler)
        assert out.total_num_scheduled_tokens <= 10
        assert sum(out.num_scheduled_tokens.values()) == out.total_num_scheduled_tokens
        assert len(scheduler.running) <= 3


def test_the_last_token_of_the_budget_is_used():
    scheduler = make_scheduler(budget=2)
    scheduler.add_request(make_request("a", 1))
    scheduler.add_request(make_request("b", 1))
    assert run_step(scheduler).num_scheduled_tokens == {"a": 1, "b": 1}
    assert run_step(scheduler).num_scheduled_tokens == {"a": 1, "b": 1}


def test_long_prompt_is_chunked_and_shares_steps_with_decodes():
    scheduler = make_scheduler(budget=8)
    scheduler.add_request(make_request("short", 3, max_tokens=10))
    run_step(scheduler)
    scheduler.add_request(make_request("long", 20))
    out = run_step(scheduler)
    assert out.num_scheduled_tokens == {"short": 1, "long": 7}
    out = run_step(scheduler)
    assert out.num_scheduled_tokens == {"short": 1, "long": 7}


def test_without_chunked_prefill_a_prompt_waits_for_a_whole_budget():
    scheduler = make_scheduler(budget=8, chunked=False)
    scheduler.add_request(make_request("a", 6))
    scheduler.add_request(make_request("b", 6))
    out = run_step(scheduler)
    assert out.num_scheduled_tokens == {"a": 6}


def test_preemption_frees_blocks_and_the_request_finishes_later():
    scheduler = make_scheduler(num_blocks=6, block_size=4, budget=64, caching=False)
    scheduler.add_request(make_request("a", 8, max_tokens=8, arrival=0))
    scheduler.add_request(make_request("b", 8, max_tokens=8, arrival=1))
    preempted = []
    for _ in until(scheduler.has_unfinished_requests):
        preempted += run_step(scheduler).preempted
    assert preempted and preempted[0] == "b"  # fcfs: the newest is preempted first
    assert scheduler.kv.pool.num_free_blocks == 6


def test_priority_policy_orders_waiting_and_preempts_the_lowest_priority():
    scheduler = make_scheduler(num_blocks=6, block_size=4, budget=64, policy="priority", caching=False)
    scheduler.add_request(make_request("low", 8, max_tokens=8, priority=5, arrival=0))
    scheduler.add_request(make_request("high", 8, max_tokens=8, priority=0, arrival=1))
    out = run_step(scheduler)
    assert list(out.num_scheduled_tokens) == ["high", "low"]
    preempted = []
    for _ in until(scheduler.has_unfinished_requests):
        preempted += run_step(scheduler).preempted
    assert preempted[0] == "low"


def test_abort_frees_all_blocks_at_once():
    scheduler = make_scheduler()
    request = make_request("a", 10, max_tokens=100)
    scheduler.add_request(request)
    run_step(scheduler)
    assert scheduler.kv.pool.num_free_blocks < 64
    scheduler.finish(request, RequestStatus.FINISHED_ABORTED)
    assert scheduler.kv.pool.num_free_blocks == 64
    assert not scheduler.has_unfinished_requests()


def test_max_tokens_and_stop_token_finish_requests():
    scheduler = make_scheduler()
    request = Request("a", [1, 2, 3], SamplingParams(max_tokens=3, stop_token_ids=[7], min_tokens=2))
    scheduler.add_request(request)
    for _ in range(5):
        run_step(scheduler)
    assert request.status == RequestStatus.FINISHED_STOPPED
    assert request.output_token_ids == [7, 7] and request.stop_reason == 7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_operations_leak_no_block(seed):
    rng = random.Random(seed)
    random.seed(seed)
    scheduler = make_scheduler(num_blocks=24, block_size=4, budget=24, max_seqs=6,
                               policy=rng.choice(["fcfs", "priority"]))
    live: list[Request] = []
    for op in range(1000):
        choice = rng.random()
        scheduler_output = SchedulerOutput()
        if choice < 0.3:
            request = make_request(f"r{op}", rng.randint(1, 20), max_tokens=rng.randint(1, 12),
                                   priority=rng.randint(0, 3), arrival=op)
            scheduler.add_request(request)
            live.append(request)
        elif choice < 0.4 and live:
            scheduler.finish(live.pop(rng.randrange(len(live))), RequestStatus.FINISHED_ABORTED)
        elif choice < 0.45 and scheduler.running:
            scheduler._preempt(rng.choice(scheduler.running), SchedulerOutput())
        else:
            scheduler_output = run_step(scheduler)
        live = [r for r in live if not r.status.finished]
        assert not set(scheduler_output.preempted) & set(scheduler_output.num_scheduled_tokens)
        in_use = sum(len(b) for b in scheduler.kv.req_blocks.values())
        refs = sum(b.ref_count for b in scheduler.kv.pool.blocks)
        assert refs == in_use
        assert scheduler.kv.pool.num_free_blocks == sum(1 for b in scheduler.kv.pool.blocks if b.ref_count == 0)
    for request in list(live):
        scheduler.finish(request, RequestStatus.FINISHED_ABORTED)
    for _ in until(scheduler.has_unfinished_requests):
        run_step(scheduler)
    assert scheduler.kv.pool.num_free_blocks == 24
    assert not scheduler.kv.req_blocks


def test_request_times_behind_the_latency_metrics():
    """Queue time, time to first token and inter-token latency come from these: the first
    schedule and the first token keep their time through a preemption; the last token's
    time moves on to the finish."""
    now = [0.0]
    scheduler = make_scheduler(num_blocks=6, block_size=4, budget=64, caching=False)
    scheduler.clock = lambda: now[0]
    requests = [make_request("a", 8, max_tokens=8, arrival=0), make_request("b", 8, max_tokens=8, arrival=0)]
    for request in requests:
        scheduler.add_request(request)
    for _ in until(scheduler.has_unfinished_requests):
        now[0] += 1.0
        run_step(scheduler)
    assert scheduler.num_preemptions > 0
    for request in requests:
        assert (request.first_scheduled_time, request.first_token_time) == (1.0, 1.0)
        assert request.last_token_time == request.finished_time >= 8.0  # eight tokens, one a step


@pytest.mark.parametrize("policy,victim", [("fcfs", "c"), ("priority", "a")])
def test_the_victim_of_a_preemption(policy, victim):
    """fcfs preempts the newest running request, whatever its priority; priority preempts
    the lowest priority (the highest number), wherever it sits in the batch."""
    scheduler = make_scheduler(num_blocks=7, block_size=4, budget=64, policy=policy, caching=False)
    for request_id, priority in (("a", 5), ("b", 0), ("c", 0)):
        scheduler.add_request(make_request(request_id, 7, max_tokens=8, priority=priority, arrival=ord(request_id)))
        run_step(scheduler)  # one at a time: the batch order is a, b, c
    assert [r.request_id for r in scheduler.running] == ["a", "b", "c"]
    preempted = []
    for _ in until(lambda: not preempted):
        out = run_step(scheduler)
        preempted = out.preempted
        assert not set(preempted) & set(out.num_scheduled_tokens)  # nothing runs for it this step
        assert out.total_num_scheduled_tokens == sum(out.num_scheduled_tokens.values())  # its tokens given back
    assert preempted[0] == victim


def test_a_request_that_preempts_itself_waits_holding_no_block():
    """b, the newest, needs a block and none is free: fcfs makes b itself the victim. It
    goes back to the queue with its blocks freed, not holding blocks it cannot use."""
    scheduler = make_scheduler(num_blocks=3, block_size=4, budget=64, caching=False)
    scheduler.add_request(make_request("a", 3, max_tokens=8, arrival=0))
    scheduler.add_request(make_request("b", 8, max_tokens=8, arrival=1))
    assert run_step(scheduler).num_scheduled_tokens == {"a": 3, "b": 8}
    out = run_step(scheduler)
    assert (out.preempted, out.num_scheduled_tokens) == (["b"], {"a": 1})
    assert scheduler.kv.block_ids("b") == [] and scheduler.kv.pool.num_free_blocks == 2


def test_requests_after_a_preemption_still_run_in_that_step():
    """b's next token needs a block and none is free: d (the newest) is preempted before
    it was scheduled, and c, between them, still advances in the same step."""
    scheduler = make_scheduler(num_blocks=4, block_size=4, budget=64, caching=False)
    for request_id, prompt in (("a", 3), ("b", 4), ("c", 3), ("d", 3)):
        scheduler.add_request(make_request(request_id, prompt, max_tokens=8, arrival=ord(request_id)))
    assert run_step(scheduler).num_scheduled_tokens == {"a": 3, "b": 4, "c": 3, "d": 3}
    out = run_step(scheduler)
    assert out.preempted == ["d"]
    assert out.num_scheduled_tokens == {"a": 1, "b": 1, "c": 1}


def test_every_preemption_is_counted():
    """fw:num_preemptions counts preemptions, not requests: here one request is preempted
    twice."""
    scheduler = make_scheduler(num_blocks=6, block_size=4, budget=64, caching=False)
    for request_id in "abc":
        scheduler.add_request(make_request(request_id, 8, max_tokens=8, arrival=ord(request_id)))
    preempted = []
    for _ in until(scheduler.has_unfinished_requests):
        preempted += run_step(scheduler).preempted
    assert len(preempted) >= 2
    assert scheduler.num_preemptions == len(preempted)


def test_a_preempted_request_starts_over_and_takes_only_the_blocks_its_tokens_need():
    scheduler = make_scheduler(num_blocks=8, block_size=4, budget=64, caching=False)
    request = make_request("a", 7, max_tokens=8)
    scheduler.add_request(request)
    run_step(scheduler)  # the 7 prompt tokens computed, an 8th sampled
    scheduler._preempt(request, SchedulerOutput())
    assert scheduler.kv.pool.num_free_blocks == 8
    out = run_step(scheduler)
    assert out.num_scheduled_tokens == {"a": 8}  # recomputed from the first token
    assert len(scheduler.kv.block_ids("a")) == 2


def test_a_preempted_request_resumes_before_those_that_waited_behind_it():
    scheduler = make_scheduler(num_blocks=6, block_size=4, budget=64, caching=False)
    for request_id, prompt in (("a", 7), ("b", 7), ("c", 12)):  # c does not fit beside a and b
        scheduler.add_request(make_request(request_id, prompt, max_tokens=8, arrival=ord(request_id)))
    run_step(scheduler)
    assert [r.request_id for r in scheduler.running] == ["a", "b"]
    for _ in until(lambda: not run_step(scheduler).preempted):
        pass
    assert [r.request_id for r in scheduler.waiting] == ["b", "c"]
    order = []
    for _ in until(scheduler.has_unfinished_requests):
        order += [r for r in run_step(scheduler).num_scheduled_tokens if r not in order and r != "a"]
    assert order == ["b", "c"]


def test_max_loras_lets_other_requests_pass_a_blocked_adapter():
    """With --max-loras 1, a request for a second adapter waits (keeping its place) while
    requests for the running adapter and for the base model go ahead."""
    scheduler = make_scheduler(budget=64, max_loras=1)
    x, y = adapters()
    for request_id, lora in (("x1", x), ("y1", y), ("x2", x), ("base", None)):
        scheduler.add_request(Request(request_id, [1, 2, 3], SamplingParams(max_tokens=2, ignore_eos=True),
                                      lora=lora))
    first = run_step(scheduler)
    assert list(first.num_scheduled_tokens) == ["x1", "x2", "base"]
    assert [r.request_id for r in scheduler.waiting] == ["y1"]
    order = []
    for _ in until(scheduler.has_unfinished_requests):
        out = run_step(scheduler)
        assert not ({"x1", "x2"} & set(out.num_scheduled_tokens) and "y1" in out.num_scheduled_tokens)
        order += [r for r in out.num_scheduled_tokens if r not in order]
    assert "y1" in order


def test_a_failed_request_ends_every_sequence_and_leaves_no_block_behind():
    """A step that fails a request (say, its adapter did not load) ends all its n
    sequences, those running and those still waiting without a block, and the blocks
    it was given for tokens never computed are not found by a later prompt."""
    scheduler = make_scheduler(num_blocks=16, block_size=4, budget=8)
    params = SamplingParams(max_tokens=4, ignore_eos=True)
    prompt = list(range(8))
    children = [Request(f"{i}_p", prompt, params, parent_id="p", index=i) for i in range(2)]
    for child in children:
        scheduler.add_request(child)
    out = scheduler.schedule()
    assert out.num_scheduled_tokens == {"0_p": 8}  # the second waits: no budget left
    ended = scheduler.update_from_output(out, StepOutput(failed={"p": RuntimeError("adapter failed")}))
    assert sorted(r.request_id for r in ended) == ["0_p", "1_p"]
    assert all(r.status is RequestStatus.FINISHED_ABORTED for r in children)
    assert not scheduler.has_unfinished_requests()
    assert scheduler.kv.pool.num_free_blocks == 16
    assert scheduler.kv.get_computed_blocks(Request("again", prompt + [1], params)) == ([], 0)


def test_a_request_stops_at_the_context_length():
    """A sequence never grows past max_model_len, whatever its max_tokens: the token that
    reaches the limit is its last, with finish reason length."""
    scheduler = make_scheduler(num_blocks=80, budget=256)
    request = make_request("a", 250, max_tokens=100)
    scheduler.add_request(request)
    for _ in until(scheduler.has_unfinished_requests):
        run_step(scheduler)
    assert request.num_tokens == 256 and request.num_output_tokens == 6
    assert request.status is RequestStatus.FINISHED_LENGTH


def test_num_waiting_counts_the_queue_not_the_batch():
    """num_waiting drives the waiting-queue limit (503) and the num_requests_waiting metric."""
    scheduler = make_scheduler(budget=8, max_seqs=1)
    for i in range(3):
        scheduler.add_request(make_request(str(i), 4))
    run_step(scheduler)
    assert (scheduler.num_running, scheduler.num_waiting) == (1, 2)


def test_an_adapter_already_running_counts_toward_max_loras():
    """With --max-loras 1 and adapter x running from an earlier step, a request for y waits."""
    scheduler = make_scheduler(budget=64, max_loras=1)
    x, y = adapters()
    scheduler.add_request(Request("x1", [1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), lora=x))
    run_step(scheduler)
    scheduler.add_request(Request("y1", [1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), lora=y))
    assert list(run_step(scheduler).num_scheduled_tokens) == ["x1"]


# -- the waiting queue, preemption, update_from_output and stop conditions, found by
# hand-written mutants before mutmut's run on the scheduler ----------------------------


def test_without_chunked_prefill_a_prompt_that_fills_the_budget_exactly_runs():
    """A whole prompt fits a budget of its own size: it is not held back for want of one
    more token."""
    scheduler = make_scheduler(budget=8, chunked=False)
    scheduler.add_request(make_request("a", 8))
    assert run_step(scheduler).num_scheduled_tokens == {"a": 8}


def test_a_prompt_that_shares_a_cached_prefix_reuses_its_blocks_and_computes_only_the_rest():
    """b's first two blocks hold the same tokens as a's: b is given a's blocks (not copies)
    and advances only through its own tail; the prefix is reported as cached."""
    scheduler = make_scheduler(num_blocks=16, block_size=4)
    prefix = list(range(8))
    params = SamplingParams(max_tokens=4, ignore_eos=True)
    scheduler.add_request(Request("a", prefix + [50], params))
    run_step(scheduler)
    b = Request("b", prefix + [60, 61], params)
    scheduler.add_request(b)
    out = scheduler.schedule()
    assert out.num_scheduled_tokens == {"a": 1, "b": 2}
    assert scheduler.kv.block_ids("b")[:2] == scheduler.kv.block_ids("a")[:2]
    assert len(scheduler.kv.block_ids("b")) == 3
    assert (b.num_computed_tokens, b.num_cached_tokens) == (8, 8)


def test_cached_tokens_count_the_cache_hits_of_the_first_schedule_not_of_a_recompute():
    """usage.prompt_tokens_details.cached_tokens: a request preempted and recomputed from
    its own cached blocks found nothing in the cache when it was first scheduled."""
    scheduler = make_scheduler(num_blocks=16, block_size=4)
    request = make_request("a", 9, max_tokens=8)
    scheduler.add_request(request)
    run_step(scheduler)
    assert request.num_cached_tokens == 0
    scheduler._preempt(request, SchedulerOutput())
    out = run_step(scheduler)
    assert out.num_scheduled_tokens == {"a": 2}  # recomputed from its own cached blocks
    assert request.num_cached_tokens == 0


def test_a_preempted_request_takes_its_proposals_out_of_the_step():
    """Under the priority policy, a (low priority) was scheduled with two proposed tokens
    before b needed its block: a is preempted, and neither its tokens nor its proposals
    stay in the step the runner executes."""
    scheduler = make_scheduler(num_blocks=3, block_size=4, budget=64, policy="priority", caching=False)
    a = make_request("a", 2, max_tokens=8, priority=5, arrival=0)
    scheduler.add_request(a)
    run_step(scheduler)
    scheduler.add_request(make_request("b", 4, max_tokens=8, priority=0, arrival=1))
    run_step(scheduler)
    assert [r.request_id for r in scheduler.running] == ["a", "b"]
    a.spec_tokens = [1, 2]
    out = scheduler.schedule()
    assert (out.preempted, out.num_scheduled_tokens, out.spec_tokens) == (["a"], {"b": 1}, {})
    assert a.spec_tokens == [] and a.status is RequestStatus.PREEMPTED


def test_rejected_proposals_are_computed_again_and_the_next_step_decodes_one_token():
    """Three tokens proposed, one accepted, plus the token sampled after it: the request
    keeps two new tokens, its KV counts as computed up to its last token only (the two
    rejected proposals' KV is stale), and the next step advances it by one token."""
    scheduler = make_scheduler(budget=64)
    request = make_request("a", 5, max_tokens=10)
    scheduler.add_request(request)
    run_step(scheduler)  # 5 prompt tokens computed, a 6th sampled
    request.spec_tokens = [11, 12, 13]
    out = scheduler.schedule()
    assert (out.num_scheduled_tokens, out.spec_tokens) == ({"a": 4}, {"a": [11, 12, 13]})
    scheduler.update_from_output(out, StepOutput(sampled={"a": [11, 20]}, speculated={"a": (3, 1)}))
    request.spec_tokens = []
    assert request.output_token_ids == [7, 11, 20]
    assert request.num_computed_tokens == request.num_tokens - 1
    assert scheduler.schedule().num_scheduled_tokens == {"a": 1}


def test_a_stop_among_several_tokens_of_one_step_ends_the_request_there():
    """A speculating request gets several tokens in one step; the stop token is its last
    output, and the tokens after it are cut from what the step reports."""
    scheduler = make_scheduler()
    request = Request("a", [1, 2, 3], SamplingParams(max_tokens=10, stop_token_ids=[9]))
    scheduler.add_request(request)
    out = scheduler.schedule()
    step = StepOutput(sampled={"a": [5, 9, 6]})
    assert scheduler.update_from_output(out, step) == [request]
    assert request.output_token_ids == [5, 9]
    assert step.sampled == {"a": [5, 9]}
    assert (request.status, request.stop_reason) == (RequestStatus.FINISHED_STOPPED, 9)


def test_max_tokens_reached_mid_step_cuts_the_tokens_after_it():
    scheduler = make_scheduler()
    request = make_request("a", 3, max_tokens=2)
    scheduler.add_request(request)
    out = scheduler.schedule()
    step = StepOutput(sampled={"a": [5, 6, 8]})
    scheduler.update_from_output(out, step)
    assert request.output_token_ids == [5, 6] and step.sampled == {"a": [5, 6]}
    assert request.status is RequestStatus.FINISHED_LENGTH


def test_a_request_produces_exactly_max_tokens():
    scheduler = make_scheduler()
    request = make_request("a", 3, max_tokens=3)
    scheduler.add_request(request)
    run_until_finished(scheduler)
    assert request.output_token_ids == [7, 7, 7]
    assert request.status is RequestStatus.FINISHED_LENGTH and request.stop_reason is None


@pytest.mark.parametrize("ignore_eos, outputs, status", [
    (False, [7], RequestStatus.FINISHED_STOPPED),
    (True, [7, 7, 7, 7], RequestStatus.FINISHED_LENGTH),
])
def test_eos_ends_a_request_unless_ignore_eos(ignore_eos, outputs, status):
    """The fake runner samples 7, the model's EOS here: it stops the request (finish
    reason stop, no stop_reason) unless ignore_eos, which runs on to max_tokens."""
    scheduler = make_scheduler()
    request = Request("a", [1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=ignore_eos), eos_token_ids=(7,))
    scheduler.add_request(request)
    run_until_finished(scheduler)
    assert request.output_token_ids == outputs
    assert (request.status, request.stop_reason) == (status, None)


def test_eos_before_min_tokens_does_not_end_the_request():
    scheduler = make_scheduler()
    request = Request("a", [1, 2, 3], SamplingParams(max_tokens=6, min_tokens=3), eos_token_ids=(7,))
    scheduler.add_request(request)
    run_until_finished(scheduler)
    assert request.output_token_ids == [7, 7, 7]
    assert request.status is RequestStatus.FINISHED_STOPPED


def test_a_finished_grammar_ends_the_request_with_its_token():
    scheduler = make_scheduler()
    request = make_request("a", 3, max_tokens=10)
    scheduler.add_request(request)
    out = scheduler.schedule()
    assert scheduler.update_from_output(out, StepOutput(sampled={"a": [5]}, grammar_ended={"a"})) == [request]
    assert request.output_token_ids == [5] and request.status is RequestStatus.FINISHED_STOPPED
    assert scheduler.kv.pool.num_free_blocks == 64 and not scheduler.has_unfinished_requests()


def test_pooling_requests_of_one_step_all_finish_when_pooled():
    """Every pooling request whose prompt the step completed ends (finish reason stop),
    is reported as changed and gives its blocks back."""
    scheduler = make_scheduler()
    requests = [Request(name, [first, 2, 3, 4, 5], PoolingParams()) for name, first in (("a", 1), ("b", 9))]
    for request in requests:
        scheduler.add_request(request)
    out = scheduler.schedule()
    assert out.num_scheduled_tokens == {"a": 5, "b": 5}
    pooled = {"a": torch.zeros(2), "b": torch.ones(2)}
    assert scheduler.update_from_output(out, StepOutput(pooled=pooled)) == requests
    assert all(r.status is RequestStatus.FINISHED_STOPPED and r.num_computed_tokens == 5 for r in requests)
    assert scheduler.kv.pool.num_free_blocks == 64 and not scheduler.has_unfinished_requests()


def test_a_request_aborted_during_the_step_does_not_hold_back_the_others():
    """a is aborted while the step runs (its client went away): b, after it in the batch,
    still gets its token."""
    scheduler = make_scheduler()
    a, b = make_request("a", 3), make_request("b", 3)
    for request in (a, b):
        scheduler.add_request(request)
    out = scheduler.schedule()
    scheduler.finish(a, RequestStatus.FINISHED_ABORTED)
    assert scheduler.update_from_output(out, StepOutput(sampled={"a": [5], "b": [6]})) == [b]
    assert (a.output_token_ids, b.output_token_ids) == ([], [6])


def test_a_prompt_chunk_that_samples_nothing_does_not_hold_back_the_requests_after_it():
    """long advances 4 tokens of its 10 (nothing sampled); short, after it in the batch,
    completes its prompt and gets its first token in the same step."""
    scheduler = make_scheduler(budget=64, long_prefill_token_threshold=4)
    long, short = make_request("long", 10), make_request("short", 3)
    for request in (long, short):
        scheduler.add_request(request)
    out = run_step(scheduler)
    assert list(out.num_scheduled_tokens.items()) == [("long", 4), ("short", 3)]
    assert (long.output_token_ids, short.output_token_ids) == ([], [7])
    assert (long.num_computed_tokens, short.num_computed_tokens) == (4, 3)


def test_the_next_schedule_names_the_requests_that_finished_since_the_last_one():
    """The runner drops a finished request's state by these ids: each finished request is
    named once, in the first schedule after it ended."""
    scheduler = make_scheduler()
    a, b, c = make_request("a", 3, max_tokens=1), make_request("b", 3, max_tokens=5), make_request("c", 3)
    for request in (a, b, c):
        scheduler.add_request(request)
    assert run_step(scheduler).finished_ids == []
    scheduler.finish(c, RequestStatus.FINISHED_ABORTED)  # a stopped at max_tokens in that step
    assert run_step(scheduler).finished_ids == ["a", "c"]
    assert run_step(scheduler).finished_ids == []


def test_running_requests_beyond_the_budget_wait_for_the_next_step():
    """a's proposals take the whole budget of four tokens: b and c, behind it in the batch,
    are not scheduled at all this step (not scheduled for zero tokens)."""
    scheduler = make_scheduler(budget=4)
    for request_id in "abc":
        scheduler.add_request(make_request(request_id, 1, max_tokens=8))
    run_step(scheduler)
    assert [r.request_id for r in scheduler.running] == ["a", "b", "c"]
    scheduler.running[0].spec_tokens = [11, 12, 13, 14, 15]
    out = scheduler.schedule()
    assert out.num_scheduled_tokens == {"a": 4} and out.total_num_scheduled_tokens == 4


def test_proposals_are_cut_to_the_token_budget():
    """Five proposed tokens and a budget of four: the step checks the first three after
    the token the request must compute, and names only those."""
    scheduler = make_scheduler(budget=4)
    request = make_request("a", 3, max_tokens=10)
    scheduler.add_request(request)
    run_step(scheduler)
    request.spec_tokens = [11, 12, 13, 14, 15]
    out = scheduler.schedule()
    assert (out.num_scheduled_tokens, out.spec_tokens) == ({"a": 4}, {"a": [11, 12, 13]})


def test_max_num_partial_prefills_two_lets_two_prompts_in_a_step():
    scheduler = make_scheduler(budget=64, max_num_partial_prefills=2)
    for request_id in "abc":
        scheduler.add_request(make_request(request_id, 5))
    assert run_step(scheduler).num_scheduled_tokens == {"a": 5, "b": 5}


def test_a_prompt_of_exactly_the_long_threshold_is_not_long():
    """--long-prefill-token-threshold 5: a prompt is long when it has more than 5 tokens;
    one of 5 is short and does not wait behind the long limit."""
    scheduler = make_scheduler(budget=64, long_prefill_token_threshold=5, max_num_partial_prefills=2,
                               max_long_partial_prefills=1)
    for name, size in (("long", 12), ("five", 5)):
        scheduler.add_request(make_request(name, size))
    assert run_step(scheduler).num_scheduled_tokens == {"long": 5, "five": 5}


def test_a_long_threshold_of_one_makes_every_longer_prompt_long():
    scheduler = make_scheduler(budget=64, long_prefill_token_threshold=1, max_num_partial_prefills=2,
                               max_long_partial_prefills=1)
    for request_id in "ab":
        scheduler.add_request(make_request(request_id, 3))
    assert run_step(scheduler).num_scheduled_tokens == {"a": 1}


def test_a_schedule_is_empty_only_when_no_request_advances():
    """The engine skips the forward pass of an empty schedule."""
    scheduler = make_scheduler()
    assert scheduler.schedule().is_empty
    scheduler.add_request(make_request("a", 3))
    assert not scheduler.schedule().is_empty
