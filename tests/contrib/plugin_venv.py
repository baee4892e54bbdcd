"""A fresh virtual environment with fw installed from its wheel, as a user would have it.

Plugins are only proven installable by installing them: this builds fw's wheel, creates
a venv without pip (fast), installs the wheel into it, and makes the test environment's
packages (torch, transformers, pytest, pip, setuptools ...) visible through a ``.pth``
line, so nothing is downloaded. ``pip`` then runs from the test environment but installs
into the venv, because pip installs into ``sys.prefix``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: what the wheel is built from (copied, so a build never writes into the shared tree)
WHEEL_SOURCES = ("pyproject.toml", "README.md", "core", "kernels", "plugins")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".pytest_cache")


class SetupFailed(RuntimeError):
    """The venv or an install could not be made (offline without ensurepip, no build...)."""


def copy_project(source: Path, destination: Path) -> Path:
    """A clean copy of a project folder (no build outputs), so installing leaves no trace."""
    shutil.copytree(source, destination, ignore=_IGNORE)
    return destination


class PluginVenv:
    def __init__(self, root: Path):
        self.root = root
        self.path = root / "venv"
        self.bin = self.path / "bin"
        self.python = self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user of this venv has: no PYTHONPATH, no plugin allow-list."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FW_PLUGINS", "VIRTUAL_ENV")}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", PYTHONDONTWRITEBYTECODE="1", **extra)
        return env

    def run(self, *args: str | Path, cwd: Path | None = None, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess:
        """Run a program of the venv (``"python"``, ``"fw"``) or any command."""
        program = str(args[0])
        if (self.bin / program).exists():
            program = str(self.bin / program)
        return subprocess.run([program, *map(str, args[1:])], capture_output=True, text=True,
                              cwd=cwd or self.root, env=self.env(**env), timeout=timeout)

    def create(self, *, with_fw: bool = True) -> "PluginVenv":
        """The venv, with fw's wheel installed unless ``with_fw`` is false."""
        wheel = self._build_fw_wheel() if with_fw else None
        _checked(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.path)],
                                capture_output=True, text=True), "python -m venv")
        purelib = self.run("python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        deps = [p for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
        Path(purelib.stdout.strip(), "test-env.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
        # --force-reinstall: the test environment's own fw (an editable install) is
        # visible too; pip must still put the wheel into the venv, which then wins.
        if wheel is not None:
            self.pip_install("--no-index", "--force-reinstall", wheel)
        return self

    def pip_install(self, *targets: str | Path) -> None:
        _checked(self.run("python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", *targets), "pip install")

    def _build_fw_wheel(self) -> Path:
        source = self.root / "fw-source"
        source.mkdir()
        for name in WHEEL_SOURCES:
            item = REPO / name
            if item.is_dir():
                copy_project(item, source / name)
            else:
                shutil.copy2(item, source / name)
        dist = self.root / "dist"
        _checked(subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                                 str(dist), str(source)], capture_output=True, text=True, cwd=self.root),
                 "python -m build")
        (wheel,) = dist.glob("fw-*.whl")
        return wheel


def _checked(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise SetupFailed(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
