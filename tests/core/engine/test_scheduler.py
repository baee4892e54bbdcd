"""The scheduler with a fake runner: budgets, chunking, preemption, policies, aborts, and
no leaked block after many random operations."""

from __future__ import annotations

import random

import pytest

from fw.config import SchedulerConfig
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import SamplingParams
from fw.engine.scheduler import Scheduler, SchedulerOutput
from fw.engine.step_output import StepOutput
from fw.lora.manager import Adapter
from fw.lora.request import LoRARequest


def make_scheduler(num_blocks=64, block_size=4, budget=32, max_seqs=8, policy="fcfs", chunked=True, caching=True):
    kv = KVCacheManager(num_blocks, block_size, caching)
    config = SchedulerConfig(max_num_batched_tokens=budget, max_num_seqs=max_seqs, scheduling_policy=policy,
                             enable_chunked_prefill=chunked)
    return Scheduler(config, kv, max_model_len=256, max_loras=0)


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


def test_budget_and_max_num_seqs_are_respected():
    scheduler = make_scheduler(budget=10, max_seqs=3)
    for i in range(5):
        scheduler.add_request(make_request(str(i), 6))
    while scheduler.has_unfinished_requests():
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
    while scheduler.has_unfinished_requests():
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
    while scheduler.has_unfinished_requests():
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
    while scheduler.has_unfinished_requests():
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
    while scheduler.has_unfinished_requests():
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
    while not preempted:
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
    while scheduler.has_unfinished_requests():
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
    while not run_step(scheduler).preempted:
        pass
    assert [r.request_id for r in scheduler.waiting] == ["b", "c"]
    order = []
    while scheduler.has_unfinished_requests():
        order += [r for r in run_step(scheduler).num_scheduled_tokens if r not in order and r != "a"]
    assert order == ["b", "c"]


def test_max_loras_lets_other_requests_pass_a_blocked_adapter():
    """With --max-loras 1, a request for a second adapter waits (keeping its place) while
    requests for the running adapter and for the base model go ahead."""
    kv = KVCacheManager(64, 4, True)
    config = SchedulerConfig(max_num_batched_tokens=64, max_num_seqs=8, enable_chunked_prefill=True)
    scheduler = Scheduler(config, kv, max_model_len=256, max_loras=1)
    x, y = (Adapter(LoRARequest(name, uid, "/unused"), uid) for uid, name in ((1, "x"), (2, "y")))
    for request_id, lora in (("x1", x), ("y1", y), ("x2", x), ("base", None)):
        scheduler.add_request(Request(request_id, [1, 2, 3], SamplingParams(max_tokens=2, ignore_eos=True),
                                      lora=lora))
    first = run_step(scheduler)
    assert list(first.num_scheduled_tokens) == ["x1", "x2", "base"]
    assert [r.request_id for r in scheduler.waiting] == ["y1"]
    order = []
    while scheduler.has_unfinished_requests():
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
    while scheduler.has_unfinished_requests():
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
    kv = KVCacheManager(64, 4, True)
    config = SchedulerConfig(max_num_batched_tokens=64, max_num_seqs=8, enable_chunked_prefill=True)
    scheduler = Scheduler(config, kv, max_model_len=256, max_loras=1)
    x, y = (Adapter(LoRARequest(name, uid, "/unused"), uid) for uid, name in ((1, "x"), (2, "y")))
    scheduler.add_request(Request("x1", [1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), lora=x))
    run_step(scheduler)
    scheduler.add_request(Request("y1", [1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), lora=y))
    assert list(run_step(scheduler).num_scheduled_tokens) == ["x1"]
