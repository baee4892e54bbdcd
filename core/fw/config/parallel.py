"""ParallelConfig: how the engine scales out, with vLLM's option names.

Data parallelism runs several engine cores (processes or Ray actors) behind the API
server; tensor parallelism splits each model across ranks over torch.distributed. What fw
has not built (pipeline, expert and decode-context parallelism, dual batch overlap, GPU
profiling hooks) is refused with the reason when it is asked for, never ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from fw.config.base import ConfigGroup, option

_NOT_BUILT = "is not built in fw"
_DBO = "dual batch overlap is a GPU micro-batching feature fw has not built"
_EPLB = "expert-parallel load balancing is not built in fw (it has no expert parallelism)"
_WORKER = "fw's workers are not replaceable classes; write a plugin instead"


class ParallelConfig(ConfigGroup):
    group_title = "ParallelConfig"
    group_help = "Configuration for the distributed execution."

    distributed_executor_backend: Literal["mp", "ray", "uni", "external_launcher"] | None = option(
        None,
        'Backend for tensor-parallel workers: "mp" (processes on this machine), "ray" (Ray actors, also '
        'across machines) or "uni" (no workers; only with --tensor-parallel-size 1). Defaults to "uni" for '
        'one rank and "mp" for several.',
        unsupported={"external_launcher": "fw starts its own workers; use mp or ray"},
    )
    pipeline_parallel_size: int = option(
        1, "Number of pipeline parallel groups.", short="-pp", ge=1,
        unsupported=f"pipeline parallelism {_NOT_BUILT}; use --tensor-parallel-size to split a model across ranks")
    tensor_parallel_size: int = option(
        1, "Number of tensor parallel ranks: each projection is split across them (gloo on CPU, NCCL on CUDA), "
           "attention heads and KV heads with them.", short="-tp", ge=1)
    decode_context_parallel_size: int = option(
        1, "Number of decode context parallel groups.", short="-dcp", ge=1,
        unsupported=f"decode context parallelism {_NOT_BUILT}")
    data_parallel_size: int = option(
        1, "Number of data parallel ranks: whole engine cores, each with its own KV cache and its share of "
           "the CPU cores, behind one load balancer.", short="-dp", ge=1)
    data_parallel_rank: int | None = option(
        None, "Data parallel rank of this instance. When set, this server is one rank behind an external "
              "load balancer (its cores pinned and its metrics labelled as that rank).", short="-dpn", ge=0)
    data_parallel_start_rank: int | None = option(
        None, "The first data parallel rank this node runs (secondary nodes of a multi-node deployment).",
        short="-dpr", ge=0)
    data_parallel_size_local: int | None = option(
        None, "Number of data parallel ranks to run on this node (default: all of --data-parallel-size).",
        short="-dpl", ge=0)
    data_parallel_address: str | None = option(
        None, "Address of the data parallel head node, which headless nodes' engines connect to.", short="-dpa")
    data_parallel_rpc_port: int | None = option(
        None, "Port of the head node that headless nodes' engines connect to.", short="-dpp")
    data_parallel_backend: Literal["mp", "ray"] = option(
        "mp", 'How data parallel engine cores run: "mp" (processes on this machine) or "ray" (Ray actors placed '
              "by Ray; joins RAY_ADDRESS / --ray-address when set, else starts Ray locally).", short="-dpb")
    data_parallel_routing: Literal["prefix", "queue"] = option(
        "prefix", 'How the server picks a data parallel rank for a request: "queue" takes the shortest queue '
                  '(4 x waiting + running, as vLLM does); "prefix" does too unless the queues are balanced, then '
                  "sends the request to the rank that most recently served the longest prefix of its prompt "
                  "(its prefix cache likely holds it, as SGLang's router does). fw-specific.")
    data_parallel_hybrid_lb: bool = option(
        False, "Balance load between the data parallel ranks of this node only, with an external load "
               "balancer in front of the nodes. Set together with --data-parallel-start-rank.")
    ray_address: str | None = option(
        None, "The Ray cluster to join (ray://host:port or host:port); default RAY_ADDRESS, else a local Ray.",
        env="RAY_ADDRESS")
    nnodes: int = option(1, "Number of machines the tensor parallel ranks span (the mp backend).", ge=1)
    node_rank: int = option(0, "This machine's index among --nnodes (0 runs the engine).", ge=0)
    master_addr: str = option("127.0.0.1", "Address of node 0, where torch.distributed meets.")
    master_port: int | None = option(None, "Port on node 0 where torch.distributed meets (default: a free one).")
    enable_expert_parallel: bool = option(
        False, "Use expert parallelism for MoE layers.",
        unsupported=f"expert parallelism {_NOT_BUILT}; MoE layers are split with --tensor-parallel-size")
    enable_dbo: bool = option(False, "Dual batch overlap.", unsupported=_DBO)
    dbo_decode_token_threshold: int = option(32, "Dual batch overlap threshold for decode batches.",
                                             unsupported=_DBO)
    dbo_prefill_token_threshold: int = option(512, "Dual batch overlap threshold for prefill batches.",
                                              unsupported=_DBO)
    enable_eplb: bool = option(False, "Expert-parallel load balancing.", unsupported=_EPLB)
    eplb_config: dict[str, Any] = option({}, "Expert-parallel load balancing configuration.", json=True,
                                         unsupported=_EPLB)
    expert_placement_strategy: Literal["linear", "round_robin"] = option(
        "linear", "Placement of experts across expert-parallel ranks.", unsupported=_EPLB)
    num_redundant_experts: int | None = option(None, "Deprecated in vLLM.", unsupported=_EPLB)
    eplb_window_size: int | None = option(None, "Deprecated in vLLM.", unsupported=_EPLB)
    eplb_step_interval: int | None = option(None, "Deprecated in vLLM.", unsupported=_EPLB)
    eplb_log_balancedness: bool | None = option(None, "Deprecated in vLLM.", unsupported=_EPLB)
    max_parallel_loading_workers: int | None = option(
        None, "At most this many tensor parallel ranks read the checkpoint at the same time (bounds peak "
              "memory while loading).", ge=1)
    ray_workers_use_nsight: bool = option(
        False, "Profile Ray workers with Nsight.",
        unsupported="Nsight profiling of Ray workers needs CUDA tooling fw does not wire up")
    disable_custom_all_reduce: bool = option(
        False, "Use the communication library's own all-reduce (fw never uses a custom one, so this holds "
               "either way).")
    worker_cls: str = option("auto", 'The worker class ("auto").', unsupported=_WORKER)
    worker_extension_cls: str = option("", "A worker extension class.", unsupported=_WORKER)
    enable_multimodal_encoder_data_parallel: bool = option(
        False, "Data parallel multimodal encoders.", unsupported="fw serves text-only models")

    @model_validator(mode="after")
    def _check(self) -> "ParallelConfig":
        if self.distributed_executor_backend == "uni" and self.tensor_parallel_size > 1:
            raise ValueError("--distributed-executor-backend uni runs one rank; use mp or ray with "
                             f"--tensor-parallel-size {self.tensor_parallel_size}")
        if self.node_rank >= self.nnodes:
            raise ValueError(f"--node-rank {self.node_rank} must be below --nnodes {self.nnodes}")
        if self.nnodes > 1:
            if self.distributed_executor_backend == "ray":
                raise ValueError("--nnodes is for the mp backend; with --distributed-executor-backend ray, Ray "
                                 "places the ranks across its cluster (start fw on one node)")
            if self.tensor_parallel_size % self.nnodes:
                raise ValueError(f"--tensor-parallel-size {self.tensor_parallel_size} does not split evenly over "
                                 f"--nnodes {self.nnodes} (every node runs as many ranks)")
            if self.master_port is None:
                raise ValueError(f"--master-port is required with --nnodes {self.nnodes}: every node names the "
                                 "port of node 0")
        return self

    @property
    def executor_backend(self) -> str:
        """The backend tensor parallel workers use (``uni`` for one rank)."""
        if self.distributed_executor_backend is not None:
            return self.distributed_executor_backend
        return "uni" if self.tensor_parallel_size == 1 and self.nnodes == 1 else "mp"
