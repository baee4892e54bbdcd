"""Engine cores as Ray actors (``--data-parallel-backend ray``).

An actor runs the same engine core as a spawned process (``run_engine_core``), placed by
Ray by its CPU count, on any node of the cluster; it talks to the API server over the
same ZeroMQ sockets. Ray is an optional dependency (``pip install 'fw[ray]'``), imported
only here.
"""

from __future__ import annotations

from typing import Any

import ray

from fw.engine.core.process import CoreSpec, run_engine_core


@ray.remote
class EngineCoreActor:
    def run(self, spec: CoreSpec) -> None:
        run_engine_core(spec)


def start_actor(spec: CoreSpec, cpus: int) -> dict[str, Any]:
    actor = EngineCoreActor.options(num_cpus=cpus, name=None).remote()
    return {"actor": actor, "done": actor.run.remote(spec)}


def failure(handle: dict[str, Any]) -> str | None:
    """Why the actor's engine core stopped, or None while it runs."""
    ready, _ = ray.wait([handle["done"]], timeout=0)
    if not ready:
        return None
    try:
        ray.get(ready[0])
        return "it exited"
    except Exception as exc:  # noqa: BLE001 - reported, whatever Ray raised
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def stop_actors(handles: list[dict[str, Any]], *, shutdown_ray: bool) -> None:
    for handle in handles:
        ray.kill(handle["actor"], no_restart=True)
    if shutdown_ray:
        ray.shutdown()
