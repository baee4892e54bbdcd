"""`fw bench roofline` on a tiny random checkpoint: the machine's ceilings, one table row
per projection shape and row count naming the layout the model runs there, the attention
line, and the same figures in the JSON file. Sizes are tiny; only the logic is checked."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from fw.cli.main import cli
from fw_kernels import cpu
from fw_kernels.cpu import roofline

ROW = re.compile(r"^\| (\d+) \| (\w+) \| (\d+) x (\d+) \| (\d+) \| (\w+) \| ([\d.]+) \| (.+) \|$", re.M)


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_prints_the_limits_and_each_projection_against_them(tiny_llama, tmp_path):
    path = tmp_path / "roofline.json"
    result = CliRunner().invoke(cli, ["bench", "roofline", "--model", str(tiny_llama), "--dtype", "float32",
                                      "--rows", "1", "--rows", "9", "--attention-seqs", "3",
                                      "--attention-context", "40", "--output-json", str(path)], prog_name="fw")
    assert result.exit_code == 0, result.output
    assert re.search(r"memory copy bandwidth: [\d.]+ GB/s", result.stdout)
    if roofline.int8_peak_available():
        assert re.search(r"int8 peak \(vpdpbusd\): \d+ GOP/s on 1 thread, \d+ GOP/s on \d+", result.stdout)
    rows = ROW.findall(result.stdout)
    # the tiny Llama: 2 layers of merged q/k/v (64 + 2 * 2 * 16 outputs), o, gate/up and down, and its head
    shapes = {("qkv_proj", 128, 64, 2), ("o_proj", 64, 64, 2), ("gate_up_proj", 256, 64, 2),
              ("down_proj", 64, 128, 2), ("lm_head", 448, 64, 1)}
    for count in (1, 9):
        found = {(r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows if r[0] == str(count)}
        assert found == shapes
    assert all(float(r[6]) > 0 and r[5] == "F32Panels" for r in rows)  # float32 weights: fw's float32 GEMM
    saved = json.loads(path.read_text())
    assert len(saved["projections"]) == len(rows) == 10
    assert saved["limits"]["copy_gb_per_s"] > 0
    attention = saved["attention"]  # 2 KV heads of 16 float32s, keys and values
    assert attention["kv_bytes"] == 2 * 3 * 40 * 2 * 16 * 4 and attention["gb_per_s"] > 0
    assert re.search(r"Decode attention, 3 sequences x 40 tokens: [\d.]+ GB/s of KV cache read", result.stdout)
