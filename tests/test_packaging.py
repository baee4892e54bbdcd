"""The multi-root layout survives packaging: build the wheel, install it in a fresh venv,
import the three packages and run `fw` from outside the repository."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_installs_and_imports_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    (wheel,) = dist.glob("fw-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    # Dependencies come from the test environment (a .pth line), the code from the wheel.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (Path(purelib) / "test-deps.pth").write_text("\n".join(deps) + "\n")
    code = (
        "import fw, fw_kernels, fw_builtins, fw_builtins.commands.plugin, fw_kernels.cpu.build as b\n"
        "for m in (fw, fw_kernels, fw_builtins):\n"
        "    assert m.__file__.startswith(%r), m.__file__\n"
        "assert b.HEADER.is_file() and len(b._sources()) >= 4, 'the CPU kernels source is missing from the wheel'\n"
        "print(fw.__version__)\n" % purelib
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import fw

    assert out.stdout.strip() == fw.__version__
    help_text = subprocess.run([str(venv / "bin" / "fw"), "--help"], capture_output=True, text=True,
                               cwd=tmp_path)
    assert help_text.returncode == 0 and "plugins" in help_text.stdout
