"""fw on a GPU, end to end and measured, in one run (issue 26's device benchmark).

    python benchmarks/gpu_serving.py                     # on the device: ~10 minutes
    python benchmarks/gpu_serving.py --dry-run           # the same logic on the CPU, tiny model (CI)
    python benchmarks/gpu_serving.py --output-json out.json

In order, each section printed as it finishes (a failing section prints its error and
the run goes on):

1. the machine: the ``nvidia-smi`` line, torch / triton / transformers versions, fw's commit;
2. the device's copy bandwidth (a probe: device-to-device copies of a large buffer);
3. parity: greedy tokens of the tiny parity checkpoints in fp32 on the device and on the
   CPU (a child process with no GPU visible), which must be equal;
4. batch-1 decode step time of each model (offline engine, median of timed steps) against
   the bandwidth bound: (weight bytes + the KV bytes a step reads) / copy bandwidth;
5. ``fw serve`` under ``fw bench serve`` at concurrency 1, 8, 64 and 256: output tok/s,
   TTFT, ITL; then transformers ``generate`` in static batches of 1 and 64 on the same
   device, and the goals: batch-1 step <= 1.3x the bound for the 1B model, c=64
   throughput >= 10x transformers' batch-64 generate.

Models: the embedded SmolLM2-135M (its GGUF) and a 1B-parameter Llama-shaped model
(Llama-3.2-1B's shape with SmolLM2's 49152-token vocabulary, random weights through
``--load-format dummy``) in bf16. ``--dry-run`` swaps in the tiny test checkpoint in fp32
on the CPU, concurrency 1 and 2, a few tokens: it checks the script, not the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from serving import free_port, stop, wait_healthy  # noqa: E402

LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, head_dim=64, max_position_embeddings=4096, rope_theta=500000.0,
                rms_norm_eps=1e-5, tie_word_embeddings=True, vocab_size=49152)
DEVICE_PLAN = dict(concurrency={1: 16, 8: 64, 64: 256, 256: 512}, input_len=128, output_len=128, steps=100,
                   hf_batches=(1, 64), probe_bytes=2 * 2**30, dtype="bfloat16", max_model_len=2048)
DRY_PLAN = dict(concurrency={1: 2, 2: 4}, input_len=16, output_len=8, steps=10, hf_batches=(1, 2),
                probe_bytes=32 * 2**20, dtype="float32", max_model_len=256)


def section(title: str, results: dict, key: str):
    """Run a section; its figures go to ``results[key]``, its failure is printed."""
    def wrap(fn):
        start = time.perf_counter()
        print(f"\n## {title}", flush=True)
        try:
            results[key] = fn()
        except Exception as error:  # a section's failure must not lose the others' figures
            traceback.print_exc()
            results[key] = {"error": f"{type(error).__name__}: {error}"}
        print(f"({time.perf_counter() - start:.0f}s)", flush=True)
        return fn
    return wrap


def environment() -> dict:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True) if _has("nvidia-smi") else None
    info["nvidia-smi"] = smi.stdout.strip() if smi and smi.returncode == 0 else "no nvidia-smi"
    info["fw commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip()
    for name, value in info.items():
        print(f"- {name}: {value}")
    return info


def _has(binary: str) -> bool:
    return any((Path(d) / binary).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def copy_bandwidth(device, nbytes: int) -> float:
    """GB/s of device-to-device copies (bytes read + written), best of a few rounds."""
    import torch

    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = 0.0
    for _ in range(5):
        sync()
        start = time.perf_counter()
        for _ in range(10):
            dst.copy_(src)
        sync()
        best = max(best, 2 * nbytes * 10 / (time.perf_counter() - start) / 1e9)
    print(f"copy bandwidth: {best:.0f} GB/s ({nbytes / 2**20:.0f} MiB buffers)")
    return best


def make_models(folder: Path, dry: bool) -> dict[str, tuple[Path, list[str]]]:
    """name -> (model path, extra `fw serve` options)."""
    from tests.checkpoints import make_tiny_checkpoint

    if dry:
        return {"tiny-llama": (make_tiny_checkpoint(folder / "tiny"), [])}
    import transformers
    from fw.model_loader.default_model import default_model_path
    from fw_builtins.loaders.gguf_metadata import load_gguf_tokenizer

    gguf = default_model_path()
    big = folder / "llama-1b"
    big.mkdir(parents=True, exist_ok=True)
    tokenizer = load_gguf_tokenizer(gguf)
    config = transformers.LlamaConfig(**LLAMA_1B, bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id)
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(big)
    tokenizer.save_pretrained(big)
    return {"SmolLM2-135M (GGUF)": (gguf, []), "llama-1b (dummy)": (big, ["--load-format", "dummy"])}


def parity(folder: Path) -> dict:
    """Greedy tokens of the tiny parity checkpoints in fp32: the device against the CPU."""
    from tests.checkpoints import make_tiny_checkpoint

    results = {}
    for arch in ("LlamaForCausalLM", "Qwen2ForCausalLM"):
        path = make_tiny_checkpoint(folder / f"parity-{arch}", arch)
        runs = {where: _child(["--parity-worker", str(path)], cpu_only=where == "cpu") for where in ("device", "cpu")}
        equal = runs["device"]["tokens"] == runs["cpu"]["tokens"]
        results[arch] = {"equal": equal, "device": runs["device"]["device"], "tokens": runs["cpu"]["tokens"]}
        print(f"- {arch}: greedy tokens on {runs['device']['device']} {'==' if equal else '!='} CPU")
    return results


def _parity_worker(path: str) -> dict:
    from fw import LLM, SamplingParams

    llm = LLM(path, dtype="float32", max_model_len=256)
    prompts = ["The capital of France is", "Numbers: 0 1 2 3", "Once upon a time there was a little robot."]
    outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True), use_tqdm=False)
    return {"device": str(llm.engine.loaded.device), "tokens": [list(o.outputs[0].token_ids) for o in outputs]}


def _child(args: list[str], cpu_only: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / r) for r in ("core", "kernels", "plugins", ".")))
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _step_worker(path: str, options: str) -> dict:
    """Median batch-1 decode step of ``path`` and the bytes a step reads."""
    import torch

    from fw import LLM, SamplingParams

    opts = json.loads(options)
    llm = LLM(path, **opts["llm"])
    engine, context = llm.engine, opts["context"]
    vocab = min(1000, engine.loaded.hf_config.vocab_size)
    engine.add_request("step", {"prompt_token_ids": [i % vocab for i in range(context)]},
                       SamplingParams(temperature=0.0, max_tokens=opts["steps"] + 20, ignore_eos=True))
    while engine.scheduler.requests["step"].num_computed_tokens < context:
        engine.step()
    times = []
    for _ in range(opts["steps"]):
        start = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - start)
    model = engine.loaded.model
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    kv_per_token = sum(2 * layer.num_kv_heads * layer.head_size * layer.kv_cache.element_size()
                       for layer in _attention_layers(model))
    step_ms = statistics.median(times) * 1000
    return {"step_ms": step_ms, "weight_bytes": weights, "kv_bytes": kv_per_token * (context + opts["steps"] // 2),
            "device": str(engine.loaded.device), "torch_threads": torch.get_num_threads()}


def _attention_layers(model):
    from fw.engine.kv_sizing import attention_layers

    return attention_layers(model)


def step_times(models: dict, plan: dict, bandwidth: float) -> dict:
    results = {}
    print("| model | batch-1 step ms | weights MB | KV MB read | bound ms | step / bound |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (path, extra) in models.items():
        llm = {"dtype": plan["dtype"], "max_model_len": plan["max_model_len"]}
        if "--load-format" in extra:
            llm["load_format"] = extra[extra.index("--load-format") + 1]
        figures = _child(["--step-worker", str(path), json.dumps(
            {"llm": llm, "context": plan["input_len"], "steps": plan["steps"]})])
        bound = (figures["weight_bytes"] + figures["kv_bytes"]) / (bandwidth * 1e9) * 1000
        figures.update(bound_ms=bound, ratio=figures["step_ms"] / bound)
        results[name] = figures
        print(f"| {name} | {figures['step_ms']:.3f} | {figures['weight_bytes'] / 1e6:.0f} | "
              f"{figures['kv_bytes'] / 1e6:.1f} | {bound:.3f} | {figures['ratio']:.2f}x |", flush=True)
    return results


def serving(models: dict, plan: dict, folder: Path) -> dict:
    results = {}
    print("| model | concurrency | output tok/s | mean TTFT ms | median TTFT ms | median ITL ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (path, extra) in models.items():
        try:
            results[name] = _serve_one(name, path, extra, plan, folder / f"serve-{len(results)}.log", folder)
        except Exception as error:  # the other model is still measured
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    return results


def _serve_one(name: str, path: Path, extra: list[str], plan: dict, log_path: Path, folder: Path) -> dict:
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "fw.cli.main", "serve", str(path), "--port", str(port), "--dtype",
               plan["dtype"], "--max-model-len", str(plan["max_model_len"]), "--disable-log-stats",
               "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning", *extra]
    results = {}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            served = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
            for concurrency, prompts in plan["concurrency"].items():
                figures = _bench(url, served, path, concurrency, prompts, plan, folder)
                results[concurrency] = figures
                print(f"| {name} | {concurrency} | {figures['output_throughput']:.0f} | "
                      f"{figures['mean_ttft_ms']:.1f} | {figures['median_ttft_ms']:.1f} | "
                      f"{figures['median_itl_ms']:.2f} |", flush=True)
        finally:
            stop(process)
            for line in log_path.read_text().splitlines():
                if any(key in line for key in ("GPU memory", "CUDA graphs", "KV cache (", "Error", "error")):
                    print(f"  {line.strip()}")
    return results


def _bench(url: str, served: str, path: Path, concurrency: int, prompts: int, plan: dict, folder: Path) -> dict:
    filename = f"bench-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "fw.cli.main", "bench", "serve", "--base-url", url, "--model", served,
               "--tokenizer", str(path), "--dataset-name", "random", "--random-input-len", str(plan["input_len"]),
               "--random-output-len", str(plan["output_len"]), "--num-prompts", str(prompts),
               "--max-concurrency", str(concurrency), "--ignore-eos", "--disable-tqdm", "--save-result",
               "--result-dir", str(folder), "--result-filename", filename]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((folder / filename).read_text())


def hf_generate(models: dict, plan: dict) -> dict:
    """transformers ``generate`` in static batches on the same device: output tok/s."""
    results = {}
    print("| model | batch | transformers output tok/s |")
    print("|---|---:|---:|")
    for name, (path, extra) in models.items():
        figures = _child(["--hf-worker", str(path), json.dumps({"dummy": "--load-format" in extra, **plan})])
        results[name] = figures
        for batch, rate in figures.items():
            print(f"| {name} | {batch} | {rate:.0f} |", flush=True)
    return results


def _hf_worker(path: str, options: str) -> dict:
    import torch
    import transformers

    plan = json.loads(options)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, plan["dtype"])
    if plan["dummy"]:
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(path),
                                                             dtype=dtype)
    elif path.endswith(".gguf"):
        model = transformers.AutoModelForCausalLM.from_pretrained(str(Path(path).parent), gguf_file=Path(path).name,
                                                                 dtype=dtype)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model = model.to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rates = {}
    for batch in plan["hf_batches"]:
        ids = torch.randint(0, min(1000, model.config.vocab_size), (batch, plan["input_len"]), device=device)
        generate = dict(max_new_tokens=plan["output_len"], min_new_tokens=plan["output_len"], do_sample=False,
                        pad_token_id=0)
        model.generate(ids, **{**generate, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
        sync()
        start = time.perf_counter()
        model.generate(ids, **generate)
        sync()
        rates[str(batch)] = batch * plan["output_len"] / (time.perf_counter() - start)
    return rates


def goals(results: dict, plan: dict) -> dict:
    """The issue's goals, from the figures (None where a figure is missing)."""
    steps, served, hf = results.get("steps", {}), results.get("serving", {}), results.get("transformers", {})
    big = [name for name in steps if "1b" in name] or list(steps)
    top = max(plan["hf_batches"])
    out = {}
    if big and "ratio" in steps.get(big[0], {}):
        out["batch-1 step / bandwidth bound <= 1.3"] = round(steps[big[0]]["ratio"], 2)
    for name, figures in served.items():
        if isinstance(figures, dict) and top in figures and str(top) in hf.get(name, {}):
            out[f"{name}: c={top} tok/s / transformers batch-{top} >= 10"] = round(
                figures[top]["output_throughput"] / hf[name][str(top)], 1)
    for goal, value in out.items():
        print(f"- {goal}: {value}")
    return out


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("--parity-worker", "--step-worker", "--hf-worker"):
        worker = {"--parity-worker": _parity_worker, "--step-worker": _step_worker, "--hf-worker": _hf_worker}
        print(json.dumps(worker[argv[0]](*argv[1:])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the logic on the CPU with a tiny model")
    parser.add_argument("--output-json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(str(ROOT / r) for r in ("core", "kernels", "plugins", "."))
    sys.path[:0] = [str(ROOT / r) for r in ("core", "kernels", "plugins")]
    import torch

    plan = DRY_PLAN if args.dry_run else DEVICE_PLAN
    folder = Path(tempfile.mkdtemp(prefix="fw-gpu-serving-"))
    device = torch.device("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    started, results = time.perf_counter(), {"dry_run": args.dry_run}
    section("machine", results, "environment")(environment)
    section("copy bandwidth", results, "bandwidth")(lambda: copy_bandwidth(device, plan["probe_bytes"]))
    section("greedy parity, fp32: device vs CPU", results, "parity")(lambda: parity(folder))
    models = make_models(folder, args.dry_run)
    bandwidth = results["bandwidth"] if isinstance(results["bandwidth"], float) else float("nan")
    section("batch-1 decode step vs the bandwidth bound", results, "steps")(
        lambda: step_times(models, plan, bandwidth))
    section("fw serve", results, "serving")(lambda: serving(models, plan, folder))
    section("transformers generate, static batches", results, "transformers")(lambda: hf_generate(models, plan))
    section("goals", results, "goals")(lambda: goals(results, plan))
    results["seconds"] = time.perf_counter() - started
    print(f"\ntotal {results['seconds']:.0f}s; command: python benchmarks/gpu_serving.py {' '.join(argv)}")
    if args.output_json:
        args.output_json.write_text(json.dumps(results, indent=2, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    return 1 if any(isinstance(v, dict) and "error" in v for v in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
