"""`fw run-batch`: a 20-line file through the real engine on a tiny checkpoint (bad lines
answered in place, everything in input order), files over HTTP and --output-tmp-dir, the
metrics endpoint while a batch is in flight, and the command line itself.

Only the first test loads the real engine; the others use the server tests' fake engine,
since what they check (files, line errors, metrics) does not depend on the model."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fw.cli.main import cli
from fw.config.options import build_bundle
from fw_builtins.commands.run_batch import run
from fw_builtins.commands.run_batch.config import RunBatchConfig
from fw_builtins.commands.run_batch.files import BatchFileError
from tests.core.server.fake_engine import FakeEngine

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"


def fw(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="fw")


def line(custom_id: str, url: str, **body) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def chat(custom_id: str, model: str = "fake-model", **body) -> str:
    return line(custom_id, CHAT, model=model, messages=[{"role": "user", "content": custom_id}],
                max_tokens=4, **body)


def read_records(path: Path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def config(**options) -> RunBatchConfig:
    return build_bundle(RunBatchConfig, {"disable_log_stats": True, **options})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_twenty_lines_on_the_real_engine(tiny_llama, tmp_path):
    model = str(tiny_llama)
    lines = []
    for i in range(20):
        if i == 7:
            lines.append('{"custom_id": "req-7", "method": "POST", "url": ')  # cut short
        elif i == 12:
            lines.append(chat("req-12", model="no-such-model"))
        elif i % 2:
            lines.append(chat(f"req-{i}", model=model, ignore_eos=True))
        else:
            lines.append(line(f"req-{i}", COMPLETIONS, model=model, prompt=f"Count to {i}:",
                              max_tokens=4, ignore_eos=True))
    source, target = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = fw("run-batch", "-i", str(source), "-o", str(target), "--model", model,
                "--max-model-len", "256", "--disable-log-stats", "--response-role", "helper")
    assert result.exit_code == 0, result.output
    records = read_records(target)
    assert [r["custom_id"] for r in records] == [None if i == 7 else f"req-{i}" for i in range(20)]
    assert [i for i, r in enumerate(records) if r["error"]] == [7, 12]
    assert records[7]["response"] is None and records[7]["error"]["code"] == "invalid_json"
    assert records[7]["error"]["message"].startswith("line 8: the line is not valid JSON")
    assert records[12]["response"]["status_code"] == 404
    assert records[12]["response"]["body"]["error"]["code"] == records[12]["error"]["code"] == "model_not_found"
    for i, record in enumerate(records):
        if i in (7, 12):
            continue
        response = record["response"]
        assert response["status_code"] == 200 and response["request_id"] in response["body"]["id"]
        body = response["body"]
        assert body["usage"]["completion_tokens"] == 4 and body["model"] == model
        if i % 2:
            assert body["object"] == "chat.completion"
            assert body["choices"][0]["message"]["role"] == "helper"  # --response-role
        else:
            assert body["object"] == "text_completion" and isinstance(body["choices"][0]["text"], str)
    assert len({r["id"] for r in records}) == 20


def test_every_kind_of_bad_line_is_answered_in_place(tmp_path):
    lines = [
        "not json",
        "[1, 2]",
        json.dumps({"custom_id": "no-body", "method": "POST", "url": CHAT}),
        json.dumps({"custom_id": 5, "method": "POST", "url": CHAT, "body": {}}),
        json.dumps({"custom_id": "get", "method": "GET", "url": CHAT, "body": {}}),
        line("audio", "/v1/audio/transcriptions", file="x"),
        chat("streamed", stream=True),
        "",  # blank: skipped, but counted in line numbers
        chat("cold", temperature=-1),
        line("unknown-field", COMPLETIONS, prompt="x", bogus=1),
        chat("fine"),
    ]
    source, target = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    source.write_text("\n".join(lines))
    run(config(input_file=str(source), output_file=str(target)), lambda cfg: FakeEngine())
    records = read_records(target)
    codes = [(r["custom_id"], r["error"] and r["error"]["code"]) for r in records]
    assert codes == [
        (None, "invalid_json"), (None, "invalid_json"), ("no-body", "missing_parameter"),
        (None, "invalid_value"), ("get", "not_supported"), ("audio", "not_supported"),
        ("streamed", "not_supported"), ("cold", "invalid_value"), ("unknown-field", "unknown_parameter"),
        ("fine", None),
    ]
    assert records[2]["error"]["message"] == "line 3: body: required"
    assert records[7]["response"]["status_code"] == 400 and "temperature" in records[7]["error"]["message"]
    assert records[9]["response"]["body"]["object"] == "chat.completion"


def test_lines_refused_as_overloaded_are_retried(tmp_path):
    source, target = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    source.write_text("\n".join(chat(f"r{i}") for i in range(4)))
    engine = FakeEngine(queue_limit=1, token_delay=0.01)  # 503 while another request runs
    run(config(input_file=str(source), output_file=str(target)), lambda cfg: engine)
    assert [r["response"]["status_code"] for r in read_records(target)] == [200] * 4


class FileServer:
    """A loopback HTTP server with GET and PUT on an in-memory folder (``files``)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.refuse_put = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = owner.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def do_PUT(self):
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if not owner.refuse_put:
                    owner.files[self.path] = data
                self.send_response(500 if owner.refuse_put else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


def test_input_and_output_urls_through_a_tmp_dir(file_server, tmp_path):
    file_server.files["/in.jsonl"] = "\n".join(chat(f"r{i}") for i in range(3)).encode()
    staging = tmp_path / "staging"
    staging.mkdir()
    options = {"input_file": f"{file_server.url}/in.jsonl", "output_file": f"{file_server.url}/out.jsonl",
               "output_tmp_dir": str(staging)}
    run(config(**options), lambda cfg: FakeEngine())
    uploaded = [json.loads(text) for text in file_server.files["/out.jsonl"].decode().splitlines()]
    assert [r["custom_id"] for r in uploaded] == ["r0", "r1", "r2"]
    assert all(r["response"]["status_code"] == 200 for r in uploaded)
    assert list(staging.iterdir()) == []  # uploaded, then removed

    file_server.refuse_put = True
    with pytest.raises(BatchFileError, match=r"cannot upload the output file to .*: HTTP 500 .*kept in"):
        run(config(**options), lambda cfg: FakeEngine())
    (kept,) = staging.iterdir()
    assert len(kept.read_text().splitlines()) == 3

    file_server.refuse_put = False
    del options["output_tmp_dir"]
    run(config(**options), lambda cfg: FakeEngine())  # straight from memory
    assert len(file_server.files["/out.jsonl"].splitlines()) == 3


def test_file_problems_end_the_command_before_the_engine_loads(file_server, tmp_path, monkeypatch):
    import fw_builtins.commands.serve as serve_module

    def never(cfg):
        raise AssertionError("the engine must not load")

    monkeypatch.setattr(serve_module, "build_engine", never)
    source = tmp_path / "batch.jsonl"
    source.write_text(chat("a"))
    for args, message in (
        (["-i", str(tmp_path / "missing.jsonl"), "-o", "out.jsonl"],
         "cannot read the input file"),
        (["-i", f"{file_server.url}/missing.jsonl", "-o", "out.jsonl"],
         f"cannot read the input file {file_server.url}/missing.jsonl: HTTP 404 Not Found"),
        (["-i", str(source), "-o", str(tmp_path / "no" / "out.jsonl")], "no such folder"),
        (["-i", str(source), "-o", f"{file_server.url}/o", "--output-tmp-dir", str(tmp_path / "no")],
         "--output-tmp-dir: no such folder"),
        (["-i", str(source), "-o", "out.jsonl", "--chat-template", "{% for %}"], "not valid Jinja"),
    ):
        result = fw("run-batch", *args)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output


class GatedEngine(FakeEngine):
    """Holds every request until the test opens ``gate``, so a batch can be looked at
    while it is in flight."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.held = 0

    async def _generate(self, prompt, params, request_id):
        self.held += 1
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        async for output in super()._generate(prompt, params, request_id):
            yield output


def test_metrics_are_served_while_the_batch_runs(tmp_path):
    source, target = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    source.write_text("\n".join(chat(f"r{i}") for i in range(5)))
    port = free_port()
    engine = GatedEngine()
    options = config(input_file=str(source), output_file=str(target), enable_metrics=True, port=port)
    thread = threading.Thread(target=run, args=(options, lambda cfg: engine))
    thread.start()
    try:
        for _ in range(1000):  # every line is in the engine at once
            if engine.held == 5:
                break
            threading.Event().wait(0.01)
        assert engine.held == 5
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'fw:num_requests_running{engine="0",model_name="fake-model"}' in scraped
        assert 'fw:prompt_tokens_total{model_name="fake-model"} 0.0' in scraped
    finally:
        engine.gate.set()
        thread.join(30)
    assert len(read_records(target)) == 5
    with pytest.raises(httpx.ConnectError):  # the metrics server ends with the batch
        httpx.get(f"http://127.0.0.1:{port}/metrics")


def test_help_lists_the_options():
    result = fw("run-batch", "--help=runbatch")
    assert result.exit_code == 0, result.output
    for flag in ("--input-file INPUT_FILE, -i INPUT_FILE", "--output-file OUTPUT_FILE, -o OUTPUT_FILE",
                 "--output-tmp-dir", "--enable-metrics", "--port PORT", "--url URL"):
        assert flag in result.output, flag
    frontend = " ".join(fw("run-batch", "--help=frontend").output.split())
    for flag in ("--response-role", "--max-log-len", "--enable-prompt-tokens-details", "--chat-template"):
        assert flag in frontend, flag
    assert "--host" not in frontend and "--api-key" not in frontend
    overview = fw("run-batch", "--help").output
    for group in ("RunBatch", "ServeOptions", "Frontend", "ModelConfig", "SchedulerConfig"):
        assert group in overview, group


def test_bad_flags_name_the_flag():
    for args, flag in ((["--max-model-len", "abc"], "'--max-model-len'"), (["--port", "70000"], "'--port'"),
                       (["--bogus"], "--bogus"), (["-o", "x.jsonl"], "-i/--input-file"),
                       (["-i", "x.jsonl"], "-o/--output-file")):
        result = fw("run-batch", *args)
        assert result.exit_code == 2, (args, result.output)
        assert flag in result.output, (args, result.output)
