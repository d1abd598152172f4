#!/usr/bin/env python3
"""The book's task runner. Needs only Python 3.11; everything else goes into ./.venv.

    python3 tasks.py book              render the HTML book from the stored outputs into _build/html
    python3 tasks.py book --execute    the same, but re-execute every notebook first
    python3 tasks.py test              run the whole test suite (what CI runs)
    python3 tasks.py check NB...       every stage, for the notebooks named only (before the full run)
    python3 tasks.py refresh NB...     re-execute notebooks in place, fresh kernel, top to bottom
    python3 tasks.py bench             run every benchmark in benchmarks/ (ratios, same run)

The virtual environment is created on first use from requirements.txt (exact pins) plus
``pip install -e .`` for sulib, and re-created when requirements.txt changes.
"""

from __future__ import annotations

import hashlib
import json
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
TIMINGS = ROOT / "_build" / "timings"  # per-notebook seconds of each execution stage (tests/notebook_timing.py)
REPLICA_LOG = ROOT / "_build" / "colab-replica.log"  # tests/colab_replica.py, run in the background
STARTED = time.monotonic()

# Every command runs JAX on the CPU: with a GPU hint JAX would print a warning to stderr,
# which lands in notebook outputs and breaks nbval.
# One BLAS thread per process: nbval runs two kernels at once on two cores, and a multi-threaded
# BLAS fighting over them turned a 1.5 s cell of tiny matrix products into 72 s.
ENV = {**{k: v for k, v in os.environ.items() if k != "KEXUE_NOTEBOOKS"},  # only `check` narrows the tests
       "JAX_PLATFORMS": "cpu", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
       "JUPYTER_PREFER_ENV_PATH": "1",  # the .venv kernel, never a user-level one
       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(*cmd: str | Path, env: dict | None = None, **kwargs) -> int:
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env={**ENV, **(env or {})}, **kwargs)


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


def build_book(execute: bool = False) -> int:
    """Build the HTML book with warnings as errors and nitpicky references.

    By default the build renders the outputs stored in the notebooks (``execute_notebooks: "off"`` in
    _config.yml); with ``execute`` it builds with a copy of the config that re-executes every notebook.
    """
    options = ["--warningiserror", "--nitpick", "--keep-going"]
    if not execute:
        return run(VENV / "bin" / "jupyter-book", "build", ROOT, *options)
    config = (ROOT / "_config.yml").read_text()
    off = '  execute_notebooks: "off"\n'
    if off not in config:
        sys.exit(f"tasks: _config.yml no longer says {off.strip()!r}; update build_book in tasks.py")
    # next to _config.yml: Jupyter Book resolves local_extensions against the config file's folder
    copy = ROOT / "_config.execute.yml"
    copy.write_text(config.replace(off, "  execute_notebooks: force\n"))
    try:
        return run(VENV / "bin" / "jupyter-book", "build", ROOT, *options, "--config", copy)
    finally:
        copy.unlink()


def pytest(*args: str, env: dict | None = None, **kwargs) -> int:
    code = run(PY, "-m", "pytest", *args, env=env, **kwargs)
    if code == 5:  # pytest's "no tests collected": a suite that tests nothing must not pass
        print("tasks: pytest collected no tests", flush=True)
    return code


# Debian packages the browser test needs: the browser, and fonts for the Chinese titles and the emoji
# that would otherwise render as empty boxes in the screenshots. The file tells whether it is installed.
BROWSER_PACKAGES = {"chromium": "/usr/bin/chromium",
                    "fonts-noto-cjk": "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                    "fonts-noto-color-emoji": "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"}


def ensure_browser() -> None:
    """Install what the browser test needs from Debian when it is missing and we can (root + apt)."""
    missing = [pkg for pkg, path in BROWSER_PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        started = time.monotonic()
        subprocess.check_call(["apt-get", "update", "-qq"])
        subprocess.check_call(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        print(f"tasks: installed {', '.join(missing)} in {time.monotonic() - started:.0f} s", flush=True)
        return
    sys.exit(f"tasks: the browser test needs the Debian packages {', '.join(missing)} (apt-get install ...)")


def notebook_stage(name: str, *args: str, notebooks: list[str], **kwargs) -> int:
    """pytest on ``args``, recording each notebook's seconds in _build/timings/<name>.json."""
    return pytest("-p", "notebook_timing", f"--notebook-times={TIMINGS / f'{name}.json'}", *args,
                  env={"KEXUE_NOTEBOOKS": os.pathsep.join(notebooks)} if notebooks else None, **kwargs)


def colab_stage(replica: subprocess.Popen, *args: str, notebooks: list[str], **kwargs) -> int:
    """The Colab replica's tests, once its build (started by main) has finished."""
    if replica.wait() != 0:
        print(REPLICA_LOG.read_text(), f"tasks: building the Colab replica failed (exit {replica.returncode})",
              sep="\n", flush=True)
        return replica.returncode
    print(REPLICA_LOG.read_text().strip().splitlines()[-1], flush=True)  # how long it took, alongside
    return notebook_stage("colab", *args, notebooks=notebooks, **kwargs)


def side_by_side(*stages) -> int:
    """Run stages at once, each writing to a log that is printed when all are done; the worst exit code.

    Each stage is a function taking the ``stdout`` and ``stderr`` to pass to its subprocess.
    """
    from concurrent.futures import ThreadPoolExecutor

    logs = [(TIMINGS / f"side-by-side-{k}.log").open("w+") for k in range(len(stages))]
    with ThreadPoolExecutor(len(stages)) as pool:
        codes = list(pool.map(lambda pair: pair[0](stdout=pair[1], stderr=subprocess.STDOUT), zip(stages, logs)))
    for log in logs:
        log.seek(0)
        print(log.read(), flush=True)
        log.close()
    return max(codes)


def cmd_test(notebooks: list[str], replica: subprocess.Popen) -> int:
    """Every stage; with ``notebooks``, the execution and browser stages cover only those.

    ``replica`` is the build of the Colab replica, started before .venv was: it runs alongside.
    """
    ensure_browser()
    timings = [("environment (venv, Debian packages)", time.monotonic() - STARTED, 0)]
    shutil.rmtree(TIMINGS, ignore_errors=True)
    TIMINGS.mkdir(parents=True)
    selection = {"KEXUE_NOTEBOOKS": os.pathsep.join(notebooks)} if notebooks else None
    # the full run: two notebooks at a time in each execution stage; `check`: the two stages side by side,
    # one notebook at a time each
    workers = [] if notebooks else ["-n", "2"]
    nbval = ["--nbval", *workers, "--dist", "loadfile", *(notebooks or ["book", "templates"])]
    colab = ["tests/test_colab.py", *workers, "--dist", "load"]
    if notebooks:
        stages = [("static notebook checks", lambda: pytest("tests/test_notebooks.py", "tests/test_ledger.py",
                                                            "tests/test_dependencies.py")),
                  ("nbval (strict) and Colab replica, side by side", lambda: side_by_side(
                      lambda **out: notebook_stage("nbval", *nbval, notebooks=notebooks, **out),
                      lambda **out: colab_stage(replica, *colab, notebooks=notebooks, **out)))]
    else:
        # by file: a module's tests share its jitted functions, which each worker would compile again
        stages = [("unit tests", lambda: pytest("tests", "-m", "not browser and not colab", "-n", "2",
                                                "--dist", "loadfile")),
                  ("notebooks (nbval, strict)", lambda: notebook_stage("nbval", *nbval, notebooks=notebooks)),
                  ("colab replica", lambda: colab_stage(replica, *colab, notebooks=notebooks))]
    stages += [("book build (-W -n --keep-going)", build_book),
               # the two files, not `tests -m browser`: collecting every test module cost each worker ~20 s
               ("real browser", lambda: pytest("tests/test_browser.py", "tests/test_site.py", "-n", "2",
                                               env=selection))]
    for name, stage in stages:
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        code = stage()
        timings.append((name, time.monotonic() - started, code))
        print(f"=== {name}: {timings[-1][1]:.0f} s, {'ok' if code == 0 else f'FAILED (exit {code})'}", flush=True)
    print("\ntasks: stage timings")
    for name, seconds, code in timings:
        print(f"  {name:<48} {seconds:7.1f} s   {'ok' if code == 0 else f'FAILED (exit {code})'}")
    report_cost(time.monotonic() - STARTED)
    failed = [name for name, _, code in timings if code != 0]
    if failed:
        print(f"tasks: failed stages: {', '.join(failed)}")
        return 1
    return 0


def report_cost(total: float) -> None:
    """Per-chapter seconds of each execution stage, then the total and what CI costs per chapter."""
    stages = {}
    for name in ("nbval", "colab"):
        path = TIMINGS / f"{name}.json"
        run = json.loads(path.read_text()) if path.exists() else {"notebooks": {}}
        stages[name] = {nb: record["seconds"] for nb, record in run["notebooks"].items()}
    notebooks = sorted(set().union(*stages.values()))
    if notebooks:
        print("\ntasks: seconds per notebook (sum of its cells' or its test's time)")
        print(f"  {'notebook':<52} {'nbval':>7} {'colab':>7}")
        for nb in notebooks:
            print(f"  {nb:<52} " + " ".join(f"{stages[s].get(nb, float('nan')):7.1f}" for s in stages))
    chapters = sum(nb.startswith("book/") for nb in notebooks)
    per = f"; {total / chapters:.0f} s of CI per chapter ({chapters} chapters)" if chapters else ""
    print(f"tasks: total {total:.0f} s{per}", flush=True)


def cmd_refresh(notebooks: list[str]) -> int:
    """Execute each notebook in a fresh kernel, top to bottom; store its outputs and a refresh record."""
    if not notebooks:
        notebooks = sorted(str(p.relative_to(ROOT)) for folder in ("book", "templates")
                           for p in (ROOT / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return run(PY, __file__, "refresh-in-venv", *notebooks)


def refresh_in_venv(notebooks: list[str]) -> int:
    """The work of ``refresh``, run by the project's Python (it needs nbclient, jax).

    The record in the notebook's metadata, ``kexue.refresh`` (date, seconds, environment), is what the
    status page shows as the time of the stored outputs; nbval ignores notebook metadata.
    """
    import platform

    import jax
    import nbformat
    import numpy
    from nbclient import NotebookClient

    environment = (f"Python {platform.python_version()}, jax {jax.__version__} ({jax.default_backend()}), "
                   f"numpy {numpy.__version__}; {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs")
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        started = time.monotonic()
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,  # no timestamps
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.monotonic() - started
        for cell in nb.cells:  # one print may arrive as several stream messages: store them as one
            merged = []
            for out in cell.get("outputs", []):
                if merged and out.output_type == "stream" == merged[-1].output_type and out.name == merged[-1].name:
                    merged[-1].text += out.text
                else:
                    merged.append(out)
            if cell.cell_type == "code":
                cell.outputs = merged
        nb.metadata["kexue"] = {"refresh": {"date": time.strftime("%Y-%m-%d", time.gmtime()),
                                            "seconds": round(seconds, 1), "environment": environment}}
        nbformat.write(nb, path)
        print(f"{path}: executed in {seconds:.1f} s", flush=True)
    return 0


def checked_notebooks(names: list[str]) -> list[str]:
    """The notebooks named on the command line, relative to the root; exits on a name that is not one."""
    paths = [Path(name).resolve() for name in names]
    bad = [str(p) for p in paths if p.suffix != ".ipynb" or not p.is_file() or ROOT not in p.parents]
    if bad:
        sys.exit(f"tasks: not notebooks of this book: {', '.join(bad)}")
    toc = (ROOT / "_toc.yml").read_text()
    for rel in (p.relative_to(ROOT) for p in paths):
        if f"file: {rel.with_suffix('').as_posix()}\n" not in toc:
            print(f"tasks: {rel} is not in _toc.yml, so the book build and the browser leave it out", flush=True)
    return [p.relative_to(ROOT).as_posix() for p in paths]


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "refresh-in-venv":  # internal: `refresh` runs this under .venv/bin/python
        return refresh_in_venv(args)
    if command not in {"book", "test", "check", "refresh", "bench"} or (command == "check" and not args) \
            or (command == "book" and args not in ([], ["--execute"])) or (command in {"test", "bench"} and args):
        print(__doc__)
        return 2
    if command == "check":
        args = checked_notebooks(args)
    replica = None
    if command in {"test", "check"}:  # the Colab replica builds while .venv does (one pip on each core)
        REPLICA_LOG.parent.mkdir(exist_ok=True)
        print(f"tasks: building the Colab replica in the background ({REPLICA_LOG.relative_to(ROOT)})", flush=True)
        replica = subprocess.Popen([sys.executable, ROOT / "tests" / "colab_replica.py"], cwd=ROOT, env=ENV,
                                   stdout=REPLICA_LOG.open("w"), stderr=subprocess.STDOUT)
    ensure_venv()
    if command == "book":
        return build_book(execute=args == ["--execute"])
    if command in {"test", "check"}:
        return cmd_test(args, replica)
    if command == "refresh":
        return cmd_refresh(args)
    # files named _*.py are helpers shared by the benchmarks, not benchmarks
    return max(run(PY, script) for script in sorted((ROOT / "benchmarks").glob("[!_]*.py")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
