"""pytest plugin: seconds each notebook took in this run, written as JSON (``-p notebook_timing``).

    pytest -p notebook_timing --notebook-times=_build/timings/nbval.json --nbval book

A notebook's time is the sum of the durations of the test items that ran it: every cell under nbval
(items ``book/x.ipynb::Cell 3``), or the one test of tests/test_colab.py that records ``notebook`` as a
property. With pytest-xdist, the controller receives every worker's reports, so one file covers all
workers. For each notebook the file also records whether all its items passed and the SHA-256 of the
notebook as it was run, and for the run its commit, its end and how many notebooks ran at a time: the
status page (``_ext/kexue_book.py``) shows a time only for the notebook it was measured on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

import book  # noqa: F401  (puts _ext on sys.path)
from kexue_book import current_commit


def pytest_addoption(parser):
    parser.addoption("--notebook-times", metavar="PATH", help="write each notebook's seconds in this run to PATH")


def notebook_of(report) -> str | None:
    props = dict(report.user_properties)
    if "notebook" in props:
        return props["notebook"]
    path = report.nodeid.split("::")[0]
    return path if path.endswith(".ipynb") else None


class NotebookTimes:
    def __init__(self, path: Path, at_a_time: int):
        self.path = path
        self.at_a_time = at_a_time
        self.seconds: dict[str, float] = defaultdict(float)
        self.failed: set[str] = set()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        notebook = notebook_of(report)
        if notebook is not None:
            self.seconds[notebook] += report.duration
            if report.failed:
                self.failed.add(notebook)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session):
        root = Path(session.config.rootpath)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({
            "commit": current_commit(),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "at_a_time": self.at_a_time,
            "notebooks": {nb: {"seconds": round(s, 1), "passed": nb not in self.failed,
                               "sha256": hashlib.sha256((root / nb).read_bytes()).hexdigest()}
                          for nb, s in sorted(self.seconds.items())},
        }, indent=1) + "\n")


def pytest_configure(config):
    path = config.getoption("--notebook-times")
    if path and not hasattr(config, "workerinput"):  # the xdist controller (or a run without xdist)
        at_a_time = getattr(config.option, "numprocesses", None) or 1
        config.pluginmanager.register(NotebookTimes(Path(path), at_a_time), "notebook-times-writer")
