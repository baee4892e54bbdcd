"""The docs stay true to the code: the hook reference matches hookspecs.py signature
for signature and docstring for docstring, the CLI reference is what the config models
generate, and links and code examples in docs/ work."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fw import hookspecs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
HOOKS = [name for name in vars(hookspecs) if name.startswith("fw_") and callable(getattr(hookspecs, name))]


def hook_sections() -> dict[str, str]:
    """``## fw_...`` heading -> the text up to the next ``## `` heading."""
    text = (DOCS / "hooks.md").read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2]) if title.startswith("fw_")}


def squash(text: str) -> str:
    return " ".join(text.split())


def test_hookspecs_are_found():
    assert "fw_register_models" in HOOKS and "fw_asgi_middleware" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature_and_docstring(hook):
    sections = hook_sections()
    assert hook in sections, f"docs/hooks.md has no '## {hook}' section"
    spec = getattr(hookspecs, hook)
    signature = f"def {hook}{inspect.signature(spec)}"
    assert f"```python\n{signature}\n```" in sections[hook], f"docs/hooks.md must show `{signature}`"
    assert squash(inspect.getdoc(spec)) in squash(sections[hook]), (
        f"the docstring of {hook} in hookspecs.py and its docs/hooks.md section differ")


def test_no_section_documents_a_hook_that_does_not_exist():
    assert sorted(set(hook_sections()) - set(HOOKS)) == []


def test_cli_reference_is_up_to_date():
    env = {k: v for k, v in os.environ.items() if k != "FW_PLUGINS"}
    result = subprocess.run([sys.executable, str(DOCS / "gen_cli_reference.py"), "--check"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


def test_supported_models_table_is_up_to_date():
    env = {k: v for k, v in os.environ.items() if k != "FW_PLUGINS"}
    result = subprocess.run([sys.executable, str(DOCS / "gen_supported_models.py"), "--check"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


def test_supported_models_name_tests_that_run_them():
    """Every built-in architecture is in the table, and each checkpoint it names is run by
    a test file that exists and names the architecture (a tiny random one) or the
    checkpoint (a real one)."""
    from fw.plugins import registry

    text = (DOCS / "models.md").read_text()
    for entry in registry("model").entries():
        if entry.plugin != "models":
            continue
        assert f"| `{entry.name}` |" in text, entry.name
        tested = entry.load().tested_with
        assert tested, f"{entry.name} names no tested checkpoint"
        for checkpoint, path in tested:
            source = (REPO / path).read_text()
            named = entry.name if checkpoint.startswith("tiny") else checkpoint.split(",")[0]
            assert named in source, f"{path} does not run {entry.name} ({checkpoint})"


def test_cli_reference_lists_every_builtin_command():
    from fw.plugins import registry

    text = (DOCS / "cli.md").read_text()
    for entry in registry("command").entries():
        if entry.plugin == "commands":
            assert f"## `fw {entry.name}`" in text, entry.name


@pytest.mark.parametrize("page", ["user-guide.md", "plugins.md", "hooks.md", "architecture.md", "cli.md",
                                  "deployment.md", "security.md"])
def test_relative_links_resolve(page):
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", text):
        assert (DOCS / target).exists(), f"{page} links to missing {target}"


@pytest.mark.parametrize("page", ["user-guide.md", "plugins.md", "hooks.md"])
def test_python_examples_are_valid_python(page):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        if page == "hooks.md" and block.startswith("def fw_"):
            block = block.rstrip() + ":\n    pass\n"  # a bare signature
        ast.parse(block)


def test_user_guide_covers_install_serve_chat_and_options():
    text = (DOCS / "user-guide.md").read_text()
    for needle in ("## Install", "## Serve a model", "fw chat", "## Options", "(cli.md)", "FW_PLUGINS"):
        assert needle in text, needle
