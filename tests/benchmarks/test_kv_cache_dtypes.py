"""benchmarks/kv_cache_dtypes.py --quick on a tiny model: one table row per cache format,
the unquantized reference agreeing with itself, quantized caches holding more tokens."""

from __future__ import annotations

from tests.benchmark_scripts import load_benchmark


def test_quick_table(tiny_checkpoint_factory, capsys):
    script = load_benchmark("kv_cache_dtypes")
    model = tiny_checkpoint_factory("LlamaForCausalLM", hidden_size=128, num_attention_heads=4,
                                    num_key_value_heads=2, head_dim=64, intermediate_size=256)
    args = script.parse_args(["--quick", "--model", str(model), "--memory", "4M"])
    results = script.run(args)
    assert list(results) == ["auto", "int8", "fp8", "fp8+scales"]
    assert results["auto"]["identical"] == 100.0 and results["auto"]["max_delta"] == 0.0
    for name in ("int8", "fp8", "fp8+scales"):
        assert results[name]["kv_tokens"] > 1.8 * results["auto"]["kv_tokens"]
        assert 0 <= results[name]["divergence"] <= args.max_tokens
        for batch in args.batch:
            assert results[name][f"step_ms_b{batch}"] > 0
    script.table(results, args.batch, "auto")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 5 and rows[1].startswith("| auto | ")
