"""Time the fw_kernels Triton kernels at serving shapes and compare them with torch SDPA.

    python benchmarks/triton_kernels.py            # needs CUDA; defaults: 64 seqs x 2048 context,
                                            # 32 query / 8 KV heads, head_size 128, bf16
    python benchmarks/triton_kernels.py --smoke    # tiny shapes on the CPU under TRITON_INTERPRET=1:
                                            # checks this script's logic, times nothing useful

Each kernel is timed with ``triton.testing.do_bench`` (median, L2 flushed between runs).
Achieved bandwidth is the bytes a kernel must move at least, over its time, shown against
the device's measured copy bandwidth (``dst.copy_(src)``, read + write); decode should
reach 70 % of it. SDPA runs on the same shapes with dense, contiguous K/V (no paging),
and its output checks ours.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SMOKE = dict(num_seqs=3, context=40, num_heads=6, num_kv_heads=2, head_size=16, block_size=16,
             chunk=8, dtype="fp32")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-seqs", type=int, default=64)
    p.add_argument("--context", type=int, default=2048, help="tokens per sequence")
    p.add_argument("--num-heads", type=int, default=32)
    p.add_argument("--num-kv-heads", type=int, default=8)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--chunk", type=int, default=512, help="new tokens per sequence in the chunked-prefill case")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU under the Triton interpreter")
    args = p.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def wall_clock_ms(fn) -> float:
    """The interpreter's stand-in for do_bench: one warm-up, one timed call."""
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


class Setup:
    """A paged KV cache over random data, plus the same keys/values dense for SDPA."""

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.dtype = DTYPES[args.dtype]
        s, n, hkv, d, bs = args.num_seqs, args.context, args.num_kv_heads, args.head_size, args.block_size
        blocks = -(-n // bs)
        self.block_table = torch.randperm(s * blocks, device=device).to(torch.int32).view(s, blocks)
        k = torch.randn(s, blocks * bs, hkv, d, device=device, dtype=self.dtype)
        v = torch.randn_like(k)
        self.key_cache = torch.empty(s * blocks, bs, hkv, d, device=device, dtype=self.dtype)
        self.value_cache = torch.empty_like(self.key_cache)
        rows = self.block_table.flatten().long()
        self.key_cache[rows] = k.view(s * blocks, bs, hkv, d)
        self.value_cache[rows] = v.view(s * blocks, bs, hkv, d)
        # SDPA's layout [seqs, kv_heads, context, head_size], contiguous: its best case
        self.dense_k = k[:, :n].transpose(1, 2).contiguous()
        self.dense_v = v[:, :n].transpose(1, 2).contiguous()
        self.seq_lens = torch.full((s,), n, dtype=torch.int32, device=device)
        self.elem = k.element_size()

    def query(self, q_len):
        a = self.args
        return torch.randn(a.num_seqs * q_len, a.num_heads, a.head_size, device=self.device, dtype=self.dtype)

    def sdpa(self, query, q_len):
        """torch SDPA on the dense copy; the new tokens are the last ``q_len`` positions."""
        import torch.nn.functional as F

        a = self.args
        q = query.view(a.num_seqs, q_len, a.num_heads, a.head_size).transpose(1, 2)
        kw = dict(scale=a.head_size ** -0.5, enable_gqa=a.num_heads != a.num_kv_heads)
        if q_len == a.context:
            kw["is_causal"] = True
        elif q_len > 1:  # causal, aligned to the end of the context
            q_pos = torch.arange(a.context - q_len, a.context, device=self.device)
            kw["attn_mask"] = torch.arange(a.context, device=self.device)[None, :] <= q_pos[:, None]
        def fn():
            return F.scaled_dot_product_attention(q, self.dense_k, self.dense_v, **kw)

        return fn, fn().transpose(1, 2).reshape(query.shape)


def copy_bandwidth(bench, device) -> float:
    """GB/s of a large device-to-device copy, counting read and write."""
    numel = (1 << 28) if device == "cuda" else (1 << 22)
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    return 2 * src.numel() * src.element_size() / ms / 1e6


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before fw_kernels is imported: Triton decides then
        device = "cpu"
    elif not torch.cuda.is_available():
        print("benchmarks/triton_kernels.py needs a CUDA device and found none; nothing timed "
              "(--smoke checks the script on the CPU under the Triton interpreter).")
        return 0
    else:
        device = "cuda"
    import triton.testing

    from fw_kernels.decode import paged_attention_decode
    from fw_kernels.kv_write import write_kv
    from fw_kernels.prefill import paged_attention_prefill

    bench = wall_clock_ms if args.smoke else (lambda fn: triton.testing.do_bench(fn, return_mode="median"))
    torch.manual_seed(0)
    copy_gbs = copy_bandwidth(bench, device)
    setup = Setup(args, device)
    a, e = args, setup.elem
    scale = a.head_size ** -0.5
    kv_bytes = 2 * a.num_seqs * a.context * a.num_kv_heads * a.head_size * e
    rows = []

    def record(name, fn, bytes_moved, flops=None, sdpa=None, out=None):
        ms = bench(fn)  # also fills `out` for the comparison below
        row = dict(kernel=name, us=ms * 1e3, gbs=bytes_moved / ms / 1e6, tflops=flops and flops / ms / 1e9)
        if sdpa is not None:
            sdpa_fn, sdpa_out = sdpa
            row["sdpa_us"] = bench(sdpa_fn) * 1e3
            row["diff"] = (out.float() - sdpa_out.float()).abs().max().item()
        rows.append(row)

    # write_kv: one chunked-prefill step's keys and values (read once, written once)
    tokens = a.num_seqs * a.chunk
    new_k = torch.randn(tokens, a.num_kv_heads, a.head_size, device=device, dtype=setup.dtype)
    new_v = torch.randn_like(new_k)
    slots = torch.randperm(setup.key_cache.shape[0] * a.block_size, device=device)[:tokens]
    scratch_k, scratch_v = torch.empty_like(setup.key_cache), torch.empty_like(setup.value_cache)
    record(f"write_kv ({tokens} tokens)", lambda: write_kv(new_k, new_v, scratch_k, scratch_v, slots),
           2 * new_k.numel() * e * 2)

    # decode: one token per sequence over the whole context
    q = setup.query(1)
    out = torch.empty_like(q)

    def decode():
        paged_attention_decode(q, setup.key_cache, setup.value_cache, setup.block_table, setup.seq_lens, scale,
                               max_seq_len=a.context, out=out)

    record("decode", decode, kv_bytes + 2 * q.numel() * e,
           4 * a.num_seqs * a.num_heads * a.head_size * a.context, setup.sdpa(q, 1), out)

    # prefill: a whole prompt, and a chunk whose earlier context is already cached
    for q_len, name in [(a.context, "prefill (whole prompt)"), (a.chunk, f"prefill ({a.chunk}-token chunk)")]:
        q = setup.query(q_len)
        out = torch.empty_like(q)
        qsl = torch.arange(a.num_seqs + 1, device=device, dtype=torch.int32) * q_len

        def prefill():
            paged_attention_prefill(q, setup.key_cache, setup.value_cache, setup.block_table, qsl,
                                    setup.seq_lens, scale, max_query_len=q_len, out=out)

        visible = sum(a.context - q_len + t + 1 for t in range(q_len))  # keys seen, summed over queries
        record(name, prefill, kv_bytes + 2 * q.numel() * e,
               4 * a.num_seqs * a.num_heads * a.head_size * visible, setup.sdpa(q, q_len), out)

    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'CPU (Triton interpreter)'}; "
          f"{a.num_seqs} seqs x {a.context} context, {a.num_heads}/{a.num_kv_heads} heads, d={a.head_size}, "
          f"block {a.block_size}, {a.dtype}; copy bandwidth {copy_gbs:.0f} GB/s")
    print(f"{'kernel':<28}{'time us':>10}{'GB/s':>9}{'% copy':>8}{'TFLOP/s':>9}{'SDPA us':>10}{'max|d| vs SDPA':>16}")
    for r in rows:
        tflops = f"{r['tflops']:9.1f}" if r["tflops"] else " " * 9
        sdpa = f"{r['sdpa_us']:10.1f}{r['diff']:16.2e}" if "sdpa_us" in r else ""
        print(f"{r['kernel']:<28}{r['us']:10.1f}{r['gbs']:9.0f}{100 * r['gbs'] / copy_gbs:7.0f}%{tflops}{sdpa}")
    decode_share = next(r for r in rows if r["kernel"] == "decode")["gbs"] / copy_gbs
    print(f"decode reaches {100 * decode_share:.0f}% of copy bandwidth (target: 70%)")

    worst = max(r["diff"] for r in rows if "diff" in r)
    tolerance = 1e-4 if setup.dtype == torch.float32 else 5e-2
    if worst > tolerance:
        print(f"kernel outputs differ from SDPA by {worst:.3g} (> {tolerance}); see the table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
