"""Prometheus metrics, named as vLLM names them with ``fw:`` in place of ``vllm:`` so
dashboards carry over. Every series has the label ``model_name`` (the first served name).

Two sources:

* engine state (running/waiting requests, KV-cache usage, prefix-cache and preemption
  counters, whether each engine core is alive) is read from ``engine.engine_stats()``
  when /metrics is scraped, one series per engine core (label ``engine``);
* per-request series (tokens, latencies, finished requests) are recorded by the server
  from the outputs it streams, through a ``RequestTracker`` per request.

Each app has its own ``CollectorRegistry``, so several servers in one process (tests) do
not collide.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fw.engine.outputs import PoolingRequestOutput, RequestOutput
from fw.engine.protocol import EngineClient

# The *_created series double the output and no dashboard reads them (vLLM drops them too).
disable_created_metrics()

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
               2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


class EngineStatsCollector(Collector):
    """Engine gauges and counters, read at scrape time."""

    def __init__(self, engine: EngineClient, model_name: str):
        self.engine = engine
        self.model_name = model_name

    def collect(self) -> Iterator:
        """One series per engine core (label ``engine``: its data parallel rank, as vLLM
        labels them); a dead engine core keeps only ``fw:engine_alive`` 0."""
        per_engine = self.engine.engine_stats()
        labels = ["model_name", "engine"]

        def family(kind, name: str, doc: str, value_of) -> Any:
            metric = kind(name, doc, labels=labels)
            for rank, stats in per_engine.items():
                if stats is not None:
                    metric.add_metric([self.model_name, str(rank)], value_of(stats))
            return metric

        alive = GaugeMetricFamily("fw:engine_alive", "1 while the engine core serves, 0 once it has died.",
                                  labels=labels)
        for rank, stats in per_engine.items():
            alive.add_metric([self.model_name, str(rank)], 0 if stats is None else 1)
        yield alive
        yield family(GaugeMetricFamily, "fw:num_requests_running", "Requests in the engine's running batch.",
                     lambda s: s.num_running)
        yield family(GaugeMetricFamily, "fw:num_requests_waiting", "Requests waiting to be scheduled.",
                     lambda s: s.num_waiting)
        yield family(GaugeMetricFamily, "fw:kv_cache_usage_perc", "Fraction of KV-cache blocks in use (1 = full).",
                     lambda s: s.kv_cache_usage)
        yield family(CounterMetricFamily, "fw:prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
                     lambda s: s.prefix_cache_queries)
        yield family(CounterMetricFamily, "fw:prefix_cache_hits", "Prompt tokens found in the prefix cache.",
                     lambda s: s.prefix_cache_hits)
        yield family(CounterMetricFamily, "fw:num_preemptions", "Requests preempted (their KV cache dropped).",
                     lambda s: s.num_preemptions)
        if any(stats is not None and stats.spec_accepted_per_position for stats in per_engine.values()):
            yield from self._speculative(per_engine, family)

    def _speculative(self, per_engine: dict[int, Any], family) -> Iterator:
        """vLLM's speculative-decoding counters (only when speculative decoding is on)."""
        yield family(CounterMetricFamily, "fw:spec_decode_num_drafts", "Proposals checked (one per request and step).",
                     lambda s: s.spec_num_drafts)
        yield family(CounterMetricFamily, "fw:spec_decode_num_draft_tokens", "Proposed tokens checked.",
                     lambda s: s.spec_num_draft_tokens)
        yield family(CounterMetricFamily, "fw:spec_decode_num_accepted_tokens", "Proposed tokens the model accepted.",
                     lambda s: s.spec_num_accepted_tokens)
        per_position = CounterMetricFamily(
            "fw:spec_decode_num_accepted_tokens_per_pos", "Accepted tokens by their position in the proposal.",
            labels=["model_name", "engine", "position"])
        for rank, stats in per_engine.items():
            for position, count in enumerate(stats.spec_accepted_per_position if stats is not None else ()):
                per_position.add_metric([self.model_name, str(rank), str(position)], count)
        yield per_position


class ServerMetrics:
    """The per-request series. Their one label value is bound once here: a labels() lookup
    per streamed token is measurable on the event loop at 32 streams."""

    def __init__(self, engine: EngineClient, model_name: str):
        self.model_name = model_name
        self.registry = CollectorRegistry()
        self.registry.register(EngineStatsCollector(engine, model_name))
        labels = ["model_name"]
        r = self.registry
        # Series exist from the start (at 0), so dashboards and alerts see them before traffic.
        self.prompt_tokens = Counter("fw:prompt_tokens", "Prompt tokens processed.", labels,
                                     registry=r).labels(model_name)
        self.generation_tokens = Counter("fw:generation_tokens", "Tokens generated.", labels,
                                         registry=r).labels(model_name)
        success = Counter("fw:request_success", "Finished sequences, by finish reason (stop, length, abort).",
                          labels + ["finished_reason"], registry=r)
        self.request_success = {reason: success.labels(model_name, reason) for reason in ("stop", "length", "abort")}
        self.ttft = Histogram("fw:time_to_first_token_seconds", "Time to the first generated token.",
                              labels, buckets=TTFT_BUCKETS, registry=r).labels(model_name)
        self.itl = Histogram("fw:inter_token_latency_seconds", "Time between successive outputs.",
                             labels, buckets=ITL_BUCKETS, registry=r).labels(model_name)
        self.e2e = Histogram("fw:e2e_request_latency_seconds", "Arrival to finish of a request.",
                             labels, buckets=REQUEST_BUCKETS, registry=r).labels(model_name)
        self.queue_time = Histogram("fw:request_queue_time_seconds", "Time a request waited to be scheduled.",
                                    labels, buckets=REQUEST_BUCKETS, registry=r).labels(model_name)
        self._success = success
        #: plain totals for the periodic stats log
        self.total_prompt_tokens = 0
        self.total_generation_tokens = 0

    def count_finished(self, reason: str, count: int = 1) -> None:
        child = self.request_success.get(reason)
        if child is None:
            child = self.request_success[reason] = self._success.labels(self.model_name, reason)
        child.inc(count)

    def track(self, num_prompt_tokens: int) -> "RequestTracker":
        return RequestTracker(self, num_prompt_tokens)


class RequestTracker:
    """Records one request's series from the DELTA outputs it yields.

    Latencies come from the engine's ``RequestMetrics`` timestamps when present, else
    from the times the server saw the outputs.
    """

    def __init__(self, metrics: ServerMetrics, num_prompt_tokens: int):
        self.m = metrics
        self.num_prompt_tokens = num_prompt_tokens
        self.start = time.monotonic()
        self.last_token_seen: float | None = None
        self.finished = False
        self.finished_sequences = 0

    def observe(self, out: RequestOutput) -> None:
        m = self.m
        now = time.monotonic()
        new_tokens = sum(len(o.token_ids) for o in out.outputs)
        timing = out.metrics
        if self.last_token_seen is None and new_tokens:
            m.prompt_tokens.inc(self.num_prompt_tokens)
            m.total_prompt_tokens += self.num_prompt_tokens
            if timing is not None and timing.first_token_time is not None:
                m.ttft.observe(max(0.0, timing.first_token_time - timing.arrival_time))
            else:
                m.ttft.observe(now - self.start)
            if timing is not None and timing.first_scheduled_time is not None:
                m.queue_time.observe(max(0.0, timing.first_scheduled_time - timing.arrival_time))
        elif new_tokens:
            m.itl.observe(now - self.last_token_seen)
        if new_tokens:
            self.last_token_seen = now
            m.generation_tokens.inc(new_tokens)
            m.total_generation_tokens += new_tokens
        for o in out.outputs:
            if o.finish_reason is not None:
                self.finished_sequences += 1
                m.count_finished(o.finish_reason)
        if out.finished:
            self.finished = True
            end = (timing.finished_time - timing.arrival_time
                   if timing is not None and timing.finished_time is not None else now - self.start)
            m.e2e.observe(max(0.0, end))

    def pooled(self, out: PoolingRequestOutput) -> None:
        """A pooling request's one output: its prompt tokens, queue time, latency and
        finish (no tokens are generated)."""
        m, timing = self.m, out.metrics
        self.finished = True
        if out.outputs is None:
            m.count_finished("abort")
            return
        m.prompt_tokens.inc(len(out.prompt_token_ids))
        m.total_prompt_tokens += len(out.prompt_token_ids)
        m.count_finished("stop")
        if timing is not None and timing.first_scheduled_time is not None:
            m.queue_time.observe(max(0.0, timing.first_scheduled_time - timing.arrival_time))
        end = (timing.finished_time - timing.arrival_time
               if timing is not None and timing.finished_time is not None else time.monotonic() - self.start)
        m.e2e.observe(max(0.0, end))

    def aborted(self, num_sequences: int) -> None:
        """The client went away (or the request failed) before it finished: its
        unfinished sequences count as finished by "abort"."""
        if not self.finished:
            self.finished = True
            left = max(0, num_sequences - self.finished_sequences)
            self.m.count_finished("abort", left)
