"""benchmarks/startup.py on a tiny GGUF: one cold round of `fw serve` against a stand-in
llama-server (a script that answers /health), printed side by side with fw's phases."""

from __future__ import annotations

import os
import sys

from tests.benchmark_scripts import load_benchmark
from tests.tiny_gguf import make_tiny_gguf

FAKE_LLAMA_SERVER = """#!{python}
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port = int(sys.argv[sys.argv.index("--port") + 1])
assert sys.argv[sys.argv.index("-m") + 1].endswith(".gguf")
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def load_script():
    return load_benchmark("startup")


def test_phases_are_read_from_the_log():
    log = ("INFO 10:00:00 fw.engine: loaded LlamaForCausalLM (m.gguf, bfloat16, torch attention) in 0.4s "
           "(prepared weights from the cache)\nINFO 10:00:01 fw.engine: KV cache (the model's dtype): 5825 blocks of 16 tokens = "
           "93200 tokens (2047.9 MiB); max concurrency at 8192 tokens per request: 11.4x (sized in 0.01s)\n"
           "INFO 10:00:02 fw.engine: warm-up done in 0.51s\nINFO fw.serve: engine ready in 3.25 s (model m)\n")
    assert load_script().fw_phases(log) == {"load": 0.4, "kv": 0.01, "warm-up": 0.51, "engine": 3.25}


def test_a_cold_round_side_by_side(tiny_llama, tmp_path, capsys):
    gguf = make_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama)
    fake = tmp_path / "llama-server"
    fake.write_text(FAKE_LLAMA_SERVER.format(python=sys.executable))
    fake.chmod(0o755)
    load_script().main(["--rounds", "1", "--cold", "--model", str(gguf), "--llama-server", str(fake),
                        "--fw-arg=--dtype", "--fw-arg=float32"])
    out = capsys.readouterr().out
    [row] = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 1 |")]
    fw_ready, fw_cpu, load, kv, warm_up, other, llama_ready, llama_cpu, ratio = (c.strip() for c in row[1:])
    assert 0 < float(load) + float(kv) + float(warm_up) + float(other) <= float(fw_ready) + 0.01
    assert float(fw_cpu) > 0 and float(llama_ready) > 0
    # the times are printed to 0.01 s, the ratio from the unrounded times: it lies between the
    # ratios of the printed times' rounding bounds
    fw_s, llama_s = float(fw_ready), float(llama_ready)
    assert (fw_s - 0.005) / (llama_s + 0.005) - 0.01 <= float(ratio.removesuffix("x")) <= (
        (fw_s + 0.005) / (llama_s - 0.005) + 0.01)
    assert "first-ever" in out and "median: fw" in out and os.path.basename(str(gguf)) in out
