"""`fw serve` knows every `vllm serve` option of the reference (../shared/reference,
whose option list vllm_serve_options.txt keeps in the repository).

Each option either works with vLLM's meaning (tested where its feature is) or is refused
when used: exit status 2 and one line naming the option and why, never a traceback and
never "No such option". Options that other issues add as real features (parallelism,
hub sources) are listed with the issue
that owns them and skipped here until they exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fw.config import EngineConfig
from fw.config.options import UnsupportedOptionError, option_specs
from fw.config.serve import ServeConfig
from tests.conftest import run_fw

HERE = Path(__file__).resolve().parent
#: the reference's serve options (group, flag), kept in the repository so CI needs no reference
SNAPSHOT = HERE / "vllm_serve_options.txt"
REFERENCE_NAME = Path("shared") / "reference" / "vllm-cli-arguments.md"

#: options other issues build as real features (option -> issue)
OWNED_ELSEWHERE: dict[str, int] = {}
#: a whole option group another issue owns (reference heading -> issue)
GROUPS_ELSEWHERE: dict[str, int] = {}


def parse_reference(text: str) -> list[tuple[str, str]]:
    """(group, first flag) of every `vllm serve` option in the reference's section 2.1."""
    serve = text[text.index("2.1. vllm serve arguments"):text.index("2.2. vllm chat arguments")]
    pairs, group = [], ""
    for line in serve.splitlines():
        heading = re.match(r"2\.1\.\d+\. (\w+)", line)
        if heading:
            group = heading.group(1)
        elif option := re.match(r"2\.1\.\d+\.\d+\. (--[a-z0-9-]+)", line):
            pairs.append((group, option.group(1)))
    return pairs


def snapshot() -> list[tuple[str, str]]:
    lines = [line.split() for line in SNAPSHOT.read_text().splitlines() if line and not line.startswith("#")]
    return [(group, flag) for group, flag in lines]


def reference_serve_options() -> list[str]:
    """Every `vllm serve` option of the reference outside the groups other issues own."""
    return [flag for group, flag in snapshot() if group not in GROUPS_ELSEWHERE]


def test_the_snapshot_is_the_reference():
    found = [parent / REFERENCE_NAME for parent in HERE.parents if (parent / REFERENCE_NAME).is_file()]
    if not found:
        pytest.skip(f"no {REFERENCE_NAME} above {HERE}")
    assert snapshot() == parse_reference(found[0].read_text())


def ours() -> list[str]:
    return [o for o in reference_serve_options() if o not in OWNED_ELSEWHERE]


def test_help_finds_every_option():
    from fw_builtins.commands.serve import serve

    runner = CliRunner()
    missing = []
    for flag in ours():
        result = runner.invoke(serve, [f"--help={flag[2:]}"])
        if result.exit_code != 0 or flag not in result.output:
            missing.append(flag)
    assert not missing, f"`fw serve --help=<option>` does not find {missing}"


def _refused_uses() -> list[tuple[str, list[str], str]]:
    """(flag, command-line arguments that use it, the reason it must print)."""
    uses = []
    for spec in option_specs(ServeConfig):
        if isinstance(spec.unsupported, dict):
            uses.extend((spec.flag, [spec.flag, str(value)] if spec.kind != "bool" else
                         [spec.flag if value else "--no-" + spec.flag[2:]], reason)
                        for value, reason in spec.unsupported.items())
        elif spec.unsupported:
            uses.append((spec.flag, _non_default(spec), spec.unsupported))
    return uses


def _non_default(spec) -> list[str]:
    if spec.kind == "bool":
        return [spec.flag] if not spec.default else ["--no-" + spec.flag[2:]]
    if spec.kind == "choice":
        return [spec.flag, str(next(c for c in spec.choices if c != spec.default))]
    value = {"int": "7", "float": "7", "size": "7", "json": '{"a": 1}', "list": "7"}.get(spec.kind, "x")
    return [spec.flag, value]


def test_every_refused_option_says_why_and_exits_2():
    from fw_builtins.commands.serve import serve

    runner = CliRunner()
    uses = _refused_uses()
    assert len(uses) > 40
    for flag, args, reason in uses:
        result = runner.invoke(serve, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"Error: {flag}: " in result.output and reason in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("args, reason", [
    (["-O", '{"cudagraph_mode": "PIECEWISE"}'], "full graphs of decode steps only"),
    (["--fully-sharded-loras"], "unsharded"),
    (["--swap-space", "4"], "recomputation"),
    (["--tokenizer-mode", "mistral"], "mistral_common"),
    (["-O3"], "does not compile"),
    (["--limit-mm-per-prompt.image", "2"], "text-only"),
    (["--kv-cache-dtype", "fp8_inc"], "Gaudi"),
    (["--kv-cache-dtype", "fp8_e5m2"], "e4m3 only"),
    (["--calculate-kv-scales"], "with --kv-cache-dtype auto there are none"),
])
def test_refusals_from_a_real_command_line(args, reason):
    result = run_fw("serve", *args)
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_values_that_ask_for_nothing_fw_lacks_are_taken(monkeypatch):
    import fw_builtins.commands.serve as serve_module

    captured = []
    monkeypatch.setattr(serve_module, "run_server", lambda config: captured.append(config))
    result = CliRunner().invoke(serve_module.serve, [
        "--enforce-eager", "--swap-space", "0", "-O0", "--tokenizer-mode", "auto", "--model-impl", "vllm",
        "--disable-cascade-attn", "--disable-hybrid-kv-cache-manager", "--cpu-offload-gb", "0"])
    assert result.exit_code == 0, result.output
    assert captured[0].vllm.compilation_config == 0
    assert captured[0].model.enforce_eager


def test_the_cuda_graph_keys_of_compilation_config_are_taken_and_others_refused():
    config = EngineConfig.from_options(compilation_config={"level": 0, "cudagraph_mode": "FULL_DECODE_ONLY",
                                                           "cudagraph_capture_sizes": [1, 4]},
                                       cuda_graph_sizes=[8])
    assert config.vllm.compilation_config["cudagraph_capture_sizes"] == [1, 4]
    assert config.scheduler.cuda_graph_sizes == [8]
    for value, reason in (({"backend": "inductor"}, "key 'backend'"), ({"cudagraph_mode": "FULL"}, "FULL_DECODE_ONLY"),
                          ({"cudagraph_capture_sizes": [0]}, "positive"), (3, "level=3")):
        with pytest.raises(Exception, match=reason):
            EngineConfig.from_options(compilation_config=value)


def test_the_offline_api_refuses_the_same_options():
    with pytest.raises(UnsupportedOptionError, match="--swap-space: not supported"):
        EngineConfig.from_options(swap_space=4)
    with pytest.raises(UnsupportedOptionError, match="'mistral' is not supported"):
        EngineConfig.from_options(tokenizer_mode="mistral")
