"""What ``fw collect-env`` reports about distributed execution: which communication
backends this torch has, how many tensor-parallel ranks this machine can run, and whether
Ray (``pip install fw[ray]``) is installed and which cluster it would join. Nothing here
starts a process or imports Ray."""

from __future__ import annotations

import importlib.metadata as metadata
import os


def describe() -> list[str]:
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return ["torch.distributed: not available in this torch build (no tensor parallelism)"]
    backends = [name for name, present in (("gloo", dist.is_gloo_available()), ("nccl", dist.is_nccl_available()),
                                           ("mpi", dist.is_mpi_available())) if present]
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if gpus:
        ranks = f"tensor parallelism over NCCL, one rank per GPU: up to {gpus} ranks on this machine"
    else:
        ranks = (f"tensor parallelism over gloo on the CPU: ranks share this machine's {cores} usable cores "
                 f"evenly ({cores} ranks at most with one thread each)")
    try:
        ray = f"{metadata.version('ray')}; cluster: {os.environ.get('RAY_ADDRESS') or 'a local one, started on use'}"
    except metadata.PackageNotFoundError:
        ray = "not installed (pip install fw[ray] for --distributed-executor-backend ray)"
    return [
        f"torch.distributed backends: {', '.join(backends) or 'none'}",
        ranks,
        f"Ray: {ray}",
        "network interface for gloo across machines: GLOO_SOCKET_IFNAME="
        + (os.environ.get("GLOO_SOCKET_IFNAME") or "unset (the one the host name resolves to)"),
    ]
