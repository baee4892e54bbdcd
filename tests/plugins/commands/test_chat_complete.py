"""`fw chat` and `fw complete` against a fake OpenAI-compatible server: help, one-shot
replies, an interactive conversation in a pseudo-terminal, errors, start-up cost.

Most cases run in-process through click's runner (a subprocess costs half a second);
the interactive ones, the import check and one one-shot reply run as a user would.
"""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import time

import pexpect
import pytest
from click.testing import CliRunner

from fw.cli.main import cli
from tests.conftest import REPO, run_fw

CHAT_FLAGS = {"--url", "--model-name", "--api-key", "--system-prompt", "--api", "--quick", "-q"}
COMPLETE_FLAGS = {"--url", "--model-name", "--api-key", "--quick", "-q"}
GENERAL_FLAGS = {"-h", "--help", "--config"}


def fw(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    """Run `fw ARGS` in-process; the result has exit_code, stdout and stderr."""
    return CliRunner().invoke(cli, list(args), env=env, input=input, prog_name="fw")


def listed_flags(help_text: str) -> set[str]:
    """Every flag that starts an entry of a help page."""
    flags = set()
    for line in help_text.splitlines():
        if line.startswith("  -"):
            flags.update(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line.split("  ")[1]))
    return flags


@pytest.mark.parametrize("command,flags", [("chat", CHAT_FLAGS), ("complete", COMPLETE_FLAGS)])
def test_help_lists_exactly_the_options(command, flags):
    result = fw(command, "--help")
    assert result.exit_code == 0, result.output
    assert listed_flags(result.stdout) == flags | GENERAL_FLAGS
    assert "http://localhost:8000/v1" in result.stdout


def test_chat_quick_prints_one_reply(fake_server):
    result = run_fw("chat", "--url", fake_server.url, "-q", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "I have seen 1 message; the last was 'hello there'. \n"
    assert result.stderr == ""
    (body,) = fake_server.bodies("/v1/chat/completions")
    assert body["model"] == "fake-model" and body["stream"] is True


def test_chat_system_prompt_comes_first(fake_server):
    result = fw("chat", "--url", fake_server.url, "--system-prompt", "Be brief.", "-q", "hi")
    assert "I have seen 2 messages" in result.stdout
    (body,) = fake_server.bodies("/v1/chat/completions")
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]


def test_chat_over_the_responses_api_lets_the_server_keep_the_conversation(fake_server):
    result = fw("chat", "--url", fake_server.url, "--api", "responses", "--system-prompt", "Be brief.",
                input="hello\nplease fail\nand again\n")
    assert result.exit_code == 0, result.stderr
    assert "Turn 1; you said 'hello'." in result.stdout and "Turn 2; you said 'and again'." in result.stdout
    assert result.stderr == "server error (400): you asked me to fail\n"
    first, failed, second = fake_server.bodies("/v1/responses")
    assert "previous_response_id" not in first and first["instructions"] == "Be brief."
    assert failed["previous_response_id"] == second["previous_response_id"] == "resp_1"
    assert second["instructions"] == "Be brief." and second["input"] == "and again"


def test_complete_quick_prints_the_completion(fake_server):
    result = fw("complete", "--url", fake_server.url, "--model-name", "fake-model",
                    "--quick", "Once upon a time")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "and then the story of 'Once upon a time' went on. \n"
    (body,) = fake_server.bodies("/v1/completions")
    assert body["prompt"] == "Once upon a time"


def test_a_unicode_line_separator_in_a_token_is_not_the_end_of_an_event(fake_server):
    # U+2028 and U+0085 end a line for str.splitlines, not for server-sent events
    result = fw("complete", "--url", fake_server.url, "-q", "one\u2028two\x85three")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "and then the story of 'one\u2028two\x85three' went on. \n"


@pytest.mark.parametrize("args,env,expected", [
    (["--api-key", "sk-flag"], {"OPENAI_API_KEY": "sk-env"}, "Bearer sk-flag"),
    ([], {"OPENAI_API_KEY": "sk-env"}, "Bearer sk-env"),
    ([], {"OPENAI_API_KEY": ""}, "Bearer EMPTY"),
])
def test_api_key_is_sent_as_bearer(fake_server, args, env, expected):
    result = fw("complete", "--url", fake_server.url, "-q", "x", *args, env=env)
    assert result.exit_code == 0, result.stderr
    assert {r.authorization for r in fake_server.requests} == {expected}


@pytest.mark.parametrize("command", ["chat", "complete"])
def test_unreachable_server_is_one_line_and_status_1(command, dead_url):
    result = fw(command, "--url", dead_url, "-q", "hi")
    assert result.exit_code == 1
    assert result.stderr == f"cannot reach {dead_url} — is `fw serve` running?\n"


def test_server_error_message_is_one_line_and_status_1(fake_server):
    result = fw("chat", "--url", fake_server.url, "--model-name", "nope", "-q", "hi")
    assert result.exit_code == 1
    assert result.stderr == "server error (404): The model `nope` does not exist.\n"
    result = fw("complete", "--url", fake_server.url, "-q", "please fail")
    assert (result.exit_code, result.stderr) == (1, "server error (400): you asked me to fail\n")


def test_bad_url_names_the_flag():
    result = fw("chat", "--url", "localhost:8000", "-q", "hi")
    assert result.exit_code == 2
    assert "--url" in result.stderr and "Traceback" not in result.stderr


def spawn(*args: str) -> pexpect.spawn:
    # Ctrl-C must reach the client as a user's would, even when the test run itself was
    # started in the background (a shell starts background jobs with SIGINT ignored, and
    # children inherit that, so Python would install no KeyboardInterrupt handler).
    return pexpect.spawn(sys.executable, ["-m", "fw.cli.main", *args], cwd=str(REPO), encoding="utf-8",
                         timeout=15, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_interactive_chat_keeps_the_conversation(fake_server):
    child = spawn("chat", "--url", fake_server.url)
    child.expect("Using model: fake-model")
    child.expect("> ")
    child.sendline("hello")
    child.expect(r"I have seen 1 message; the last was 'hello'\.")
    child.expect("> ")
    child.sendline("please fail")  # an error is shown, the session goes on without that turn
    child.expect(r"server error \(400\): you asked me to fail")
    child.expect("> ")
    child.sendline("and again")
    child.expect(r"I have seen 3 messages; the last was 'and again'\.")
    child.expect("> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in child.before
    last = fake_server.bodies("/v1/chat/completions")[-1]
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "user"]
    assert last["messages"][1]["content"].startswith("I have seen 1 message")


@pytest.mark.parametrize("command", ["chat", "complete"])
def test_ctrl_c_ends_cleanly(fake_server, command):
    child = spawn(command, "--url", fake_server.url)
    child.expect("> ")
    time.sleep(0.2)  # a SIGINT that lands before readline starts waiting can be missed by it
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_interactive_complete_has_no_history(fake_server):
    child = spawn("complete", "--url", fake_server.url)
    for prompt in ("first", "second"):
        child.expect("> ")
        child.sendline(prompt)
        child.expect(f"the story of '{prompt}' went on")
    child.expect("> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    assert [b["prompt"] for b in fake_server.bodies("/v1/completions")] == ["first", "second"]


@pytest.mark.parametrize("command", ["chat", "complete"])
def test_no_heavy_imports(command, fake_server):
    code = (
        "import sys\n"
        "from fw.cli.main import main\n"
        f"try:\n    main([{command!r}, '--url', {fake_server.url!r}, '-q', 'hi'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('torch', 'transformers', 'openai', 'numpy')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    assert "the last was 'hi'" in result.stdout or "the story of 'hi'" in result.stdout


def test_chat_help_starts_well_under_a_second():
    def cpu_seconds() -> float:  # CPU time, not wall time: a busy machine must not fail it
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "fw.cli.main", "chat", "--help"], capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    best = min(cpu_seconds() for _ in range(3))
    assert best < 1.0, f"fw chat --help took {best:.2f} CPU s"  # importing torch alone takes ~2
