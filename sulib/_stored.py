"""Stored runs: a JSON file a chapter loads (and checks by sha256), with the command that made it.

Each module with a long run has an entry point, ``python -m sulib.<module> ... OUT.json``, that ends
with :func:`write_stored_run`.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence


def environment() -> str:
    """The versions a run depended on, e.g. ``"Python 3.11.7, jax 0.10.2, optax 0.2.8, numpy 2.4.6"``."""
    import jax
    import numpy as np
    import optax

    return (f"Python {platform.python_version()}, jax {jax.__version__}, optax {optax.__version__}, "
            f"numpy {np.__version__}")


def write_stored_run(path: str, module: str, argv: Sequence[str] | None, **fields) -> None:
    """Write ``fields`` to ``path`` as JSON, then ``command`` (the module's command line, from ``argv`` or
    ``sys.argv``) and ``environment``."""
    args = list(argv) if argv is not None else sys.argv[1:]
    record = {**fields, "command": " ".join([f"python -m {module}", *args]),
              "environment": environment()}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")
