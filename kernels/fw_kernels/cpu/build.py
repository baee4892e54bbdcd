"""Compiles the C sources beside this file once per machine into one library and loads it
with ctypes.

The library is built with the system C compiler at first use, for this CPU
(``-march=native``, or ``$FW_CPU_MARCH``), into ``$FW_CACHE_DIR/kernels`` (default
``~/.cache/fw``); the file name hashes the sources, the flags and the CPU's feature
flags, so an edit or another machine sharing the home directory gets its own build. It
needs no torch headers (nor torch: this module imports it only to load the library); the
sources compile in parallel, one compiler per core (~7 CPU seconds in all), and
``start()`` begins that in the background so that the process can import torch and load
its model meanwhile: ``library()`` waits for it.

Where no compiler works the kernels are simply unavailable: callers keep their plain
torch path, and the reason is logged once. ``FW_CPU_KERNELS=0`` turns them off.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: the header every source includes; its presence marks a complete install
HEADER = HERE / "fw_cpu.h"
# No -ffast-math: linking with it would switch the whole process to flush-to-zero. No
# -fassociative-math either: reordered sums could round differently depending on where
# data sits in memory, and the fused decoder must match the layer-by-layer path exactly.
FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros",
         "-shared", "-fPIC"]


def _flags() -> list[str]:
    """The compiler flags; ``FW_CPU_MARCH`` overrides ``-march=native`` (e.g. ``x86-64-v2``
    to build the portable paths a CPU without AVX-512 takes)."""
    return [*FLAGS, f"-march={os.environ.get('FW_CPU_MARCH') or 'native'}"]


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def cache_dir() -> Path:
    """Where the compiled libraries live: ``$FW_CACHE_DIR/kernels`` (default ``~/.cache/fw/kernels``)."""
    root = os.environ.get("FW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "fw")
    return Path(root) / "kernels"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _sources() -> list[Path]:
    return sorted(HERE.glob("*.c"))


def _target(compiler: str) -> Path:
    text = b"".join(path.read_bytes() for path in [*sorted(HERE.glob("*.h")), *_sources()])
    digest = hashlib.sha256(text + " ".join([compiler, *_flags(), _cpu_flags()]).encode()).hexdigest()[:16]
    return cache_dir() / f"fw_cpu-{digest}.so"


def _build(compiler: str) -> Path:
    target = _target(compiler)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time, across processes (an API server and its engine cores may all
    # start at once): the others wait here and find the library built.
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _compile(compiler, target)
    return target


def _compile(compiler: str, target: Path) -> None:
    flags = [f for f in _flags() if f != "-shared"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        objects = [Path(tmp) / f"{source.stem}.o" for source in _sources()]

        def compile_one(pair: tuple[Path, Path]) -> subprocess.CompletedProcess:
            source, obj = pair
            return _run([compiler, *flags, "-c", str(source), "-o", str(obj)])

        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            results = list(pool.map(compile_one, zip(_sources(), objects)))
        built = Path(tmp) / target.name
        if all(r.returncode == 0 for r in results):
            results.append(_run([compiler, *_flags(), *map(str, objects), "-o", str(built), "-lm"]))
        failed = next((r for r in results if r.returncode != 0), None)
        if failed is not None:
            raise RuntimeError(f"{compiler} failed: {failed.stderr.strip()[-2000:]}")
        os.replace(built, target)  # atomic: a reader never loads half a file


#: compilers running now; stopped if this process exits first (they must not outlive it)
_running: set[subprocess.Popen] = set()


def _run(args: list[str]) -> subprocess.CompletedProcess:
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _running.add(process)
    try:
        out, err = process.communicate()
    finally:
        _running.discard(process)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


@atexit.register
def _stop_compilers() -> None:
    for process in list(_running):
        process.kill()


def identity() -> str | None:
    """The name of the library this machine builds (it hashes the sources, the flags and
    the CPU's features), or None where the kernels are off or no compiler exists: what a
    cache of weights packed by these kernels depends on, known before the build ends."""
    if os.environ.get("FW_CPU_KERNELS", "1").lower() in ("0", "false", "no", "off"):
        return None
    compiler = _compiler()
    return None if compiler is None else _target(compiler).name


_started: dict[str, object] = {}
_lock = threading.Lock()


def start() -> None:
    """Begin building the library in the background (a no-op if it is built, turned off,
    or already under way); ``library()`` waits for it."""
    if os.environ.get("FW_CPU_KERNELS", "1").lower() in ("0", "false", "no", "off"):
        return
    compiler = _compiler()
    with _lock:
        if compiler is None or "build" in _started or _target(compiler).exists():
            return
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["path"] = _build(compiler)
            except (OSError, RuntimeError) as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, name="fw-kernel-build", daemon=True)
        _started["build"] = (thread, outcome)
        thread.start()


def _built(compiler: str) -> Path:
    with _lock:
        started = _started.pop("build", None)
    if started is not None:
        thread, outcome = started
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["path"]
    return _build(compiler)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None (with the reason logged once) where they cannot be had."""
    if os.environ.get("FW_CPU_KERNELS", "1").lower() in ("0", "false", "no", "off"):
        return None
    compiler = _compiler()
    if compiler is None:
        logger.warning("no C compiler found: fw runs its plain-torch CPU path (slower); install gcc to fix")
        return None
    import torch  # noqa: F401  (loads the libgomp the library must share, before the library)

    try:
        return ctypes.CDLL(str(_built(compiler)))
    except (OSError, RuntimeError) as exc:
        logger.warning("fw's CPU kernels could not be built, using the plain-torch path: %s", exc)
        return None
