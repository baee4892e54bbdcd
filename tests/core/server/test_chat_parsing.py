"""--tool-parser-plugin files that cannot be used stop start-up with an error that says
which file and why; a parser name a file registers is attributed to that file."""

from __future__ import annotations

import pytest

from fw.plugins import get_host
from tests.core.server.scripted_engine import ScriptedEngine


@pytest.fixture
def plugin_file(tmp_path):
    """``plugin_file(name, source)`` -> its path; whatever it registered is unregistered after."""
    names = []

    def write(name: str, source: str) -> str:
        path = tmp_path / name
        path.write_text(source)
        names.append(f"file:{name}")
        return str(path)

    yield write
    for name in names:
        get_host().unregister(name)


def start_with_plugin(start_server, path: str, parser: str = "hermes"):
    return start_server(ScriptedEngine("x"), enable_auto_tool_choice=True, tool_call_parser=parser,
                        tool_parser_plugin=path)


def test_a_missing_plugin_file_is_named(start_server, tmp_path):
    missing = str(tmp_path / "nowhere" / "parser.py")
    with pytest.raises(RuntimeError) as info:
        start_with_plugin(start_server, missing)
    assert "--tool-parser-plugin" in str(info.value) and missing in str(info.value)


def test_a_plugin_file_that_fails_to_import_is_named_with_its_error(start_server, plugin_file):
    path = plugin_file("crashing_parser.py", "import json\nVALUE = json.loads('{not json')\n")
    with pytest.raises(RuntimeError) as info:
        start_with_plugin(start_server, path)
    message = str(info.value)
    assert "--tool-parser-plugin" in message and path in message
    assert "JSONDecodeError" in message and "Expecting property name" in message


def test_a_parser_the_file_registers_is_attributed_to_the_file(start_server, plugin_file):
    """A plugin registers names as "module:Class" strings, imported when used: when that
    fails, the error says which plugin registered the name."""
    path = plugin_file("broken_parser.py",
                       "from fw import hookimpl\n\n"
                       "@hookimpl\n"
                       "def fw_register_tool_parsers(register):\n"
                       "    register('broken', 'no_such_module_for_fw_tests:Parser')\n")
    with pytest.raises(RuntimeError) as info:
        start_with_plugin(start_server, path, parser="broken")
    assert "registered by plugin 'file:broken_parser.py'" in str(info.value)
    assert "no_such_module_for_fw_tests" in str(info.value)
