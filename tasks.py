#!/usr/bin/env python3
"""The book's task runner. Needs only Python 3.11; everything else goes into ./.venv.

    python3 tasks.py book              render the HTML book into _build/html
    python3 tasks.py test              run the whole test suite (what CI runs)
    python3 tasks.py refresh NB...     re-execute notebooks in place, fresh kernel, top to bottom
    python3 tasks.py bench             run every benchmark in benchmarks/ (ratios, same run)

The virtual environment is created on first use from requirements.txt (exact pins) plus
``pip install -e .`` for sulib, and re-created when requirements.txt changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".requirements.sha256"
BUILD_HTML = ROOT / "_build" / "html"

# Every command runs JAX on the CPU: with a GPU hint JAX would print a warning to stderr,
# which lands in notebook outputs and breaks nbval.
# One BLAS thread per process: nbval runs two kernels at once on two cores, and a multi-threaded
# BLAS fighting over them turned a 1.5 s cell of tiny matrix products into 72 s.
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
       "JUPYTER_PREFER_ENV_PATH": "1",  # the .venv kernel, never a user-level one
       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(*cmd: str | Path, **kwargs) -> int:
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=ENV, **kwargs)


def ensure_venv() -> None:
    """Create or update .venv so that it matches requirements.txt exactly."""
    wanted = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if VENV.exists():
        shutil.rmtree(VENV)
    started = time.monotonic()
    subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    pip = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.check_call(pip + ["-r", str(ROOT / "requirements.txt")], cwd=ROOT)
    subprocess.check_call(pip + ["--no-deps", "--no-build-isolation", "-e", str(ROOT)], cwd=ROOT)
    subprocess.check_call([str(PY), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"])
    STAMP.write_text(wanted)
    print(f"tasks: environment ready in {time.monotonic() - started:.0f} s", flush=True)


def build_book() -> int:
    """Build the HTML book with warnings as errors and nitpicky references."""
    return run(VENV / "bin" / "jupyter-book", "build", ROOT, "--warningiserror", "--nitpick", "--keep-going")


def pytest(*args: str) -> int:
    code = run(PY, "-m", "pytest", *args)
    if code == 5:  # pytest's "no tests collected": a suite that tests nothing must not pass
        print("tasks: pytest collected no tests", flush=True)
    return code


def ensure_chromium() -> None:
    """The browser test needs Debian's chromium; install it when we can (root + apt)."""
    if shutil.which("chromium"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.check_call(["apt-get", "update", "-qq"])
        subprocess.check_call(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return
    sys.exit("tasks: the browser test needs Chromium at /usr/bin/chromium (Debian: apt-get install chromium)")


def cmd_test() -> int:
    ensure_chromium()
    stages = [
        ("unit tests", lambda: pytest("tests", "-m", "not browser and not colab")),
        ("notebooks (nbval, strict)",
         lambda: pytest("--nbval", "book", "templates", "-n", "2", "--dist", "loadfile")),
        ("book build (-W -n --keep-going)", build_book),
        ("real browser", lambda: pytest("tests", "-m", "browser")),
        ("colab replica", lambda: pytest("tests", "-m", "colab")),
    ]
    timings, failed = [], []
    for name, stage in stages:
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        code = stage()
        timings.append((name, time.monotonic() - started, code))
        if code != 0:
            failed.append(name)
    print("\ntasks: stage timings")
    for name, seconds, code in timings:
        print(f"  {name:<34} {seconds:7.1f} s   {'ok' if code == 0 else f'FAILED (exit {code})'}")
    if failed:
        print(f"tasks: failed stages: {', '.join(failed)}")
        return 1
    return 0


def cmd_refresh(notebooks: list[str]) -> int:
    """Execute each notebook in a fresh kernel, top to bottom, and store its outputs."""
    if not notebooks:
        notebooks = sorted(str(p.relative_to(ROOT)) for folder in ("book", "templates")
                           for p in (ROOT / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    script = (
        "import sys, time, nbformat\n"
        "from pathlib import Path\n"
        "from nbclient import NotebookClient\n"
        "for path in map(Path, sys.argv[1:]):\n"
        "    nb = nbformat.read(path, as_version=4)\n"
        "    t = time.monotonic()\n"
        "    NotebookClient(nb, timeout=600, kernel_name='python3', record_timing=False,  # no timestamps\n"
        "                   resources={'metadata': {'path': str(path.parent)}}).execute()\n"
        "    nbformat.write(nb, path)\n"
        "    print(f'{path}: executed in {time.monotonic() - t:.1f} s')\n"
    )
    return run(PY, "-c", script, *notebooks)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"book", "test", "refresh", "bench"}:
        print(__doc__)
        return 2
    ensure_venv()
    if argv[0] == "book":
        return build_book()
    if argv[0] == "test":
        return cmd_test()
    if argv[0] == "refresh":
        return cmd_refresh(argv[1:])
    return max(run(PY, script) for script in sorted((ROOT / "benchmarks").glob("*.py")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
