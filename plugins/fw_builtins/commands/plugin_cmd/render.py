"""Rendering the plugin template (``fw_builtins/templates/fw_plugin``) into a project.

Templates are ``string.Template`` files (``$name`` placeholders, ``$$`` for a dollar):
plain substitution is all a skeleton needs, and it adds no dependency. Each kind of
plugin contributes a skeleton module and its test; the pyproject, README, package
``__init__`` and hook module are shared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

TEMPLATE_PACKAGE = "fw_builtins.templates.fw_plugin"
PREFIX = "fw-plugin-"
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


@dataclass(frozen=True)
class Kind:
    """One ``--kind``: the hook it implements and how its pieces are named."""

    label: str
    hook: str
    #: the ``fw.plugins.registry`` kind its name lands in; None for middleware
    registry: str | None
    #: the class or function the skeleton defines, from the CamelCase / snake name
    symbol: str
    #: how a user selects it, shown in the README
    usage: str
    #: the name it registers, from the CamelCase / snake / hyphenated name
    registered: str = "{snake}"
    #: extra keyword arguments of its ``register(...)`` call
    register_extra: str = ""


KINDS: dict[str, Kind] = {
    "model": Kind("model architecture", "fw_register_models", "model", "{camel}ForCausalLM",
                  'fw serve /path/to/checkpoint   # its config.json names "architectures": ["{registered}"]',
                  registered="{camel}ForCausalLM"),
    "tool-parser": Kind("tool-call parser", "fw_register_tool_parsers", "tool_parser", "{camel}ToolParser",
                        "fw serve MODEL --enable-auto-tool-choice --tool-call-parser {registered}"),
    "reasoning-parser": Kind("reasoning parser", "fw_register_reasoning_parsers", "reasoning_parser",
                             "{camel}ReasoningParser", "fw serve MODEL --reasoning-parser {registered}"),
    "load-format": Kind("weight loader", "fw_register_load_formats", "load_format", "{camel}Loader",
                        "fw serve /path/to/weights --load-format {registered}"),
    "quantization": Kind("quantization method", "fw_register_quantization_methods", "quantization",
                         "{camel}Method", "fw serve MODEL --quantization {registered}"),
    "logits-processor": Kind("logits processor", "fw_register_logits_processors", "logits_processor",
                             "{camel}LogitsProcessor",
                             "fw serve MODEL --logits-processors {registered}   # requests pass vllm_xargs"),
    "command": Kind("command", "fw_register_commands", "command", "{snake}_command", "fw {registered} --help",
                    registered="{hyphen}", register_extra=', help="Describe `fw {registered}` in one line."'),
    "middleware": Kind("server middleware", "fw_asgi_middleware", None, "{camel}Middleware",
                       "fw serve MODEL   # every response passes through the middleware",
                       registered="{snake}"),
}


class TemplateError(ValueError):
    """A bad name, or a destination that already exists."""


def plugin_names(name: str) -> dict[str, str]:
    """The spellings of a plugin name: ``my-parser`` -> dist, package, snake, Camel."""
    short = name.removeprefix(PREFIX)
    if not _NAME.fullmatch(short):
        raise TemplateError(
            f"plugin name {name!r} must be lowercase letters and digits, words joined by '-' or '_', "
            "starting with a letter (e.g. my-parser)")
    words = re.split(r"[-_]", short)
    snake = "_".join(words)
    return {"dist": PREFIX + "-".join(words), "package": "fw_plugin_" + snake, "snake": snake,
            "hyphen": "-".join(words), "camel": "".join(w.capitalize() for w in words)}


def substitutions(name: str, kind: str) -> dict[str, str]:
    from fw.version import __version__

    spec = KINDS[kind]
    names = plugin_names(name)
    registered = spec.registered.format(**names)
    return {
        **names, "kind": kind, "label": spec.label, "hook": spec.hook, "registry": spec.registry or "",
        "symbol": spec.symbol.format(**names), "registered": registered, "module": kind.replace("-", "_"),
        "usage": spec.usage.format(registered=registered), "fw_version": __version__,
        "register_extra": spec.register_extra.format(registered=registered),
    }


def files_for(kind: str, values: dict[str, str]) -> dict[str, str]:
    """Project path -> template file, for one kind."""
    package, module = values["package"], values["module"]
    hook_module = "plugin_middleware.py.tmpl" if kind == "middleware" else "plugin_register.py.tmpl"
    return {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{package}/__init__.py": "package_init.py.tmpl",
        f"{package}/plugin.py": hook_module,
        f"{package}/{module}.py": f"{module}.py.tmpl",
        f"tests/test_{module}.py": f"test_{module}.py.tmpl",
    }


def render(name: str, kind: str, output: Path) -> Path:
    """Write the project for plugin ``name`` of ``kind`` into ``output/fw-plugin-NAME``."""
    if kind not in KINDS:
        raise TemplateError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    values = substitutions(name, kind)
    project = Path(output) / values["dist"]
    if project.exists():
        raise TemplateError(f"{project} already exists; choose another name or --output folder")
    templates = resources.files(TEMPLATE_PACKAGE)
    rendered = {path: Template(templates.joinpath(source).read_text(encoding="utf-8")).substitute(values)
                for path, source in files_for(kind, values).items()}
    for path, text in rendered.items():
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return project
